//! Hostile clients and broken upstreams: nothing one peer does may reach
//! another's request, hold a connection past its deadlines, or take the
//! server down.

use crate::proxy::proxy_to;
use crate::server::{read_response, request};
use crate::upstream::{self, Answer, Received, ok};
use std::io::Write;

/// The request target of what the upstream received.
fn target(r: &Received) -> &str {
    r.head.split(' ').nth(1).unwrap_or("")
}

/// An upstream whose `/big` answer declares `len` bytes and sends them,
/// then, in the same write, a whole second response nobody asked for (an
/// application that counted characters instead of bytes); `/next` gets
/// `good`.
fn overrunning_upstream(len: usize) -> upstream::Upstream {
    upstream::start(move |r| {
        if target(r) != "/big" {
            return ok("good");
        }
        let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        resp.extend((0..len).map(|i| (i % 251) as u8));
        resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL");
        Answer::Bytes(resp)
    })
}

fn check_big(body: &[u8], len: usize) {
    assert_eq!(body.len(), len);
    assert!(
        body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
        "the bytes differ"
    );
}

/// `/big` then two `/next` pipelined on one client connection, `trials`
/// times: every `/next` gets `good`, never the stray `EVIL`.
fn pipelined_after_overrun(len: usize, trials: usize) {
    let up = overrunning_upstream(len);
    let server = proxy_to("workers 1;", &format!("        proxy_pass {};", up.addr()));
    for trial in 0..trials {
        let mut s = server.connect();
        let mut reqs = request("GET", "/big", &[]);
        reqs.push_str(&request("GET", "/next", &[]));
        reqs.push_str(&request("GET", "/next", &[]));
        s.write_all(reqs.as_bytes()).expect("send");
        let r = read_response(&mut s, false).expect("the /big answer");
        check_big(&r.body, len);
        for i in 0..2 {
            let r = read_response(&mut s, false).expect("a /next answer");
            assert_eq!(
                r.text(),
                "good",
                "trial {trial}, /next #{i} got another response's bytes; stderr:\n{}",
                server.stderr()
            );
        }
    }
}

#[test]
fn stray_bytes_after_a_spliced_download_never_reach_the_next_request() {
    // 12 MiB: past the 8 MiB after which the rest is spliced.
    pipelined_after_overrun(12 << 20, 3);
}

#[test]
fn stray_bytes_after_a_copied_body_never_reach_the_next_request() {
    pipelined_after_overrun(64 << 10, 30);
}

#[test]
fn stray_bytes_after_a_spliced_download_never_reach_another_client() {
    const LEN: usize = 12 << 20;
    let up = overrunning_upstream(LEN);
    let server = proxy_to("workers 1;", &format!("        proxy_pass {};", up.addr()));
    for trial in 0..8 {
        let mut a = server.connect();
        a.write_all(request("GET", "/big", &[]).as_bytes())
            .expect("send");
        check_big(&read_response(&mut a, false).expect("answer").body, LEN);
        let mut b = server.connect();
        b.write_all(request("GET", "/next", &[]).as_bytes())
            .expect("send");
        let r = read_response(&mut b, false).expect("answer");
        assert_eq!(
            r.text(),
            "good",
            "trial {trial}: another client's stray bytes; stderr:\n{}",
            server.stderr()
        );
    }
}
