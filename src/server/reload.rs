//! Reloading: watch the folders of every loaded file, debounce bursts of
//! events, load the whole new config off the event loops, and swap it in —
//! or keep the old one and say exactly why.
//!
//! Order on success: bind the listen addresses that are new (a failure
//! rejects the reload whole), store the new snapshot (workers take it at
//! their next loop turn: requests already started keep the old one, kept
//! alive connections get the new one with their next request), then tell
//! workers to accept on the new sockets and close the gone ones.

use super::ctx::Shared;
use super::listen::{Bound, ListenMode, bind_addrs};
use super::worker::Command;
use crate::config::diff::diff;
use crate::config::{self, Loaded, diagnostic};
use crate::net::sys::Wake;
use crate::routing::Snapshot;
use crate::upstream::Endpoint;
use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Quiet time that ends a burst of file events (one save is several).
const DEBOUNCE: Duration = Duration::from_millis(25);
/// A burst never delays a reload longer than this.
const MAX_DELAY: Duration = Duration::from_millis(250);

/// Why the reloader wakes.
pub enum Trigger {
    /// Something changed at this path (in a watched folder).
    Changed(PathBuf),
    /// SIGHUP.
    Signal,
}

/// How the reloader reaches one worker.
pub struct WorkerLink {
    /// Its command queue.
    pub commands: Sender<Command>,
    /// Its wake-up eventfd.
    pub wake: Arc<Wake>,
}

/// A hash of every text a load read, to skip reloads that change nothing.
pub fn content_hash(loaded: &Loaded) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    for f in loaded.sources.files() {
        h.write(f.name.as_bytes());
        h.write_u8(0);
        h.write(f.text.as_bytes());
        h.write_u8(0);
        h.write_u64(f.secret.unwrap_or(0));
    }
    h.finish()
}

/// What to watch for one load: folders, and which names in them matter.
#[derive(Default)]
struct WatchSet {
    folders: BTreeSet<PathBuf>,
    names: BTreeSet<std::ffi::OsString>,
    patterns: Vec<glob::Pattern>,
}

impl WatchSet {
    fn add_loaded(&mut self, config: &Path, loaded: &Loaded) {
        self.add_file(config);
        for f in loaded.sources.files() {
            self.add_file(&f.path);
        }
        for p in loaded.sources.patterns() {
            if let Some(parent) = p.parent() {
                self.folders.insert(folder(parent));
            }
            if let Ok(pattern) = glob::Pattern::new(&absolute(p).to_string_lossy()) {
                self.patterns.push(pattern);
            }
            if let Some(name) = p.file_name() {
                self.names.insert(name.to_os_string());
            }
        }
    }

    fn add_file(&mut self, path: &Path) {
        if let Some(parent) = path.parent() {
            self.folders.insert(folder(parent));
        }
        if let Some(name) = path.file_name() {
            self.names.insert(name.to_os_string());
        }
    }

    /// Whether an event at `path` may change the config: one of its files,
    /// a file an include pattern matches, or a Kubernetes-style `..data`
    /// symlink swap.
    fn matters(&self, path: &Path) -> bool {
        let Some(name) = path.file_name() else {
            return true;
        };
        let options = glob::MatchOptions {
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        // The name first: it decides most events without an allocation.
        self.names.contains(name)
            || name.to_string_lossy().starts_with("..")
            || (!self.patterns.is_empty() && {
                let path = absolute(path);
                self.patterns
                    .iter()
                    .any(|p| p.matches_path_with(&path, options))
            })
    }
}

/// A folder as an absolute path (event paths are compared against it).
fn folder(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    absolute(p)
}

fn absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// The reload thread's state.
pub struct Reloader {
    config: PathBuf,
    name: String,
    shared: Arc<Shared>,
    workers: Vec<WorkerLink>,
    mode: ListenMode,
    rx: Receiver<Trigger>,
    tx: Sender<Trigger>,
    /// Hash of the running config's texts.
    current: u64,
    /// Hash of the last config that failed, so re-saving it stays quiet.
    failed: Option<u64>,
    /// Reloads that failed since start.
    failures: u64,
    watcher: Option<Box<dyn Watcher + Send>>,
    /// Shared with the watcher's thread, which drops events that cannot
    /// matter before they wake this one (a log written into the config's
    /// folder makes one per line).
    watch: Arc<ArcSwap<WatchSet>>,
}

impl Reloader {
    /// A reloader for the config at `config`, first loaded as `loaded`.
    pub fn new(
        config: PathBuf,
        loaded: &Loaded,
        shared: Arc<Shared>,
        workers: Vec<WorkerLink>,
        mode: ListenMode,
        channel: (Sender<Trigger>, Receiver<Trigger>),
    ) -> Reloader {
        let (tx, rx) = channel;
        let mut r = Reloader {
            name: config::load::display_name(&config),
            config,
            shared,
            workers,
            mode,
            rx,
            tx,
            current: content_hash(loaded),
            failed: None,
            failures: 0,
            watcher: None,
            watch: Arc::new(ArcSwap::from_pointee(WatchSet::default())),
        };
        let watching = r.shared.snapshot.load().main.watch;
        if watching {
            r.start_watcher();
        }
        r.update_watch(loaded);
        // (A save between the first load and the start of the watch has no
        // event: `update_watch` looked once more, the set having grown.)
        write_state(&r.config, &r.shared.snapshot.load());
        r
    }

