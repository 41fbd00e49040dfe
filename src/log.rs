//! The error log: lifecycle events and problems, one line each, to stderr
//! or a file (`error_log`), from the configured level up. `XPS_DEBUG=1`
//! turns on debug lines whatever the config says.

use crate::routing::{ErrorLog, LogLevel, LogTarget};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

struct Logger {
    level: LogLevel,
    out: Box<dyn Write + Send>,
    /// Where it writes, to reopen it.
    target: LogTarget,
}

fn logger() -> &'static Mutex<Logger> {
    static LOGGER: OnceLock<Mutex<Logger>> = OnceLock::new();
    LOGGER.get_or_init(|| {
        Mutex::new(Logger {
            level: LogLevel::Info,
            out: Box::new(std::io::stderr()),
            target: LogTarget::Stderr,
        })
    })
}

/// Opens a log destination (a file is created if missing and appended to).
fn open(target: &LogTarget) -> Box<dyn Write + Send> {
    match target {
        LogTarget::Stderr => Box::new(std::io::stderr()),
        LogTarget::Stdout => Box::new(std::io::stdout()),
        LogTarget::File(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!(
                    "xps: cannot open error log {}: {e}; logging to stderr",
                    path.display()
                );
                Box::new(std::io::stderr())
            }
        },
    }
}

/// Opens the log file again at its path (after it was renamed by a log
/// rotation); standard streams are left as they are.
pub fn reopen() {
    let mut l = match logger().lock() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    };
    if let LogTarget::File(_) = l.target {
        let _ = l.out.flush();
        l.out = open(&l.target);
    }
}

/// Points the log where the config says.
pub fn configure(config: &ErrorLog) {
    let out = open(&config.target);
    let debug = std::env::var_os("XPS_DEBUG").is_some_and(|v| v == "1");
    let mut l = match logger().lock() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    };
    l.level = if debug { LogLevel::Debug } else { config.level };
    l.out = out;
    l.target = config.target.clone();
}

/// Whether lines of `level` are written.
pub fn enabled(level: LogLevel) -> bool {
    match logger().lock() {
        Ok(l) => level >= l.level,
        Err(p) => level >= p.into_inner().level,
    }
}

/// Writes one line at `level`.
pub fn write(level: LogLevel, message: &str) {
    write_with(level, message, "");
}

/// Writes one line at `level` followed by a block of text (a diff), in one
/// write, so a reader of the log never sees the line without its block.
pub fn write_with(level: LogLevel, message: &str, block: &str) {
    let mut l = match logger().lock() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    };
    if level < l.level {
        return;
    }
    let time = httpdate::fmt_http_date(std::time::SystemTime::now());
    let mut text = format!("{time} [{}] {message}\n", level.name());
    text.push_str(block);
    let _ = l.out.write_all(text.as_bytes());
    let _ = l.out.flush();
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
