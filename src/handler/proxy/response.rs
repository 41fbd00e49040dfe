//! The upstream's response head, parsed strictly, and the head sent to
//! the client.

use super::{connection_tokens, contains_ignore_case, header_bytes, is_hop};
use crate::http::response;
use crate::routing::Route;
use crate::routing::template::Vars;

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
    /// framing xps uses, and `Connection`; with `gzip`, the fields of the
    /// compressed variant (`Content-Encoding`, a weak `ETag`) and `Vary`.
    pub fn client_head(
        &self,
        out: &mut Vec<u8>,
        route: &Route,
        body: ClientBody,
        how: HeadHow,
        vars: &dyn Vars,
    ) {
        write_client_head(out, self.res, self.len, route, body, how, vars);
    }

    /// The first value of the field `name`.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.res
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// What gzip means for this response to a request on `route` whose
    /// client takes gzip (`accepts`): `Vary` when its type is compressible
    /// on a gzip route; compressed when, besides, the client takes gzip, it
    /// is not encoded already, `Cache-Control` does not say `no-transform`,
    /// it has (or, for HEAD, would have) a body, and a declared length is
    /// at least `gzip_min_length`.
    pub fn gzip(&self, head: &UpstreamHead, route: &Route, accepts: bool) -> Gzip {
        let vary = route.gzip.enabled
            && self
                .field("content-type")
                .and_then(|t| std::str::from_utf8(t).ok())
                .is_some_and(|t| crate::handler::gzip::compressible(route, t));
        if !vary {
            // Off for the route or not a listed type: nothing more to read.
            return Gzip::default();
        }
        let encoded = self
            .field("content-encoding")
            .is_some_and(|v| !v.trim_ascii().eq_ignore_ascii_case(b"identity"));
        let no_transform = self.res.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("cache-control")
                && contains_ignore_case(h.value, b"no-transform")
        });
        let bodied = head.status >= 200 && !matches!(head.status, 204 | 206 | 304);
        let long_enough = head.length.is_none_or(|n| n >= route.gzip.min_length);
        Gzip {
            vary,
            encode: accepts && !encoded && !no_transform && bodied && long_enough,
        }
    }
}

/// gzip for a proxied response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gzip {
    /// `Vary: Accept-Encoding` (the type is compressible on a gzip route).
    pub vary: bool,
    /// The body is compressed.
    pub encode: bool,
}

/// How the client's head of a proxied response is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadHow {
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive` (an HTTP/1.0 client kept).
    pub http10_keep_alive: bool,
    /// gzip's fields.
    pub gzip: Gzip,
    /// The time now, when the route's `expires` may apply (it replaces
    /// the upstream's `Expires` and `Cache-Control`).
    pub now: Option<std::time::SystemTime>,
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
pub fn client_framing(head: &UpstreamHead, client: ClientSide, gzip: bool) -> (ClientBody, bool) {
    let to_client = match head.body {
        // A compressed body's length is known only at its end; HEAD gets
        // the head a GET would.
        ResponseBody::None if gzip && client.http11 => ClientBody::DeclaredChunked,
        ResponseBody::None if gzip => ClientBody::None,
        _ if gzip && client.http11 => ClientBody::Chunked,
        _ if gzip => ClientBody::Close,
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
    /// No body (HEAD), but the head says `Transfer-Encoding: chunked`, as a
    /// GET would get (a compressed body, whose length is not known).
    DeclaredChunked,
    /// Until xps closes the connection (HTTP/1.0 clients).
    Close,
}

fn write_client_head(
    out: &mut Vec<u8>,
    res: &httparse::Response,
    len: usize,
    route: &Route,
    body: ClientBody,
    how: HeadHow,
    vars: &dyn Vars,
) {
    let HeadHow {
        close,
        http10_keep_alive,
        gzip,
        now,
    } = how;
    let mut vary_written = false;
    let tokens = connection_tokens(res.headers);
    let status = res.code.unwrap_or(502);
    out.reserve(len + 64);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(res.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let websocket = status == 101;
    let expires = now.and_then(|now| route.expires.headers(status, now));
    for h in res.headers.iter() {
        let name = h.name;
        if expires.is_some()
            && (name.eq_ignore_ascii_case("expires") || name.eq_ignore_ascii_case("cache-control"))
        {
            continue;
        }
        if h.name.eq_ignore_ascii_case("content-length")
            || (is_hop(name, &tokens)
                && !(websocket
                    && (name.eq_ignore_ascii_case("upgrade")
                        || name.eq_ignore_ascii_case("connection"))))
        {
            continue;
        }
        if gzip.encode && name.eq_ignore_ascii_case("accept-ranges") {
            // Ranges are of the upstream's bytes, not of the compressed ones.
            continue;
        }
        if gzip.encode && name.eq_ignore_ascii_case("etag") && !h.value.starts_with(b"W/") {
            // The compressed variant's tag is weak: same content, other bytes.
            out.extend_from_slice(b"ETag: W/");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
            continue;
        }
        if gzip.vary && name.eq_ignore_ascii_case("vary") && !vary_written {
            vary_written = true;
            out.extend_from_slice(b"Vary: ");
            out.extend_from_slice(h.value);
            if !contains_ignore_case(h.value, b"accept-encoding") && h.value.trim_ascii() != b"*" {
                out.extend_from_slice(b", Accept-Encoding");
            }
            out.extend_from_slice(b"\r\n");
            continue;
        }
        header_bytes(out, name, h.value);
    }
    if gzip.vary && !vary_written {
        response::header(out, "Vary", "Accept-Encoding");
    }
    if gzip.encode {
        response::header(out, "Content-Encoding", "gzip");
    }
    if let Some((control, at)) = &expires {
        response::header(out, "Cache-Control", control);
        response::header(out, "Expires", at);
    }
    for h in &route.add_header {
        response::header(out, &h.name, &h.value.render(vars));
    }
    match body {
        ClientBody::Length(n) | ClientBody::Declared(n) => {
            response::header_u64(out, "Content-Length", n)
        }
        ClientBody::Chunked | ClientBody::DeclaredChunked => {
            response::header(out, "Transfer-Encoding", "chunked")
        }
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
