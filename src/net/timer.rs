//! A hashed timer wheel for connection deadlines (request head, body,
//! keep-alive idle, send). Entries are `(slot, generation)` tokens; a fired
//! entry is only a hint — the owner checks the connection's own deadline,
//! so moving a deadline never needs to find and remove an old entry.

use std::time::{Duration, Instant};

/// Ticks of the wheel.
const SLOTS: usize = 512;

/// The wheel: `SLOTS` buckets of `tick` each.
pub struct TimerWheel {
    start: Instant,
    tick: Duration,
    /// Index of the next tick to fire.
    next: u64,
    buckets: Vec<Vec<u64>>,
    len: usize,
}

impl TimerWheel {
    /// A wheel whose resolution is `tick`.
    pub fn new(tick: Duration) -> TimerWheel {
        TimerWheel {
            start: Instant::now(),
            tick,
            next: 0,
            buckets: (0..SLOTS).map(|_| Vec::new()).collect(),
            len: 0,
        }
    }

    fn tick_of(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.start);
        (d.as_nanos() / self.tick.as_nanos()) as u64
    }

    /// Schedules `token` to fire at (or up to one tick after) `at`. A
    /// deadline beyond the wheel's span fires early, at the span's end;
    /// the owner then schedules it again.
    pub fn schedule(&mut self, at: Instant, token: u64) {
        // Round up, so that an entry never fires before its deadline.
        let d = at.saturating_duration_since(self.start).as_nanos();
        let ceil = d.div_ceil(self.tick.as_nanos()) as u64;
        let tick = ceil.max(self.next).min(self.next + SLOTS as u64 - 1);
        self.buckets[(tick % SLOTS as u64) as usize].push(token);
        self.len += 1;
    }

    /// Tokens whose tick has passed by `now`, appended to `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<u64>) {
        let now_tick = self.tick_of(now);
        while self.next <= now_tick && self.len > 0 {
            let bucket = &mut self.buckets[(self.next % SLOTS as u64) as usize];
            self.len -= bucket.len();
            out.append(bucket);
            self.next += 1;
        }
        if self.len == 0 {
            self.next = self.next.max(now_tick + 1);
        }
    }

    /// How long until the next non-empty tick, `None` when empty: an idle
    /// worker with no deadlines sleeps without waking.
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let first = (0..SLOTS as u64)
            .map(|i| self.next + i)
            .find(|t| !self.buckets[(t % SLOTS as u64) as usize].is_empty())?;
        let at =
            self.start + Duration::from_nanos((self.tick.as_nanos() as u64).saturating_mul(first));
        Some(at.saturating_duration_since(now))
    }

    /// Number of scheduled entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_after_the_deadline_and_not_before() {
        let mut w = TimerWheel::new(Duration::from_millis(10));
        let t0 = w.start;
        w.schedule(t0 + Duration::from_millis(55), 7);
        w.schedule(t0 + Duration::from_millis(5), 8);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(9), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_millis(12), &mut out);
        assert_eq!(out, vec![8]);
        assert!(
            w.next_timeout(t0 + Duration::from_millis(12))
                .is_some_and(|d| d <= Duration::from_millis(50))
        );
        out.clear();
        w.expire(t0 + Duration::from_millis(61), &mut out);
        assert_eq!(out, vec![7]);
        assert!(w.is_empty());
        assert_eq!(w.next_timeout(t0), None);
    }

    #[test]
    fn far_deadlines_fire_at_the_end_of_the_span() {
        let mut w = TimerWheel::new(Duration::from_millis(1));
        let t0 = w.start;
        w.schedule(t0 + Duration::from_secs(100), 1);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(SLOTS as u64 + 1), &mut out);
        assert_eq!(out, vec![1]);
    }
}
