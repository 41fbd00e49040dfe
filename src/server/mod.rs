//! Orchestration: bind the listen addresses, start the workers, and turn
//! signals into a graceful stop (SIGTERM, SIGINT), an immediate one
//! (SIGQUIT) or a reload (SIGHUP).

pub mod conn;
pub mod files;
pub mod probe;
pub mod proxy;
pub mod reload;
pub mod worker;

use crate::config::Loaded;
use crate::http::date::DateCache;
use crate::log::AccessLog;
use crate::net::sys;
use crate::routing::{Snapshot, Workers};
use arc_swap::ArcSwap;
use files::FileCache;
use nix::sys::eventfd::EventFd;
use nix::sys::signal::Signal;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use worker::Worker;

/// State every worker shares.
pub struct Shared {
    /// The routing table; swapped whole on reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// Set once on SIGTERM/SIGINT.
    pub stopping: AtomicBool,
    /// Open client connections over all workers (for `max_connections`).
    pub connections: AtomicUsize,
    /// `accept` calls that failed for want of resources (descriptors,
    /// memory), over all workers.
    pub accept_errors: AtomicU64,
    /// The access-log writer.
    pub access_log: AccessLog,
    /// Health of upstream members (kept across reloads).
    pub health: crate::upstream::Health,
}

/// What a worker's connections use besides their own state.
pub struct Ctx {
    /// The shared state.
    pub shared: Arc<Shared>,
    /// The `Date` value of this loop turn.
    pub date: DateCache,
    /// This worker's file and listing cache.
    pub files: FileCache,
    /// Read buffers of idle connections, for reuse.
    pool: Vec<Vec<u8>>,
    /// Relay buffers of finished proxy legs, for reuse.
    relay_pool: Vec<Vec<u8>>,
    /// The time of this loop turn.
    pub now: Instant,
    /// The server is stopping: no more keep-alive.
    pub stopping: bool,
    /// The snapshot requests of this loop turn use ([`Ctx::refresh`]).
    pub snapshot: Option<Arc<Snapshot>>,
    /// The worker's epoll, for upstream sockets.
    pub poller: Arc<crate::net::Poller>,
    /// Idle upstream connections of this worker.
    pub upstream_pool: proxy::Pool,
    /// This worker's upstream sockets and who they serve.
    pub sockets: proxy::Sockets,
    /// Balancer state per upstream group name.
    pub pickers: rustc_hash::FxHashMap<String, crate::upstream::Picker>,
    /// Scratch list of a group's members for one pick, kept to be reused.
    pub candidates: Vec<crate::upstream::Candidate>,
}

/// Read buffers kept for reuse per worker at most.
const POOL: usize = 256;

impl Ctx {
    fn new(shared: Arc<Shared>, poller: Arc<crate::net::Poller>) -> Ctx {
        Ctx {
            shared,
            date: DateCache::default(),
            files: FileCache::new(),
            pool: Vec::new(),
            relay_pool: Vec::new(),
            now: Instant::now(),
            stopping: false,
            snapshot: None,
            poller,
            upstream_pool: proxy::Pool::default(),
            sockets: proxy::Sockets::default(),
            pickers: rustc_hash::FxHashMap::default(),
            candidates: Vec::new(),
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
        self.date.refresh();
        let current = self.shared.snapshot.load();
        if !self
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &current))
        {
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

    /// A read buffer of [`conn::READ_BUF`] bytes.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| vec![0; conn::READ_BUF])
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
        if buf.len() == conn::READ_BUF && self.pool.len() < POOL {
            self.pool.push(buf);
        }
    }
}

/// How workers share listen addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenMode {
    /// One socket per address, in every worker's epoll with
    /// `EPOLLEXCLUSIVE`.
    Exclusive,
    /// One `SO_REUSEPORT` socket per address per worker; the kernel
    /// spreads connections.
    ReusePort,
}

