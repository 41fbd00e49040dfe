//! Live figures: counters each worker keeps for itself, summed when the
//! metrics endpoint reads them, and kept across reloads.
//!
//! Every counter has one writer, the worker whose slot it is: it adds with
//! a relaxed load and store (no locked instruction), and readers sum the
//! slots of all workers. A gauge is two counters (started, ended), so
//! every figure only grows and a sum read while workers count is never
//! below a value it already had.
//!
//! Per-location and per-member counters are attached to the routing table
//! when it is installed ([`Attach`]), found again by their name from the
//! config on every reload, so a reload keeps them.

pub mod process;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Upper bounds of the request-duration histograms, in microseconds
/// (`le` labels in seconds).
pub const BUCKETS_US: [u64; 12] = [
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Adds `n` to a counter only this thread writes.
#[inline]
fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Which bucket a duration falls in (`BUCKETS_US.len()` for over all):
/// counted from the fast end, where most responses are.
#[inline]
fn bucket(us: u64) -> usize {
    BUCKETS_US
        .iter()
        .position(|&b| us <= b)
        .unwrap_or(BUCKETS_US.len())
}

/// A duration histogram: a count per bucket (not cumulative), the count
/// over all and the sum.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, us: u64) {
        self.observe_in(bucket(us), us);
    }

    fn observe_in(&self, bucket: usize, us: u64) {
        if let Some(b) = self.buckets.get(bucket) {
            add(b, 1);
        }
        add(&self.sum_us, us);
    }

    fn read_into(&self, into: &mut HistogramTotals) {
        for (t, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *t += b.load(Ordering::Relaxed);
        }
        into.sum_us += self.sum_us.load(Ordering::Relaxed);
    }
}

/// A histogram summed over workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramTotals {
    /// Count per bucket of [`BUCKETS_US`], then over all (not cumulative).
    pub buckets: [u64; BUCKETS_US.len() + 1],
    /// Sum of the durations, microseconds.
    pub sum_us: u64,
}

impl HistogramTotals {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The counts at or under each bound, then the count (Prometheus's
    /// cumulative `le` buckets).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        self.buckets
            .iter()
            .map(|b| {
                total += b;
                total
            })
            .collect()
    }

    /// The bound under which `q` (0–1) of the observations fall, in
    /// microseconds (the bucket's upper bound; the last bound when over
    /// all); `None` with no observations.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let want = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= want {
                return Some(BUCKETS_US.get(i).copied().unwrap_or(BUCKETS_US[11]));
            }
        }
        BUCKETS_US.last().copied()
    }
}

/// A finished response as the counters take it: worked out once, added
/// to the worker's and the location's counters.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    /// Status class 0–4 (1xx–5xx), if it has one.
    class: Option<usize>,
    us: u64,
    bucket: usize,
}

impl Done {
    /// A response with `status` (0: none) that took `us` microseconds.
    pub fn new(status: u16, us: u64) -> Done {
        Done {
            class: status_class(status),
            us,
            bucket: bucket(us),
        }
    }
}

/// What a response's status, kind and duration add to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Files and listings.
    File,
    /// Proxied.
    Proxy,
    /// A `return` with a redirect status.
    Redirect,
    /// Anything else (`return` text, errors, metrics).
    Other,
}

/// The counters of one worker (one cache line apart from the next).
#[derive(Default)]
#[repr(align(128))]
pub struct Worker {
    conn_accepted: AtomicU64,
    conn_closed: AtomicU64,
    conn_error: AtomicU64,
    conn_timeout: AtomicU64,
    accept_errors: AtomicU64,
    req_started: AtomicU64,
    req_done: AtomicU64,
    req_file: AtomicU64,
    req_proxy: AtomicU64,
    req_redirect: AtomicU64,
    status: [AtomicU64; 5],
    time_peak_us: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    duration: Histogram,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Closed after its last response, by either side, or idle.
    Normal,
    /// A read or write failed, or the client sent what could not be parsed.
    Error,
    /// A client deadline passed (head, body, send, minimum rate).
    Timeout,
}

impl Worker {
    /// A connection was accepted.
    pub fn accepted(&self) {
        add(&self.conn_accepted, 1);
    }

