//! The proxy's edges: smuggling attempts stopped at the client side,
//! ambiguous upstream framing, bodiless answers on kept-alive upstream
//! connections, interim responses, refused upgrades, the random balancer,
//! the send timeout, upstream state kept across reloads, and stream groups.

use crate::proxy::proxy_to;
use crate::server::{Server, is_closed, read_response, request};
use crate::upstream::{self, Answer, Received, closed_port, ok};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The request target of what the upstream received.
fn target(r: &Received) -> &str {
    r.head.split(' ').nth(1).unwrap_or("")
}

/// Everything the server sends until it closes, and how the connection
/// ended: `Ok` for an orderly close, the error for a reset. Panics if it is
/// still open after 10 s.
fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (all, Ok(())),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "still open after 10 s; got {:?}",
                    String::from_utf8_lossy(&all)
                )
            }
            Err(e) => return (all, Err(e)),
        }
    }
}

#[test]
fn smuggling_attempts_get_4xx_or_501_and_never_reach_the_upstream() {
    let up = upstream::start(|_| ok("up"));
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    let attempts: &[(&str, u16, &[u8])] = &[
        ("Content-Length with Transfer-Encoding", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        ("two different Content-Lengths", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        ),
        ("a Content-Length list", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n\r\nabcde",
        ),
        ("a signed Content-Length", 400, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd",
        ),
        ("a space before the colon", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        ),
        ("a folded Transfer-Encoding", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        ),
        ("chunked twice", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        ),
        ("a chunk size that is not hex", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ),
        ("chunk data longer than its size", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        ),
        ("a chunk size that overflows", 400, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n",
        ),
        ("two Hosts", 400, b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        ),
        ("no Host", 400, b"GET / HTTP/1.1\r\n\r\n"),
    ];
    // A coding before the final chunked is not implemented (501); a
    // Transfer-Encoding that does not end in chunked is 400 (RFC 9112
    // §6.3), as for requests xps serves itself.
    for (what, status, bytes) in attempts {
        let mut s = server.connect();
        s.write_all(bytes).expect("send");
        let r = read_response(&mut s, false);
        let r = r.unwrap_or_else(|| panic!("{what}: closed without an answer"));
        assert_eq!(r.status, *status, "{what}");
        assert!(is_closed(&mut s), "{what}: the connection stayed open");
    }
    // The proxy still works, and the upstream saw only this request.
    assert_eq!(server.get("/", &[]).text(), "up");
    let seen: Vec<String> = (up.received.lock().expect("lock").iter())
        .map(|r| r.head.clone())
        .collect();
    assert_eq!(
        seen.len(),
        1,
        "requests that reached the upstream: {seen:?}"
    );
}

#[test]
fn ambiguous_upstream_framing_is_502_and_its_connection_is_dropped() {
    let up = upstream::start(|r| {
        let bytes: &[u8] = match target(r) {
            "/cl-te" => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            }
            "/two-cl" => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "/bad-cl" => b"HTTP/1.1 200 OK\r\nContent-Length: 3x\r\n\r\nabc",
            "/no-status" => b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok",
            _ => return ok("fine"),
        };
        Answer::Bytes(bytes.to_vec())
    });
    let server = proxy_to("workers 1;", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    for path in ["/cl-te", "/two-cl", "/bad-cl", "/no-status"] {
        s.write_all(request("GET", path, &[]).as_bytes())
            .expect("send");
        let r = read_response(&mut s, false).expect("an answer");
        assert_eq!(r.status, 502, "{path}");
        // The client's own connection is unaffected.
        s.write_all(request("GET", "/ok", &[]).as_bytes())
            .expect("send");
        assert_eq!(read_response(&mut s, false).expect("answer").text(), "fine");
    }
    // Each bad answer cost its upstream connection; the good ones reused
    // the connection that followed.
    assert_eq!(up.connections.load(Ordering::SeqCst), 5);
}

#[test]
fn a_bad_chunk_from_the_upstream_never_makes_a_complete_body() {
    let up = upstream::start(|_| {
        Answer::Bytes(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nmore\r\n0\r\n\r\n"
                .to_vec(),
        )
    });
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    s.write_all(request("GET", "/", &[]).as_bytes())
        .expect("send");
    let (all, _) = read_to_close(&mut s);
    let text = String::from_utf8_lossy(&all);
    // The good chunk goes out, then the close, without the last chunk.
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(text.ends_with("\r\n\r\n3\r\nabc\r\n"), "{text:?}");

    // An HTTP/1.0 client reads to the close, so a FIN would make the part
    // look whole: it gets a reset instead.
    let mut s = server.connect();
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("send");
    let (all, end) = read_to_close(&mut s);
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(!text.contains("more"), "{text:?}");
    assert!(
        end.as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "a cut body ended with {end:?}"
    );
}

#[test]
fn bodiless_answers_leave_the_upstream_connection_reusable() {
    let up = upstream::start(|r| {
        let bytes: &[u8] = match (r.head.starts_with("HEAD"), target(r)) {
            (true, _) => b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            (_, "/204") => b"HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n",
            (_, "/304") => {
                b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 10\r\n\r\n"
            }
            _ => return ok("body"),
        };
        Answer::Bytes(bytes.to_vec())
    });
    let server = proxy_to("workers 1;", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    s.write_all(request("HEAD", "/", &[]).as_bytes())
        .expect("send");
    let r = read_response(&mut s, true).expect("HEAD answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1000"));
    s.write_all(request("GET", "/204", &[]).as_bytes())
        .expect("send");
    let r = read_response(&mut s, false).expect("204");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-kind"), Some("none"));
    assert!(r.header("content-length").is_none() && r.header("transfer-encoding").is_none());
    s.write_all(request("GET", "/304", &["If-None-Match: \"v1\""]).as_bytes())
        .expect("send");
    let r = read_response(&mut s, false).expect("304");
    assert_eq!(r.status, 304);
    assert_eq!(r.header("content-length"), Some("10"));
    assert!(r.header("transfer-encoding").is_none());
    // Had any of them waited for a body, this answer would be wrong or late.
    s.write_all(request("GET", "/ok", &[]).as_bytes())
        .expect("send");
    assert_eq!(read_response(&mut s, false).expect("answer").text(), "body");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn interim_responses_from_the_upstream_are_not_relayed() {
    let up = upstream::start(|r| {
        let bytes: &[u8] = match target(r) {
            "/hints" => b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            "/upload" => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\ngot",
            _ => return ok("next"),
        };
        Answer::Bytes(bytes.to_vec())
    });
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    s.write_all(request("GET", "/hints", &[]).as_bytes())
        .expect("send");
    let r = read_response(&mut s, false).expect("answer");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("head");
    assert_eq!(read_response(&mut s, true).expect("100").status, 100);
    s.write_all(b"hello").expect("body");
    let r = read_response(&mut s, false).expect("answer");
    assert_eq!((r.status, r.text().as_str()), (201, "got"));
    // Exactly one 100 reached the client: the next answer is the next one.
    s.write_all(request("GET", "/next", &[]).as_bytes())
        .expect("send");
    let r = read_response(&mut s, false).expect("answer");
    assert_eq!((r.status, r.text().as_str()), (200, "next"));
}

#[test]
fn an_upgrade_the_upstream_refuses_stays_http() {
    let up = upstream::start(|r| {
        if r.header("upgrade").is_some() {
            return Answer::Bytes(
                b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno".to_vec(),
            );
        }
        ok("plain")
    });
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n").expect("send");
    let r = read_response(&mut s, false).expect("426");
    assert_eq!((r.status, r.text().as_str()), (426, "no"));
    // Still HTTP: the next request on the connection is a request, and it
    // goes up as one (with the fields xps adds), not through a tunnel.
    s.write_all(request("GET", "/", &[]).as_bytes())
        .expect("send");
    assert_eq!(
        read_response(&mut s, false).expect("answer").text(),
        "plain"
    );
    let second = up.received.lock().expect("lock")[1].clone();
    assert!(second.header("x-real-ip").is_some(), "{}", second.head);
}

/// A member that holds `/hold` until `release` is set (polled), answering
/// everything else with its `name` at once.
fn holding_member(name: &'static str, release: Arc<AtomicBool>) -> upstream::Upstream {
    upstream::start(move |r| {
        if target(r) == "/hold" {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        ok(name)
    })
}

/// With two members and `balance`, one held busy by a request that waits,
/// `requests` more never go to the busy one.
fn the_busy_member_is_never_picked(balance: &str, requests: usize) {
    let release = Arc::new(AtomicBool::new(false));
    let x = holding_member("x", release.clone());
    let y = holding_member("y", release.clone());
    let server = proxy_to(
        &format!(
            "workers 1;\nupstream app {{\n    server {};\n    server {};\n    balance {balance};\n}}",
            x.addr(),
            y.addr()
        ),
        "        proxy_pass app;",
    );
    let mut held = server.connect();
    held.write_all(request("GET", "/hold", &[]).as_bytes())
        .expect("send");
    server.wait_for(Duration::from_secs(5), "the held request to arrive", || {
        x.count() + y.count() == 1
    });
    let busy = if x.count() == 1 { "x" } else { "y" };
    for _ in 0..requests {
        assert_ne!(server.get("/", &[]).text(), busy);
    }
    release.store(true, Ordering::SeqCst);
    assert_eq!(read_response(&mut held, false).expect("held").text(), busy);
}

#[test]
fn random_spreads_requests_and_avoids_a_busy_member() {
    let a = upstream::start(|_| ok("a"));
    let b = upstream::start(|_| ok("b"));
    let c = upstream::start(|_| ok("c"));
    let server = proxy_to(
        &format!(
            "workers 1;\nupstream app {{\n    server {};\n    server {};\n    server {};\n    balance random;\n}}",
            a.addr(),
            b.addr(),
            c.addr()
        ),
        "        proxy_pass app;",
    );
    for _ in 0..300 {
        server.get("/", &[]);
    }
    let counts = [a.count(), b.count(), c.count()];
    assert!(counts.iter().all(|&n| n >= 50), "{counts:?}");

    // Two members: both are always drawn, so the busy one is never picked.
    the_busy_member_is_never_picked("random", 20);
}

#[test]
fn least_conn_never_picks_the_busy_member() {
    the_busy_member_is_never_picked("least_conn", 10);
}

#[test]
fn an_upstream_that_stops_reading_the_body_gives_504_after_proxy_send_timeout() {
    // Accepts and never reads a byte.
    let (l, addr) = crate::server::listener();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    let server = proxy_to(
        "client_max_body_size 256m;\nproxy_send_timeout 300ms;",
        &format!("        proxy_pass {addr};"),
    );
    let mut s = server.connect();
    let body = vec![b'x'; 128 << 20];
    s.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .expect("head");
    let mut writer = s.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        // Fails once xps closes; that is expected.
        let _ = writer.write_all(&body);
    });
    let started = Instant::now();
    let r = read_response(&mut s, false).expect("an answer");
    assert_eq!(r.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        is_closed(&mut s),
        "the body's rest would be read as requests"
    );
    let _ = sender.join();
}

#[test]
fn a_reload_keeps_health_state_and_idle_upstream_connections() {
    let sick = upstream::start(|r| {
        if target(r) == "/healthz" {
            return Answer::Bytes(b"HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n".to_vec());
        }
        ok("sick")
    });
    let well = upstream::start(|_| ok("well"));
    let config = |extra: &str| {
        format!(
            "workers 1;\nupstream app {{\n    server {};\n    server {};\n    keepalive 8;\n    health_check /healthz interval=30s fails=1 passes=1;\n}}\nserver {{\n    listen 127.0.0.1:{{port}};\n    location / {{ proxy_pass app; }}\n{extra}}}\n",
            sick.addr(),
            well.addr()
        )
    };
    let server = Server::start(&config(""), |_| {});
    // The first probes run at once; the next only in 30 s.
    server.wait_for(Duration::from_secs(10), "the sick member to be out", || {
        server.stderr().contains("is down (health check /healthz)")
    });
    let mut s = server.connect();
    for _ in 0..3 {
        s.write_all(request("GET", "/", &[]).as_bytes())
            .expect("send");
        assert_eq!(read_response(&mut s, false).expect("answer").text(), "well");
    }
    drop(s);
    let well_conns = well.connections.load(Ordering::SeqCst);
    std::fs::write(
        server.dir.join("xps.conf"),
        server.render(&config("    location = /new { return 200 \"new\"; }\n")),
    )
    .expect("write");
    server.wait_for(Duration::from_secs(10), "the reload", || {
        server.get("/new", &[]).text() == "new"
    });
    // Had the reload forgotten the probe's verdict, round robin would send
    // every other request to the sick member until its next probe in 30 s.
    for _ in 0..6 {
        assert_eq!(server.get("/", &[]).text(), "well");
    }
    assert_eq!(
        well.connections.load(Ordering::SeqCst),
        well_conns,
        "the reload dropped the idle upstream connection"
    );
    let strays: Vec<String> = (sick.received.lock().expect("lock").iter())
        .filter(|r| target(r) != "/healthz")
        .map(|r| r.head.clone())
        .collect();
    assert!(
        strays.is_empty(),
        "requests sent to the sick member: {strays:?}"
    );
}

#[test]
fn a_stream_group_balances_and_skips_a_refusing_member() {
    let a = upstream::start(|_| ok("a"));
    let b = upstream::start(|_| ok("b"));
    let dead = closed_port();
    let template = format!(
        "workers 1;\nupstream app {{\n    server 127.0.0.1:{dead};\n    server {};\n    server {};\n}}\nstream {{\n    server {{\n        listen 127.0.0.1:{{port}};\n        proxy_pass app;\n    }}\n}}\n",
        a.addr(),
        b.addr()
    );
    let server = Server::start(&template, |_| {});
    let mut seen = Vec::new();
    for _ in 0..6 {
        let mut s = server.connect();
        s.write_all(request("GET", "/", &[]).as_bytes())
            .expect("send");
        seen.push(read_response(&mut s, false).expect("answer").text());
    }
    assert!(
        seen.contains(&"a".to_string()) && seen.contains(&"b".to_string()),
        "{seen:?}"
    );
}

#[test]
fn a_member_that_timed_out_is_not_counted_busy_afterwards() {
    // Both members hang on /slow; after one 504 the member it hit must not
    // stay counted as busy, or least_conn would shun it for good.
    let slow_or = |name: &'static str| {
        upstream::start(move |r| {
            if target(r) == "/slow" {
                return Answer::Hang;
            }
            ok(name)
        })
    };
    let (x, y) = (slow_or("x"), slow_or("y"));
    let server = proxy_to(
        &format!(
            "workers 1;\nproxy_read_timeout 200ms;\nupstream app {{\n    server {} max_fails=0;\n    server {} max_fails=0;\n    balance least_conn;\n}}",
            x.addr(),
            y.addr()
        ),
        "        proxy_pass app;",
    );
    assert_eq!(server.get("/slow", &[]).status, 504);
    let answers: Vec<String> = (0..30).map(|_| server.get("/", &[]).text()).collect();
    assert!(
        answers.iter().any(|a| a == "x") && answers.iter().any(|a| a == "y"),
        "{answers:?}"
    );
}

