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

/// What a key costs its zone's budget: its share of the map and state,
/// and its bytes when they do not fit inline.
fn cost(key: &[u8]) -> usize {
    BYTES_PER_KEY as usize + if key.len() > 22 { key.len() } else { 0 }
}

/// Keys come from requests, so the maps hash them with a random seed of
/// their own (foldhash): keys that collide on purpose cannot be prepared
/// in advance.
type Seeded = foldhash::fast::RandomState;

struct Shard<V> {
    map: std::collections::HashMap<Key, V, Seeded>,
    /// The bytes of the budget its keys take ([`cost`]).
    used: usize,
    swept: Option<Instant>,
}

/// The shared state of a zone.
pub struct Zone<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    /// Each shard's share of the zone's size, bytes.
    budget: usize,
    hasher: Seeded,
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
        let hasher = Seeded::default();
        Zone {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: std::collections::HashMap::with_hasher(hasher.clone()),
                        used: 0,
                        swept: None,
                    })
                })
                .collect(),
            budget: (size as usize / SHARDS).max(BYTES_PER_KEY as usize),
            hasher,
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
    /// Room for a new key of `need` bytes: when full, drops the keys
    /// `idle` says may go (a scan at most once per [`SWEEP_EVERY`]); then,
    /// with `evict`, any keys (the state of a few clients starts over,
    /// rather than every new client being refused, as nginx does).
    fn room(
        &mut self,
        budget: usize,
        need: usize,
        now: Instant,
        idle: impl Fn(&V) -> bool,
        evict: bool,
    ) -> bool {
        if self.used + need <= budget {
            return true;
        }
        let swept_lately = self
            .swept
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY);
        if !swept_lately {
            self.swept = Some(now);
            self.map.retain(|_, v| !idle(v));
            self.used = self.map.keys().map(|k| cost(k.as_bytes())).sum();
        }
        while evict && self.used + need > budget {
            let Some(k) = self.map.keys().next().cloned() else {
                break;
            };
            self.map.remove(k.as_bytes());
            self.used = self.used.saturating_sub(cost(k.as_bytes()));
        }
        self.used + need <= budget
    }

    /// Adds a key (room was made).
    fn insert(&mut self, key: &[u8], value: V) {
        self.used += cost(key);
        self.map.insert(Key::new(key), value);
    }
}

impl ReqZone {
    /// One request of `key` at `now`, against `rate` with `burst` extra
    /// requests allowed; `nodelay` serves the burst at once. Without
    /// `commit` the bucket is only looked at (a request with several
    /// limits counts in none unless all let it through).
    pub fn take(
        &self,
        key: &[u8],
        now: Instant,
        rate: Rate,
        (burst, nodelay): (u64, bool),
        commit: bool,
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
                if commit {
                    *b = Bucket { excess, at: now };
                }
                excess
            }
            None if !commit => 0,
            None => {
                // A key whose next request would count as new may go.
                if !shard.room(self.budget, cost(key), now, |b| next(b) == 0, true) {
                    drop(shard);
                    self.counters.add(&self.counters.rejected);
                    return Decision::Reject(Duration::from_secs(1));
                }
                shard.insert(key, Bucket { excess: 0, at: now });
                0
            }
        };
        drop(shard);
        // A request that found the bucket empty goes at once; one in
        // excess waits for its turn at the rate.
        if nodelay || excess == 0 {
            if commit {
                self.counters.add(&self.counters.passed);
            }
            Decision::Pass
        } else {
            if commit {
                self.counters.add(&self.counters.delayed);
            }
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
                if !shard.room(zone.budget, cost(key), now, idle, false) {
                    drop(shard);
                    zone.counters.add(&zone.counters.rejected);
                    return None;
                }
                let c = Arc::new(std::sync::atomic::AtomicU32::new(0));
                shard.insert(key, c.clone());
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
        assert_eq!(z.take(b"a", t, PER_SEC, (2, false), true), Decision::Pass);
        assert_eq!(
            z.take(b"a", t, PER_SEC, (2, false), true),
            Decision::Delay(Duration::from_millis(500))
        );
        assert_eq!(
            z.take(b"a", t, PER_SEC, (2, false), true),
            Decision::Delay(Duration::from_millis(1000))
        );
        assert_eq!(
            z.take(b"a", t, PER_SEC, (2, false), true),
            Decision::Reject(Duration::from_millis(500))
        );
        // Other keys are not affected; time leaks the bucket.
        assert_eq!(z.take(b"b", t, PER_SEC, (0, false), true), Decision::Pass);
        assert_eq!(
            z.take(b"b", t, PER_SEC, (0, false), true),
            Decision::Reject(Duration::from_millis(500))
        );
        let later = t + Duration::from_millis(500);
        assert_eq!(
            z.take(b"b", later, PER_SEC, (0, false), true),
            Decision::Pass
        );
        // nodelay serves the burst at once.
        assert_eq!(z.take(b"c", t, PER_SEC, (2, true), true), Decision::Pass);
        assert_eq!(z.take(b"c", t, PER_SEC, (2, true), true), Decision::Pass);
        assert_eq!(z.take(b"c", t, PER_SEC, (2, true), true), Decision::Pass);
        assert!(matches!(
            z.take(b"c", t, PER_SEC, (2, true), true),
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
            assert_eq!(
                z.take(b"k", at, fast, (0, false), true),
                Decision::Pass,
                "{i}"
            );
        }
        // One 5 µs after the last does not.
        let at = t + Duration::from_micros(10 * 999 + 5);
        assert_eq!(
            z.take(b"k", at, fast, (0, false), true),
            Decision::Reject(Duration::from_micros(5))
        );
    }

    #[test]
    fn a_full_zone_stays_within_its_size_and_still_takes_new_clients() {
        // 16 shards of one short key each.
        let z = ReqZone::new(BYTES_PER_KEY * 16);
        let t = Instant::now();
        let keys: Vec<String> = (0..2000).map(|i| format!("k{i}")).collect();
        // Every new client gets in (a full shard forgets another key
        // rather than refusing everyone new), and the zone stays in size.
        for k in &keys {
            assert_eq!(
                z.take(k.as_bytes(), t, PER_SEC, (0, true), true),
                Decision::Pass
            );
            assert!(z.len() <= 16);
        }
        // Long keys are charged their bytes: 4 KiB a shard holds three of
        // 1,128 bytes.
        let long = ReqZone::new(16 * 4096);
        for i in 0..200 {
            let key = format!("{i:0>1000}");
            assert_eq!(
                long.take(key.as_bytes(), t, PER_SEC, (0, true), true),
                Decision::Pass
            );
        }
        assert!(long.len() <= 48, "{}", long.len());
        // A connection zone whose keys all have requests in progress
        // refuses new ones.
        let c = Arc::new(ConnZone::new(BYTES_PER_KEY * 16));
        let held: Vec<Slot> = keys
            .iter()
            .filter_map(|k| ConnZone::acquire(&c, k.as_bytes(), 1, t))
            .collect();
        assert!(held.len() <= 16 && !held.is_empty(), "{}", held.len());
        drop(held);
        let later = t + Duration::from_secs(1);
        assert!(ConnZone::acquire(&c, b"new", 1, later).is_some());
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
