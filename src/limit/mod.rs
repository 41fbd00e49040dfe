//! Request-rate and connection limits (`limit_req`, `limit_conn`): the
//! state of a zone, shared by every worker, bounded by the size the
//! config gives it, and kept across reloads that leave the zone as it was.
//!
//! A zone is split into shards, each a small map behind its own lock, so
//! workers limiting different clients rarely meet on one lock. Nothing
//! here knows about requests: callers pass a key and the time.

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, Hasher};
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

/// One request, in the unit a bucket counts (millionths).
const ONE: u64 = 1_000_000;

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
/// millionths, as of `at`.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    excess: u64,
    at: Instant,
}

/// A key: up to 22 bytes held inline (an IPv6 address is 16), longer
/// ones on the heap.
#[derive(Clone)]
pub enum Key {
    /// Inline.
    Short(u8, [u8; 22]),
    /// On the heap.
    Long(Box<[u8]>),
}

impl Key {
    /// The key of these bytes.
    pub fn new(bytes: &[u8]) -> Key {
        if bytes.len() <= 22 {
            let mut b = [0u8; 22];
            b[..bytes.len()].copy_from_slice(bytes);
            Key::Short(bytes.len() as u8, b)
        } else {
            Key::Long(Box::from(bytes))
        }
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Short(n, b) => &b[..*n as usize],
            Key::Long(b) => b,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_bytes().hash(h);
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

struct Shard<V> {
    map: HashMap<Key, V>,
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
/// A `limit_conn_zone`'s state: requests in progress per key (a request
/// holds its key's counter and gives it back without the lock).
pub type ConnZone = Zone<Arc<std::sync::atomic::AtomicU32>>;

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

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard<V>> {
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
    pub fn take(
        &self,
        key: &[u8],
        now: Instant,
        rate: Rate,
        burst: u64,
        nodelay: bool,
    ) -> Decision {
        let rate_u = rate.micro_per_sec.max(1);
        // nginx's leaky bucket, kept in millionths of a request and leaked
        // by the nanosecond (nginx counts whole milliseconds, so requests
        // closer together than that never leak): a request adds one to
        // the key's excess, time takes the rate off it, and it never goes
        // below zero.
        let next = |b: &Bucket| {
            let d = now.saturating_duration_since(b.at);
            let ns = d.as_secs().saturating_mul(1_000_000_000) + u64::from(d.subsec_nanos());
            let leaked = match rate_u.checked_mul(ns) {
                Some(p) => p / 1_000_000_000,
                None => (u128::from(rate_u) * u128::from(ns) / 1_000_000_000)
                    .min(u128::from(u64::MAX)) as u64,
            };
            (b.excess + ONE).saturating_sub(leaked)
        };
        // How long `excess` takes to leak at the rate.
        let time = |excess: u64| {
            let ns = u128::from(excess) * 1_000_000_000 / u128::from(rate_u);
            Duration::from_nanos(ns.min(u128::from(u64::MAX)) as u64)
        };
        let allowed = burst.saturating_mul(ONE);
        let mut shard = self.shard(key);
        let excess = match shard.map.get_mut(key) {
            Some(b) => {
                let excess = next(b);
                if excess > allowed {
                    drop(shard);
                    self.counters.add(&self.counters.rejected);
                    // Until the excess is back within the burst.
                    return Decision::Reject(time(excess - allowed));
                }
                *b = Bucket { excess, at: now };
                excess
            }
            None => {
                // A key whose next request would count as new may go.
                if !shard.room(self.per_shard, now, |b| next(b) == 0) {
                    drop(shard);
                    self.counters.add(&self.counters.rejected);
                    return Decision::Reject(Duration::from_secs(1));
                }
                shard
                    .map
                    .insert(Key::new(key), Bucket { excess: 0, at: now });
                0
            }
        };
        drop(shard);
        // A request that found the bucket empty goes at once; one in
        // excess waits for its turn at the rate.
        if nodelay || excess == 0 {
            self.counters.add(&self.counters.passed);
            Decision::Pass
        } else {
            self.counters.add(&self.counters.delayed);
            Decision::Delay(time(excess))
        }
    }
}

/// A request counted in a connection zone; dropping it ends the count.
#[derive(Debug)]
pub struct Slot {
    count: Arc<std::sync::atomic::AtomicU32>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // A key back at zero stays (its next request needs no insert);
        // a full shard drops such keys to make room.
        self.count.fetch_sub(1, Ordering::Release);
    }
}

impl ConnZone {
    /// Counts a request of `key` if fewer than `max` are in progress.
    pub fn acquire(zone: &Arc<ConnZone>, key: &[u8], max: u32, now: Instant) -> Option<Slot> {
        let mut shard = zone.shard(key);
        let count = match shard.map.get(key) {
            Some(c) => c.clone(),
            None => {
                // A key no request holds may go.
                let idle = |c: &Arc<std::sync::atomic::AtomicU32>| {
                    Arc::strong_count(c) == 1 && c.load(Ordering::Acquire) == 0
                };
                if !shard.room(zone.per_shard, now, idle) {
                    drop(shard);
                    zone.counters.add(&zone.counters.rejected);
                    return None;
                }
                let c = Arc::new(std::sync::atomic::AtomicU32::new(0));
                shard.map.insert(Key::new(key), c.clone());
                c
            }
        };
        drop(shard);
        let taken = count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            zone.counters.add(&zone.counters.rejected);
            return None;
        }
        zone.counters.add(&zone.counters.passed);
        Some(Slot { count })
    }
}

/// The zones of the running server by name, so a reload that leaves a
/// zone as it was (same kind, key and size) keeps its state.
#[derive(Default)]
pub struct Registry {
    req: Named<Bucket>,
    conn: Named<Arc<std::sync::atomic::AtomicU32>>,
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
        assert_eq!(z.take(b"a", t, PER_SEC, 2, false), Decision::Pass);
        assert_eq!(
            z.take(b"a", t, PER_SEC, 2, false),
            Decision::Delay(Duration::from_millis(500))
        );
        assert_eq!(
            z.take(b"a", t, PER_SEC, 2, false),
            Decision::Delay(Duration::from_millis(1000))
        );
        assert_eq!(
            z.take(b"a", t, PER_SEC, 2, false),
            Decision::Reject(Duration::from_millis(500))
        );
        // Other keys are not affected; time leaks the bucket.
        assert_eq!(z.take(b"b", t, PER_SEC, 0, false), Decision::Pass);
        assert_eq!(
            z.take(b"b", t, PER_SEC, 0, false),
            Decision::Reject(Duration::from_millis(500))
        );
        let later = t + Duration::from_millis(500);
        assert_eq!(z.take(b"b", later, PER_SEC, 0, false), Decision::Pass);
        // nodelay serves the burst at once.
        assert_eq!(z.take(b"c", t, PER_SEC, 2, true), Decision::Pass);
        assert_eq!(z.take(b"c", t, PER_SEC, 2, true), Decision::Pass);
        assert_eq!(z.take(b"c", t, PER_SEC, 2, true), Decision::Pass);
        assert!(matches!(
            z.take(b"c", t, PER_SEC, 2, true),
            Decision::Reject(_)
        ));
        assert_eq!(z.counters.rejected.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn buckets_leak_between_requests_closer_than_a_millisecond() {
        let z = ReqZone::new(1 << 20);
        let t = Instant::now();
        let fast = Rate {
            micro_per_sec: 100_000 * 1_000_000,
            per_minute: false,
        };
        // 100,000r/s, no burst: a request every 10 µs always fits.
        for i in 0..1000u64 {
            let at = t + Duration::from_micros(10 * i);
            assert_eq!(z.take(b"k", at, fast, 0, false), Decision::Pass, "{i}");
        }
        // One 5 µs after the last does not.
        let at = t + Duration::from_micros(10 * 999 + 5);
        assert_eq!(
            z.take(b"k", at, fast, 0, false),
            Decision::Reject(Duration::from_micros(5))
        );
    }

    #[test]
    fn a_full_zone_drops_idle_keys_and_refuses_new_ones_while_all_are_busy() {
        // 16 shards of one key each.
        let z = ReqZone::new(BYTES_PER_KEY * 16);
        let t = Instant::now();
        let keys: Vec<String> = (0..2000).map(|i| format!("k{i}")).collect();
        let taken = keys
            .iter()
            .filter(|k| z.take(k.as_bytes(), t, PER_SEC, 5, true) == Decision::Pass)
            .count();
        assert!(taken <= 16, "{taken}");
        assert!(z.len() <= 16);
        // Once their buckets are empty, new keys get in.
        let later = t + Duration::from_secs(10);
        let taken = keys
            .iter()
            .filter(|k| z.take(k.as_bytes(), later, PER_SEC, 5, true) == Decision::Pass)
            .count();
        assert!((1..=16).contains(&taken), "{taken}");
    }

    #[test]
    fn connection_slots_count_until_dropped() {
        let z = Arc::new(ConnZone::new(1 << 20));
        let t = Instant::now();
        let a = ConnZone::acquire(&z, b"x", 2, t).expect("first");
        let b = ConnZone::acquire(&z, b"x", 2, t).expect("second");
        assert!(ConnZone::acquire(&z, b"x", 2, t).is_none());
        assert!(ConnZone::acquire(&z, b"y", 2, t).is_some());
        drop(a);
        let c = ConnZone::acquire(&z, b"x", 2, t).expect("after one ended");
        drop((b, c));
        // Keys at zero stay until a full shard needs their room.
        assert!(ConnZone::acquire(&z, b"x", 1, t).is_some());
    }
}