#[test]
fn a_client_that_stops_reading_a_proxied_body_is_cut_after_send_timeout() {
    // The upstream sends 256 MiB and notes when xps stops taking it.
    let gone = Arc::new(AtomicBool::new(false));
    let flag = gone.clone();
    let (l, addr) = crate::server::listener();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let flag = flag.clone();
            std::thread::spawn(move || {
                if !upstream::read_head(&mut s) {
                    return;
                }
                const LEN: usize = 256 << 20;
                let _ = s.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\n\r\n").as_bytes(),
                );
                let chunk = vec![b'x'; 1 << 20];
                for _ in 0..256 {
                    if s.write_all(&chunk).is_err() {
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
    });
    let server = proxy_to(
        "workers 1;\nsend_timeout 500ms;\nproxy_read_timeout 60s;",
        &format!("        proxy_pass {addr};"),
    );
    let mut s = server.connect();
    s.write_all(request("GET", "/big", &[]).as_bytes())
        .expect("send");
    // The client never reads: once its buffers are full, xps has nothing
    // to do for it, and after send_timeout it lets go of both sides.
    server.wait_for(
        Duration::from_secs(15),
        "xps to drop the stalled exchange",
        || gone.load(Ordering::SeqCst),
    );
    drop(s);
}

#[test]
fn long_downloads_are_spliced_exactly_and_keep_the_upstream_connection() {
    // 24 MiB: past the 8 MiB a client must take before the rest is
    // spliced. Twice on one client connection, then a small answer: every
    // byte identical, and one upstream connection for all three, so the
    // splice never read past a body.
    const LEN: usize = 24 << 20;
    let up = upstream::start(|r| {
        if target(r) == "/small" {
            return ok("small");
        }
        let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\n\r\n").into_bytes();
        resp.extend((0..LEN).map(|i| (i % 251) as u8));
        Answer::Bytes(resp)
    });
    let server = proxy_to("workers 1;", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    for _ in 0..2 {
        s.write_all(request("GET", "/big", &[]).as_bytes())
            .expect("send");
        let r = read_response(&mut s, false).expect("answer");
        assert_eq!(r.body.len(), LEN);
        assert!(
            r.body
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i % 251) as u8),
            "the bytes differ"
        );
    }
    s.write_all(request("GET", "/small", &[]).as_bytes())
        .expect("send");
    assert_eq!(
        read_response(&mut s, false).expect("answer").text(),
        "small"
    );
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        1,
        "{}",
        server.stderr()
    );
}