    /// Starts the inotify watcher, or a polling one where inotify is not
    /// available (`XPS_WATCH=poll` forces polling).
    fn start_watcher(&mut self) {
        let tx = self.tx.clone();
        let watch = self.watch.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                // Reading the config (as every reload does) is an access
                // event: reacting to those would reload forever.
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                let watch = watch.load();
                for path in event.paths {
                    if watch.matters(&path) {
                        let _ = tx.send(Trigger::Changed(path));
                    }
                }
            }
        };
        let force_poll = std::env::var("XPS_WATCH").is_ok_and(|v| v == "poll");
        if !force_poll {
            match notify::recommended_watcher(handler.clone()) {
                Ok(w) => {
                    self.watcher = Some(Box::new(w));
                    return;
                }
                Err(e) => crate::log::warn(&format!(
                    "file watching with inotify failed ({e}); polling every 500 ms instead"
                )),
            }
        } else {
            crate::log::info("watching the config by polling every 500 ms (XPS_WATCH=poll)");
        }
        let config = notify::Config::default()
            .with_poll_interval(Duration::from_millis(500))
            .with_compare_contents(true);
        match notify::PollWatcher::new(handler, config) {
            Ok(w) => self.watcher = Some(Box::new(w)),
            Err(e) => crate::log::warn(&format!(
                "cannot watch the config ({e}); reload with SIGHUP"
            )),
        }
    }

    /// Watches the folders of everything `loaded` read (adding new ones,
    /// dropping those no longer needed).
    fn update_watch(&mut self, loaded: &Loaded) {
        let mut next = WatchSet::default();
        next.add_loaded(&self.config, loaded);
        let current = self.watch.load_full();
        // What matters is known before the new folders send events.
        self.watch.store(Arc::new(next));
        let next = self.watch.load();
        if let Some(w) = self.watcher.as_mut() {
            for gone in current.folders.difference(&next.folders) {
                let _ = w.unwatch(gone);
            }
            for new in next.folders.difference(&current.folders) {
                if let Err(e) = w.watch(new, RecursiveMode::NonRecursive) {
                    crate::log::warn(&format!("cannot watch {}: {e}", new.display()));
                }
            }
        }
        // A file the config newly reads may have changed after the load
        // read it and before the watcher knew it mattered (its events were
        // dropped then, as were those of a folder not watched yet): look
        // once more. A load that finds nothing new changes nothing, and the
        // set stops growing, so this ends.
        let grew = !next.names.is_subset(&current.names)
            || !next.folders.is_subset(&current.folders)
            || next
                .patterns
                .iter()
                .any(|p| !current.patterns.iter().any(|q| q.as_str() == p.as_str()));
        if grew && self.watcher.is_some() {
            let _ = self.tx.send(Trigger::Changed(self.config.clone()));
        }
    }

    /// Runs until the process ends.
    pub fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            let signal = match first {
                Trigger::Signal => true,
                Trigger::Changed(path) => {
                    if !self.watch.load().matters(&path) {
                        continue;
                    }
                    false
                }
            };
            self.settle();
            self.reload(if signal { "SIGHUP" } else { "a saved file" });
        }
    }

    /// Waits for a burst of events to end.
    fn settle(&mut self) {
        let started = Instant::now();
        loop {
            let left = MAX_DELAY.saturating_sub(started.elapsed());
            if left.is_zero() {
                return;
            }
            match self.rx.recv_timeout(DEBOUNCE.min(left)) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Loads the config again and applies it, or keeps the running one.
    fn reload(&mut self, reason: &str) {
        if !self.config.exists() {
            // A save by delete-and-recreate, caught in the middle: the
            // next event brings the new file.
            crate::log::write(
                crate::log::LogLevel::Debug,
                &format!("{} is missing for now; waiting for it", self.name),
            );
            return;
        }
        let started = Instant::now();
        let mut loaded = config::load(&self.config);
        self.update_watch(&loaded);
        let hash = content_hash(&loaded);
        let old = self.shared.snapshot.load_full();
        let Some(mut snapshot) = loaded.snapshot.take() else {
            if self.failed == Some(hash) {
                return;
            }
            self.failed = Some(hash);
            self.failures += 1;
            self.shared.metrics.reload_failed();
            let (errors, warnings) = loaded.counts();
            let rendered = diagnostic::render(&loaded.diagnostics, &loaded.sources, false);
            crate::log::error_with(
                &format!(
                    "reload of {} ({reason}) failed: {}{}; kept generation {}",
                    self.name,
                    diagnostic::plural(errors, "error"),
                    if warnings > 0 {
                        format!(", {}", diagnostic::plural(warnings, "warning"))
                    } else {
                        String::new()
                    },
                    old.generation
                ),
                &rendered,
            );
            return;
        };
        self.failed = None;
        if hash == self.current {
            if reason == "SIGHUP" {
                crate::log::info(&format!(
                    "reload of {} (SIGHUP): nothing changed; generation {}",
                    self.name, old.generation
                ));
            }
            return;
        }
        snapshot.generation = old.generation + 1;
        // Warnings go out under the line that reports the reload.
        let warnings = if loaded.diagnostics.is_empty() {
            String::new()
        } else {
            diagnostic::render(&loaded.diagnostics, &loaded.sources, false)
        };
        // New listen addresses first: if one cannot be bound, nothing changes.
        let (added, removed) = listener_changes(&old, &snapshot);
        let bound = match self.bind(&added) {
            Ok(s) => s,
            Err(why) => {
                self.failures += 1;
                self.shared.metrics.reload_failed();
                crate::log::error_with(
                    &format!(
                        "reload of {} rejected: {why}; kept generation {}",
                        self.name, old.generation
                    ),
                    &warnings,
                );
                return;
            }
        };
        if snapshot.main.workers != old.main.workers {
            crate::log::warn("a change of `workers` takes effect at the next start");
        }
        if snapshot.main.error_log != old.main.error_log {
            crate::log::configure(&snapshot.main.error_log);
        }
        let generation = snapshot.generation;
        let changes = diff(&old, &snapshot);
        super::stats::attach(&snapshot, &self.shared.metrics);
        super::stats::attach_zones(&snapshot, &self.shared.zones);
        self.shared.snapshot.store(Arc::new(snapshot));
        self.shared.metrics.loaded();
        self.current = hash;
        for (link, add) in self.workers.iter().zip(bound.per_worker) {
            let _ = link.commands.send(Command::Listeners {
                add,
                remove: removed.clone(),
            });
            link.wake.wake();
        }
        if let Ok(mut files) = self.shared.socket_files.lock() {
            // The files of removed Unix sockets go (new connections there
            // fail at once); new ones are kept, unless the server began
            // stopping meanwhile (its files are gone already: these go too).
            if self.shared.stopping.load(Ordering::Acquire) {
                return;
            }
            files.retain(|f| {
                !removed
                    .iter()
                    .any(|r| matches!(r, Endpoint::Unix(p) if **p == *f.path()))
            });
            files.extend(bound.files);
        }
        write_state(&self.config, &self.shared.snapshot.load());
        let mut report = format!(
            "reloaded {} ({reason}): generation {generation} in {} ms",
            self.name,
            started.elapsed().as_millis()
        );
        if changes.is_empty() {
            report.push_str(", no route changed");
        }
        let mut block = warnings;
        if !changes.is_empty() {
            block.push_str(&(changes.join("\n") + "\n"));
        }
        crate::log::info_with(&report, &block);
    }

    /// One socket per worker for each new address.
    fn bind(&self, added: &[Endpoint]) -> Result<Bound, String> {
        bind_addrs(added, self.workers.len(), self.mode)
    }

    /// Reloads that failed since start.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

/// Listen addresses in `new` but not `old`, and in `old` but not `new`.
fn listener_changes(old: &Snapshot, new: &Snapshot) -> (Vec<Endpoint>, Vec<Endpoint>) {
    let (old, new) = (old.listen_addrs(), new.listen_addrs());
    let added = new.iter().filter(|a| !old.contains(a)).cloned().collect();
    let removed = old.iter().filter(|a| !new.contains(a)).cloned().collect();
    (added, removed)
}

/// Where a running server records its generation for `xps --dump`.
pub fn state_path(config: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let mut h = rustc_hash::FxHasher::default();
    h.write(canonical.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("xps-{:016x}.state", h.finish()))
}

/// Records pid, generation and load time of the running config.
fn write_state(config: &Path, snapshot: &Snapshot) {
    let loaded_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let text = format!(
        "pid={}\ngeneration={}\nloaded_at_ms={loaded_at}\n",
        std::process::id(),
        snapshot.generation
    );
    let path = state_path(config);
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// Removes the state file at exit.
pub fn remove_state(config: &Path) {
    let _ = std::fs::remove_file(state_path(config));
}
