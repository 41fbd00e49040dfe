//! Health of upstream members, shared by every worker and kept across
//! reloads: keyed by group name and member address, never by position in a
//! config.
//!
//! Passive: a member that failed `max_fails` times within `fail_timeout`
//! is out until `fail_timeout` has passed. Active: a member whose probes
//! failed `fails` times in a row is out until `passes` probes in a row
//! succeed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What is known of one member.
#[derive(Clone, Debug, Default)]
struct State {
    /// Failures counted in the current window.
    fails: u32,
    /// When the current window of failures started.
    window_start: Option<Instant>,
    /// Out (passively) until this time.
    down_until: Option<Instant>,
    /// Out because of active probes.
    probe_down: bool,
    /// Consecutive probe results (failures or passes).
    probe_fails: u32,
    probe_passes: u32,
}

/// The shared registry.
pub struct Health {
    /// Group name → member → state. Only members something happened to
    /// are in it.
    members: Mutex<HashMap<String, HashMap<SocketAddr, State>>>,
    /// Nothing was ever recorded: every member is up, no lock needed (the
    /// common case, on every proxied request).
    quiet: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

/// Passive-health settings of a member.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `max_fails` (0: never out).
    pub max_fails: u32,
    /// `fail_timeout`.
    pub fail_timeout: Duration,
}

impl Health {
    /// A new, empty registry.
    pub fn new() -> Health {
        Health {
            members: Mutex::new(HashMap::new()),
            quiet: AtomicBool::new(true),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, HashMap<SocketAddr, State>>) -> R) -> R {
        let mut m = match self.members.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        f(&mut m)
    }

    fn state<'a>(
        m: &'a mut HashMap<String, HashMap<SocketAddr, State>>,
        group: &str,
        addr: SocketAddr,
    ) -> &'a mut State {
        m.entry(group.to_string())
            .or_default()
            .entry(addr)
            .or_default()
    }

    /// Whether a member may take traffic now.
    pub fn is_up(&self, group: &str, addr: SocketAddr, now: Instant) -> bool {
        if self.quiet.load(Ordering::Relaxed) {
            return true;
        }
        self.with(|m| match m.get(group).and_then(|g| g.get(&addr)) {
            None => true,
            Some(s) => !s.probe_down && s.down_until.is_none_or(|t| now >= t),
        })
    }

    /// Records a failed attempt (refused, reset, timed out).
    pub fn failed(&self, group: &str, addr: SocketAddr, limits: Limits, now: Instant) {
        if limits.max_fails == 0 {
            return;
        }
        self.quiet.store(false, Ordering::Relaxed);
        self.with(|m| {
            let s = Self::state(m, group, addr);
            let fresh = s
                .window_start
                .is_none_or(|t| now.duration_since(t) > limits.fail_timeout);
            if fresh {
                s.window_start = Some(now);
                s.fails = 0;
            }
            s.fails += 1;
            if s.fails >= limits.max_fails {
                s.down_until = Some(now + limits.fail_timeout);
                s.fails = 0;
                s.window_start = None;
            }
        });
    }

    /// Records a success: the failure window starts over.
    pub fn succeeded(&self, group: &str, addr: SocketAddr) {
        if self.quiet.load(Ordering::Relaxed) {
            return;
        }
        self.with(|m| {
            if let Some(s) = m.get_mut(group).and_then(|g| g.get_mut(&addr)) {
                s.fails = 0;
                s.window_start = None;
                s.down_until = None;
            }
        });
    }

    /// Records an active probe; returns `Some(up)` when the member's state
    /// changed.
    pub fn probed(
        &self,
        group: &str,
        addr: SocketAddr,
        ok: bool,
        fails: u32,
        passes: u32,
    ) -> Option<bool> {
        self.quiet.store(false, Ordering::Relaxed);
        self.with(|m| {
            let s = Self::state(m, group, addr);
            if ok {
                s.probe_fails = 0;
                s.probe_passes += 1;
                if s.probe_down && s.probe_passes >= passes {
                    s.probe_down = false;
                    s.down_until = None;
                    return Some(true);
                }
            } else {
                s.probe_passes = 0;
                s.probe_fails += 1;
                if !s.probe_down && s.probe_fails >= fails {
                    s.probe_down = true;
                    return Some(false);
                }
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().expect("addr")
    }

    #[test]
    fn max_fails_within_fail_timeout_takes_a_member_out_until_it_passes() {
        let h = Health::new();
        let t0 = Instant::now();
        let limits = Limits {
            max_fails: 2,
            fail_timeout: Duration::from_secs(10),
        };
        h.failed("g", addr(), limits, t0);
        assert!(h.is_up("g", addr(), t0));
        h.failed("g", addr(), limits, t0 + Duration::from_secs(1));
        assert!(!h.is_up("g", addr(), t0 + Duration::from_secs(2)));
        assert!(h.is_up("g", addr(), t0 + Duration::from_secs(12)));
        // Failures far apart do not add up.
        let h = Health::new();
        h.failed("g", addr(), limits, t0);
        h.failed("g", addr(), limits, t0 + Duration::from_secs(11));
        assert!(h.is_up("g", addr(), t0 + Duration::from_secs(11)));
    }

    #[test]
    fn probes_take_members_out_and_back() {
        let h = Health::new();
        assert_eq!(h.probed("g", addr(), false, 2, 1), None);
        assert_eq!(h.probed("g", addr(), false, 2, 1), Some(false));
        assert!(!h.is_up("g", addr(), Instant::now()));
        assert_eq!(h.probed("g", addr(), true, 2, 1), Some(true));
        assert!(h.is_up("g", addr(), Instant::now()));
    }
}
