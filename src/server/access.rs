//! The access-log line of a request: its start is made when the request
//! is routed, its end (status, bytes, duration) when the response is out.

use crate::http::parse::RequestHead;
use crate::log::LogTarget;
use crate::routing::Route;
use crate::routing::log_format::LogFormat;
use crate::routing::template::Vars;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// An access-log line waiting for its byte count and duration.
pub struct PendingLog {
    pub target: LogTarget,
    /// `addr - - [time] "request"` (up to the status).
    pub prefix: String,
    /// `"referer" "user agent"`.
    pub suffix: String,
    pub status: u16,
    pub started: Instant,
    /// A `log_format` line begun ([`crate::routing::log_format`]); `None`
    /// for `combined`.
    pub custom: Option<String>,
}

impl PendingLog {
    /// The whole line, with `sent` body bytes.
    pub fn line(&self, sent: u64) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        if let Some(begun) = &self.custom {
            return LogFormat::finish(begun, self.status, sent, elapsed);
        }
        format!(
            "{} {} {} {} {:.3}",
            self.prefix, self.status, sent, self.suffix, elapsed
        )
    }
}

/// The line of a request routed to `route`, answered with `status` unless
/// told otherwise.
pub fn pending(
    head: &RequestHead,
    route: &Route,
    vars: &dyn Vars,
    peer: SocketAddr,
    user: Option<&str>,
    status: u16,
    now: Instant,
) -> PendingLog {
    let target = route.access_log.clone().unwrap_or(LogTarget::Stdout);
    if let Some(format) = &route.log_format {
        return PendingLog {
            target,
            prefix: String::new(),
            suffix: String::new(),
            status,
            started: now,
            custom: Some(format.begin(vars)),
        };
    }
    let time = crate::log::clf_time(SystemTime::now());
    let prefix = format!(
        "{} - {} [{time}] \"{} {} {}\"",
        peer.ip(),
        escape(user.unwrap_or("-")),
        head.method,
        escape(&head.target),
        head.version.as_str()
    );
    let suffix = format!(
        "\"{}\" \"{}\"",
        escape(head.referer.as_deref().unwrap_or("-")),
        escape(head.user_agent.as_deref().unwrap_or("-"))
    );
    PendingLog {
        custom: None,
        target,
        prefix,
        suffix,
        status,
        started: now,
    }
}

/// Quotes and control characters escaped, as nginx does in its logs.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\x22"),
            '\\' => out.push_str("\\x5C"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}
