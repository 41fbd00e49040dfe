//! A hashed timer wheel for connection deadlines (request head, body,
//! keep-alive idle, send). Entries are tokens (a worker's carry a slot and
//! its generation); a fired
//! entry is only a hint — the owner checks the connection's own deadline,
//! so moving a deadline never needs to find and remove an old entry.

use std::time::{Duration, Instant};

/// Ticks of the wheel.
const SLOTS: usize = 2048;
/// Words of the occupancy bitmap.
const WORDS: usize = SLOTS / 64;

/// The wheel: `SLOTS` buckets of `tick` each, and a bitmap of the
/// non-empty ones so that finding the next deadline does not scan buckets.
pub struct TimerWheel<T = super::Token> {
    start: Instant,
    tick: Duration,
    /// Index of the next tick to fire.
    next: u64,
    buckets: Vec<Vec<T>>,
    occupied: [u64; WORDS],
    len: usize,
}

impl<T> TimerWheel<T> {
    /// A wheel whose resolution is `tick`.
    pub fn new(tick: Duration) -> TimerWheel<T> {
        TimerWheel {
            start: Instant::now(),
            tick,
            next: 0,
            buckets: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
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
    pub fn schedule(&mut self, at: Instant, token: T) {
        // Round up, so that an entry never fires before its deadline.
        let d = at.saturating_duration_since(self.start).as_nanos();
        let ceil = d.div_ceil(self.tick.as_nanos()) as u64;
        let tick = ceil.max(self.next).min(self.next + SLOTS as u64 - 1);
        let slot = (tick % SLOTS as u64) as usize;
        self.buckets[slot].push(token);
        self.occupied[slot / 64] |= 1 << (slot % 64);
        self.len += 1;
    }

    /// Tokens whose tick has passed by `now`, appended to `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        let now_tick = self.tick_of(now);
        while self.next <= now_tick && self.len > 0 {
            match self.first_occupied() {
                Some(t) if t <= now_tick => {
                    let slot = (t % SLOTS as u64) as usize;
                    let bucket = &mut self.buckets[slot];
                    self.len -= bucket.len();
                    out.append(bucket);
                    self.occupied[slot / 64] &= !(1 << (slot % 64));
                    self.next = t + 1;
                }
                _ => self.next = now_tick + 1,
            }
        }
        if self.len == 0 {
            self.next = self.next.max(now_tick + 1);
        }
    }

    /// The first tick at or after `next` whose bucket is not empty.
    fn first_occupied(&self) -> Option<u64> {
        let from = (self.next % SLOTS as u64) as usize;
        // Scan the bitmap from `from` round to `from - 1`.
        for step in 0..=WORDS {
            let w = (from / 64 + step) % WORDS;
            let mut bits = self.occupied[w];
            if step == 0 {
                bits &= !0u64 << (from % 64);
            } else if step == WORDS {
                bits &= (1u64 << (from % 64)).wrapping_sub(1);
            }
            if bits != 0 {
                let slot = w * 64 + bits.trailing_zeros() as usize;
                let ahead = (slot + SLOTS - from) % SLOTS;
                return Some(self.next + ahead as u64);
            }
        }
        None
    }

    /// How long until the next non-empty tick, `None` when empty: an idle
    /// worker with no deadlines sleeps without waking.
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let first = self.first_occupied()?;
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
    fn the_bitmap_finds_entries_across_the_wrap() {
        let mut w = TimerWheel::new(Duration::from_millis(1));
        let t0 = w.start;
        let mut out = Vec::new();
        // Move `next` close to the end of the wheel, then schedule past it.
        w.schedule(t0 + Duration::from_millis(500), 1);
        w.expire(t0 + Duration::from_millis(500), &mut out);
        assert_eq!(out, vec![1]);
        w.schedule(t0 + Duration::from_millis(700), 2);
        w.schedule(t0 + Duration::from_millis(505), 3);
        assert_eq!(
            w.next_timeout(t0 + Duration::from_millis(500)),
            Some(Duration::from_millis(5))
        );
        out.clear();
        w.expire(t0 + Duration::from_millis(600), &mut out);
        assert_eq!(out, vec![3]);
        out.clear();
        w.expire(t0 + Duration::from_millis(700), &mut out);
        assert_eq!(out, vec![2]);
        assert!(w.is_empty());
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
