//! Request-rate and connection limits (`limit_req`, `limit_conn`): the
//! state of a zone, shared by every worker, bounded by the size the
//! config gives it, and kept across reloads that leave the zone as it was.
//!
//! A zone is split into shards, each a small map behind its own lock, so
//! workers limiting different clients rarely meet on one lock. Nothing
//! here knows about requests: callers pass a key and the time.

use rustc_hash::FxHashMap as HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shards per zone.
const SHARDS: usize = 16;
/// What one key costs a zone, for turning its size into a number of keys
/// (the key, its state, and the map's own share).
pub const BYTES_PER_KEY: u64 = 128;
/// A full shard looks for idle keys to drop at most this often; between
/// looks, new keys are refused.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// A rate: requests per second, in millionths (`1r/m` is 16,667).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Requests per 1,000,000 seconds.
    pub micro_per_sec: u64,
    /// Whether it was written per minute (for showing it back).
    pub per_minute: bool,
}

impl Rate {
    /// The rate as written: `10r/s`, `30r/m`.
    pub fn text(&self) -> String {
        if self.per_minute {
            format!("{}r/m", (self.micro_per_sec * 60).div_ceil(1_000_000))
        } else {
            format!("{}r/s", self.micro_per_sec / 1_000_000)
        }
    }
}

/// What a request gets from a rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Served now.
    Pass,
    /// Served after this long (within the burst, without `nodelay`).
    Delay(Duration),
    /// Refused; a request would fit again after this long.
    Reject(Duration),
}

/// The counters of a zone, for the metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests served at once.
    pub passed: AtomicU64,
    /// Requests served after a delay.
    pub delayed: AtomicU64,
    /// Requests refused.
    pub rejected: AtomicU64,
}

impl Counters {
    fn add(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The leaky bucket of one key: requests in excess of the rate, in
/// thousandths, as of `at`.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    excess: u64,
    at: Instant,
}

struct Shard<V> {
    map: HashMap<Box<str>, V>,
    swept: Option<Instant>,
}

/// The shared state of a zone.
pub struct Zone<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    per_shard: usize,
    hasher: rustc_hash::FxBuildHasher,
    /// Its counters.
    pub counters: Counters,
}

/// A `limit_req_zone`'s state.
pub type ReqZone = Zone<Bucket>;
/// A `limit_conn_zone`'s state: requests in progress per key.
pub type ConnZone = Zone<u32>;

impl<V> Zone<V> {
    /// A zone of `size` bytes.
    pub fn new(size: u64) -> Zone<V> {
        let keys = (size / BYTES_PER_KEY).max(1) as usize;
        Zone {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::default(),
                        swept: None,
                    })
                })
                .collect(),
            per_shard: keys.div_ceil(SHARDS),
            hasher: rustc_hash::FxBuildHasher,
            counters: Counters::default(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard<V>> {
        let i = (self.hasher.hash_one(key) >> 7) as usize % SHARDS;
        // A worker that panicked while holding the lock left a map that
        // is still whole (no code here panics between changes).
        self.shards[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keys held now (for the metrics and tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.map.len()).unwrap_or(0))
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V> Shard<V> {
    /// Room for a new key: when full, drops the keys `idle` says may go
    /// (at most once per [`SWEEP_EVERY`]).
    fn room(&mut self, per_shard: usize, now: Instant, idle: impl Fn(&V) -> bool) -> bool {
        if self.map.len() < per_shard {
            return true;
        }
        if self
            .swept
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return false;
        }
        self.swept = Some(now);
        self.map.retain(|_, v| !idle(v));
        self.map.len() < per_shard
    }
}

impl ReqZone {
    /// One request of `key` at `now`, against `rate` with `burst` extra
    /// requests allowed; `nodelay` serves the burst at once.
    pub fn take(&self, key: &str, now: Instant, rate: Rate, burst: u64, nodelay: bool) -> Decision {
        let rate_u = rate.micro_per_sec.max(1);
        // nginx's leaky bucket: a request adds 1,000 to the key's excess,
        // time takes the rate off it, and it never goes below zero.
        let next = |b: &Bucket| {
            let ms = now.saturating_duration_since(b.at).as_millis() as u64;
            (b.excess + 1000).saturating_sub(rate_u.saturating_mul(ms) / 1_000_000)
        };
        let mut shard = self.shard(key);
        let excess = match shard.map.get(key) {
            Some(b) => next(b),
            None => {
                // A key whose next request would count as new may go.
                if !shard.room(self.per_shard, now, |b| next(b) == 0) {
                    drop(shard);
                    self.counters.add(&self.counters.rejected);
                    return Decision::Reject(Duration::from_secs(1));
                }
                0
            }
        };
        if excess > burst * 1000 {
            drop(shard);
            self.counters.add(&self.counters.rejected);
            // Until the excess is back within the burst.
            let over = excess - burst * 1000;
            return Decision::Reject(Duration::from_millis(over * 1_000_000 / rate_u));
        }
        let bucket = Bucket { excess, at: now };
        match shard.map.get_mut(key) {
            Some(b) => *b = bucket,
            None => {
                shard.map.insert(Box::from(key), bucket);
            }
        }
        drop(shard);
        // A request that found the bucket empty goes at once; one in
        // excess waits for its turn at the rate.
        let wait = excess * 1_000_000 / rate_u;
        if nodelay || wait == 0 {
            self.counters.add(&self.counters.passed);
            Decision::Pass
        } else {
            self.counters.add(&self.counters.delayed);
            Decision::Delay(Duration::from_millis(wait))
        }
    }
}

/// A request counted in a connection zone; dropping it ends the count.
pub struct Slot {
    zone: Arc<ConnZone>,
    key: Box<str>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("key", &self.key).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut shard = self.zone.shard(&self.key);
        if let Some(n) = shard.map.get_mut(&*self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                shard.map.remove(&*self.key);
            }
        }
    }
}

