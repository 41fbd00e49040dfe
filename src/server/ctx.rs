//! What the workers share ([`Shared`]), and what a worker's connections
//! use besides their own state ([`Ctx`]): the loop turn's time, date and
//! snapshot, buffer pools, the file cache, upstream sockets and balancers.

use super::files::FileCache;
use super::proxy::pool::{Pool, Sockets};
use crate::http::date::DateCache;
use crate::log::AccessLog;
use crate::routing::Snapshot;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Instant;

/// State every worker shares.
pub struct Shared {
    /// The routing table; swapped whole on reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// Set once on SIGTERM/SIGINT.
    pub stopping: AtomicBool,
    /// Open client connections over all workers (for `max_connections`).
    pub connections: AtomicUsize,
    /// Live figures: each worker's counters, kept across reloads.
    pub metrics: crate::metrics::Registry,
    /// The access-log writer.
    pub access_log: AccessLog,
    /// Health of upstream members (kept across reloads).
    pub health: crate::upstream::Health,
    /// The state of `limit_req_zone`s and `limit_conn_zone`s (kept across
    /// reloads that leave a zone as it was).
    pub zones: crate::limit::Registry,
    /// The socket files of `listen unix:` addresses, removed when the
    /// address leaves the config and when the server stops.
    pub socket_files: std::sync::Mutex<Vec<super::listen::SocketFile>>,
}

/// What a worker's connections use besides their own state.
pub struct Ctx {
    /// The shared state.
    pub shared: Arc<Shared>,
    /// The `Date` value of this loop turn.
    pub date: DateCache,
    /// This worker's file and listing cache.
    pub files: FileCache,
    /// Credentials this worker checked (`auth_basic`).
    pub auth: super::auth::AuthCache,
    /// Read buffers of idle connections, for reuse.
    pool: Vec<Vec<u8>>,
    /// Relay buffers of finished proxy legs, for reuse.
    relay_pool: Vec<Vec<u8>>,
    /// The time of this loop turn.
    pub now: Instant,
    /// The same in microseconds since the process started (what the
    /// counters time requests with: a subtraction, not a clock call).
    pub now_us: u64,
    /// The server is stopping: no more keep-alive.
    pub stopping: bool,
    /// The snapshot requests of this loop turn use ([`Ctx::refresh`]).
    pub snapshot: Option<Arc<Snapshot>>,
    /// The worker's epoll, for upstream sockets.
    pub poller: Arc<crate::net::Poller>,
    /// Idle upstream connections of this worker.
    pub upstream_pool: Pool,
    /// This worker's upstream sockets and who they serve.
    pub sockets: Sockets,
    /// Balancer state per upstream group name.
    pub pickers: rustc_hash::FxHashMap<String, crate::upstream::Picker>,
    /// Scratch list of a group's members for one pick, kept to be reused.
    pub candidates: Vec<crate::upstream::Candidate>,
    /// Notes from handlers already logged (see [`Ctx::note_once`]).
    noted: rustc_hash::FxHashSet<String>,
    /// This worker's index (its slot in the metrics).
    pub worker: usize,
    /// This worker's handles on location counters, by their number: a
    /// request names its location's by number, so no reference count
    /// moves per request.
    routes: Vec<Option<Arc<crate::metrics::RouteStats>>>,
}

/// Read buffer size (grows up to the head limit when a head needs it).
pub const READ_BUF: usize = 16 << 10;

/// Read buffers kept for reuse per worker at most.
const POOL: usize = 256;

impl Ctx {
    pub(super) fn new(shared: Arc<Shared>, poller: Arc<crate::net::Poller>, worker: usize) -> Ctx {
        Ctx {
            shared,
            date: DateCache::default(),
            files: FileCache::new(),
            auth: Default::default(),
            pool: Vec::new(),
            relay_pool: Vec::new(),
            now: Instant::now(),
            now_us: 0,
            stopping: false,
            snapshot: None,
            poller,
            upstream_pool: Pool::default(),
            sockets: Sockets::default(),
            pickers: rustc_hash::FxHashMap::default(),
            candidates: Vec::new(),
            noted: rustc_hash::FxHashSet::default(),
            worker,
            routes: Vec::new(),
        }
    }

    /// Keeps a handle on a location's counters (once per worker) and
    /// gives its number.
    #[inline]
    pub fn keep_route_stats(&mut self, stats: &Arc<crate::metrics::RouteStats>) -> usize {
        let id = stats.id;
        if self.routes.len() <= id {
            self.routes.resize(id + 1, None);
        }
        if self.routes[id].is_none() {
            self.routes[id] = Some(stats.clone());
        }
        id
    }

    /// The location counters numbered `id`, if this worker keeps them.
    #[inline]
    pub fn route_stats(&self, id: usize) -> Option<&crate::metrics::RouteStats> {
        self.routes.get(id)?.as_deref()
    }

    /// This worker's counters.
    #[inline]
    pub fn stats(&self) -> &crate::metrics::Worker {
        self.shared.metrics.worker(self.worker)
    }

    /// Logs a handler's note (a warning) the first time this worker sees
    /// it; at most 1,024 are remembered, then they are forgotten together.
    pub fn note_once(&mut self, note: String) {
        if self.noted.len() >= 1024 {
            self.noted.clear();
        }
        if !self.noted.contains(&note) {
            crate::log::warn(&note);
            self.noted.insert(note);
        }
    }

    /// A seed for a balancer's random choices, different per worker and
    /// per call.
    pub fn seed(&self) -> u64 {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(self.now)
    }

    /// Starts a loop turn: the time, the date, and the current snapshot
    /// (replaced only when a reload stored a new one).
    pub fn refresh(&mut self) {
        self.now = Instant::now();
        self.now_us = self
            .now
            .saturating_duration_since(self.shared.metrics.started)
            .as_micros() as u64;
        self.date.refresh();
        let current = self.shared.snapshot.load();
        if !self
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &current))
        {
            self.files.set_gzip_budget(current.main.gzip_cache);
            self.snapshot = Some(arc_swap::Guard::into_inner(current));
        }
    }

    /// The snapshot of this loop turn (taken out; put it back after use).
    pub fn take_snapshot(&mut self) -> Arc<Snapshot> {
        match self.snapshot.take() {
            Some(s) => s,
            None => self.shared.snapshot.load_full(),
        }
    }

    /// A read buffer of [`READ_BUF`] bytes.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| vec![0; READ_BUF])
    }

    /// A proxy relay buffer (16 KiB, or empty to be made on first use).
    pub fn take_relay_buffer(&mut self) -> Vec<u8> {
        self.relay_pool.pop().unwrap_or_default()
    }

    /// Takes a relay buffer back.
    pub fn give_relay_buffer(&mut self, buf: Vec<u8>) {
        // Buffers grown for a fast download are not kept: a slow client
        // taking one would hold more memory than it needs.
        if buf.len() == 16 << 10 && self.relay_pool.len() < POOL {
            self.relay_pool.push(buf);
        }
    }

    /// Takes a read buffer back (oversized ones are dropped).
    pub fn give_buffer(&mut self, buf: Vec<u8>) {
        if buf.len() == READ_BUF && self.pool.len() < POOL {
            self.pool.push(buf);
        }
    }
}
