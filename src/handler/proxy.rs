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
/// `close` and `keep-alive` name no field to drop (`Keep-Alive` is
/// hop-by-hop anyway), so the usual `Connection: keep-alive` allocates
/// nothing.
fn connection_tokens<'a>(headers: &[httparse::Header<'a>]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            out.extend(
                h.value
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .filter(|t| {
                        !t.is_empty()
                            && !t.eq_ignore_ascii_case(b"close")
                            && !t.eq_ignore_ascii_case(b"keep-alive")
                    }),
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
    let raw_target = req.path.unwrap_or("/");
    // An absolute-form target goes up in origin form, with its authority as
    // the Host (RFC 9112 §3.2.2), as nginx does. (The parser refused empty
    // authorities and userinfo.)
    let absolute = crate::http::target::split_absolute(raw_target);
    let target = absolute.map_or(raw_target, |(_, origin)| origin);
    let host_set = route
        .proxy_set_header
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case("host"));
    let mut out = Vec::with_capacity(raw.len() + 256);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    if !target.starts_with('/') && absolute.is_some() {
        // `http://host` or `http://host?q`: the path is `/`.
        out.push(b'/');
    }
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host: Option<&[u8]> = None;
    // Earlier X-Forwarded-For values, joined, then the peer.
    let mut forwarded_for: Vec<u8> = Vec::new();
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            let value = absolute.map_or(h.value, |(authority, _)| authority.as_bytes());
            host = Some(value);
            if !host_set {
                header_bytes(&mut out, name, value);
            }
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            let v = h.value.trim_ascii();
            if !v.is_empty() {
                forwarded_for.extend_from_slice(v);
                forwarded_for.extend_from_slice(b", ");
            }
            continue;
        }
        if goes_up(name, &tokens, route) {
            header_bytes(&mut out, name, h.value);
        }
    }
    if host.is_none() {
        // No Host field (HTTP/1.0): the target's authority, else the
        // member's address; unless proxy_set_header sets one.
        let value = absolute.map_or(fallback_host.as_bytes(), |(a, _)| a.as_bytes());
        host = absolute.map(|(a, _)| a.as_bytes());
        if !host_set {
            header_bytes(&mut out, "Host", value);
        }
    }
    forwarded(
        &mut out,
        forwarded_for,
        peer,
        host.unwrap_or(fallback_host.as_bytes()),
    );
    end_head(&mut out, route, body, websocket);
    (out, websocket)
}

/// The end of the upstream's head: `proxy_set_header` fields, the
/// framing xps sends the body with, the WebSocket upgrade, the blank line.
fn end_head(out: &mut Vec<u8>, route: &Route, body: RequestBody, websocket: bool) {
    for p in &route.proxy_set_header {
        if !p.value.is_empty() {
            response::header(out, &p.name, &p.value);
        }
    }
    match body {
        RequestBody::None => {}
        RequestBody::Length(n) => response::header_u64(out, "Content-Length", n),
        RequestBody::Chunked => response::header(out, "Transfer-Encoding", "chunked"),
    }
    if websocket {
        response::header(out, "Connection", "Upgrade");
        response::header(out, "Upgrade", "websocket");
    }
    response::end(out);
}

/// Whether a field of the client's request goes up as it is: not a
/// hop-by-hop field, not one xps sets itself (forwarding, framing,
/// `Expect`), not one `proxy_set_header` replaces, and (unless allowed)
/// without an underscore in its name.
fn goes_up(name: &str, tokens: &[&[u8]], route: &Route) -> bool {
    const OURS: [&str; 5] = [
        "x-real-ip",
        "x-forwarded-proto",
        "x-forwarded-host",
        "content-length",
        "expect",
    ];
    if is_hop(name, tokens) || OURS.iter().any(|o| name.eq_ignore_ascii_case(o)) {
        return false;
    }
    if !route.underscores_in_headers && name.contains('_') {
        // `Transfer_Encoding`, `X_Real_IP`: many applications fold `_`
        // into `-` and would read them as the fields xps controls.
        return false;
    }
    !route
        .proxy_set_header
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case(name))
}