    /// A connection closed.
    pub fn closed(&self, how: Ending) {
        add(&self.conn_closed, 1);
        match how {
            Ending::Normal => {}
            Ending::Error => add(&self.conn_error, 1),
            Ending::Timeout => add(&self.conn_timeout, 1),
        }
    }

    /// `accept` failed for want of descriptors or memory.
    pub fn accept_failed(&self) {
        add(&self.accept_errors, 1);
    }

    /// A request's head was read; it is answered by `kind`.
    pub fn request_started(&self, kind: Kind) {
        add(&self.req_started, 1);
        match kind {
            Kind::File => add(&self.req_file, 1),
            Kind::Proxy => add(&self.req_proxy, 1),
            Kind::Redirect => add(&self.req_redirect, 1),
            Kind::Other => {}
        }
    }

    /// A response is out (status 0: the request was cut short and has
    /// no status): its duration.
    pub fn request_done(&self, d: &Done) {
        add(&self.req_done, 1);
        if let Some(c) = d.class.and_then(|i| self.status.get(i)) {
            add(c, 1);
        }
        if d.us > self.time_peak_us.load(Ordering::Relaxed) {
            self.time_peak_us.store(d.us, Ordering::Relaxed);
        }
        self.duration.observe_in(d.bucket, d.us);
    }

    /// Bytes written to and read from a client.
    pub fn traffic(&self, sent: u64, received: u64) {
        add(&self.sent, sent);
        add(&self.received, received);
    }
}

/// 1xx → 0 … 5xx → 4.
fn status_class(status: u16) -> Option<usize> {
    let class = (status / 100) as usize;
    (1..=5).contains(&class).then(|| class - 1)
}

/// The counters of every worker, summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Connections accepted.
    pub conn_accepted: u64,
    /// Connections closed.
    pub conn_closed: u64,
    /// Connections that ended in an error.
    pub conn_error: u64,
    /// Connections that ended in a client timeout.
    pub conn_timeout: u64,
    /// Failed `accept` calls.
    pub accept_errors: u64,
    /// Requests whose head was read.
    pub req_started: u64,
    /// Requests answered in full.
    pub req_done: u64,
    /// Requests served from files.
    pub req_file: u64,
    /// Requests proxied.
    pub req_proxy: u64,
    /// Requests answered with a redirect `return`.
    pub req_redirect: u64,
    /// Responses per status class, 1xx to 5xx.
    pub status: [u64; 5],
    /// The longest response, microseconds.
    pub time_peak_us: u64,
    /// Bytes written to clients.
    pub sent: u64,
    /// Bytes read from clients.
    pub received: u64,
    /// Response durations.
    pub duration: HistogramTotals,
}

/// The counters of one location, per worker.
pub struct RouteStats {
    /// Its number in the registry (0, 1, 2… in order of first use), so a
    /// worker can keep its own handle and name it by number.
    pub id: usize,
    workers: Box<[RouteSlot]>,
}

#[derive(Default)]
#[repr(align(128))]
struct RouteSlot {
    status: [AtomicU64; 5],
    duration: Histogram,
}

/// A location's counters summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTotals {
    /// Responses per status class, 1xx to 5xx.
    pub status: [u64; 5],
    /// Response durations.
    pub duration: HistogramTotals,
}

impl RouteStats {
    fn new(id: usize, workers: usize) -> RouteStats {
        RouteStats {
            id,
            workers: (0..workers).map(|_| RouteSlot::default()).collect(),
        }
    }

    /// Worker `w` finished a response of this location.
    pub fn record(&self, w: usize, d: &Done) {
        let Some(s) = self.workers.get(w) else {
            return;
        };
        if let Some(c) = d.class.and_then(|i| s.status.get(i)) {
            add(c, 1);
        }
        s.duration.observe_in(d.bucket, d.us);
    }

    /// Summed over workers.
    pub fn totals(&self) -> RouteTotals {
        let mut t = RouteTotals::default();
        for s in self.workers.iter() {
            for (a, b) in t.status.iter_mut().zip(&s.status) {
                *a += b.load(Ordering::Relaxed);
            }
            s.duration.read_into(&mut t.duration);
        }
        t
    }
}

