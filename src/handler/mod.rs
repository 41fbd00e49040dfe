//! Policy: (request, route, peer) → [`Reply`]. No sockets: a reply is a
//! status, a handful of typed header values and a body the server then
//! writes (bytes, or a file region for `sendfile`).

pub mod autoindex;
pub mod canned;
pub mod files;
pub mod gzip;
pub mod metrics;
pub mod proxy;
pub mod static_file;

use crate::http::parse::RequestHead;
use crate::routing::{Action, Route};
use files::Files;
use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

/// Header text that is often shared or static, so replies rarely allocate.
#[derive(Clone, Debug)]
pub enum Text {
    /// A constant.
    Static(&'static str),
    /// Shared with a cache entry.
    Shared(Arc<str>),
    /// Made for this reply.
    Owned(String),
}

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
            Text::Owned(s) => s,
        }
    }
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// No body.
    Empty,
    /// `bytes[start..end]`, shared with a cache.
    Shared {
        /// The bytes.
        bytes: Arc<[u8]>,
        /// First byte sent.
        start: usize,
        /// One past the last byte sent.
        end: usize,
    },
    /// Bytes made for this reply.
    Owned(Vec<u8>),
    /// `file[start..end]`, sent with `sendfile`.
    File {
        /// The open file.
        file: File,
        /// First byte sent.
        start: u64,
        /// One past the last byte sent.
        end: u64,
    },
    /// A whole file gzipped as it is sent (one too large for the
    /// compressed cache): its compressed length is not known up front.
    Gzip {
        /// The open file.
        file: File,
        /// Its size when it was looked up: what is sent.
        size: u64,
        /// The level (1–9).
        level: u32,
    },
}

impl Body {
    /// Whole shared bytes.
    pub fn shared(bytes: Arc<[u8]>) -> Body {
        let end = bytes.len();
        Body::Shared {
            bytes,
            start: 0,
            end,
        }
    }

    /// The number of bytes (for `Gzip`, of the file before compression:
    /// what is sent is not known up front).
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Shared { start, end, .. } => (end - start) as u64,
            Body::Owned(v) => v.len() as u64,
            Body::File { start, end, .. } => end - start,
            Body::Gzip { size, .. } => *size,
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a handler answers.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<Text>,
    /// `ETag`.
    pub etag: Option<Text>,
    /// `Last-Modified`.
    pub last_modified: Option<Text>,
    /// `Location`.
    pub location: Option<String>,
    /// `Allow` (405).
    pub allow: Option<&'static str>,
    /// `WWW-Authenticate` (401).
    pub www_authenticate: Option<Arc<str>>,
    /// `Retry-After`, in seconds (429, 503).
    pub retry_after: Option<u32>,
    /// `Content-Range` (206, 416).
    pub content_range: Option<String>,
    /// `Accept-Ranges: bytes` (files).
    pub accept_ranges: bool,
    /// `Content-Encoding` (`gzip` for a compressed variant).
    pub content_encoding: Option<&'static str>,
    /// `Vary: Accept-Encoding`: another client may get another variant.
    pub vary: bool,
    /// gzip was already decided for this reply (files and listings): the
    /// last step leaves it as it is.
    pub gzip_planned: bool,
    /// `Cache-Control: no-store` (live figures).
    pub no_store: bool,
    /// `Content-Security-Policy` (the metrics page).
    pub csp: Option<&'static str>,
    /// Route the request again with this path (`try_files`' last
    /// argument): the server does, and this reply is not sent.
    pub internal: Option<String>,
    /// `Access-Control-Allow-Origin: *` (live figures, read by pages of
    /// other origins), unless the route adds its own.
    pub cors: bool,
    /// Something the server should log (once per text): a handler has no
    /// log of its own.
    pub note: Option<String>,
    /// The body; for HEAD it is still given, so the length is right, and
    /// the server does not send it.
    pub body: Body,
}

impl Reply {
    /// A reply with a status and nothing else.
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            content_type: None,
            etag: None,
            last_modified: None,
            location: None,
            allow: None,
            www_authenticate: None,
            retry_after: None,
            content_range: None,
            accept_ranges: false,
            content_encoding: None,
            vary: false,
            gzip_planned: false,
            no_store: false,
            csp: None,
            internal: None,
            cors: false,
            note: None,
            body: Body::Empty,
        }
    }
}

/// The answer of a route to a request xps answers itself.
pub fn handle(
    head: &RequestHead,
    route: &Route,
    files: &mut impl Files,
    now: Instant,
    vars: &dyn crate::routing::template::Vars,
) -> Reply {
    match &route.action {
        Action::Static => static_file::serve(head, route, files, now, vars),
        Action::Return(r) => canned::ret(r, route.charset.as_deref(), vars),
        Action::NotFound => canned::error(404),
        // Proxied requests go to the proxy leg; metrics come with their
        // own stage.
        Action::Proxy(_) | Action::Metrics => canned::error(501),
    }
}

/// Replaces the built-in page of an error status with the route's
/// `error_page`, when it has one for that status.
pub fn with_error_page(
    reply: Reply,
    head: &RequestHead,
    route: &Route,
    files: &mut impl Files,
    now: Instant,
) -> Reply {
    if reply.status < 400 {
        return reply;
    }
    let Some(page) = route.error_page_for(reply.status) else {
        return reply;
    };
    let status = page.status.unwrap_or(reply.status);
    match static_file::error_page(route, files, &page.path, status, head, now) {
        Some(mut r) if page.status.is_none() => {
            r.allow = reply.allow;
            r.www_authenticate = reply.www_authenticate;
            r.retry_after = reply.retry_after;
            r.content_range = reply.content_range;
            r
        }
        Some(r) => r,
        None => reply,
    }
}