impl ListenMode {
    /// From `XPS_LISTEN_MODE` (`reuseport` or `exclusive`), for
    /// benchmarks; the default is [`ListenMode::ReusePort`].
    pub fn from_env() -> ListenMode {
        match std::env::var("XPS_LISTEN_MODE").as_deref() {
            Ok("exclusive") => ListenMode::Exclusive,
            _ => ListenMode::ReusePort,
        }
    }
}

/// Why the server could not start.
pub fn bind_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            format!("{addr} is already in use (another server is listening there)")
        }
        Some(libc::EACCES) => {
            format!("{addr}: permission denied (ports below 1024 need privileges)")
        }
        Some(libc::EADDRNOTAVAIL) => format!("{addr} is not an address of this machine"),
        _ => format!(
            "cannot listen on {addr}: {}",
            crate::config::load::io_reason(e)
        ),
    }
}

/// Binds `addrs` for `workers` workers: a `SO_REUSEPORT` socket per
/// worker, or one socket shared by all. A probe without `SO_REUSEPORT`
/// first makes sure no other process holds the address (which
/// `SO_REUSEPORT` would silently share). Used at start and by reloads.
pub(super) fn bind_addrs(
    addrs: &[SocketAddr],
    workers: usize,
    mode: ListenMode,
) -> Result<Vec<Vec<(SocketAddr, TcpListener)>>, String> {
    let mut per_worker: Vec<Vec<(SocketAddr, TcpListener)>> =
        (0..workers).map(|_| Vec::new()).collect();
    for &addr in addrs {
        match mode {
            ListenMode::Exclusive => {
                let socket = sys::listen(addr, false, 4096).map_err(|e| bind_error(addr, &e))?;
                for w in per_worker.iter_mut() {
                    w.push((addr, socket.try_clone().map_err(|e| bind_error(addr, &e))?));
                }
            }
            ListenMode::ReusePort => {
                sys::bindable(addr).map_err(|e| bind_error(addr, &e))?;
                for w in per_worker.iter_mut() {
                    w.push((
                        addr,
                        sys::listen(addr, true, 4096).map_err(|e| bind_error(addr, &e))?,
                    ));
                }
            }
        }
    }
    Ok(per_worker)
}

/// Runs the server on a loaded config until a signal stops it. `config`
/// is the file to watch and reload (`None` for the built-in default).
/// `Err` when it cannot start.
pub fn run(mut loaded: Loaded, config: Option<PathBuf>) -> Result<(), String> {
    let snapshot = loaded.snapshot.take().ok_or("the config has errors")?;
    // Block the signals before any thread starts, so every thread inherits
    // the mask and only the signalfd sees them.
    let signals = sys::signalfd().map_err(|e| format!("cannot set up signals: {e}"))?;
    crate::log::configure(&snapshot.main.error_log);
    let workers = match snapshot.main.workers {
        Workers::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Workers::Count(n) => n,
    };
    sys::raise_fd_limit(snapshot.main.max_connections + 1024);
    let mode = ListenMode::from_env();
    let listeners = bind_addrs(&snapshot.listen_addrs(), workers, mode)?;
    let mut addrs: Vec<String> = snapshot
        .listeners
        .iter()
        .map(|l| format!("http://{}", l.addr))
        .collect();
    for s in &snapshot.streams {
        addrs.extend(s.listen.iter().map(|a| format!("tcp://{a}")));
    }
    let shutdown_timeout = snapshot.main.shutdown_timeout;
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(snapshot),
        stopping: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        accept_errors: AtomicU64::new(0),
        access_log: AccessLog::start(),
        health: crate::upstream::Health::new(),
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut links = Vec::new();
    for (i, socks) in listeners.into_iter().enumerate() {
        let wake = Arc::new(sys::eventfd().map_err(|e| format!("cannot create an eventfd: {e}"))?);
        let (commands_tx, commands_rx) = mpsc::channel();
        let worker = Worker::new(
            socks,
            commands_rx,
            mode == ListenMode::Exclusive,
            shared.clone(),
            wake.clone(),
            i == 0,
        )
        .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        links.push(reload::WorkerLink {
            commands: commands_tx,
            wake,
        });
        let done = done_tx.clone();
        std::thread::Builder::new()
            .name(format!("xps-worker-{i}"))
            .spawn(move || {
                worker.run();
                let _ = done.send(());
            })
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
    }
    drop(done_tx);
    let wakes: Vec<Arc<EventFd>> = links.iter().map(|l| l.wake.clone()).collect();
    let (reload_tx, reload_rx) = mpsc::channel();
    if let Some(path) = &config {
        let reloader = reload::Reloader::new(
            path.clone(),
            &loaded,
            shared.clone(),
            links,
            mode,
            (reload_tx.clone(), reload_rx),
        );
        std::thread::Builder::new()
            .name("xps-reload".into())
            .spawn(move || reloader.run())
            .map_err(|e| format!("cannot start the reloader: {e}"))?;
    }
    crate::log::info(&format!(
        "xps {} serving {} with {workers} worker{}",
        env!("CARGO_PKG_VERSION"),
        addrs.join(", "),
        if workers == 1 { "" } else { "s" }
    ));
    let result = signal_loop(
        &signals,
        &shared,
        &wakes,
        &done_rx,
        shutdown_timeout,
        &reload_tx,
        config.is_some(),
    );
    if let Some(path) = &config {
        reload::remove_state(path);
    }
    // What was logged goes out before the process does.
    shared.access_log.flush(Duration::from_secs(1));
    result
}

