//! Request heads: `httparse` for the grammar, then the rules it leaves to
//! us — the method set, versions (`HTTP/2.0` is a 505), Host, the framing
//! of the body (Content-Length and Transfer-Encoding, the two fields
//! request smuggling lives in) and the size limits.
//!
//! [`parse`] keeps "need more bytes" (`Ok(None)`) apart from "invalid"
//! (`Err`), as httparse does.

use super::target::{self, Target};
use std::fmt;

/// Methods xps knows; anything else is a 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Connect,
    Patch,
    Propfind,
    Proppatch,
    Mkcol,
    Copy,
    Move,
    Lock,
    Unlock,
}

impl Method {
    const ALL: [(&'static str, Method); 16] = [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("TRACE", Method::Trace),
        ("CONNECT", Method::Connect),
        ("PATCH", Method::Patch),
        ("PROPFIND", Method::Propfind),
        ("PROPPATCH", Method::Proppatch),
        ("MKCOL", Method::Mkcol),
        ("COPY", Method::Copy),
        ("MOVE", Method::Move),
        ("LOCK", Method::Lock),
        ("UNLOCK", Method::Unlock),
    ];

    /// The method for its name (case-sensitive, as RFC 9110 says).
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
    }

    /// Whether sending it twice has the effect of sending it once (RFC 9110
    /// §9.2.2): a proxy may then retry it elsewhere.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }

    /// The name as sent.
    pub fn as_str(self) -> &'static str {
        Method::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("GET", |(n, _)| n)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HTTP/1.0 or HTTP/1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: keep-alive only when asked for.
    Http10,
    /// HTTP/1.1: keep-alive unless `Connection: close`.
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head with the fields the server uses.
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request-target as sent (for the access log).
    pub target: String,
    /// Decoded and normalised path and raw query.
    pub uri: Target,
    /// The version.
    pub version: Version,
    /// `Host`, as sent.
    pub host: Option<String>,
    /// Whether the client allows the connection to stay open.
    pub keep_alive: bool,
    /// How the body is delimited.
    pub framing: Framing,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<String>,
    /// `Range`.
    pub range: Option<String>,
    /// `If-Range`.
    pub if_range: Option<String>,
    /// `Accept`.
    pub accept: Option<String>,
    /// `Accept-Encoding`.
    pub accept_encoding: Option<String>,
    /// `User-Agent` (for the access log).
    pub user_agent: Option<String>,
    /// `Referer` (for the access log).
    pub referer: Option<String>,
    /// Length of the head in bytes, blank line included.
    pub head_len: usize,
    /// The target after an internal redirect (`try_files`' fallback):
    /// what a proxied request goes up with. `target` keeps what was sent.
    pub rerouted: Option<String>,
}

/// Why a request head was refused; [`ParseError::status`] maps it to the
/// answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed: 400.
    Bad(&'static str),
    /// The request line alone exceeds the head limit: 414.
    UriTooLong,
    /// The head exceeds its limit, or has too many fields: 431.
    HeadTooLarge,
    /// A major version other than 1: 505.
    VersionNotSupported,
    /// A transfer coding other than chunked: 501.
    NotImplemented(&'static str),
}

impl ParseError {
    /// The status code of the answer.
    pub fn status(self) -> u16 {
        match self {
            ParseError::Bad(_) => 400,
            ParseError::UriTooLong => 414,
            ParseError::HeadTooLarge => 431,
            ParseError::VersionNotSupported => 505,
            ParseError::NotImplemented(_) => 501,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Bad(why) | ParseError::NotImplemented(why) => f.write_str(why),
            ParseError::UriTooLong => f.write_str("request line too long"),
            ParseError::HeadTooLarge => f.write_str("request head too large"),
            ParseError::VersionNotSupported => f.write_str("HTTP version not supported"),
        }
    }
}

/// A Host value (or a target's authority) xps accepts: a name of
/// unreserved characters (letters, digits, `-._~`) or a bracketed IPv6
/// literal, then at most one `:port` of digits. Anything else (`h,evil`,
/// `h:80:evil`, userinfo, spaces, slashes) would let the same request be
/// routed by one name and read by the application as another.
fn valid_host(value: &str) -> bool {
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let Some((literal, after)) = rest.split_once(']') else {
                return false;
            };
            if literal.is_empty()
                || !literal
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return false;
            }
            match after {
                "" => return true,
                _ => match after.strip_prefix(':') {
                    Some(port) => return valid_port(port),
                    None => return false,
                },
            }
        }
        None => match value.split_once(':') {
            Some((host, port)) => (host, port),
            None => (value, "0"),
        },
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        && valid_port(port)
}