/// The counters of one upstream member, per worker.
pub struct MemberStats {
    workers: Box<[MemberSlot]>,
}

#[derive(Default)]
#[repr(align(128))]
struct MemberSlot {
    requests: AtomicU64,
    ended: AtomicU64,
    failures: AtomicU64,
    duration: Histogram,
}

/// A member's counters summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberTotals {
    /// Exchanges started with it.
    pub requests: u64,
    /// Exchanges in progress.
    pub active: u64,
    /// Connections or exchanges that failed.
    pub failures: u64,
    /// Exchange durations (connect to the end of the response).
    pub duration: HistogramTotals,
}

impl MemberStats {
    fn new(workers: usize) -> MemberStats {
        MemberStats {
            workers: (0..workers).map(|_| MemberSlot::default()).collect(),
        }
    }

    /// Worker `w` started an exchange with the member.
    pub fn started(&self, w: usize) {
        if let Some(s) = self.workers.get(w) {
            add(&s.requests, 1);
        }
    }

    /// Worker `w` ended an exchange that took `us`.
    pub fn ended(&self, w: usize, us: u64) {
        if let Some(s) = self.workers.get(w) {
            add(&s.ended, 1);
            s.duration.observe(us);
        }
    }

    /// Worker `w` saw the member fail.
    pub fn failed(&self, w: usize) {
        if let Some(s) = self.workers.get(w) {
            add(&s.failures, 1);
        }
    }

    /// Summed over workers.
    pub fn totals(&self) -> MemberTotals {
        let mut t = MemberTotals::default();
        let mut ended = 0;
        for s in self.workers.iter() {
            t.requests += s.requests.load(Ordering::Relaxed);
            ended += s.ended.load(Ordering::Relaxed);
            t.failures += s.failures.load(Ordering::Relaxed);
            s.duration.read_into(&mut t.duration);
        }
        t.active = t.requests.saturating_sub(ended);
        t
    }
}

/// A place in the routing table for counters the server attaches when it
/// installs the table. It is not part of the config: two are always
/// equal, and a copy starts empty.
pub struct Attach<T>(OnceLock<Arc<T>>);

impl<T> Attach<T> {
    /// The attached counters, if any.
    #[inline]
    pub fn get(&self) -> Option<&Arc<T>> {
        self.0.get()
    }

    /// Attaches `stats` (once; later calls change nothing).
    pub fn set(&self, stats: Arc<T>) {
        let _ = self.0.set(stats);
    }
}

impl<T> Default for Attach<T> {
    fn default() -> Self {
        Attach(OnceLock::new())
    }
}

impl<T> Clone for Attach<T> {
    fn clone(&self) -> Self {
        Attach::default()
    }
}

impl<T> PartialEq for Attach<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> fmt::Debug for Attach<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Attach")
    }
}

/// Every worker's counters, and the per-location and per-member ones by
/// their config names. Lives as long as the process: reloads keep it.
pub struct Registry {
    workers: Box<[Worker]>,
    routes: Mutex<HashMap<String, Arc<RouteStats>>>,
    members: Mutex<HashMap<String, Arc<MemberStats>>>,
    /// When the process started.
    pub started: Instant,
    /// Thread ids of the workers, for their CPU time (0 until known).
    tids: Box<[AtomicU64]>,
    /// Reloads that failed.
    reload_failures: AtomicU64,
    /// When the current config was loaded, Unix milliseconds.
    loaded_at_ms: AtomicU64,
    /// The last CPU sample, for rates between two reads.
    last: Mutex<Option<process::Sample>>,
}

impl Registry {
    /// Counters for `workers` workers, all zero.
    pub fn new(workers: usize) -> Registry {
        Registry {
            workers: (0..workers).map(|_| Worker::default()).collect(),
            routes: Mutex::new(HashMap::new()),
            members: Mutex::new(HashMap::new()),
            started: Instant::now(),
            tids: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            reload_failures: AtomicU64::new(0),
            loaded_at_ms: AtomicU64::new(process::unix_ms()),
            last: Mutex::new(None),
        }
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Worker `w`'s counters (the last worker's for an index out of range).
    pub fn worker(&self, w: usize) -> &Worker {
        let last = self.workers.len().saturating_sub(1);
        &self.workers[w.min(last)]
    }

