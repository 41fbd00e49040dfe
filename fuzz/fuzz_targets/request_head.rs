//! Any bytes as a request head: parsed, incomplete or refused, never a
//! panic. A head xps accepts goes upstream as one head that parses the same
//! way: same method, target path, host and body framing, and at most one
//! framing field — so the upstream can never read the body differently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xps::handler::proxy::{RequestBody, request_head};
use xps::http::Framing;
use xps::routing::{Action, Route};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(head)) = xps::http::parse::parse(data, 16 << 10) else {
        return;
    };
    assert!(head.head_len <= data.len());
    let body = match head.framing {
        Framing::None => RequestBody::None,
        Framing::Length(n) => RequestBody::Length(n),
        Framing::Chunked => RequestBody::Chunked,
    };
    let route = Route::defaults(Action::NotFound);
    let (up, _) = request_head(
        &data[..head.head_len],
        &route,
        "10.0.0.1".parse().expect("ip"),
        "u:1",
        body,
    );
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut fields);
    assert_eq!(
        req.parse(&up).map(|s| s.is_complete()),
        Ok(true),
        "{:?}",
        String::from_utf8_lossy(&up)
    );
    let framing = req.headers.iter().filter(|h| {
        h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
    });
    assert!(framing.count() <= 1);
    if req.headers.len() > 100 {
        // xps adds its X-Forwarded-* fields to a head near xps's own limit
        // of 100 fields; it would not accept that many itself.
        return;
    }
    let again = match xps::http::parse::parse(&up, 1 << 20) {
        Ok(Some(h)) => h,
        other => panic!(
            "the upstream head does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(&up)
        ),
    };
    assert_eq!(again.head_len, up.len());
    assert_eq!(again.method, head.method);
    assert_eq!(again.uri.path, head.uri.path);
    assert_eq!(again.framing, head.framing);
    assert!(again.host.is_some());
    if let Some(host) = &head.host {
        assert_eq!(again.host.as_ref(), Some(host));
    }
});
