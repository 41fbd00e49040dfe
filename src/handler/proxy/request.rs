//! The request head sent upstream.

use super::{connection_tokens, contains_ignore_case, header_bytes, is_hop};
use crate::http::response;
use crate::routing::template::Vars;
use crate::routing::{Peer, Route};
use std::io::Write;

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
    peer: Peer,
    fallback_host: &str,
    body: RequestBody,
    vars: &dyn Vars,
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
    // `proxy_pass http://…/URI`: the matched part of the path replaced.
    let rewritten = route.proxy_uri.as_ref().map(|p| {
        let origin = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/{target}")
        };
        let path = crate::http::target::parse(&origin).map_or_else(|_| origin.clone(), |t| t.path);
        p.rewrite(&origin, &path)
    });
    let target = rewritten.as_deref().unwrap_or(target);
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
    end_head(&mut out, route, body, websocket, vars);
    (out, websocket)
}

/// The end of the upstream's head: `proxy_set_header` fields, the
/// framing xps sends the body with, the WebSocket upgrade, the blank line.
fn end_head(out: &mut Vec<u8>, route: &Route, body: RequestBody, websocket: bool, vars: &dyn Vars) {
    for p in &route.proxy_set_header {
        let value = p.value.render(vars);
        if !value.is_empty() {
            response::header(out, &p.name, &value);
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
fn forwarded(out: &mut Vec<u8>, mut forwarded_for: Vec<u8>, peer: Peer, host: &[u8]) {
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