    /// Worker `w` runs on thread `tid`.
    pub fn set_tid(&self, w: usize, tid: u64) {
        if let Some(t) = self.tids.get(w) {
            t.store(tid, Ordering::Relaxed);
        }
    }

    /// The counters of the location named `key` (made on first use).
    pub fn route(&self, key: &str) -> Arc<RouteStats> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let id = routes.len();
        routes
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(RouteStats::new(id, self.workers.len())))
            .clone()
    }

    /// The counters of the member named `key` (made on first use).
    pub fn member(&self, key: &str) -> Arc<MemberStats> {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(MemberStats::new(self.workers.len())))
            .clone()
    }

    /// A config was loaded (at start or by a reload).
    pub fn loaded(&self) {
        self.loaded_at_ms
            .store(process::unix_ms(), Ordering::Relaxed);
    }

    /// A reload failed.
    pub fn reload_failed(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Reloads that failed.
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// When the current config was loaded, Unix milliseconds.
    pub fn loaded_at_ms(&self) -> u64 {
        self.loaded_at_ms.load(Ordering::Relaxed)
    }

    /// Every worker's counters summed.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for w in self.workers.iter() {
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            t.conn_accepted += get(&w.conn_accepted);
            t.conn_closed += get(&w.conn_closed);
            t.conn_error += get(&w.conn_error);
            t.conn_timeout += get(&w.conn_timeout);
            t.accept_errors += get(&w.accept_errors);
            t.req_started += get(&w.req_started);
            t.req_done += get(&w.req_done);
            t.req_file += get(&w.req_file);
            t.req_proxy += get(&w.req_proxy);
            t.req_redirect += get(&w.req_redirect);
            for (a, b) in t.status.iter_mut().zip(&w.status) {
                *a += get(b);
            }
            t.time_peak_us = t.time_peak_us.max(get(&w.time_peak_us));
            t.sent += get(&w.sent);
            t.received += get(&w.received);
            w.duration.read_into(&mut t.duration);
        }
        t
    }

    /// CPU and memory now, with rates since the last call (or since the
    /// start, the first time).
    pub fn sample(&self) -> process::Usage {
        let tids: Vec<u64> = self
            .tids
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .collect();
        let now = process::Sample::take(&tids);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let usage = process::Usage::between(last.as_ref(), &now, self.started);
        *last = Some(now);
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1_000), 0);
        assert_eq!(bucket(1_001), 1);
        assert_eq!(bucket(10_000_001), 12);
        let h = Histogram::default();
        for us in [500, 700, 3_000, 40_000, 20_000_000] {
            h.observe(us);
        }
        let mut t = HistogramTotals::default();
        h.read_into(&mut t);
        assert_eq!(t.count(), 5);
        assert_eq!(t.quantile_us(0.5), Some(5_000));
        assert_eq!(t.quantile_us(0.2), Some(1_000));
        assert_eq!(t.quantile_us(0.99), Some(10_000_000));
        assert_eq!(*t.cumulative().last().unwrap(), 5);
    }

    #[test]
    fn workers_are_summed_and_gauges_are_differences() {
        let r = Registry::new(2);
        r.worker(0).accepted();
        r.worker(1).accepted();
        r.worker(1).closed(Ending::Timeout);
        r.worker(0).request_started(Kind::File);
        r.worker(0).request_done(&Done::new(404, 1500));
        r.worker(0).traffic(100, 7);
        r.worker(9).accepted(); // out of range: the last worker
        let t = r.totals();
        assert_eq!(t.conn_accepted, 3);
        assert_eq!(t.conn_closed, 1);
        assert_eq!(t.conn_timeout, 1);
        assert_eq!(t.status, [0, 0, 0, 1, 0]);
        assert_eq!(t.time_peak_us, 1500);
        assert_eq!(t.sent, 100);
        assert!(Arc::ptr_eq(&r.route("a /"), &r.route("a /")));
    }
}
