//! The variables of one request, for the values that name them
//! (`return`, `add_header`, `proxy_set_header`).

use crate::http::RequestHead;
use crate::routing::Peer;
use crate::routing::host::ServerName;
use crate::routing::template::{Var, Vars};
use std::fmt::Write;

/// What the variables of a request read.
pub struct RequestVars<'a> {
    pub head: &'a RequestHead,
    /// The head as the client sent it (for `$http_NAME`).
    pub raw: &'a [u8],
    pub peer: Peer,
    /// `$server_port`: the port the connection came in on (none on a
    /// Unix socket).
    pub server_port: Option<u16>,
    /// The server's names (`$server_name` is the first).
    pub names: &'a [ServerName],
    /// `$request_id` (empty when no value of the route names it).
    pub request_id: &'a str,
    /// `$remote_user`.
    pub user: Option<&'a str>,
}

/// A request's variables kept past its head (a proxied request: its
/// response head and error pages come later).
pub struct KeptVars {
    pub head: RequestHead,
    pub server_port: Option<u16>,
    pub names: Vec<ServerName>,
    pub request_id: String,
    pub user: Option<std::sync::Arc<str>>,
}

impl KeptVars {
    /// The variables, with the head as sent and the client's address.
    pub fn vars<'a>(&'a self, raw: &'a [u8], peer: Peer) -> RequestVars<'a> {
        RequestVars {
            head: &self.head,
            raw,
            peer,
            server_port: self.server_port,
            names: &self.names,
            request_id: &self.request_id,
            user: self.user.as_deref(),
        }
    }
}

/// `$server_port`: the port a connection came in on; none for a Unix
/// socket.
pub fn server_port(local: &crate::upstream::Endpoint) -> Option<u16> {
    match local {
        crate::upstream::Endpoint::Inet(a) => Some(a.port()),
        crate::upstream::Endpoint::Unix(_) => None,
    }
}

/// A new request id: 32 hex digits.
pub fn request_id(seed: u64) -> String {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    let a = state.hash_one(seed);
    let b = state.hash_one(a ^ 0x9e37_79b9_7f4a_7c15);
    format!("{a:016x}{b:016x}")
}

/// Every value of the header `name` (lower case) in a raw head, in order.
/// (From either end: a balancer's own field is the last.)
pub fn headers<'a>(raw: &'a [u8], name: &'a str) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
    // The fields: what follows the request line.
    let fields = raw
        .iter()
        .position(|&b| b == b'\n')
        .map_or(&[][..], |i| &raw[i + 1..]);
    fields
        .split(|&b| b == b'\n')
        .filter_map(move |line| field(line, name.as_bytes()))
}

/// The value of a head line if it is the field `name`: the name's length
/// is looked at first, so a value (a long cookie) is never scanned.
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (field, rest) = line.split_at_checked(name.len())?;
    let value = rest.strip_prefix(b":")?;
    field.eq_ignore_ascii_case(name).then(|| value.trim_ascii())
}

/// The first value of the header `name` (lower case) in a raw head.
pub fn header<'a>(raw: &'a [u8], name: &'a str) -> Option<&'a [u8]> {
    headers(raw, name).next()
}

impl Vars for RequestVars<'_> {
    fn write(&self, var: &Var, out: &mut String) {
        let h = self.head;
        match var {
            Var::Host => match h.host.as_deref() {
                Some(host) => {
                    let host = match host.rsplit_once(':') {
                        Some((name, port))
                            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            name
                        }
                        _ => host,
                    };
                    out.push_str(&host.to_ascii_lowercase());
                }
                None => {
                    if let Some(n) = self.names.first() {
                        let _ = write!(out, "{n}");
                    }
                }
            },
            Var::HttpHost => {
                if let Some(v) = header(self.raw, "host") {
                    out.push_str(&String::from_utf8_lossy(v));
                }
            }
            Var::RequestUri => out.push_str(&h.target),
            Var::Uri => out.push_str(&h.uri.path),
            Var::Args => out.push_str(h.uri.query.as_deref().unwrap_or("")),
            Var::Scheme => out.push_str("http"),
            Var::RequestMethod => out.push_str(h.method.as_str()),
            Var::RemoteAddr | Var::BinaryRemoteAddr => {
                self.peer.push_to(out);
            }
            Var::RemotePort => {
                // Port 0: an address a balancer gave without one (nginx
                // leaves the variable empty too).
                if let Some(port) = self.peer.port().filter(|&p| p != 0) {
                    let _ = write!(out, "{port}");
                }
            }
            Var::ServerName => {
                if let Some(n) = self.names.first() {
                    let _ = write!(out, "{n}");
                }
            }
            Var::ServerPort => {
                if let Some(port) = self.server_port {
                    let _ = write!(out, "{port}");
                }
            }
            Var::Http(name) => {
                if let Some(v) = header(self.raw, name) {
                    out.push_str(&String::from_utf8_lossy(v));
                }
            }
            Var::ProxyAddXForwardedFor => {
                if let Some(v) = header(self.raw, "x-forwarded-for") {
                    out.push_str(&String::from_utf8_lossy(v));
                    out.push_str(", ");
                }
                self.peer.push_to(out);
            }
            Var::RequestId => out.push_str(self.request_id),
            Var::RemoteUser => out.push_str(self.user.unwrap_or("")),
            Var::TimeLocal => crate::log::clf_time(std::time::SystemTime::now(), out),
            Var::TimeIso8601 => crate::log::iso_time(std::time::SystemTime::now(), out),
            Var::Msec => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let _ = write!(out, "{}.{:03}", now.as_secs(), now.subsec_millis());
            }
            Var::Request => {
                let _ = write!(out, "{} {} {}", h.method, h.target, h.version.as_str());
            }
            // Filled in by the log line when the response is out.
            Var::Status | Var::BodyBytesSent | Var::RequestTime => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_are_matched_by_their_whole_name() {
        let raw = b"GET / HTTP/1.1\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For-Extra: no\r\nCookie: x-forwarded-for: no\r\nx-forwarded-for:198.51.100.2 \r\nX-Forwarded-For : no\r\n\r\n";
        let all: Vec<&[u8]> = headers(raw, "x-forwarded-for").collect();
        assert_eq!(all, [&b"192.0.2.1"[..], &b"198.51.100.2"[..]]);
        assert_eq!(header(raw, "cookie"), Some(&b"x-forwarded-for: no"[..]));
        assert_eq!(header(raw, "x"), None);
    }
}