#[test]
fn an_upstream_gone_in_a_long_download_leaves_the_client_short() {
    // Declares 48 MiB, sends 20 MiB, closes: past the point where the
    // rest is spliced.
    const SENT: usize = 20 << 20;
    let up = upstream::start(|_| {
        let mut resp =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 48 << 20).into_bytes();
        resp.extend(std::iter::repeat_n(b'z', SENT));
        Answer::Close(resp)
    });
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    s.write_all(request("GET", "/", &[]).as_bytes())
        .expect("send");
    let (all, _) = read_to_close(&mut s);
    let head_end = crate::server::head_len(&all).expect("a head");
    assert_eq!(
        all.len() - head_end,
        SENT,
        "what arrived is passed on, then the close"
    );
}

#[test]
fn an_upstream_head_too_big_for_the_relay_buffer_is_502_at_once() {
    // 40 KiB of fields: more than the 16 KiB relay buffer holds.
    let up = upstream::start(|_| {
        let mut resp = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..40 {
            resp.extend_from_slice(format!("X-Big-{i}: {}\r\n", "v".repeat(1000)).as_bytes());
        }
        resp.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        Answer::Bytes(resp)
    });
    let server = proxy_to(
        "proxy_read_timeout 30s;",
        &format!("        proxy_pass {};", up.addr()),
    );
    let started = Instant::now();
    assert_eq!(server.get("/", &[]).status, 502);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The error log is written by its own thread: the line may follow the
    // answer by a moment.
    server.wait_for(Duration::from_secs(5), "the log line", || {
        server.stderr().contains("head too large")
    });
}

