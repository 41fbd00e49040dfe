//! Any bytes as an upstream response head: parsed, incomplete or refused
//! (502), never a panic. What xps then writes to the client is one
//! well-formed head with at most one framing field, whatever came.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xps::handler::proxy::{ClientBody, ResponseBody, parse_response_then};
use xps::routing::{Action, Route};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let route = Route::defaults(Action::NotFound);
    let parsed = parse_response_then(input, flags & 1 == 1, |head, fields| {
        let body = match head.body {
            ResponseBody::None => head.length.map_or(ClientBody::None, ClientBody::Declared),
            ResponseBody::Length(n) => ClientBody::Length(n),
            ResponseBody::Chunked | ResponseBody::Close if flags & 2 == 2 => ClientBody::Close,
            ResponseBody::Chunked | ResponseBody::Close => ClientBody::Chunked,
        };
        let mut out = Vec::new();
        fields.client_head(&mut out, &route, body, flags & 4 == 4, flags & 8 == 8);
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