/// The forwarding fields: `X-Forwarded-For` (earlier values, then the
/// peer), `X-Real-IP`, `X-Forwarded-Proto`, `X-Forwarded-Host`.
fn forwarded(out: &mut Vec<u8>, mut forwarded_for: Vec<u8>, peer: IpAddr, host: &[u8]) {
    let mut peer_buf = [0u8; 48];
    let peer_text = {
        let mut w = &mut peer_buf[..];
        // An IPv6 address is at most 45 bytes.
        let _ = write!(w, "{peer}");
        let n = 48 - w.len();
        &peer_buf[..n]
    };
    forwarded_for.extend_from_slice(peer_text);
    header_bytes(out, "X-Forwarded-For", &forwarded_for);
    header_bytes(out, "X-Real-IP", peer_text);
    response::header(out, "X-Forwarded-Proto", "http");
    header_bytes(out, "X-Forwarded-Host", host);
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

/// The fields of a parsed upstream response, for writing the client's head
/// without parsing again.
pub struct ResponseFields<'r, 'h, 'b> {
    res: &'r httparse::Response<'h, 'b>,
    len: usize,
}

impl ResponseFields<'_, '_, '_> {
    /// Appends the head for the client to `out`: the upstream's status and
    /// fields without hop-by-hop or framing fields, then `add_header`, the
    /// framing xps uses, and `Connection`.
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
    if !(100..=599).contains(&status) {
        // RFC 9110 §15: three digits from 100 to 599; anything else cannot
        // be passed on as a status line.
        return Err(BadResponse("invalid status code"));
    }
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

/// What the client asked for that decides how a response reaches it.
#[derive(Clone, Copy, Debug)]
pub struct ClientSide {
    /// It speaks HTTP/1.1 (so it can take chunks).
    pub http11: bool,
    /// It asked to keep the connection, and xps is not stopping.
    pub keep_alive: bool,
}

