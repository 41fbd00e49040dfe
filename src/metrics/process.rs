//! CPU and memory of the process, its workers and the machine, read from
//! `/proc` when the metrics are asked for (never on the request path).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// `/proc` times are in these ticks per second (USER_HZ, 100 on Linux
/// whatever the kernel's own tick).
const TICKS: u64 = 100;

/// Unix time now, milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One reading of the counters `/proc` keeps.
#[derive(Clone, Debug)]
pub struct Sample {
    at: Instant,
    /// CPU ticks of the whole process (user + system).
    process_ticks: u64,
    /// CPU ticks of each worker thread (0 when unknown).
    worker_ticks: Vec<u64>,
    /// Ticks of the machine: all, and idle (idle + iowait).
    machine_total: u64,
    machine_idle: u64,
    /// Resident memory of the process, bytes.
    rss: u64,
    /// Memory of the machine: total and available, bytes.
    ram_total: u64,
    ram_available: u64,
}

/// Figures between two samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// CPU time of the process since it started, milliseconds.
    pub process_cpu_ms: u64,
    /// Busy share of the whole machine, 0–100.
    pub machine_cpu_percent: f64,
    /// Each worker's share of one core, 0–100.
    pub worker_cpu_percent: Vec<f64>,
    /// Resident memory of the process, bytes.
    pub rss_bytes: u64,
    /// Memory of the machine in use (total − available), bytes.
    pub ram_used_bytes: u64,
    /// Memory of the machine, bytes.
    pub ram_total_bytes: u64,
}

impl Sample {
    /// Reads `/proc` now; `tids` are the worker threads.
    pub fn take(tids: &[u64]) -> Sample {
        let (machine_total, machine_idle) = machine_ticks();
        let (ram_total, ram_available) = meminfo();
        Sample {
            at: Instant::now(),
            process_ticks: ticks_of("/proc/self/stat"),
            worker_ticks: tids
                .iter()
                .map(|&t| {
                    if t == 0 {
                        0
                    } else {
                        ticks_of(&format!("/proc/self/task/{t}/stat"))
                    }
                })
                .collect(),
            machine_total,
            machine_idle,
            rss: rss(),
            ram_total,
            ram_available,
        }
    }
}

impl Usage {
    /// The figures of `now`, with rates since `last` (or since `started`
    /// with no sample before).
    pub fn between(last: Option<&Sample>, now: &Sample, started: Instant) -> Usage {
        let secs = match last {
            Some(l) => now.at.duration_since(l.at).as_secs_f64(),
            None => now.at.duration_since(started).as_secs_f64(),
        }
        .max(1e-3);
        let share = |ticks: u64| -> f64 {
            let p = ticks as f64 / TICKS as f64 / secs * 100.0;
            (p.clamp(0.0, 100.0) * 10.0).round() / 10.0
        };
        let worker_cpu_percent = now
            .worker_ticks
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let before = last.and_then(|l| l.worker_ticks.get(i).copied());
                share(t.saturating_sub(before.unwrap_or(0)))
            })
            .collect();
        let machine_cpu_percent = match last {
            Some(l) if now.machine_total > l.machine_total => {
                let all = (now.machine_total - l.machine_total) as f64;
                let idle = now.machine_idle.saturating_sub(l.machine_idle) as f64;
                (((all - idle) / all * 100.0).clamp(0.0, 100.0) * 10.0).round() / 10.0
            }
            _ if now.machine_total > 0 => {
                let busy = now.machine_total.saturating_sub(now.machine_idle) as f64;
                ((busy / now.machine_total as f64 * 100.0).clamp(0.0, 100.0) * 10.0).round() / 10.0
            }
            _ => 0.0,
        };
        Usage {
            process_cpu_ms: now.process_ticks * 1000 / TICKS,
            machine_cpu_percent,
            worker_cpu_percent,
            rss_bytes: now.rss,
            ram_used_bytes: now.ram_total.saturating_sub(now.ram_available),
            ram_total_bytes: now.ram_total,
        }
    }
}

/// utime + stime of a `stat` file.
fn ticks_of(path: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    // The command name may hold spaces and parentheses: fields count from
    // the last `)`.
    let Some((_, rest)) = text.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the name: state is field 0, utime 11, stime 12.
    num(11) + num(12)
}

/// All and idle ticks of the machine (the `cpu` line of `/proc/stat`).
fn machine_ticks() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already in user).
    let all: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (all, idle)
}

/// `MemTotal` and `MemAvailable`, bytes.
fn meminfo() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return (0, 0);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// `VmRSS` of the process, bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_itself() {
        let started = Instant::now();
        let a = Sample::take(&[0]);
        let u = Usage::between(None, &a, started);
        assert!(u.rss_bytes > 0);
        assert!(u.ram_total_bytes >= u.ram_used_bytes && u.ram_total_bytes > 0);
        assert_eq!(u.worker_cpu_percent, vec![0.0]);
        assert!((0.0..=100.0).contains(&u.machine_cpu_percent));
    }
}
