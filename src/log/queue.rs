//! A bounded queue of log lines and the thread that writes them. A sender
//! never waits on a disk or a pipe: when the queue is full the line is
//! dropped and counted. Even the messages that must not be dropped (a
//! reopen, a flush before exit) wait a bounded time for room, so a writer
//! stuck on a pipe nobody reads can never hold the process.

use super::LogTarget;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::hash_map::Entry;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// How long a reopen waits for room in a full queue.
const REOPEN_WITHIN: Duration = Duration::from_secs(1);

/// What the writer is told.
enum Message {
    /// Text for a destination, written as it is (with its newlines).
    Text(LogTarget, String),
    /// Close the files; the next line for each opens it again by path.
    Reopen,
    /// Answer once everything queued before is written.
    Flush(SyncSender<()>),
}

/// Which log a queue writes, and so how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Lines gathered and written when the queue runs dry; a line for a
    /// file that cannot be opened is left out (said once on stderr).
    Access,
    /// Each message one write of its own (a reader of the file never sees
    /// half of one); a file that cannot be opened is replaced by stderr
    /// (said once).
    Error,
}

/// The sending side of one writer thread.
#[derive(Clone)]
pub(super) struct Queue {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl Queue {
    /// Starts a writer thread named `name` behind a queue of `capacity`
    /// messages.
    pub(super) fn start(name: &str, capacity: usize, kind: Kind) -> Queue {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let _ = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || writer(rx, kind));
        Queue {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues `text` for `target`, or drops and counts it when the queue is
    /// full; `true` when it was queued.
    pub(super) fn send(&self, target: LogTarget, text: String) -> bool {
        match self.tx.try_send(Message::Text(target, text)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Reopens the files (after a log rotation renamed them): what was
    /// queued before goes to the old files. For the signal thread, not an
    /// event loop: it waits up to a second for room in a full queue.
    pub(super) fn reopen(&self) {
        let _ = self.send_within(Message::Reopen, Instant::now() + REOPEN_WITHIN);
    }

    /// Waits (at most `within`) until everything queued so far is written.
    pub(super) fn flush(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let (ack, done) = mpsc::sync_channel(1);
        if self.send_within(Message::Flush(ack), deadline) {
            let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
    }

    /// Lines dropped because the writer fell behind.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues `message`, waiting for room until `deadline` at most.
    fn send_within(&self, mut message: Message, deadline: Instant) -> bool {
        loop {
            match self.tx.try_send(message) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    message = m;
                    // The writer empties the queue at disk speed; a
                    // millisecond is many lines.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// The open destinations of one writer.
struct Outputs {
    kind: Kind,
    files: FxHashMap<Arc<Path>, std::io::BufWriter<std::fs::File>>,
    /// Files that could not be opened (said once each, until a reopen).
    failed: FxHashSet<Arc<Path>>,
    out: std::io::BufWriter<std::io::Stdout>,
    err: std::io::BufWriter<std::io::Stderr>,
}

impl Outputs {
    /// Where a line for `target` goes; `None` to leave it out.
    fn get(&mut self, target: &LogTarget) -> Option<&mut dyn Write> {
        Some(match target {
            LogTarget::Stdout => &mut self.out,
            LogTarget::Stderr => &mut self.err,
            LogTarget::File(path) if self.failed.contains(path) => match self.kind {
                Kind::Error => &mut self.err,
                Kind::Access => return None,
            },
            // One lookup per line (the path is hashed once).
            LogTarget::File(path) => match self.files.entry(path.clone()) {
                Entry::Occupied(f) => f.into_mut(),
                Entry::Vacant(slot) => {
                    match std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                    {
                        Ok(f) => slot.insert(std::io::BufWriter::new(f)),
                        Err(e) => {
                            let instead = match self.kind {
                                Kind::Access => "its lines are left out",
                                Kind::Error => "logging to stderr",
                            };
                            let _ = writeln!(
                                self.err,
                                "xps: cannot open log {}: {e}; {instead}",
                                path.display()
                            );
                            self.failed.insert(path.clone());
                            match self.kind {
                                Kind::Error => &mut self.err,
                                Kind::Access => return None,
                            }
                        }
                    }
                }
            },
        })
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
        let _ = self.err.flush();
        for f in self.files.values_mut() {
            let _ = f.flush();
        }
    }
}

/// Writes until every sender is gone.
fn writer(rx: Receiver<Message>, kind: Kind) {
    let mut outputs = Outputs {
        kind,
        files: FxHashMap::default(),
        failed: FxHashSet::default(),
        out: std::io::BufWriter::new(std::io::stdout()),
        err: std::io::BufWriter::new(std::io::stderr()),
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Text(target, text) => {
                    if let Some(w) = outputs.get(&target) {
                        let _ = w.write_all(text.as_bytes());
                        if kind == Kind::Error {
                            let _ = w.flush();
                        }
                    }
                }
                Message::Reopen => {
                    outputs.flush();
                    outputs.files.clear();
                    outputs.failed.clear();
                }
                Message::Flush(ack) => {
                    outputs.flush();
                    let _ = ack.try_send(());
                }
            }
            next = rx.try_recv().ok();
        }
        outputs.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_their_file_and_a_flush_waits_for_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.log");
        let q = Queue::start("test-log", 64, Kind::Access);
        for i in 0..10 {
            assert!(q.send(LogTarget::File(path.clone().into()), format!("line {i}\n")));
        }
        q.flush(Duration::from_secs(10));
        let text = std::fs::read_to_string(&path).expect("the log");
        assert_eq!(text.lines().count(), 10, "{text}");
        // A file that cannot be opened loses its lines, not the others.
        let gone = LogTarget::File(dir.path().join("no/such/folder/b.log").into());
        assert!(q.send(gone, "lost\n".into()));
        assert!(q.send(LogTarget::File(path.clone().into()), "kept\n".into()));
        q.flush(Duration::from_secs(10));
        let text = std::fs::read_to_string(&path).expect("the log");
        assert!(text.ends_with("kept\n"), "{text}");
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_never_holds_a_flush_or_a_reopen() {
        // A queue whose writer never reads, as when it is stuck on a pipe
        // nobody reads.
        let (tx, _held) = mpsc::sync_channel(2);
        let q = Queue {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        assert!(q.send(LogTarget::Stderr, "1\n".into()));
        assert!(q.send(LogTarget::Stderr, "2\n".into()));
        assert!(!q.send(LogTarget::Stderr, "3\n".into()));
        assert_eq!(q.dropped(), 1);
        let started = Instant::now();
        q.flush(Duration::from_millis(50));
        q.reopen();
        // Bounded by the flush's 50 ms and the reopen's second.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