/// How the body of `head` goes to the client, and whether the client's
/// connection closes after it. A length is passed on; a chunked or
/// close-delimited body is chunked for an HTTP/1.1 client and
/// close-delimited for an HTTP/1.0 one; HEAD and 304 answers pass the
/// declared length on (1xx and 204 never have one).
pub fn client_framing(head: &UpstreamHead, client: ClientSide) -> (ClientBody, bool) {
    let to_client = match head.body {
        ResponseBody::None => match head.length {
            Some(n) if head.status >= 200 && head.status != 204 => ClientBody::Declared(n),
            _ => ClientBody::None,
        },
        ResponseBody::Length(n) => ClientBody::Length(n),
        ResponseBody::Chunked | ResponseBody::Close if client.http11 => ClientBody::Chunked,
        ResponseBody::Chunked | ResponseBody::Close => ClientBody::Close,
    };
    (
        to_client,
        to_client == ClientBody::Close || !client.keep_alive,
    )
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

    /// The head alone, as the relay sees it.
    fn parse_response(buf: &[u8], head_request: bool) -> Result<Option<UpstreamHead>, BadResponse> {
        Ok(parse_response_then(buf, head_request, |_, _| ())?.map(|(head, ())| head))
    }

    /// The client's head for a complete upstream head `raw`.
    fn client_head(out: &mut Vec<u8>, raw: &[u8], route: &Route, body: ClientBody) {
        let parsed = parse_response_then(raw, false, |_, fields| {
            fields.client_head(out, route, body, false, false)
        });
        assert!(matches!(parsed, Ok(Some(_))), "{parsed:?}");
    }
    use crate::routing::{Action, Header};

    fn route() -> Route {
        let mut r = Route::defaults(Action::NotFound);
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
    fn a_head_at_the_field_limit_goes_up_whole_with_the_fields_xps_adds() {
        // Found by fuzzing (request_head): 99 fields are accepted, and the
        // head that goes up carries them plus X-Forwarded-* and X-Real-IP.
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..98 {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let head = crate::http::parse::parse(&raw, 1 << 20)
            .expect("accepted")
            .expect("complete");
        let (out, _) = request_head(
            &raw[..head.head_len],
            &route(),
            "10.0.0.1".parse().expect("ip"),
            "u:1",
            RequestBody::None,
        );
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut fields);
        assert_eq!(req.parse(&out).map(|s| s.is_complete()), Ok(true));
        // The client's 99, four X-Forwarded-*/X-Real-IP, and the test
        // route's proxy_set_header.
        assert_eq!(req.headers.len(), 99 + 4 + 1);
    }

    #[test]
    fn fields_with_underscores_stay_behind_unless_allowed() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nX_Real_IP: 1.2.3.4\r\nX-Ok: 1\r\nContent-Length: 3\r\n\r\n";
        let head = |route: &Route| {
            let (h, _) = request_head(
                raw,
                route,
                "127.0.0.9".parse().expect("ip"),
                "u:1",
                RequestBody::Length(3),
            );
            String::from_utf8(h).expect("utf-8")
        };
        let out = head(&route());
        assert!(!out.contains('_'), "{out}");
        assert!(out.contains("X-Ok: 1\r\n"), "{out}");
        let mut allowing = route();
        allowing.underscores_in_headers = true;
        let out = head(&allowing);
        assert!(out.contains("Transfer_Encoding: chunked\r\n"), "{out}");
        assert!(out.contains("X_Real_IP: 1.2.3.4\r\n"), "{out}");
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
    fn proxy_set_header_host_replaces_every_other_host() {
        let mut r = route();
        r.proxy_set_header.push(Header {
            name: "Host".into(),
            value: "fixed.test".into(),
        });
        for raw in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
            b"GET http://b.test/ HTTP/1.0\r\n\r\n",
        ] {
            let (out, _) = request_head(
                raw,
                &r,
                "10.0.0.1".parse().expect("ip"),
                "u:1",
                RequestBody::None,
            );
            let out = String::from_utf8(out).expect("utf-8");
            assert_eq!(out.matches("\r\nHost: ").count(), 1, "{out}");
            assert!(out.contains("\r\nHost: fixed.test\r\n"), "{out}");
        }
    }

    #[test]
    fn the_client_head_keeps_server_and_date() {
        let raw = b"HTTP/1.1 201 Created\r\nServer: app/1\r\nDate: x\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 3\r\nX-App: y\r\n\r\n";
        let mut out = Vec::new();
        client_head(&mut out, raw, &route(), ClientBody::Length(3));
        let out = String::from_utf8(out).expect("utf-8");
        assert!(out.starts_with("HTTP/1.1 201 Created\r\nServer: app/1\r\nDate: x\r\nX-App: y\r\nContent-Length: 3\r\n"), "{out}");
        assert!(!out.contains("X-Hop"));
    }

    /// A small deterministic generator for the mutation tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Seeds mutated at random: flipped, inserted, deleted bytes, with a
    /// bias towards the bytes framing depends on.
    fn mutants(seeds: &[&[u8]], n: usize) -> Vec<Vec<u8>> {
        const SPECIAL: &[u8] = b"\r\n:;, 0123456789abcdefxX-+\t\0\xff";
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        (0..n)
            .map(|_| {
                let mut m = seeds[rng.below(seeds.len())].to_vec();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(m.len() + 1);
                    let b = if rng.below(2) == 0 {
                        SPECIAL[rng.below(SPECIAL.len())]
                    } else {
                        rng.next() as u8
                    };
                    match rng.below(3) {
                        0 if at < m.len() => m[at] = b,
                        1 if at < m.len() => {
                            m.remove(at);
                        }
                        _ => m.insert(at, b),
                    }
                }
                m
            })
            .collect()
    }

    /// Decodes `input` fed whole, then fed in the pieces `cuts` makes:
    /// (data, consumed, error, done) must not depend on how it was split.
    fn decode_split(input: &[u8], cuts: &[usize]) -> (Vec<u8>, usize, bool, bool) {
        let mut d = crate::http::body::ChunkedDecoder::new(1 << 20);
        let mut data = Vec::new();
        let mut consumed = 0;
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&input.len())) {
            let end = end.clamp(start, input.len());
            match d.decode(&input[start..end], |c| data.extend_from_slice(c)) {
                Ok(n) => consumed += n,
                // Where it stopped is not defined after an error.
                Err(_) => return (data, 0, true, false),
            }
            if d.is_done() {
                break;
            }
            start = end;
        }
        (data, consumed, false, d.is_done())
    }

    #[test]
    fn chunked_decoding_does_not_depend_on_how_bytes_arrive() {
        let seeds: &[&[u8]] = &[
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"1;ext=1\r\na\r\n0\r\nTrailer: x\r\n\r\nNEXT",
            b"A\r\n0123456789\r\n0\r\n\r\n",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for input in mutants(seeds, 20_000) {
            let whole = decode_split(&input, &[]);
            let mut cuts: Vec<usize> = (0..rng.below(6))
                .map(|_| rng.below(input.len() + 1))
                .collect();
            cuts.sort_unstable();
            let split = decode_split(&input, &cuts);
            let bytewise = decode_split(&input, &(1..input.len()).collect::<Vec<_>>());
            let text = String::from_utf8_lossy(&input);
            assert_eq!(whole, split, "{text:?} cut at {cuts:?}");
            assert_eq!(whole, bytewise, "{text:?} byte by byte");
            // Never more data than the input had, never past the input.
            assert!(
                whole.0.len() <= input.len() && whole.1 <= input.len(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn any_upstream_head_is_parsed_or_refused_without_panicking() {
        let seeds: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: a\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n",
            b"HTTP/1.0 304 Not Modified\r\nContent-Length: 10\r\nKeep-Alive: timeout=5\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        ];
        let route = route();
        let mut parsed_ok = 0;
        for (k, input) in mutants(seeds, 20_000).into_iter().enumerate() {
            let head_request = k % 3 == 0;
            let parsed = parse_response_then(&input, head_request, |head, fields| {
                let mut out = Vec::new();
                let client = ClientSide {
                    http11: k % 5 != 0,
                    keep_alive: k % 2 == 0,
                };
                let (body, close) = client_framing(head, client);
                fields.client_head(&mut out, &route, body, close, false);
                out
            });
            let text = String::from_utf8_lossy(&input);
            if let Ok(Some((head, out))) = parsed {
                parsed_ok += 1;
                assert!(head.len <= input.len(), "{text:?}");
                // The client's head is one well-formed head, whatever came.
                let mut fields = [httparse::EMPTY_HEADER; 128];
                let mut res = httparse::Response::new(&mut fields);
                assert_eq!(
                    res.parse(&out).ok().map(|s| s.is_complete()),
                    Some(true),
                    "{text:?} gave {:?}",
                    String::from_utf8_lossy(&out)
                );
                let framing = res.headers.iter().filter(|h| {
                    h.name.eq_ignore_ascii_case("content-length")
                        || h.name.eq_ignore_ascii_case("transfer-encoding")
                });
                assert!(framing.count() <= 1, "{text:?}");
            }
        }
        assert!(parsed_ok > 2_000, "only {parsed_ok} mutants were accepted");
    }

    #[test]
    fn any_request_xps_accepts_goes_up_as_one_unambiguous_head() {
        use crate::http::Framing;
        let seeds: &[&[u8]] = &[
            b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: keep-alive, X-P\r\nX-P: 1\r\n\r\nhello",
            b"PUT /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
            b"GET / HTTP/1.0\r\nKeep-Alive: 5\r\nTE: trailers\r\n\r\n",
        ];
        let route = route();
        let mut accepted = 0;
        for input in mutants(seeds, 20_000) {
            let Ok(Some(head)) = crate::http::parse::parse(&input, 8192) else {
                continue;
            };
            accepted += 1;
            let body = match head.framing {
                Framing::None => RequestBody::None,
                Framing::Length(n) => RequestBody::Length(n),
                Framing::Chunked => RequestBody::Chunked,
            };
            let raw = &input[..head.head_len];
            let (out, _) = request_head(raw, &route, "10.0.0.1".parse().expect("ip"), "u:1", body);
            let text = String::from_utf8_lossy(&input);
            let mut fields = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut fields);
            assert_eq!(
                req.parse(&out).ok().map(|s| s.is_complete()),
                Some(true),
                "{text:?} went up as {:?}",
                String::from_utf8_lossy(&out)
            );
            let count = |name: &str| {
                req.headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(name))
                    .count()
            };
            let framing = count("content-length") + count("transfer-encoding");
            assert_eq!(framing, usize::from(body != RequestBody::None), "{text:?}");
            assert_eq!(count("host"), 1, "{text:?}");
        }
        // The mutants exercise the builder, not only the parser.
        assert!(accepted > 2_000, "only {accepted} mutants were accepted");
    }
}
