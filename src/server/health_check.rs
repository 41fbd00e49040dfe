//! Active health checks (`health_check PATH …`): every member of a group
//! that has one is probed with `GET PATH` every `interval`, the first time
//! as soon as the group is loaded. A 2xx or 3xx answer is healthy;
//! `fails` failures in a row take the member out, `passes` successes bring
//! it back (the shared [`crate::upstream::Health`]).
//!
//! Probes run on one prober thread with a short-lived thread per probe,
//! bounded by a timeout, so a hanging member never stalls an event loop or
//! the other probes. State is keyed by group name and member address, so a
//! reload keeps it for members that still exist.

use super::Shared;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the prober looks at the schedule.
const TICK: Duration = Duration::from_millis(50);
/// How often it looks for groups to probe when there are none (a reload
/// may add one).
const IDLE_TICK: Duration = Duration::from_secs(1);

/// Runs until the server stops.
pub fn run(shared: Arc<Shared>) {
    // (group, member) → (next probe, a probe is in flight).
    let mut schedule: HashMap<(String, SocketAddr), (Instant, Arc<AtomicBool>)> = HashMap::new();
    while !shared.stopping.load(Ordering::Acquire) {
        let snapshot = shared.snapshot.load_full();
        let now = Instant::now();
        let mut wanted = Vec::new();
        for group in snapshot.upstreams.iter() {
            let Some(check) = &group.health_check else {
                continue;
            };
            for m in &group.members {
                let key = (group.name.clone(), m.addr);
                wanted.push(key.clone());
                let (next, busy) = schedule
                    .entry(key)
                    .or_insert_with(|| (now, Arc::new(AtomicBool::new(false))));
                if now < *next || busy.load(Ordering::Acquire) {
                    continue;
                }
                *next = now + check.interval;
                busy.store(true, Ordering::Release);
                let (busy, shared) = (busy.clone(), shared.clone());
                let (name, addr, path) = (group.name.clone(), m.addr, check.path.clone());
                let (fails, passes) = (check.fails, check.passes);
                let timeout = check
                    .interval
                    .clamp(Duration::from_millis(200), Duration::from_secs(5));
                let spawned =
                    std::thread::Builder::new()
                        .name("xps-probe".into())
                        .spawn(move || {
                            let ok = probe(addr, &path, timeout);
                            if let Some(up) = shared.health.probed(&name, addr, ok, fails, passes) {
                                let state = if up { "back up" } else { "down" };
                                crate::log::warn(&format!(
                                    "upstream {name} member {addr} is {state} (health check {path})"
                                ));
                            }
                            busy.store(false, Ordering::Release);
                        });
                if spawned.is_err() {
                    // Try again next interval.
                    if let Some((_, b)) = schedule.get(&(group.name.clone(), m.addr)) {
                        b.store(false, Ordering::Release);
                    }
                }
            }
        }
        schedule.retain(|k, _| wanted.contains(k));
        // A schedule tick, not synchronisation; slow when nothing is probed.
        std::thread::sleep(if wanted.is_empty() { IDLE_TICK } else { TICK });
    }
}

/// One probe: connect, `GET path`, read the status line.
fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: xps-health-check\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    let code: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (200..400).contains(&code)
}