#[test]
fn pipelined_requests_are_proxied_in_order() {
    let up = upstream::start(|r| ok(&format!("{}:{}", target(r), r.body.len())));
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    // Three requests in one write, the second with a body.
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("send");
    for want in ["/a:0", "/b:5", "/c:0"] {
        assert_eq!(read_response(&mut s, false).expect("answer").text(), want);
    }
    // The last asked for the close.
    assert!(is_closed(&mut s));
}

#[test]
fn an_absolute_form_target_goes_up_in_origin_form() {
    let up = upstream::start(|_| ok("up"));
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    // The target's authority is the host; the Host field is ignored.
    let r = server.raw(b"GET http://site.test/p?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n");
    assert_eq!(r.text(), "up");
    let got = up.received.lock().expect("lock")[0].clone();
    assert!(
        got.head.starts_with("GET /p?q=1 HTTP/1.1\r\n"),
        "{}",
        got.head
    );
    assert_eq!(got.header("host").as_deref(), Some("site.test"));
    assert_eq!(got.header("x-forwarded-host").as_deref(), Some("site.test"));

    // No path: `/`, the query kept. HTTP/1.0 without a Host field: the
    // authority is the host.
    server.raw(b"GET http://site.test?q=2 HTTP/1.1\r\nHost: site.test\r\n\r\n");
    server.raw(b"GET http://old.test/p HTTP/1.0\r\n\r\n");
    let got = up.received.lock().expect("lock").clone();
    assert!(
        got[1].head.starts_with("GET /?q=2 HTTP/1.1\r\n"),
        "{}",
        got[1].head
    );
    assert!(
        got[2].head.starts_with("GET /p HTTP/1.1\r\n"),
        "{}",
        got[2].head
    );
    assert_eq!(got[2].header("host").as_deref(), Some("old.test"));
    // Userinfo or an empty authority: refused before any routing.
    for bad in [
        &b"GET http://a@site.test/ HTTP/1.1\r\nHost: site.test\r\n\r\n"[..],
        b"GET http:///p HTTP/1.1\r\nHost: site.test\r\n\r\n",
    ] {
        assert_eq!(
            server.raw(bad).status,
            400,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(up.count(), 3);
}

#[test]
fn a_chunked_upload_past_client_max_body_size_gets_413_and_never_reaches_the_upstream_whole() {
    let up = upstream::start(|r| ok(&r.body.len().to_string()));
    let server = proxy_to(
        "client_max_body_size 1k;",
        &format!("        proxy_pass {};", up.addr()),
    );
    let mut s = server.connect();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("head");
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    // 1 KiB is allowed; the second KiB is not.
    s.write_all(chunk.as_bytes()).expect("first chunk");
    let _ = s.write_all(chunk.as_bytes());
    let r = read_response(&mut s, false).expect("an answer");
    assert_eq!(r.status, 413);
    assert!(is_closed(&mut s));
    // Within the limit it goes through.
    let r = server.raw(
        format!(
            "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.text(), "1024");
    assert_eq!(
        up.count(),
        1,
        "the refused upload reached the upstream whole"
    );
}

#[test]
fn sigterm_lets_a_proxied_exchange_in_flight_finish() {
    let release = Arc::new(AtomicBool::new(false));
    let member = holding_member("done", release.clone());
    let mut server = proxy_to(
        "workers 1;",
        &format!("        proxy_pass {};", member.addr()),
    );
    let mut s = server.connect();
    s.write_all(request("GET", "/hold", &[]).as_bytes())
        .expect("send");
    server.wait_for(
        Duration::from_secs(5),
        "the request to reach the upstream",
        || member.count() == 1,
    );
    server.signal("TERM");
    // New connections are refused once it stops listening.
    server.wait_for(Duration::from_secs(5), "the listener to close", || {
        std::net::TcpStream::connect(server.addr()).is_err()
    });
    release.store(true, Ordering::SeqCst);
    let r = read_response(&mut s, false).expect("the answer in flight");
    assert_eq!((r.status, r.text().as_str()), (200, "done"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn open_tunnels_do_not_hold_a_stop_past_shutdown_timeout() {
    let ws = upstream::start(|_| {
        Answer::Tunnel(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec())
    });
    let echo = upstream::start(|_| Answer::Hang);
    let template = format!(
        "workers 1;\nshutdown_timeout 500ms;\nserver {{\n    listen 127.0.0.1:{{port}};\n    location / {{ proxy_pass {}; }}\n}}\nstream {{\n    server {{\n        listen 127.0.0.1:{{port2}};\n        proxy_pass {};\n    }}\n}}\n",
        ws.addr(),
        echo.addr()
    );
    let mut server = Server::start(&template, |_| {});
    let mut tunnel = server.connect();
    tunnel
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut tunnel, true).expect("101").status, 101);
    let stream = TcpStream::connect(("127.0.0.1", server.port2)).expect("stream client");
    server.wait_for(
        Duration::from_secs(5),
        "the stream to reach its upstream",
        || echo.connections.load(Ordering::SeqCst) >= 1,
    );
    let started = Instant::now();
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the stop took {:?}",
        started.elapsed()
    );
    drop((tunnel, stream));
}

#[test]
fn a_body_goes_to_the_next_member_only_if_none_of_it_was_sent() {
    const LEN: usize = 1 << 20;
    let good = upstream::start(|r| ok(&r.body.len().to_string()));
    // Refused: nothing was sent, so the next member gets the whole body.
    let server = proxy_to(
        &format!(
            "upstream app {{\n    server 127.0.0.1:{};\n    server {};\n}}",
            closed_port(),
            good.addr()
        ),
        "        proxy_pass app;\n        client_max_body_size 8m;",
    );
    let body = vec![b'b'; LEN];
    let mut s = server.connect();
    s.write_all(
        format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {LEN}\r\n\r\n").as_bytes(),
    )
    .expect("head");
    s.write_all(&body).expect("body");
    assert_eq!(
        read_response(&mut s, false).expect("answer").text(),
        LEN.to_string()
    );

    // A member that takes the head and part of the body, then resets: the
    // body cannot be sent twice, so 502, and the next member never sees it.
    let (l, taker) = crate::server::listener();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = vec![0u8; 256 << 10];
            let mut got = 0;
            while got < 200 << 10 {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            // Dropped with unread bytes: a reset.
        }
    });
    let other = upstream::start(|r| ok(&r.body.len().to_string()));
    let server = proxy_to(
        &format!(
            "upstream app {{\n    server {taker} max_fails=0;\n    server {};\n}}",
            other.addr()
        ),
        "        proxy_pass app;\n        client_max_body_size 8m;",
    );
    let mut s = server.connect();
    s.write_all(
        format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {LEN}\r\n\r\n").as_bytes(),
    )
    .expect("head");
    let mut writer = s.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let r = read_response(&mut s, false).expect("an answer");
    assert_eq!(r.status, 502);
    let _ = sender.join();
    assert_eq!(other.count(), 0, "the body went to a second member");
}

#[test]
fn a_client_that_leaves_before_the_answer_ends_the_upstream_exchange() {
    // An upstream that never answers, and says when its connection closes.
    let (l, addr) = crate::server::listener();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        if !crate::upstream::read_head(&mut s) {
            return;
        }
        let _ = got_tx.send(());
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut b = [0u8; 64];
        let _ = closed_tx.send(matches!(s.read(&mut b), Ok(0)));
    });
    let server = proxy_to(
        "proxy_read_timeout 60s;",
        &format!("        proxy_pass {addr};"),
    );
    let mut s = server.connect();
    s.write_all(request("GET", "/slow", &[]).as_bytes())
        .expect("send");
    // The client goes before any answer (as a browser tab closed): xps
    // closes the upstream connection at once (as nginx does), rather than
    // holding it until proxy_read_timeout.
    got_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the request reached the upstream");
    drop(s);
    let closed = closed_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the upstream connection closed within 10 s");
    assert!(closed, "the upstream connection was not closed by xps");
}

