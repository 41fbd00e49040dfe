//! Any bytes as an upstream response head: parsed, incomplete or refused
//! (502), never a panic. What xps then writes to the client is one
//! well-formed head with at most one framing field, whatever came.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xps::handler::proxy::{ClientSide, HeadHow, client_framing, parse_response_then};
use xps::routing::{Action, Route};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let mut route = Route::defaults(Action::NotFound);
    route.gzip.enabled = flags & 16 == 16;
    let parsed = parse_response_then(input, flags & 1 == 1, |head, fields| {
        // The framing and gzip xps would choose, for a client the flags
        // describe.
        let gzip = fields.gzip(head, &route, flags & 32 == 32);
        let client = ClientSide {
            http11: flags & 2 == 0,
            keep_alive: flags & 4 == 0,
        };
        let (body, close) = client_framing(head, client, gzip.encode);
        let how = HeadHow {
            close,
            http10_keep_alive: flags & 8 == 8,
            gzip,
        };
        let mut out = Vec::new();
        fields.client_head(&mut out, &route, body, how);
        out
    });
    if let Ok(Some((head, out))) = parsed {
        assert!(head.len <= input.len());
        let mut fields = [httparse::EMPTY_HEADER; 256];
        let mut res = httparse::Response::new(&mut fields);
        match res.parse(&out) {
            Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len()),
            other => panic!("{other:?}: {:?}", String::from_utf8_lossy(&out)),
        }
        let framing = res.headers.iter().filter(|h| {
            h.name.eq_ignore_ascii_case("content-length")
                || h.name.eq_ignore_ascii_case("transfer-encoding")
        });
        assert!(framing.count() <= 1);
    }
});
