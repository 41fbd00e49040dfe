//! The heads of a proxied exchange, without sockets: the request head sent
//! upstream (client's method, target and Host; `X-Forwarded-*`,
//! `X-Real-IP`, `proxy_set_header`; hop-by-hop fields removed; framing
//! rewritten), the upstream's response head parsed strictly, and the head
//! sent back to the client (upstream's status and fields, its own `Server`
//! and `Date`, hop-by-hop fields removed, framing rewritten).

use crate::http::response;
use crate::routing::Route;
use std::io::Write;
use std::net::IpAddr;

/// Fields that concern one connection, never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

fn is_hop(name: &str, connection_tokens: &[&[u8]]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection_tokens
            .iter()
            .any(|t| name.as_bytes().eq_ignore_ascii_case(t))
}

/// The names listed in `Connection` fields (they are hop-by-hop too).
fn connection_tokens<'a>(headers: &[httparse::Header<'a>]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            out.extend(
                h.value
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .filter(|t| !t.is_empty()),
            );
        }
    }
    out
}

/// `haystack` contains `needle` (ASCII letters in any case).
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Appends `Name: value\r\n` with a value that is bytes.
fn header_bytes(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How the request body goes upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// No body.
    None,
    /// `Content-Length: N`, bytes passed as they come.
    Length(u64),
    /// Re-framed as chunked.
    Chunked,
}

/// The request head for the upstream, and whether the client asks for a
/// WebSocket (then `Upgrade` is kept). `raw` is the client's head as
/// received (already validated).
pub fn request_head(
    raw: &[u8],
    route: &Route,
    peer: IpAddr,
    fallback_host: &str,
    body: RequestBody,
) -> (Vec<u8>, bool) {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let _ = req.parse(raw);
    let tokens = connection_tokens(req.headers);
    let websocket = tokens.iter().any(|t| t.eq_ignore_ascii_case(b"upgrade"))
        && req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("upgrade") && contains_ignore_case(h.value, b"websocket")
        });
    let method = req.method.unwrap_or("GET");
    let target = req.path.unwrap_or("/");
    let mut out = Vec::with_capacity(raw.len() + 256);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host: Option<&[u8]> = None;
    // Earlier X-Forwarded-For values, joined, then the peer.
    let mut forwarded_for: Vec<u8> = Vec::new();
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            host = Some(h.value);
        }
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            let v = h.value.trim_ascii();
            if !v.is_empty() {
                forwarded_for.extend_from_slice(v);
                forwarded_for.extend_from_slice(b", ");
            }
            continue;
        }
        let ours = [
            "x-real-ip",
            "x-forwarded-proto",
            "x-forwarded-host",
            "content-length",
            "expect",
        ];
        if is_hop(name, &tokens) || ours.iter().any(|o| name.eq_ignore_ascii_case(o)) {
            continue;
        }
        if route
            .proxy_set_header
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case(name))
        {
            continue;
        }
        header_bytes(&mut out, name, h.value);
    }
    if host.is_none() {
        response::header(&mut out, "Host", fallback_host);
    }
    let mut peer_buf = [0u8; 48];
    let peer_text = {
        let mut w = &mut peer_buf[..];
        // An IPv6 address is at most 45 bytes.
        let _ = write!(w, "{peer}");
        let n = 48 - w.len();
        &peer_buf[..n]
    };
    forwarded_for.extend_from_slice(peer_text);
    header_bytes(&mut out, "X-Forwarded-For", &forwarded_for);
    header_bytes(&mut out, "X-Real-IP", peer_text);
    response::header(&mut out, "X-Forwarded-Proto", "http");
    header_bytes(
        &mut out,
        "X-Forwarded-Host",
        host.unwrap_or(fallback_host.as_bytes()),
    );
    for p in &route.proxy_set_header {
        if !p.value.is_empty() {
            response::header(&mut out, &p.name, &p.value);
        }
    }
    match body {
        RequestBody::None => {}
        RequestBody::Length(n) => response::header_u64(&mut out, "Content-Length", n),
        RequestBody::Chunked => response::header(&mut out, "Transfer-Encoding", "chunked"),
    }
    if websocket {
        response::header(&mut out, "Connection", "Upgrade");
        response::header(&mut out, "Upgrade", "websocket");
    }
    response::end(&mut out);
    (out, websocket)
}