impl ConnZone {
    /// Counts a request of `key` if fewer than `max` are in progress.
    pub fn acquire(zone: &Arc<ConnZone>, key: &str, max: u32, now: Instant) -> Option<Slot> {
        let mut shard = zone.shard(key);
        let held = shard.map.get(key).copied().unwrap_or(0);
        let ok = held < max && (held > 0 || shard.room(zone.per_shard, now, |n| *n == 0));
        if !ok {
            drop(shard);
            zone.counters.add(&zone.counters.rejected);
            return None;
        }
        *shard.map.entry(Box::from(key)).or_insert(0) += 1;
        drop(shard);
        zone.counters.add(&zone.counters.passed);
        Some(Slot {
            zone: zone.clone(),
            key: Box::from(key),
        })
    }
}

/// The zones of the running server by name, so a reload that leaves a
/// zone as it was (same kind, key and size) keeps its state.
#[derive(Default)]
pub struct Registry {
    req: Named<Bucket>,
    conn: Named<u32>,
}

/// Zones by name, each with its signature.
type Named<V> = Mutex<HashMap<String, (String, Arc<Zone<V>>)>>;

impl Registry {
    /// The request zone `name` with `signature` (its key and size as
    /// text): the running one when they match, else a new one.
    pub fn req(&self, name: &str, signature: &str, size: u64) -> Arc<ReqZone> {
        pick(&self.req, name, signature, size)
    }

    /// The connection zone `name`, likewise.
    pub fn conn(&self, name: &str, signature: &str, size: u64) -> Arc<ConnZone> {
        pick(&self.conn, name, signature, size)
    }

    /// Forgets the zones a new table no longer names.
    pub fn keep_only(&self, req: &[&str], conn: &[&str]) {
        self.req
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| req.contains(&name.as_str()));
        self.conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| conn.contains(&name.as_str()));
    }
}

fn pick<V>(map: &Named<V>, name: &str, signature: &str, size: u64) -> Arc<Zone<V>> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    match map.get(name) {
        Some((sig, zone)) if sig == signature => zone.clone(),
        _ => {
            let zone = Arc::new(Zone::new(size));
            map.insert(name.to_string(), (signature.to_string(), zone.clone()));
            zone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PER_SEC: Rate = Rate {
        micro_per_sec: 2_000_000,
        per_minute: false,
    };

    #[test]
    fn a_leaky_bucket_passes_the_rate_and_the_burst() {
        let z = ReqZone::new(1 << 20);
        let t = Instant::now();
        // 2r/s, burst 2: one at once, two delayed by 500 ms steps, then
        // refused until the bucket leaks.
        assert_eq!(z.take("a", t, PER_SEC, 2, false), Decision::Pass);
        assert_eq!(
            z.take("a", t, PER_SEC, 2, false),
            Decision::Delay(Duration::from_millis(500))
        );
        assert_eq!(
            z.take("a", t, PER_SEC, 2, false),
            Decision::Delay(Duration::from_millis(1000))
        );
        assert_eq!(
            z.take("a", t, PER_SEC, 2, false),
            Decision::Reject(Duration::from_millis(500))
        );
        // Other keys are not affected; time leaks the bucket.
        assert_eq!(z.take("b", t, PER_SEC, 0, false), Decision::Pass);
        assert_eq!(
            z.take("b", t, PER_SEC, 0, false),
            Decision::Reject(Duration::from_millis(500))
        );
        let later = t + Duration::from_millis(500);
        assert_eq!(z.take("b", later, PER_SEC, 0, false), Decision::Pass);
        // nodelay serves the burst at once.
        assert_eq!(z.take("c", t, PER_SEC, 2, true), Decision::Pass);
        assert_eq!(z.take("c", t, PER_SEC, 2, true), Decision::Pass);
        assert_eq!(z.take("c", t, PER_SEC, 2, true), Decision::Pass);
        assert!(matches!(
            z.take("c", t, PER_SEC, 2, true),
            Decision::Reject(_)
        ));
        assert_eq!(z.counters.rejected.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_full_zone_drops_idle_keys_and_refuses_new_ones_while_all_are_busy() {
        // 16 shards of one key each.
        let z = ReqZone::new(BYTES_PER_KEY * 16);
        let t = Instant::now();
        let keys: Vec<String> = (0..2000).map(|i| format!("k{i}")).collect();
        let taken = keys
            .iter()
            .filter(|k| z.take(k, t, PER_SEC, 5, true) == Decision::Pass)
            .count();
        assert!(taken <= 16, "{taken}");
        assert!(z.len() <= 16);
        // Once their buckets are empty, new keys get in.
        let later = t + Duration::from_secs(10);
        let taken = keys
            .iter()
            .filter(|k| z.take(k, later, PER_SEC, 5, true) == Decision::Pass)
            .count();
        assert!((1..=16).contains(&taken), "{taken}");
    }

    #[test]
    fn connection_slots_count_until_dropped() {
        let z = Arc::new(ConnZone::new(1 << 20));
        let t = Instant::now();
        let a = ConnZone::acquire(&z, "x", 2, t).expect("first");
        let b = ConnZone::acquire(&z, "x", 2, t).expect("second");
        assert!(ConnZone::acquire(&z, "x", 2, t).is_none());
        assert!(ConnZone::acquire(&z, "y", 2, t).is_some());
        drop(a);
        let c = ConnZone::acquire(&z, "x", 2, t).expect("after one ended");
        drop((b, c));
        assert_eq!(z.len(), 0);
    }
}