/// `*DIGIT` (RFC 3986 §3.2.3: `host:` has an empty port), at most 5.
fn valid_port(port: &str) -> bool {
    port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// A field value without its optional whitespace: only SP and HTAB (RFC
/// 9110 §5.6.3). Unicode spaces are part of the value (`chunked\u{a0}` is
/// not `chunked`).
fn ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// Most header fields accepted in one request.
const MAX_HEADERS: usize = 100;

/// Parses the request head at the start of `buf`. `Ok(None)`: incomplete,
/// read more (unless `buf` already holds `max_head` bytes, which is an
/// error).
pub fn parse(buf: &[u8], max_head: usize) -> Result<Option<RequestHead>, ParseError> {
    // Uninitialised slots: httparse fills only those it uses.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) if n > max_head => return Err(too_large(buf, max_head)),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            return Err(too_large(buf, max_head));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeadTooLarge),
        Err(httparse::Error::Version) if is_other_major_version(buf) => {
            return Err(ParseError::VersionNotSupported);
        }
        Err(e) => return Err(ParseError::Bad(httparse_reason(e))),
    };
    let mut head = request_line(&req, len)?;
    let lengths = fields(&mut head, req.headers)?;
    finish(&mut head, lengths)?;
    Ok(Some(head))
}

/// What the fields said of the body's length.
#[derive(Default)]
struct Lengths {
    content_length: Option<u64>,
    chunked: bool,
    saw_te: bool,
}

/// The head of a request whose request line (method, target, version) is
/// valid, its fields not read yet.
fn request_line(req: &httparse::Request, head_len: usize) -> Result<RequestHead, ParseError> {
    let method = req
        .method
        .and_then(Method::parse)
        .ok_or(ParseError::Bad("unknown method"))?;
    let raw_target = req.path.unwrap_or("");
    let version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    if raw_target == "*" && method != Method::Options {
        // The asterisk form is only for OPTIONS (RFC 9112 §3.2.4).
        return Err(ParseError::Bad("`*` is a target only for OPTIONS"));
    }
    let uri = match target::parse(raw_target) {
        Ok(t) => t,
        Err(_) if method == Method::Connect => {
            return Err(ParseError::Bad("CONNECT is not supported"));
        }
        Err(_) => return Err(ParseError::Bad("invalid request target")),
    };
    Ok(RequestHead {
        method,
        target: raw_target.to_string(),
        uri,
        version,
        host: None,
        keep_alive: version == Version::Http11,
        framing: Framing::None,
        expect_continue: false,
        if_none_match: None,
        if_modified_since: None,
        range: None,
        if_range: None,
        accept: None,
        accept_encoding: None,
        user_agent: None,
        referer: None,
        head_len,
        rerouted: None,
    })
}