/// How the upstream's response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body (1xx, 204, 304, HEAD).
    None,
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes.
    Close,
}

/// An upstream response head, parsed and checked.
#[derive(Clone, Debug)]
pub struct UpstreamHead {
    /// Status code.
    pub status: u16,
    /// Bytes of the head (blank line included).
    pub len: usize,
    /// How the body is delimited.
    pub body: ResponseBody,
    /// The upstream keeps the connection open after this response.
    pub keep_alive: bool,
    /// Its `Content-Length`, checked (also on answers without a body: HEAD
    /// and 304 declare the length a GET would get).
    pub length: Option<u64>,
}

/// Why an upstream response is refused (the client gets 502).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadResponse(pub &'static str);

/// Parses an upstream response head. `Ok(None)`: incomplete.
pub fn parse_response(buf: &[u8], head_request: bool) -> Result<Option<UpstreamHead>, BadResponse> {
    Ok(parse_response_then(buf, head_request, |_, _| ())?.map(|(head, ())| head))
}

/// The fields of a parsed upstream response, for writing the client's head
/// without parsing again.
pub struct ResponseFields<'r, 'h, 'b> {
    res: &'r httparse::Response<'h, 'b>,
    len: usize,
}

impl ResponseFields<'_, '_, '_> {
    /// [`client_head`] from these fields.
    pub fn client_head(
        &self,
        out: &mut Vec<u8>,
        route: &Route,
        body: ClientBody,
        close: bool,
        http10_keep_alive: bool,
    ) {
        write_client_head(
            out,
            self.res,
            self.len,
            route,
            body,
            close,
            http10_keep_alive,
        );
    }
}

