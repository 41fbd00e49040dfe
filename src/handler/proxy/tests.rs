//! The heads of a proxied exchange, fuzzed and checked.

use super::*;
use crate::routing::Route;
use crate::routing::template::{Template, Var, Vars};

struct NoVars;
impl Vars for NoVars {
    fn write(&self, _: &Var, _: &mut String) {}
}

/// The head alone, as the relay sees it.
fn parse_response(buf: &[u8], head_request: bool) -> Result<Option<UpstreamHead>, BadResponse> {
    Ok(parse_response_then(buf, head_request, |_, _| ())?.map(|(head, ())| head))
}

/// The client's head for a complete upstream head `raw`.
fn client_head(out: &mut Vec<u8>, raw: &[u8], route: &Route, body: ClientBody) {
    let parsed = parse_response_then(raw, false, |_, fields| {
        fields.client_head(out, route, body, HeadHow::default(), &NoVars)
    });
    assert!(matches!(parsed, Ok(Some(_))), "{parsed:?}");
}
use crate::routing::{Action, Header};

fn peer(ip: &str) -> crate::routing::Peer {
    crate::routing::Peer::Inet(std::net::SocketAddr::new(ip.parse().expect("ip"), 40000))
}

fn route() -> Route {
    let mut r = Route::defaults(Action::NotFound);
    r.proxy_set_header = vec![
        Header {
            name: "X-Edge".into(),
            value: Template::parse("xps").unwrap(),
        },
        Header {
            name: "Cookie".into(),
            value: Template::parse("").unwrap(),
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
            peer("127.0.0.9"),
            "u:1",
            RequestBody::Chunked,
            &NoVars,
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
        peer("10.0.0.1"),
        "u:1",
        RequestBody::None,
        &NoVars,
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
            peer("127.0.0.9"),
            "u:1",
            RequestBody::Length(3),
            &NoVars,
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
        value: Template::parse("fixed.test").unwrap(),
    });
    for raw in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"GET http://b.test/ HTTP/1.0\r\n\r\n",
    ] {
        let (out, _) = request_head(raw, &r, peer("10.0.0.1"), "u:1", RequestBody::None, &NoVars);
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
    assert!(
        out.starts_with(
            "HTTP/1.1 201 Created\r\nServer: app/1\r\nDate: x\r\nX-App: y\r\nContent-Length: 3\r\n"
        ),
        "{out}"
    );
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
            let (body, close) = client_framing(head, client, false);
            let how = HeadHow {
                close,
                ..HeadHow::default()
            };
            fields.client_head(&mut out, &route, body, how, &NoVars);
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
        let (out, _) = request_head(raw, &route, peer("10.0.0.1"), "u:1", body, &NoVars);
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
