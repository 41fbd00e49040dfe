//! The logs: the error log (lifecycle events and problems) and the access
//! log (one line per request). Neither ever blocks the thread that logs:
//! lines go through a bounded queue to a writer thread (`queue.rs`), and
//! when the writer falls behind they are dropped and counted.

mod access;
mod error;
mod queue;

pub use access::{AccessLog, clf_time, iso_time};
pub use error::{
    configure, enabled, error, error_with, flush, info, info_with, reopen, warn, write, write_with,
};

/// `error_log TARGET [LEVEL]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorLog {
    /// Where lines go.
    pub target: LogTarget,
    /// The least severe level written.
    pub level: LogLevel,
}

/// A log destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LogTarget {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file, appended to (shared: every line names it).
    File(std::sync::Arc<std::path::Path>),
}

/// Levels of `error_log`, least severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything, per connection.
    Debug,
    /// Lifecycle events: start, reload, stop.
    Info,
    /// Things that went wrong but were handled.
    Warn,
    /// Things that failed.
    Error,
}

impl LogLevel {
    /// The names `error_log` accepts.
    pub const NAMES: &'static [&'static str] = &["debug", "info", "warn", "error"];

    /// The level for a name of [`LogLevel::NAMES`].
    pub fn from_name(name: &str) -> Option<LogLevel> {
        match name {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }

    /// The name as written in xps.conf.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}
