//! Health of upstream members, shared by every worker and kept across
//! reloads: keyed by group name and member address, never by position in a
//! config.
//!
//! Passive: a member that failed `max_fails` times within `fail_timeout`
//! is out until `fail_timeout` has passed. Active: a member whose probes
//! failed `fails` times in a row is out until `passes` probes in a row
//! succeed.

use super::Endpoint;
use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What is known of one member, in atomics: any worker reads and records
/// without a lock. Times are nanoseconds since [`Health`]'s start plus
/// one; 0 means none.
#[derive(Debug, Default)]
struct Member {
    /// Failures counted in the current window.
    fails: AtomicU32,
    /// When the current window of failures started.
    window_start: AtomicU64,
    /// Out (passively) until this time.
    down_until: AtomicU64,
    /// Out because of active probes.
    probe_down: AtomicBool,
    /// Consecutive probe results (failures or passes); only the prober
    /// writes them.
    probe_fails: AtomicU32,
    probe_passes: AtomicU32,
}

/// Group name → member address → its state.
type Members = FxHashMap<String, FxHashMap<Endpoint, Arc<Member>>>;

/// The shared registry.
pub struct Health {
    /// Only members something happened to are in it. Read without a lock;
    /// a member's first record copies the map (read, copy, update).
    members: ArcSwap<Members>,
    /// Nothing was ever recorded: every member is up, nothing to look up
    /// (the common case, on every proxied request).
    quiet: AtomicBool,
    /// The origin of the stored times.
    start: Instant,
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
            members: ArcSwap::from_pointee(Members::default()),
            quiet: AtomicBool::new(true),
            start: Instant::now(),
        }
    }

    /// `t` as stored (never 0).
    fn time(&self, t: Instant) -> u64 {
        let nanos = t.saturating_duration_since(self.start).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
    }

    /// The member's state, if anything was recorded for it.
    fn get(&self, group: &str, addr: &Endpoint) -> Option<Arc<Member>> {
        self.members.load().get(group)?.get(addr).cloned()
    }

    /// The member's state, made on its first record.
    fn entry(&self, group: &str, addr: &Endpoint) -> Arc<Member> {
        self.quiet.store(false, Ordering::Relaxed);
        if let Some(m) = self.get(group, addr) {
            return m;
        }
        let made = Arc::new(Member::default());
        let mut found = None;
        self.members.rcu(|members| {
            let mut next = Members::clone(members);
            let m = next
                .entry(group.to_string())
                .or_default()
                .entry(addr.clone())
                .or_insert_with(|| made.clone());
            found = Some(m.clone());
            next
        });
        found.unwrap_or(made)
    }

    /// Whether a member may take traffic now.
    pub fn is_up(&self, group: &str, addr: &Endpoint, now: Instant) -> bool {
        if self.quiet.load(Ordering::Relaxed) {
            return true;
        }
        match self.get(group, addr) {
            None => true,
            Some(m) => {
                let until = m.down_until.load(Ordering::Relaxed);
                !m.probe_down.load(Ordering::Relaxed) && (until == 0 || self.time(now) >= until)
            }
        }
    }

    /// Records a failed attempt (refused, reset, timed out).
    pub fn failed(&self, group: &str, addr: &Endpoint, limits: Limits, now: Instant) {
        if limits.max_fails == 0 {
            return;
        }
        let m = self.entry(group, addr);
        let now = self.time(now);
        let window = u64::try_from(limits.fail_timeout.as_nanos()).unwrap_or(u64::MAX);
        let start = m.window_start.load(Ordering::Relaxed);
        if (start == 0 || now.saturating_sub(start) > window)
            && m.window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // A new window: this worker opened it.
            m.fails.store(0, Ordering::Relaxed);
        }
        if m.fails.fetch_add(1, Ordering::Relaxed) + 1 >= limits.max_fails {
            m.down_until
                .store(now.saturating_add(window), Ordering::Relaxed);
            m.fails.store(0, Ordering::Relaxed);
            m.window_start.store(0, Ordering::Relaxed);
        }
    }

    /// Records a success: the failure window starts over.
    pub fn succeeded(&self, group: &str, addr: &Endpoint) {
        if self.quiet.load(Ordering::Relaxed) {
            return;
        }
        if let Some(m) = self.get(group, addr) {
            // Loads first: a member that never failed costs no store.
            if m.fails.load(Ordering::Relaxed) != 0 {
                m.fails.store(0, Ordering::Relaxed);
            }
            if m.window_start.load(Ordering::Relaxed) != 0 {
                m.window_start.store(0, Ordering::Relaxed);
            }
            if m.down_until.load(Ordering::Relaxed) != 0 {
                m.down_until.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Records an active probe; returns `Some(up)` when the member's state
    /// changed. Probes run in one thread (the first worker's loop).
    pub fn probed(
        &self,
        group: &str,
        addr: &Endpoint,
        ok: bool,
        fails: u32,
        passes: u32,
    ) -> Option<bool> {
        let m = self.entry(group, addr);
        let down = m.probe_down.load(Ordering::Relaxed);
        if ok {
            m.probe_fails.store(0, Ordering::Relaxed);
            let passed = m.probe_passes.fetch_add(1, Ordering::Relaxed) + 1;
            if down && passed >= passes {
                m.probe_down.store(false, Ordering::Relaxed);
                m.down_until.store(0, Ordering::Relaxed);
                return Some(true);
            }
        } else {
            m.probe_passes.store(0, Ordering::Relaxed);
            let failed = m.probe_fails.fetch_add(1, Ordering::Relaxed) + 1;
            if !down && failed >= fails {
                m.probe_down.store(true, Ordering::Relaxed);
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Endpoint {
        Endpoint::Inet("127.0.0.1:1".parse().expect("addr"))
    }

    #[test]
    fn max_fails_within_fail_timeout_takes_a_member_out_until_it_passes() {
        let h = Health::new();
        let t0 = Instant::now();
        let limits = Limits {
            max_fails: 2,
            fail_timeout: Duration::from_secs(10),
        };
        h.failed("g", &addr(), limits, t0);
        assert!(h.is_up("g", &addr(), t0));
        h.failed("g", &addr(), limits, t0 + Duration::from_secs(1));
        assert!(!h.is_up("g", &addr(), t0 + Duration::from_secs(2)));
        assert!(h.is_up("g", &addr(), t0 + Duration::from_secs(12)));
        // Failures far apart do not add up.
        let h = Health::new();
        h.failed("g", &addr(), limits, t0);
        h.failed("g", &addr(), limits, t0 + Duration::from_secs(11));
        assert!(h.is_up("g", &addr(), t0 + Duration::from_secs(11)));
    }

    #[test]
    fn probes_take_members_out_and_back() {
        let h = Health::new();
        assert_eq!(h.probed("g", &addr(), false, 2, 1), None);
        assert_eq!(h.probed("g", &addr(), false, 2, 1), Some(false));
        assert!(!h.is_up("g", &addr(), Instant::now()));
        assert_eq!(h.probed("g", &addr(), true, 2, 1), Some(true));
        assert!(h.is_up("g", &addr(), Instant::now()));
    }
}