/// Reads the fields into `head`, refusing what could make two readers of
/// the request disagree.
fn fields(head: &mut RequestHead, headers: &[httparse::Header]) -> Result<Lengths, ParseError> {
    let mut lengths = Lengths::default();
    for h in headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| ParseError::Bad("header value is not UTF-8"))?;
        let value = ows(value);
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if head.host.is_some() {
                return Err(ParseError::Bad("more than one Host"));
            }
            if !valid_host(value) {
                return Err(ParseError::Bad("invalid Host"));
            }
            head.host = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            // One field with one value: a repeated field or a list, even of
            // equal values, is refused (as nginx does), so no two readers of
            // the request can disagree on its length.
            if lengths.content_length.is_some() {
                return Err(ParseError::Bad("more than one Content-Length"));
            }
            if value.contains(',') {
                return Err(ParseError::Bad("a Content-Length list"));
            }
            lengths.content_length = Some(content_length_value(value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if lengths.saw_te {
                return Err(ParseError::Bad("more than one Transfer-Encoding"));
            }
            lengths.saw_te = true;
            transfer_coding(value)?;
            lengths.chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive")
                    && head.version == Version::Http10
                {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            // An HTTP/1.0 client gets no 1xx: the expectation is ignored
            // (RFC 9110 §10.1.1, §15.2).
            head.expect_continue =
                head.version == Version::Http11 && value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("if-none-match") {
            head.if_none_match = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            head.if_modified_since = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("range") {
            head.range = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("if-range") {
            head.if_range = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("accept") {
            head.accept = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            // Several lines are one list (RFC 9110 §5.3).
            match &mut head.accept_encoding {
                Some(list) => {
                    list.push_str(", ");
                    list.push_str(value);
                }
                None => head.accept_encoding = Some(value.to_string()),
            }
        } else if name.eq_ignore_ascii_case("user-agent") {
            head.user_agent = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("referer") {
            head.referer = Some(value.to_string());
        }
    }
    Ok(lengths)
}

/// A request's `Transfer-Encoding`: only `chunked`, once, last.
fn transfer_coding(value: &str) -> Result<(), ParseError> {
    // Empty list elements are ignored (RFC 9110 §5.6.1).
    let mut codings = value.split(',').map(ows).filter(|c| !c.is_empty());
    let last = codings.next_back().unwrap_or("");
    // RFC 9112 §6.3: a request whose final coding is not chunked has
    // no reliable length: 400 and close.
    if !last.eq_ignore_ascii_case("chunked") {
        return Err(ParseError::Bad("Transfer-Encoding does not end in chunked"));
    }
    let mut earlier = codings.peekable();
    if earlier.clone().any(|c| c.eq_ignore_ascii_case("chunked")) {
        return Err(ParseError::Bad("chunked applied twice"));
    }
    if earlier.peek().is_some() {
        // `gzip, chunked` and the like: codings xps does not decode.
        return Err(ParseError::NotImplemented("unsupported transfer coding"));
    }
    Ok(())
}

/// The checks across fields, the host of an absolute-form target, and the
/// framing.
fn finish(head: &mut RequestHead, lengths: Lengths) -> Result<(), ParseError> {
    if lengths.chunked && lengths.content_length.is_some() {
        return Err(ParseError::Bad("both Content-Length and Transfer-Encoding"));
    }
    if lengths.saw_te && head.version == Version::Http10 {
        return Err(ParseError::Bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if head.version == Version::Http11 && head.host.is_none() {
        return Err(ParseError::Bad("HTTP/1.1 request without Host"));
    }
    // RFC 9112 §3.2.2: with an absolute-form target, its authority is the
    // host and the Host field is ignored (still required in HTTP/1.1). An
    // empty authority or one with userinfo is refused (RFC 9110 §4.2).
    if let Some((authority, _)) = super::target::split_absolute(&head.target) {
        if !valid_host(authority) {
            return Err(ParseError::Bad("invalid authority in the request target"));
        }
        head.host = Some(authority.to_string());
    }
    head.framing = match (lengths.chunked, lengths.content_length) {
        (true, _) => Framing::Chunked,
        (false, Some(0)) | (false, None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    };
    Ok(())
}

/// `1*DIGIT`, no sign, no blanks, no overflow.
fn content_length_value(s: &str) -> Result<u64, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Bad("invalid Content-Length"));
    }
    s.parse::<u64>()
        .map_err(|_| ParseError::Bad("Content-Length overflows"))
}

/// 414 when even the request line does not fit, else 431.
fn too_large(buf: &[u8], max_head: usize) -> ParseError {
    match buf.iter().take(max_head).position(|&b| b == b'\n') {
        Some(_) => ParseError::HeadTooLarge,
        None => ParseError::UriTooLong,
    }
}

/// Whether the request line ends in `HTTP/x…` with a major version other
/// than 1 (`HTTP/2.0`, `HTTP/3`): the protocol, spoken in a version xps
/// does not serve.
fn is_other_major_version(buf: &[u8]) -> bool {
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let line = &buf[..line_end];
    let Some(space) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    let version = &line[space + 1..];
    version.len() >= 6
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[5] != b'1'
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => {
            "invalid header name (a line without a colon, or a space before it)"
        }
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid method",
        httparse::Error::TooManyHeaders => "too many header fields",
        httparse::Error::Version => "invalid or missing HTTP version",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<RequestHead>, ParseError> {
        parse(s.as_bytes(), 16 << 10)
    }

    fn status(s: &str) -> u16 {
        match p(s) {
            Ok(Some(_)) => 200,
            Ok(None) => 0,
            Err(e) => e.status(),
        }
    }

    #[test]
    fn the_statuses_of_expserver() {
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
        assert_eq!(status("GOT / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("GET /x\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTX/2.0\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/1.1\r\nHost a\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.0\r\n\r\n"), 200);
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n"),
            400
        );
        assert_eq!(status("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    }

    #[test]
    fn body_framing_rules() {
        let cl_te =
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(cl_te), 400);
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            400
        );
        let te = |v: &str| {
            status(&format!(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {v}\r\n\r\n"
            ))
        };
        // The final coding must be chunked (RFC 9112 §6.3).
        assert_eq!(te("gzip"), 400);
        assert_eq!(te("chunked, identity"), 400);
        assert_eq!(te("identity"), 400);
        assert_eq!(te(""), 400);
        assert_eq!(te("chunked\u{a0}"), 400);
        assert_eq!(te("chunked, chunked"), 400);
        // Known framing, a coding xps does not decode.
        assert_eq!(te("gzip, chunked"), 501);
        assert_eq!(te("\tchunked\t"), 200);
        assert_eq!(te(",chunked"), 200);
        assert_eq!(te("chunked,"), 200);
        assert_eq!(te(" , "), 400);
        assert_eq!(te("CHUNKED"), 200);
        assert_eq!(
            status(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        let h = p("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Chunked);
        let h = p("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Length(12));
    }

    #[test]
    fn limits_give_414_and_431() {
        let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
        assert_eq!(
            parse(long_line.as_bytes(), 50).unwrap_err(),
            ParseError::UriTooLong
        );
        let long_head = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "a".repeat(100)
        );
        assert_eq!(
            parse(long_head.as_bytes(), 50).unwrap_err(),
            ParseError::HeadTooLarge
        );
        let partial = "GET / HTTP/1.1\r\nHost: a\r\n";
        assert!(matches!(parse(partial.as_bytes(), 100), Ok(None)));
        let many: String = (0..200).map(|i| format!("X{i}: 1\r\n")).collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            431
        );
    }

    #[test]
    fn hosts_are_names_or_ip_literals_with_one_port() {
        for good in [
            "a",
            "example.test",
            "example.test:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "h:",
            "xn--bcher-kva.example",
            "a_b",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "",
            "h,evil",
            "h:80:evil",
            "h::",
            "h:port",
            "u@h",
            "h/x",
            "h x",
            "[::1",
            "[]",
            "[::1]x",
            ":80",
            "h:123456",
            "h;x",
            "[::1]:80:1",
            "h\u{a0}",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
        assert_eq!(status("GET / HTTP/1.1\r\nHost: h,evil\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: h:80:evil\r\n\r\n"), 400);
    }

    #[test]
    fn the_asterisk_form_is_only_for_options() {
        assert_eq!(status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
        assert_eq!(status("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn an_http10_client_expects_no_100_continue() {
        let expect = |v: &str| {
            p(&format!(
                "POST / {v}\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
            ))
            .expect("ok")
            .expect("complete")
            .expect_continue
        };
        assert!(expect("HTTP/1.1"));
        assert!(!expect("HTTP/1.0"));
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        let ka = |s: &str| p(s).expect("ok").expect("complete").keep_alive;
        assert!(ka("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!ka(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn targets_are_normalised_or_refused() {
        let h = p("GET /a/../b%20c?x HTTP/1.1\r\nhost: a\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(h.uri.path, "/b c");
        assert_eq!(h.uri.query.as_deref(), Some("x"));
        assert_eq!(h.host.as_deref(), Some("a"));
        assert_eq!(
            status("GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n"),
            400
        );
        assert_eq!(status("GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }
}
