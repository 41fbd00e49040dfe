//! The access log: one line per request in the combined log format plus
//! the request time. Workers hand finished lines to a writer thread over a
//! bounded channel and never wait on a disk or a pipe: when the writer
//! falls behind, lines are dropped and counted.

use super::LogTarget;
use super::queue::{Kind, Queue};

/// Lines waiting for the writer at most.
const QUEUE: usize = 16 * 1024;

/// The sending side, cloned into every worker.
#[derive(Clone)]
pub struct AccessLog {
    queue: Queue,
}

impl AccessLog {
    /// Starts the writer thread.
    pub fn start() -> AccessLog {
        AccessLog {
            queue: Queue::start("xps-access-log", QUEUE, Kind::Access),
        }
    }

    /// Queues a line (without its newline) for `target`.
    pub fn write(&self, target: &LogTarget, mut line: String) {
        line.push('\n');
        let _ = self.queue.send(target.clone(), line);
    }

    /// Reopens the files after a log rotation renamed them: the lines
    /// queued before go to the old files, the ones after to new files at
    /// the configured paths. Waits for room in the queue (never dropped).
    pub fn reopen(&self) {
        self.queue.reopen();
    }

    /// Waits (at most `within`) until the lines queued so far are written.
    pub fn flush(&self, within: std::time::Duration) {
        self.queue.flush(within);
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }
}

/// The seconds of `now` since 1970.
fn unix_secs(now: std::time::SystemTime) -> i64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Appends `make(secs)` to `out`, made once per second and thread: every
/// log line of a second has the same time.
fn per_second(
    cache: &'static std::thread::LocalKey<std::cell::RefCell<(i64, String)>>,
    secs: i64,
    make: fn(i64) -> String,
    out: &mut String,
) {
    cache.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, make(secs));
        }
        out.push_str(&last.1);
    })
}

/// Appends `[26/Nov/2026:07:49:13 +0000]`'s inside, for the combined
/// format.
pub fn clf_time(now: std::time::SystemTime, out: &mut String) {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    per_second(&LAST, unix_secs(now), clf_time_of, out)
}

fn clf_time_of(secs: i64) -> String {
    let date = crate::http::date::listing_time(secs); // YYYY-MM-DD HH:MM
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, rest) = date.split_at(4);
    let m: usize = rest[1..3].parse().unwrap_or(1);
    let d = &rest[4..6];
    format!(
        "{d}/{}/{y}:{}:{:02} +0000",
        MONTHS[(m - 1).min(11)],
        &rest[7..12],
        secs.rem_euclid(60)
    )
}

/// Appends `2026-12-01T10:00:00+00:00` (nginx's `$time_iso8601`, in UTC).
pub fn iso_time(now: std::time::SystemTime, out: &mut String) {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    per_second(&LAST, unix_secs(now), iso_time_of, out)
}

fn iso_time_of(secs: i64) -> String {
    let date = crate::http::date::listing_time(secs); // YYYY-MM-DD HH:MM
    format!(
        "{}T{}:{:02}+00:00",
        &date[..10],
        &date[11..16],
        secs.rem_euclid(60)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_log_time() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let (mut clf, mut iso) = (String::new(), String::new());
        clf_time(t, &mut clf);
        iso_time(t, &mut iso);
        assert_eq!(clf, "18/Nov/2026:11:06:40 +0000");
        assert_eq!(iso, "2026-11-18T11:06:40+00:00");
    }
}