/// Parses an upstream response head and, when it is complete and valid,
/// hands it with its fields to `then` (which may write the client's head).
pub fn parse_response_then<R>(
    buf: &[u8],
    head_request: bool,
    then: impl FnOnce(&UpstreamHead, &ResponseFields) -> R,
) -> Result<Option<(UpstreamHead, R)>, BadResponse> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse("malformed response head")),
    };
    let status = res.code.unwrap_or(0);
    let version_11 = res.version == Some(1);
    let mut keep_alive = version_11;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut te = false;
    for h in res.headers.iter() {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("content-length") {
            for part in value.split(|&b| b == b',') {
                let part = part.trim_ascii();
                if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                    return Err(BadResponse("invalid Content-Length"));
                }
                let n = part.iter().try_fold(0u64, |n, &d| {
                    n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                });
                let n = n.ok_or(BadResponse("Content-Length overflows"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(BadResponse("different Content-Lengths"));
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    if te && length.is_some() {
        return Err(BadResponse("both Content-Length and Transfer-Encoding"));
    }
    let body = if head_request || status < 200 || status == 204 || status == 304 {
        ResponseBody::None
    } else if te {
        if chunked {
            ResponseBody::Chunked
        } else {
            ResponseBody::Close
        }
    } else {
        match length {
            Some(n) => ResponseBody::Length(n),
            None => ResponseBody::Close,
        }
    };
    if body == ResponseBody::Close {
        keep_alive = false;
    }
    let head = UpstreamHead {
        status,
        len,
        body,
        keep_alive,
        length,
    };
    let r = then(&head, &ResponseFields { res: &res, len });
    Ok(Some((head, r)))
}

/// How the response body goes to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientBody {
    /// No body.
    None,
    /// No body, but the head declares the length a GET would get
    /// (`Content-Length: N` on HEAD and 304 answers).
    Declared(u64),
    /// `Content-Length: N`.
    Length(u64),
    /// Chunked (re-framed).
    Chunked,
    /// Until xps closes the connection (HTTP/1.0 clients).
    Close,
}

/// Appends the head for the client to `out`: the upstream's status and
/// fields without hop-by-hop or framing fields, then `add_header`, the
/// framing xps uses, and `Connection`.
pub fn client_head(
    out: &mut Vec<u8>,
    raw: &[u8],
    route: &Route,
    body: ClientBody,
    close: bool,
    http10_keep_alive: bool,
) {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut res = httparse::Response::new(&mut headers);
    let _ = res.parse(raw);
    write_client_head(out, &res, raw.len(), route, body, close, http10_keep_alive);
}

fn write_client_head(
    out: &mut Vec<u8>,
    res: &httparse::Response,
    len: usize,
    route: &Route,
    body: ClientBody,
    close: bool,
    http10_keep_alive: bool,
) {
    let tokens = connection_tokens(res.headers);
    let status = res.code.unwrap_or(502);
    out.reserve(len + 64);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(res.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let websocket = status == 101;
    for h in res.headers.iter() {
        let name = h.name;
        if h.name.eq_ignore_ascii_case("content-length")
            || (is_hop(name, &tokens)
                && !(websocket
                    && (name.eq_ignore_ascii_case("upgrade")
                        || name.eq_ignore_ascii_case("connection"))))
        {
            continue;
        }
        header_bytes(out, name, h.value);
    }
    for h in &route.add_header {
        response::header(out, &h.name, &h.value);
    }
    match body {
        ClientBody::Length(n) | ClientBody::Declared(n) => {
            response::header_u64(out, "Content-Length", n)
        }
        ClientBody::Chunked => response::header(out, "Transfer-Encoding", "chunked"),
        ClientBody::None | ClientBody::Close => {}
    }
    if !websocket {
        if close {
            response::header(out, "Connection", "close");
        } else if http10_keep_alive {
            response::header(out, "Connection", "keep-alive");
        }
    }
    response::end(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{Action, Header};

    fn route() -> Route {
        let mut r = Route::test(Action::NotFound);
        r.proxy_set_header = vec![
            Header {
                name: "X-Edge".into(),
                value: "xps".into(),
            },
            Header {
                name: "Cookie".into(),
                value: String::new(),
            },
        ];
        r
    }

    #[test]
    fn the_upstream_request_keeps_the_client_head_minus_hop_by_hop() {
        let raw = b"POST /a?b=1 HTTP/1.1\r\nHost: site.test\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nCookie: c=1\r\nUser-Agent: t\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n";
        let out = String::from_utf8(
            request_head(
                raw,
                &route(),
                "127.0.0.9".parse().expect("ip"),
                "u:1",
                RequestBody::Chunked,
            )
            .0,
        )
        .expect("utf-8");
        assert!(
            out.starts_with("POST /a?b=1 HTTP/1.1\r\nHost: site.test\r\n"),
            "{out}"
        );
        for gone in ["X-Private", "Keep-Alive", "Connection", "TE:", "Cookie"] {
            assert!(!out.contains(gone), "{gone} forwarded: {out}");
        }
        assert!(out.contains("User-Agent: t\r\n"));
        assert!(out.contains("X-Forwarded-For: 10.0.0.1, 127.0.0.9\r\n"));
        assert!(out.contains("X-Real-IP: 127.0.0.9\r\n"));
        assert!(out.contains("X-Forwarded-Proto: http\r\n"));
        assert!(out.contains("X-Forwarded-Host: site.test\r\n"));
        assert!(out.contains("X-Edge: xps\r\n"));
        assert!(out.contains("Transfer-Encoding: chunked\r\n"));
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn upstream_responses_are_parsed_strictly() {
        let ok = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false)
            .expect("ok")
            .expect("complete");
        assert_eq!(ok.body, ResponseBody::Length(5));
        assert!(ok.keep_alive);
        let ch = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .expect("ok")
        .expect("complete");
        assert_eq!(ch.body, ResponseBody::Chunked);
        let close = parse_response(b"HTTP/1.0 200 OK\r\n\r\n", false)
            .expect("ok")
            .expect("complete");
        assert_eq!(close.body, ResponseBody::Close);
        assert!(!close.keep_alive);
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .is_err()
        );
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                false
            )
            .is_err()
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", false).is_err());
        assert!(
            parse_response(b"HTTP/1.1 200", false)
                .expect("ok")
                .is_none()
        );
        let head = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .expect("ok")
            .expect("complete");
        assert_eq!(head.body, ResponseBody::None);
    }

    #[test]
    fn the_client_head_keeps_server_and_date() {
        let raw = b"HTTP/1.1 201 Created\r\nServer: app/1\r\nDate: x\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 3\r\nX-App: y\r\n\r\n";
        let mut out = Vec::new();
        client_head(&mut out, raw, &route(), ClientBody::Length(3), false, false);
        let out = String::from_utf8(out).expect("utf-8");
        assert!(out.starts_with("HTTP/1.1 201 Created\r\nServer: app/1\r\nDate: x\r\nX-App: y\r\nContent-Length: 3\r\n"), "{out}");
        assert!(!out.contains("X-Hop"));
    }
}
