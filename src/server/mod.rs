//! Orchestration: bind the listen addresses, start the workers, and turn
//! signals into a graceful stop (SIGTERM, SIGINT), an immediate one
//! (SIGQUIT) or a reload (SIGHUP).

pub mod access;
pub mod auth;
pub mod client;
pub mod conn;
pub mod ctx;
pub mod drain;
pub mod files;
pub mod gz_file;
pub mod leg;
pub mod limits;
pub mod listen;
pub mod meter;
pub mod probe;
pub mod proxy;
pub mod reload;
pub mod respond;
pub mod stats;
pub mod vars;
pub mod worker;

use ctx::Shared;
use listen::{ListenMode, bind_addrs};

use crate::config::Loaded;
use crate::log::AccessLog;
use crate::net::sys::{self, Signal, Signals, Wake};
use crate::routing::Workers;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use worker::Worker;

/// Starts a non-blocking connection to an upstream member, on an address
/// or a Unix socket.
fn connect(addr: &crate::upstream::Endpoint) -> std::io::Result<sys::Stream> {
    match addr {
        crate::upstream::Endpoint::Inet(a) => sys::connect(*a),
        crate::upstream::Endpoint::Unix(p) => sys::connect_unix(p),
    }
}

/// Runs the server on a loaded config until a signal stops it. `config`
/// is the file to watch and reload (`None` for the built-in default).
/// `Err` when it cannot start.
pub fn run(mut loaded: Loaded, config: Option<PathBuf>) -> Result<(), String> {
    let snapshot = loaded.snapshot.take().ok_or("the config has errors")?;
    // Block the signals before any thread starts, so every thread inherits
    // the mask and only the signalfd sees them.
    let signals = Signals::new().map_err(|e| format!("cannot set up signals: {e}"))?;
    crate::log::configure(&snapshot.main.error_log);
    let workers = match snapshot.main.workers {
        Workers::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Workers::Count(n) => n,
    };
    sys::raise_fd_limit(snapshot.main.max_connections + 1024);
    let mode = ListenMode::from_env();
    let bound = bind_addrs(&snapshot.listen_addrs(), workers, mode)?;
    let mut addrs: Vec<String> = snapshot
        .listeners
        .iter()
        .map(|l| format!("http://{}", l.addr))
        .collect();
    for s in &snapshot.streams {
        addrs.extend(s.listen.iter().map(|a| match a {
            crate::upstream::Endpoint::Inet(_) => format!("tcp://{a}"),
            crate::upstream::Endpoint::Unix(_) => a.to_string(),
        }));
    }
    let shutdown_timeout = snapshot.main.shutdown_timeout;
    let metrics = crate::metrics::Registry::new(workers);
    stats::attach(&snapshot, &metrics);
    let zones = crate::limit::Registry::default();
    stats::attach_zones(&snapshot, &zones);
    let shared = Arc::new(Shared {
        zones,
        snapshot: ArcSwap::from_pointee(snapshot),
        stopping: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        metrics,
        access_log: AccessLog::start(),
        health: crate::upstream::Health::new(),
        socket_files: std::sync::Mutex::new(bound.files),
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut links = Vec::new();
    for (i, socks) in bound.per_worker.into_iter().enumerate() {
        let wake = Arc::new(Wake::new().map_err(|e| format!("cannot create an eventfd: {e}"))?);
        let (commands_tx, commands_rx) = mpsc::channel();
        let worker = Worker::new(
            socks,
            commands_rx,
            mode == ListenMode::Exclusive,
            shared.clone(),
            wake.clone(),
            i,
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
    let wakes: Vec<Arc<Wake>> = links.iter().map(|l| l.wake.clone()).collect();
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
    // Also when the signals could not be read, which skips `stop`.
    remove_socket_files(&shared);
    if let Some(path) = &config {
        reload::remove_state(path);
    }
    // What was logged goes out before the process does.
    shared.access_log.flush(Duration::from_secs(1));
    result
}

/// Turns signals into a stop, an exit or a reload.
fn signal_loop(
    signals: &Signals,
    shared: &Shared,
    wakes: &[Arc<Wake>],
    done: &mpsc::Receiver<()>,
    shutdown_timeout: Duration,
    reload: &mpsc::Sender<reload::Trigger>,
    reloadable: bool,
) -> Result<(), String> {
    loop {
        let signal = signals
            .next()
            .map_err(|e| format!("reading signals failed: {e}"))?;
        match signal {
            Some(Signal::SIGTERM) | Some(Signal::SIGINT) => {
                crate::log::info("stopping: no new connections; finishing requests in flight");
                stop(shared, wakes, done, wakes.len(), shutdown_timeout);
                return Ok(());
            }
            Some(Signal::SIGQUIT) => {
                crate::log::info("SIGQUIT: exiting at once");
                shared.stopping.store(true, Ordering::Release);
                remove_socket_files(shared);
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

/// Removes the `listen unix:` socket files. `stopping` is set first, and
/// the reloader checks it under the same lock, so no file added by a
/// reload outlives this.
fn remove_socket_files(shared: &Shared) {
    if let Ok(mut files) = shared.socket_files.lock() {
        files.clear();
    }
}

/// Tells every worker to stop and waits for them, at most `timeout`.
fn stop(
    shared: &Shared,
    wakes: &[Arc<Wake>],
    done: &mpsc::Receiver<()>,
    workers: usize,
    timeout: Duration,
) {
    shared.stopping.store(true, Ordering::Release);
    for w in wakes {
        w.wake();
    }
    // No new connections: a server started on the same Unix socket paths
    // may bind them while this one finishes.
    remove_socket_files(shared);
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
