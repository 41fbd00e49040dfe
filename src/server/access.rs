//! The access-log line of a request: its start is made when the request
//! is routed, its end (status, bytes, duration) when the response is out.

use super::vars::RequestVars;
use crate::http::parse::RequestHead;
use crate::log::LogTarget;
use crate::routing::Route;
use crate::routing::log_format::LogFormat;
use std::time::{Instant, SystemTime};

/// An access-log line waiting for its byte count and duration.
pub struct PendingLog {
    pub target: LogTarget,
    pub status: u16,
    pub started: Instant,
    pub line: Begun,
}

/// The part of a line known when the request is routed.
pub enum Begun {
    /// The combined format, around the status, bytes and time.
    Combined {
        /// `addr - - [time] "request"` (up to the status).
        prefix: String,
        /// `"referer" "user agent"`.
        suffix: String,
    },
    /// A `log_format` line begun ([`crate::routing::log_format`]).
    Custom(String),
}

impl PendingLog {
    /// Where the line goes, and the whole line with `sent` body bytes
    /// (made in the begun line's own buffer).
    pub fn line(self, sent: u64) -> (LogTarget, String) {
        let millis = self.started.elapsed().as_millis() as u64;
        let (mut out, suffix) = match self.line {
            Begun::Custom(begun) => {
                let line = LogFormat::finish(begun, self.status, sent, millis);
                return (self.target, line);
            }
            Begun::Combined { prefix, suffix } => (prefix, suffix),
        };
        out.reserve(suffix.len() + 40);
        out.push(' ');
        out.push_str(itoa::Buffer::new().format(self.status));
        out.push(' ');
        out.push_str(itoa::Buffer::new().format(sent));
        out.push(' ');
        out.push_str(&suffix);
        out.push(' ');
        crate::routing::log_format::push_seconds(&mut out, millis);
        (self.target, out)
    }
}

/// The line of a request routed to `route`, answered with `status` unless
/// told otherwise; `None` when the route logs nothing.
pub fn pending(
    head: &RequestHead,
    route: &Route,
    vars: &RequestVars<'_>,
    status: u16,
    now: Instant,
) -> Option<PendingLog> {
    let target = route.access_log.clone()?;
    if let Some(format) = &route.log_format {
        return Some(PendingLog {
            target,
            status,
            started: now,
            line: Begun::Custom(format.begin(vars)),
        });
    }
    // Built by hand: `format!` was most of what a line cost.
    let target_text = escape(&head.target);
    let user_text = escape(vars.user.unwrap_or("-"));
    // 26: the time's length.
    let mut prefix = String::with_capacity(48 + 26 + target_text.len() + user_text.len());
    vars.peer.push_to(&mut prefix);
    prefix.push_str(" - ");
    prefix.push_str(&user_text);
    prefix.push_str(" [");
    crate::log::clf_time(SystemTime::now(), &mut prefix);
    prefix.push_str("] \"");
    prefix.push_str(head.method.as_str());
    prefix.push(' ');
    prefix.push_str(&target_text);
    prefix.push(' ');
    prefix.push_str(head.version.as_str());
    prefix.push('"');
    let referer = escape(head.referer.as_deref().unwrap_or("-"));
    let agent = escape(head.user_agent.as_deref().unwrap_or("-"));
    let mut suffix = String::with_capacity(referer.len() + agent.len() + 5);
    suffix.push('"');
    suffix.push_str(&referer);
    suffix.push_str("\" \"");
    suffix.push_str(&agent);
    suffix.push('"');
    Some(PendingLog {
        target,
        status,
        started: now,
        line: Begun::Combined { prefix, suffix },
    })
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
