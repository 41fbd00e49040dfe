//! A bounded queue of log lines and the thread that writes them. A sender
//! never waits on a disk or a pipe: when the queue is full the line is
//! dropped and counted.

use super::LogTarget;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// What the writer is told.
enum Message {
    /// Text for a destination, written as it is (with its newlines).
    Text(LogTarget, String),
    /// Close the files; the next line for each opens it again by path.
    Reopen,
    /// Answer once everything queued before is written.
    Flush(SyncSender<()>),
}

/// The sending side of one writer thread.
#[derive(Clone)]
pub(super) struct Queue {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl Queue {
    /// Starts a writer thread named `name` behind a queue of `capacity`
    /// messages. A `buffered` writer gathers lines and writes when the
    /// queue runs dry; otherwise each message is one write of its own (a
    /// reader of the file never sees half of one).
    pub(super) fn start(name: &str, capacity: usize, buffered: bool) -> Queue {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let _ = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || writer(rx, buffered));
        Queue {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues `text` for `target`, or drops and counts it when the queue is
    /// full.
    pub(super) fn send(&self, target: LogTarget, text: String) {
        match self.tx.try_send(Message::Text(target, text)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reopens the files (after a log rotation renamed them): what was
    /// queued before goes to the old files. Waits for room in the queue
    /// (never dropped); for the signal thread, not an event loop.
    pub(super) fn reopen(&self) {
        let _ = self.tx.send(Message::Reopen);
    }

    /// Waits (at most `within`) until everything queued so far is written.
    pub(super) fn flush(&self, within: Duration) {
        let (ack, done) = mpsc::sync_channel(1);
        if self.tx.send(Message::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(within);
        }
    }

    /// Lines dropped because the writer fell behind.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The open destinations of one writer.
struct Outputs {
    files: HashMap<PathBuf, std::io::BufWriter<std::fs::File>>,
    out: std::io::BufWriter<std::io::Stdout>,
    err: std::io::BufWriter<std::io::Stderr>,
}

impl Outputs {
    fn get(&mut self, target: &LogTarget) -> Option<&mut dyn Write> {
        Some(match target {
            LogTarget::Stdout => &mut self.out,
            LogTarget::Stderr => &mut self.err,
            LogTarget::File(path) => {
                if !self.files.contains_key(path) {
                    match std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                    {
                        Ok(f) => {
                            self.files.insert(path.clone(), std::io::BufWriter::new(f));
                        }
                        Err(e) => {
                            let _ = writeln!(
                                self.err,
                                "xps: cannot open log {}: {e}; writing to stderr",
                                path.display()
                            );
                            return Some(&mut self.err);
                        }
                    }
                }
                self.files.get_mut(path)?
            }
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
fn writer(rx: Receiver<Message>, buffered: bool) {
    let mut outputs = Outputs {
        files: HashMap::new(),
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
                        if !buffered {
                            let _ = w.flush();
                        }
                    }
                }
                Message::Reopen => {
                    outputs.flush();
                    outputs.files.clear();
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