/// Turns signals into a stop, an exit or a reload.
fn signal_loop(
    signals: &nix::sys::signalfd::SignalFd,
    shared: &Shared,
    wakes: &[Arc<EventFd>],
    done: &mpsc::Receiver<()>,
    shutdown_timeout: Duration,
    reload: &mpsc::Sender<reload::Trigger>,
    reloadable: bool,
) -> Result<(), String> {
    loop {
        let signal = match signals.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            Ok(None) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(format!("reading signals failed: {e}")),
        };
        match signal {
            Some(Signal::SIGTERM) | Some(Signal::SIGINT) => {
                crate::log::info("stopping: no new connections; finishing requests in flight");
                stop(shared, wakes, done, wakes.len(), shutdown_timeout);
                return Ok(());
            }
            Some(Signal::SIGQUIT) => {
                crate::log::info("SIGQUIT: exiting at once");
                crate::log::flush();
                std::process::exit(0);
            }
            Some(Signal::SIGHUP) if reloadable => {
                let _ = reload.send(reload::Trigger::Signal);
            }
            Some(Signal::SIGHUP) => {
                crate::log::info("SIGHUP: the built-in config has nothing to reload")
            }
            Some(Signal::SIGUSR1) => {
                // logrotate's `postrotate`: the files were renamed; lines
                // queued before this go to the old ones, later lines to new
                // files at the configured paths.
                crate::log::reopen();
                shared.access_log.reopen();
                crate::log::info("SIGUSR1: log files reopened");
            }
            Some(other) => crate::log::info(&format!("{other}: ignored")),
            None => {}
        }
    }
}

/// Tells every worker to stop and waits for them, at most `timeout`.
fn stop(
    shared: &Shared,
    wakes: &[Arc<EventFd>],
    done: &mpsc::Receiver<()>,
    workers: usize,
    timeout: Duration,
) {
    shared.stopping.store(true, Ordering::Release);
    for w in wakes {
        let _ = w.write(1);
    }
    let deadline = Instant::now() + timeout;
    let mut finished = 0;
    while finished < workers {
        let left = deadline.saturating_duration_since(Instant::now());
        match done.recv_timeout(left) {
            Ok(()) => finished += 1,
            Err(_) => {
                crate::log::warn(&format!(
                    "shutdown_timeout passed with {} connection(s) open; exiting",
                    shared.connections.load(Ordering::Relaxed)
                ));
                return;
            }
        }
    }
    crate::log::info("stopped");
}
