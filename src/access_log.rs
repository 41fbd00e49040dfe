//! The access log: one line per request in the combined log format plus
//! the request time. Workers hand finished lines to a writer thread over a
//! bounded channel and never wait on a disk or a pipe: when the writer
//! falls behind, lines are dropped and counted.

use crate::routing::LogTarget;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

/// Lines waiting for the writer at most.
const QUEUE: usize = 16 * 1024;

/// What the writer is told.
enum Message {
    /// A line (without its newline) for a destination.
    Line(LogTarget, String),
    /// Close the files; the next line for each opens it again by path.
    Reopen,
}

/// The sending side, cloned into every worker.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Starts the writer thread.
    pub fn start() -> AccessLog {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let _ = std::thread::Builder::new()
            .name("xps-access-log".into())
            .spawn(move || writer(rx));
        AccessLog { tx, dropped }
    }

    /// Queues a line (without its newline) for `target`.
    pub fn write(&self, target: &LogTarget, line: String) {
        match self.tx.try_send(Message::Line(target.clone(), line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reopens the files after a log rotation renamed them: the lines
    /// queued before go to the old files, the ones after to new files at
    /// the configured paths. Waits for room in the queue (never dropped).
    pub fn reopen(&self) {
        let _ = self.tx.send(Message::Reopen);
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Writes lines until every sender is gone, flushing whenever the queue
/// runs dry.
fn writer(rx: Receiver<Message>) {
    let mut files: HashMap<std::path::PathBuf, std::io::BufWriter<std::fs::File>> = HashMap::new();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut err = std::io::BufWriter::new(std::io::stderr());
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            let (target, line) = match message {
                Message::Line(target, line) => (target, line),
                Message::Reopen => {
                    for (_, mut f) in files.drain() {
                        let _ = f.flush();
                    }
                    next = rx.try_recv().ok();
                    continue;
                }
            };
            let w: &mut dyn Write = match &target {
                LogTarget::Stdout => &mut out,
                LogTarget::Stderr => &mut err,
                LogTarget::File(path) => {
                    if !files.contains_key(path) {
                        match std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)
                        {
                            Ok(f) => {
                                files.insert(path.clone(), std::io::BufWriter::new(f));
                            }
                            Err(e) => {
                                eprintln!("xps: cannot open access log {}: {e}", path.display());
                                next = rx.try_recv().ok();
                                continue;
                            }
                        }
                    }
                    match files.get_mut(path) {
                        Some(f) => f,
                        None => &mut err,
                    }
                }
            };
            let _ = w.write_all(line.as_bytes());
            let _ = w.write_all(b"\n");
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
        let _ = err.flush();
        for f in files.values_mut() {
            let _ = f.flush();
        }
    }
}

/// `[26/Nov/2026:07:49:13 +0000]`'s inside, for the combined format.
pub fn clf_time(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let date = crate::http::date::listing_time(secs); // YYYY-MM-DD HH:MM
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, rest) = date.split_at(4);
    let m: usize = rest[1..3].parse().unwrap_or(1);
    let d = &rest[4..6];
    format!(
        "{d}/{}/{y}:{}:{:02} +0000",
        MONTHS[(m - 1).min(11)],
        &rest[7..12],
        secs.rem_euclid(60)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_log_time() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        assert_eq!(clf_time(t), "18/Nov/2026:11:06:40 +0000");
    }
}