#[test]
fn errors_of_the_proxy_go_through_error_page_from_the_first_failure() {
    let hang = upstream::start(|_| Answer::Hang);
    let dead = closed_port();
    let template = format!(
        "server {{
    listen 127.0.0.1:{{port}};
    root {{dir}}/site;
    error_page 502 504 /oops.html;
    location /dead/ {{
        proxy_pass 127.0.0.1:{dead};
    }}
    location /slow/ {{
        proxy_pass {};
        proxy_read_timeout 300ms;
    }}
}}
",
        hang.addr()
    );
    let server = Server::start(&template, |dir| {
        std::fs::create_dir_all(dir.join("site")).expect("mkdir");
        std::fs::write(dir.join("site/oops.html"), "<p>our own page</p>").expect("write");
    });
    // The first refusal (the member was never down before), then again
    // while it is marked down: the same page.
    for _ in 0..2 {
        let r = server.get("/dead/x", &[]);
        assert_eq!(r.status, 502);
        assert_eq!(r.text(), "<p>our own page</p>");
        assert_eq!(r.header("content-type"), Some("text/html"));
    }
    let r = server.get("/slow/x", &[]);
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "<p>our own page</p>");
    // HEAD: the head only.
    let mut s = server.connect();
    s.write_all(request("HEAD", "/dead/y", &[]).as_bytes())
        .expect("send");
    let head = read_response(&mut s, true).expect("a response");
    assert_eq!(head.status, 502);
    assert_eq!(head.header("content-length"), Some("19"));
}
