//! Active health checks (`health_check PATH …`), run inside the first
//! worker's event loop: every member of a group that has one is probed with
//! `GET PATH` every `interval`, the first time as soon as the group is
//! loaded. A 2xx or 3xx status is healthy; `fails` failures in a row take
//! the member out, `passes` successes bring it back (the shared
//! [`crate::upstream::Health`]).
//!
//! A probe is a non-blocking socket in the loop's epoll with a deadline
//! (the interval, within 200 ms and 5 s), so a member that hangs costs one
//! idle socket and never stalls requests or the other probes. State is
//! keyed by group name and member address, so a reload keeps it for members
//! that still exist.

use super::ctx::Shared;
use crate::net::{Poller, Token, sys};
use crate::routing::Snapshot;
use crate::upstream::Endpoint;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of the answer looked at: `HTTP/1.1 200`.
const STATUS_LINE: usize = 12;

/// One member probed.
struct Entry {
    group: String,
    addr: Endpoint,
    path: String,
    interval: Duration,
    fails: u32,
    passes: u32,
    /// When the next probe starts.
    next: Instant,
    probe: Option<InFlight>,
}

/// A probe under way.
struct InFlight {
    /// Its number (in its token), new for every probe, so a late event of
    /// an earlier socket finds nothing.
    id: u32,
    stream: sys::Stream,
    deadline: Instant,
    request: Vec<u8>,
    written: usize,
    answer: [u8; STATUS_LINE],
    got: usize,
}

/// The probes of one event loop.
#[derive(Default)]
pub struct Prober {
    entries: Vec<Entry>,
    /// The snapshot the entries were made from.
    seen: Option<Arc<Snapshot>>,
    /// The number of the last probe started.
    last_id: u32,
}

impl Prober {
    /// When the loop must wake for the probes at the latest (at once
    /// before the first [`Prober::tick`], which finds the groups).
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        if self.seen.is_none() {
            return Some(now);
        }
        self.entries
            .iter()
            .map(|e| e.probe.as_ref().map_or(e.next, |p| p.deadline))
            .min()
    }

    /// Follows `snapshot`, fails probes past their deadline and starts the
    /// ones that are due.
    pub fn tick(
        &mut self,
        snapshot: &Arc<Snapshot>,
        now: Instant,
        poller: &Poller,
        shared: &Shared,
    ) {
        if !self.seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, snapshot)) {
            self.follow(snapshot, now);
            self.seen = Some(snapshot.clone());
        }
        for i in 0..self.entries.len() {
            let e = &self.entries[i];
            match &e.probe {
                Some(p) if now >= p.deadline => self.finish(i, false, shared),
                None if now >= e.next => self.start(i, now, poller, shared),
                _ => {}
            }
        }
    }

    /// Socket readiness for the probe numbered `id`.
    pub fn ready(&mut self, id: u32, shared: &Shared) {
        let Some(i) = self
            .entries
            .iter()
            .position(|e| e.probe.as_ref().is_some_and(|p| p.id == id))
        else {
            return;
        };
        let Some(p) = self.entries[i].probe.as_mut() else {
            return;
        };
        if let Some(ok) = p.advance() {
            self.finish(i, ok, shared);
        }
    }

    /// Makes the entries match the groups of `snapshot`, keeping the
    /// schedule and any probe under way of members that stay (a shorter
    /// interval takes effect at once).
    fn follow(&mut self, snapshot: &Snapshot, now: Instant) {
        let mut old = std::mem::take(&mut self.entries);
        for group in snapshot.upstreams.iter() {
            let Some(check) = &group.health_check else {
                continue;
            };
            for m in &group.members {
                let kept = old
                    .iter()
                    .position(|e| e.group == group.name && e.addr == m.addr)
                    .map(|at| old.swap_remove(at));
                let mut e = kept.unwrap_or_else(|| Entry {
                    group: group.name.clone(),
                    addr: m.addr.clone(),
                    path: String::new(),
                    interval: check.interval,
                    fails: check.fails,
                    passes: check.passes,
                    next: now,
                    probe: None,
                });
                e.next = e.next.min(now + check.interval);
                e.path.clone_from(&check.path);
                e.interval = check.interval;
                e.fails = check.fails;
                e.passes = check.passes;
                self.entries.push(e);
            }
        }
        // Probes of members gone from the config close with `old`.
    }

    fn start(&mut self, i: usize, now: Instant, poller: &Poller, shared: &Shared) {
        self.last_id = self.last_id.wrapping_add(1);
        let id = self.last_id;
        let e = &mut self.entries[i];
        e.next = now + e.interval;
        let timeout = e
            .interval
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        let stream = match super::connect(&e.addr) {
            Ok(s) => s,
            Err(_) => return self.finish(i, false, shared),
        };
        if poller.add_stream(&stream, Token::Probe(id)).is_err() {
            return self.finish(i, false, shared);
        }
        // A Unix socket has no host name: `localhost`, as nginx sends.
        let host = match &e.addr {
            Endpoint::Inet(_) => e.addr.to_string(),
            Endpoint::Unix(_) => "localhost".to_string(),
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xps-health-check\r\nConnection: close\r\n\r\n",
            e.path
        );
        e.probe = Some(InFlight {
            id,
            stream,
            deadline: now + timeout,
            request: request.into_bytes(),
            written: 0,
            answer: [0; STATUS_LINE],
            got: 0,
        });
    }

    /// Ends the probe of entry `i` (closing its socket) and records it.
    fn finish(&mut self, i: usize, ok: bool, shared: &Shared) {
        let e = &mut self.entries[i];
        e.probe = None;
        if let Some(up) = shared
            .health
            .probed(&e.group, &e.addr, ok, e.fails, e.passes)
        {
            let state = if up { "back up" } else { "down" };
            crate::log::warn(&format!(
                "upstream {} member {} is {state} (health check {})",
                e.group, e.addr, e.path
            ));
        }
    }
}

impl InFlight {
    /// Moves the exchange on; `Some(healthy)` once it is decided.
    fn advance(&mut self) -> Option<bool> {
        while self.written < self.request.len() {
            match self.stream.write(&self.request[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(false),
            }
        }
        while self.got < STATUS_LINE {
            match self.stream.read(&mut self.answer[self.got..]) {
                Ok(0) => break,
                Ok(n) => self.got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(false),
            }
        }
        Some(healthy(&self.answer[..self.got]))
    }
}

/// A status line with a 2xx or 3xx code.
fn healthy(status_line: &[u8]) -> bool {
    let Some(code) = status_line
        .strip_prefix(b"HTTP/1.")
        .and_then(|rest| rest.get(2..5))
    else {
        return false;
    };
    code.iter().all(u8::is_ascii_digit) && matches!(code[0], b'2' | b'3')
}

#[cfg(test)]
mod tests {
    use super::healthy;

    #[test]
    fn only_2xx_and_3xx_status_lines_are_healthy() {
        assert!(healthy(b"HTTP/1.1 200"));
        assert!(healthy(b"HTTP/1.0 302"));
        assert!(!healthy(b"HTTP/1.1 404"));
        assert!(!healthy(b"HTTP/1.1 503"));
        assert!(!healthy(b"HTTP/1.1 2"));
        assert!(!healthy(b"SSH-2.0-Open"));
        assert!(!healthy(b""));
    }
}
