//! The error log: lifecycle events and problems, one line each, to stderr
//! or a file (`error_log`), from the configured level up. `XPS_DEBUG=1`
//! turns on debug lines whatever the config says. A line is formatted by
//! the thread that logs it and queued for the writer thread; an event loop
//! never waits on the log.

use super::queue::{Kind, Queue};
use super::{ErrorLog, LogLevel, LogTarget};
use arc_swap::ArcSwap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

/// Lines waiting for the writer at most.
const QUEUE: usize = 4096;

struct Logger {
    level: AtomicU8,
    target: ArcSwap<LogTarget>,
    queue: Queue,
    /// Dropped lines already said to be dropped.
    reported: AtomicU64,
}

fn logger() -> &'static Logger {
    static LOGGER: OnceLock<Logger> = OnceLock::new();
    LOGGER.get_or_init(|| Logger {
        level: AtomicU8::new(LogLevel::Info as u8),
        target: ArcSwap::from_pointee(LogTarget::Stderr),
        queue: Queue::start("xps-error-log", QUEUE, Kind::Error),
        reported: AtomicU64::new(0),
    })
}

/// Opens the log file again at its path (after a log rotation renamed
/// it); standard streams are left as they are.
pub fn reopen() {
    logger().queue.reopen();
}

/// Points the log where the config says.
pub fn configure(config: &ErrorLog) {
    let debug = std::env::var_os("XPS_DEBUG").is_some_and(|v| v == "1");
    let level = if debug { LogLevel::Debug } else { config.level };
    let l = logger();
    let old = l.target.swap(std::sync::Arc::new(config.target.clone()));
    l.level.store(level as u8, Ordering::Relaxed);
    if *old != config.target {
        // The old file is closed once the lines queued for it are out.
        l.queue.reopen();
    }
}

/// Whether lines of `level` are written.
pub fn enabled(level: LogLevel) -> bool {
    level as u8 >= logger().level.load(Ordering::Relaxed)
}

/// Waits (at most a second) until the lines logged so far are written:
/// before the process exits.
pub fn flush() {
    logger().queue.flush(Duration::from_secs(1));
}

/// Writes one line at `level`.
pub fn write(level: LogLevel, message: &str) {
    write_with(level, message, "");
}

/// Writes one line at `level` followed by a block of text (a diff), in one
/// write, so a reader of the log never sees the line without its block.
pub fn write_with(level: LogLevel, message: &str, block: &str) {
    if !enabled(level) {
        return;
    }
    let l = logger();
    let time = httpdate::fmt_http_date(std::time::SystemTime::now());
    let mut text = format!("{time} [{}] {message}\n", level.name());
    text.push_str(block);
    let target = LogTarget::clone(&l.target.load());
    if l.queue.send(target.clone(), text) {
        // Lines dropped while the writer fell behind are said once it
        // keeps up again.
        let dropped = l.queue.dropped();
        let reported = l.reported.load(Ordering::Relaxed);
        if dropped > reported
            && l.reported
                .compare_exchange(reported, dropped, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let time = httpdate::fmt_http_date(std::time::SystemTime::now());
            let note = format!(
                "{time} [warn] {} error-log lines dropped: the log's writer fell behind\n",
                dropped - reported
            );
            let _ = l.queue.send(target, note);
        }
    }
}

/// An info line.
pub fn info(message: &str) {
    write(LogLevel::Info, message);
}

/// An error line with a block of text under it (rendered diagnostics), in
/// one write.
pub fn error_with(message: &str, block: &str) {
    write_with(LogLevel::Error, message, block);
}

/// An info line with a block of text under it, in one write.
pub fn info_with(message: &str, block: &str) {
    write_with(LogLevel::Info, message, block);
}

/// A warning.
pub fn warn(message: &str) {
    write(LogLevel::Warn, message);
}

/// An error.
pub fn error(message: &str) {
    write(LogLevel::Error, message);
}
