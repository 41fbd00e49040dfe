//! A PROXY protocol header (v1 or v2) from any bytes, and the htpasswd
//! check of any `Authorization` value: never a panic. A header read from
//! a buffer is read the same from exactly its own bytes, and every
//! shorter prefix of it asks for more.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xps::http::proxy_protocol::parse;
use xps::routing::auth::UserFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(h)) = parse(data) {
        assert!(h.len <= data.len());
        assert_eq!(parse(&data[..h.len]), Ok(Some(h)));
        for cut in 0..h.len {
            assert!(!matches!(parse(&data[..cut]), Ok(Some(_))), "{cut}");
        }
    }
    // Users of every format; the value is the fuzzer's.
    let (users, _) = UserFile::parse(
        "/fuzz".into(),
        "a:$apr1$Cf.IpkwU$ote1UrulhdpWQcRFj91k0.\nb:$2y$04$9lJZPSLHkuhKYsr6x9LPiuDMAvUrd2EfwzvsQIgJgTq5eQwCNOcIS\n",
    );
    let _ = users.check(data);
    // Any text as an htpasswd file: its problems point inside it.
    if let Ok(text) = std::str::from_utf8(data) {
        let (_, problems) = UserFile::parse("/fuzz".into(), text);
        for p in problems {
            assert!(p.start <= p.end && p.end <= text.len());
            assert!(text.is_char_boundary(p.start) && text.is_char_boundary(p.end));
        }
    }
});
