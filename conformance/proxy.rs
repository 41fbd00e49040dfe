//! Reverse proxy through real upstream sockets: headers both ways, framing,
//! bodies both ways, failures, balancing, keep-alive reuse, WebSocket.

use crate::server::{Server, connect, is_closed, read_response, request};
use crate::upstream::{self, Answer, closed_port, ok};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

pub fn proxy_to(settings: &str, location: &str) -> Server {
    let template = format!(
        "{settings}\nserver {{\n    listen 127.0.0.1:{{port}};\n    location / {{\n{location}\n    }}\n}}\n"
    );
    Server::start(&template, |_| {})
}

#[test]
fn headers_go_up_and_come_back() {
    let up = upstream::start(|_| {
        Answer::Bytes(b"HTTP/1.1 203 Mine\r\nServer: app/2\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nConnection: X-Drop\r\nX-Drop: 1\r\nX-App: yes\r\nContent-Length: 2\r\n\r\nok".to_vec())
    });
    let server = proxy_to(
        "",
        &format!(
            "        proxy_pass {};\n        proxy_set_header X-Edge xps;\n        add_header X-Added yes;",
            up.addr()
        ),
    );
    let r = server.raw(b"GET /path?q=1 HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nTE: trailers\r\nUser-Agent: tester\r\n\r\n");
    assert_eq!(r.status_line, "HTTP/1.1 203 Mine");
    assert_eq!(
        r.header("server"),
        Some("app/2"),
        "the upstream's Server is kept"
    );
    assert_eq!(
        r.header("date"),
        Some("Mon, 01 Jan 2024 00:00:00 GMT"),
        "the upstream's Date is kept"
    );
    assert_eq!(r.header("x-app"), Some("yes"));
    assert_eq!(r.header("x-added"), Some("yes"));
    assert!(
        r.header("x-drop").is_none(),
        "a field named in Connection came through"
    );
    assert_eq!(r.body, b"ok");
    let got = up.received.lock().expect("lock")[0].clone();
    assert!(
        got.head.starts_with("GET /path?q=1 HTTP/1.1\r\n"),
        "{}",
        got.head
    );
    assert_eq!(got.header("host").as_deref(), Some("site.test"));
    assert_eq!(
        got.header("x-forwarded-for").as_deref(),
        Some("10.0.0.1, 127.0.0.1")
    );
    assert_eq!(got.header("x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(got.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(got.header("x-forwarded-host").as_deref(), Some("site.test"));
    assert_eq!(got.header("x-edge").as_deref(), Some("xps"));
    assert_eq!(got.header("user-agent").as_deref(), Some("tester"));
    for hop in ["x-secret", "te", "connection"] {
        assert!(
            got.header(hop).is_none(),
            "{hop} went upstream: {}",
            got.head
        );
    }
}

#[test]
fn chunked_and_close_delimited_responses_are_reframed() {
    let up = upstream::start(|r| {
        if r.head.starts_with("GET /chunked") {
            Answer::Bytes(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec())
        } else {
            Answer::Close(b"HTTP/1.0 200 OK\r\n\r\nuntil close".to_vec())
        }
    });
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    s.write_all(request("GET", "/chunked", &[]).as_bytes())
        .expect("send");
    let r = read_chunked(&mut s);
    assert_eq!(r, b"hello world");
    s.write_all(request("GET", "/close", &[]).as_bytes())
        .expect("send");
    let r = read_chunked(&mut s);
    assert_eq!(r, b"until close");
    // The client connection is still usable after both.
    s.write_all(request("GET", "/chunked", &[]).as_bytes())
        .expect("send");
    assert_eq!(read_chunked(&mut s), b"hello world");
}

/// Reads a chunked response on `s` and returns its body.
fn read_chunked(s: &mut std::net::TcpStream) -> Vec<u8> {
    let r = {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).expect("head");
            head.push(b[0]);
        }
        String::from_utf8_lossy(&head).into_owned()
    };
    assert!(
        r.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{r}"
    );
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            s.read_exact(&mut b).expect("size line");
            line.push(b[0]);
        }
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).expect("hex size");
        let mut chunk = vec![0u8; size + 2];
        s.read_exact(&mut chunk).expect("chunk");
        body.extend_from_slice(&chunk[..size]);
        if size == 0 {
            return body;
        }
    }
}

#[test]
fn request_bodies_go_up_identical() {
    let up = upstream::start(|r| ok(&r.body.len().to_string()));
    let server = proxy_to(
        "client_max_body_size 10m;",
        &format!("        proxy_pass {};", up.addr()),
    );
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut s = server.connect();
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(&data).expect("body");
    assert_eq!(
        read_response(&mut s, false).expect("answer").text(),
        "1000000"
    );
    // Chunked, with Expect: 100-continue answered by xps.
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").expect("head");
    let cont = read_response(&mut s, true).expect("100 Continue");
    assert_eq!(cont.status, 100);
    s.write_all(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        .expect("chunks");
    assert_eq!(read_response(&mut s, false).expect("answer").text(), "7");
    let got = up.received.lock().expect("lock");
    assert!(got[0].body == data);
    assert_eq!(got[1].body, b"abcdefg");
    assert_eq!(
        got[1].header("transfer-encoding").as_deref(),
        Some("chunked")
    );
    assert!(got[1].header("expect").is_none());
}

#[test]
fn big_bodies_stream_both_ways_with_flat_memory() {
    const DOWN: usize = 64 << 20;
    const UP: usize = 50 << 20;
    let up = upstream::start(|r| {
        if r.head.starts_with("POST") {
            ok(&r.body.len().to_string())
        } else {
            let mut resp =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {DOWN}\r\n\r\n").into_bytes();
            resp.extend((0..DOWN).map(|i| (i % 241) as u8));
            Answer::Bytes(resp)
        }
    });
    let server = proxy_to(
        "client_max_body_size 100m;",
        &format!("        proxy_pass {};", up.addr()),
    );
    let before = server.rss_kib();
    let mut s = server.connect();
    s.write_all(request("GET", "/big", &[]).as_bytes())
        .expect("send");
    // Read slowly at first, watching the proxy's memory.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("head");
        head.push(b[0]);
    }
    let mut body = vec![0u8; DOWN];
    let mut got = 0;
    let mut peak = before;
    while got < DOWN {
        let n = s
            .read(&mut body[got..(got + 65536).min(DOWN)])
            .expect("read");
        assert!(n > 0, "the body ended early");
        got += n;
        if got < 8 << 20 {
            peak = peak.max(server.rss_kib());
        }
    }
    assert!(
        body.iter().enumerate().all(|(i, b)| *b == (i % 241) as u8),
        "the body differs"
    );
    assert!(peak < before + 8192, "RSS grew from {before} to {peak} KiB");
    // 50 MiB up.
    let data: Vec<u8> = (0..UP).map(|i| (i % 239) as u8).collect();
    s.write_all(format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {UP}\r\n\r\n").as_bytes())
        .expect("head");
    s.write_all(&data).expect("body");
    assert_eq!(
        read_response(&mut s, false).expect("answer").text(),
        UP.to_string()
    );
    let received = up.received.lock().expect("lock");
    assert!(
        received.last().is_some_and(|r| r.body == data),
        "the uploaded body differs"
    );
}

#[test]
fn a_refused_member_is_skipped_and_none_left_is_502() {
    let good = upstream::start(|_| ok("good"));
    let dead = closed_port();
    let server = proxy_to(
        &format!(
            "upstream app {{\n    server 127.0.0.1:{dead};\n    server {};\n}}\nworkers 1;",
            good.addr()
        ),
        "        proxy_pass app;",
    );
    for _ in 0..4 {
        assert_eq!(server.get("/", &[]).text(), "good");
    }
    let all_dead = proxy_to(
        &format!(
            "upstream app {{\n    server 127.0.0.1:{dead};\n    server 127.0.0.1:{};\n}}",
            closed_port()
        ),
        "        proxy_pass app;",
    );
    let started = Instant::now();
    assert_eq!(all_dead.get("/", &[]).status, 502);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "502 took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_member_that_resets_before_answering_is_skipped() {
    let reset = upstream::start(|_| Answer::Reset);
    let good = upstream::start(|_| ok("good"));
    let server = proxy_to(
        &format!(
            "upstream app {{\n    server {} max_fails=0;\n    server {};\n}}\nworkers 1;",
            reset.addr(),
            good.addr()
        ),
        "        proxy_pass app;",
    );
    for _ in 0..4 {
        assert_eq!(server.get("/", &[]).text(), "good");
    }
}

#[test]
fn timeouts_give_504() {
    let hang = upstream::start(|_| Answer::Hang);
    let server = proxy_to(
        "proxy_read_timeout 300ms;",
        &format!("        proxy_pass {};", hang.addr()),
    );
    let started = Instant::now();
    assert_eq!(server.get("/", &[]).status, 504);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn an_upstream_gone_mid_body_closes_the_client_without_a_complete_body() {
    let up = upstream::start(|_| {
        Answer::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part".to_vec())
    });
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    s.write_all(request("GET", "/", &[]).as_bytes())
        .expect("send");
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("Content-Length: 100"), "{text}");
    assert!(text.ends_with("only part"), "{text}");
    // Other connections are unaffected.
    let ok_up = upstream::start(|_| ok("fine"));
    let other = proxy_to("", &format!("        proxy_pass {};", ok_up.addr()));
    assert_eq!(other.get("/", &[]).text(), "fine");
}

#[test]
fn weighted_round_robin_splits_400_requests_by_weight() {
    let a = upstream::start(|_| ok("a"));
    let b = upstream::start(|_| ok("b"));
    let server = proxy_to(
        &format!(
            "workers 1;\nupstream app {{\n    server {} weight=3;\n    server {};\n}}",
            a.addr(),
            b.addr()
        ),
        "        proxy_pass app;",
    );
    let mut s = server.connect();
    for _ in 0..400 {
        s.write_all(request("GET", "/", &[]).as_bytes())
            .expect("send");
        read_response(&mut s, false).expect("answer");
    }
    let (na, nb) = (a.count() as i64, b.count() as i64);
    assert!(
        (na - 300).abs() <= 30 && (nb - 100).abs() <= 10,
        "a={na} b={nb}"
    );
}

#[test]
fn ip_hash_keeps_a_client_on_one_member() {
    let a = upstream::start(|_| ok("a"));
    let b = upstream::start(|_| ok("b"));
    let c = upstream::start(|_| ok("c"));
    let server = proxy_to(
        &format!(
            "upstream app {{\n    server {};\n    server {};\n    server {};\n    balance ip_hash;\n}}",
            a.addr(),
            b.addr(),
            c.addr()
        ),
        "        proxy_pass app;",
    );
    // Clients from four networks (ip_hash keys on the first three
    // octets): each keeps its member, and they do not all share one, so a
    // balancer that always picks the first member fails.
    let mut members = std::collections::BTreeSet::new();
    for net in 0..4u8 {
        let from = std::net::Ipv4Addr::new(127, net, 0, 1);
        let get = || {
            let mut s = crate::server::connect_from(from, server.addr());
            s.write_all(request("GET", "/", &[]).as_bytes())
                .expect("send");
            read_response(&mut s, false).expect("answer").text()
        };
        let first = get();
        for _ in 0..10 {
            assert_eq!(get(), first, "a client from {from} changed members");
        }
        members.insert(first);
    }
    assert!(members.len() >= 2, "every client went to {members:?}");
}

#[test]
fn upstream_connections_are_kept_alive_and_reused() {
    let up = upstream::start(|_| ok("k"));
    let server = proxy_to("workers 1;", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    for _ in 0..100 {
        s.write_all(request("GET", "/", &[]).as_bytes())
            .expect("send");
        assert_eq!(read_response(&mut s, false).expect("answer").text(), "k");
    }
    assert!(
        up.connections.load(std::sync::atomic::Ordering::SeqCst) <= 2,
        "{} upstream connections",
        up.connections.load(std::sync::atomic::Ordering::SeqCst)
    );
    // A reused connection the upstream closed meanwhile is replaced, unseen.
    let closing = upstream::start(|_| {
        Answer::Close(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nc".to_vec(),
        )
    });
    let server = proxy_to(
        "workers 1;",
        &format!("        proxy_pass {};", closing.addr()),
    );
    for _ in 0..5 {
        assert_eq!(server.get("/", &[]).text(), "c");
    }
}

#[test]
fn websocket_upgrades_become_a_tunnel() {
    let up = upstream::start(|r| {
        assert!(
            r.header("upgrade")
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        );
        Answer::Tunnel(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n".to_vec())
    });
    let server = proxy_to("", &format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n").expect("send");
    let r = read_response(&mut s, true).expect("101");
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    for msg in [&b"hello"[..], b"frames both ways", &[0u8, 1, 2, 255]] {
        s.write_all(msg).expect("send through the tunnel");
        let mut echo = vec![0u8; msg.len()];
        s.read_exact(&mut echo).expect("echo");
        assert_eq!(echo, msg);
    }
    drop(s);
}

#[test]
fn expserver_reverse_proxy_routes_balance_over_their_upstreams() {
    let a = upstream::start(|_| ok("a"));
    let b = upstream::start(|_| ok("b"));
    let json = format!(
        r#"{{"servers": [{{"listeners": [{{"host": "127.0.0.1", "port": {{port}}}}], "routes": [{{"req_path": "/api", "type": "reverse_proxy", "upstreams": ["{}", "{}"]}}]}}], "workers": 1}}"#,
        a.addr(),
        b.addr()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in(dir.path(), "xps_config.json", &json);
    let mut s = server.connect();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        s.write_all(request("GET", "/api/x", &[]).as_bytes())
            .expect("send");
        let r = read_response(&mut s, false).expect("answer");
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "proxied responses stay as the upstream sent them"
        );
        seen.insert(r.text());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    let _ = is_closed;
    let _ = connect;
}

#[test]
fn a_connect_timeout_tries_the_next_member_then_gives_504() {
    let unanswering = upstream::Unanswering::start();
    let port = unanswering.port;
    let good = upstream::start(|_| ok("good"));
    let server = proxy_to(
        &format!(
            "workers 1;\nproxy_connect_timeout 300ms;\nupstream app {{\n    server 127.0.0.1:{port};\n    server {};\n}}",
            good.addr()
        ),
        "        proxy_pass app;",
    );
    for _ in 0..2 {
        assert_eq!(server.get("/", &[]).text(), "good");
    }
    let only_slow = proxy_to(
        "proxy_connect_timeout 300ms;",
        &format!("        proxy_pass 127.0.0.1:{port};"),
    );
    let started = Instant::now();
    assert_eq!(only_slow.get("/", &[]).status, 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(unanswering);
}

#[test]
fn max_fails_takes_a_failing_member_out() {
    let bad = upstream::start(|_| Answer::Reset);
    let good = upstream::start(|_| ok("good"));
    let server = proxy_to(
        &format!(
            "workers 1;\nupstream app {{\n    server {} max_fails=1 fail_timeout=30s;\n    server {};\n}}",
            bad.addr(),
            good.addr()
        ),
        "        proxy_pass app;",
    );
    for _ in 0..10 {
        assert_eq!(server.get("/", &[]).text(), "good");
    }
    assert_eq!(
        bad.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the failed member got traffic again"
    );
}

#[test]
fn health_checks_take_a_member_out_and_bring_it_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let healthy = std::sync::Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let a = upstream::start(move |r| {
        if r.head.starts_with("GET /healthz") && !flag.load(Ordering::SeqCst) {
            return Answer::Bytes(b"HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n".to_vec());
        }
        ok("a")
    });
    let b = upstream::start(|_| ok("b"));
    let server = proxy_to(
        &format!(
            "workers 1;\nupstream app {{\n    server {};\n    server {};\n    health_check /healthz interval=100ms fails=1 passes=1;\n}}",
            a.addr(),
            b.addr()
        ),
        "        proxy_pass app;",
    );
    let answers = |n: usize| {
        (0..n)
            .map(|_| server.get("/", &[]).text())
            .collect::<Vec<_>>()
    };
    assert!(answers(4).contains(&"a".to_string()));
    healthy.store(false, Ordering::SeqCst);
    server.wait_for(Duration::from_secs(10), "a to be taken out", || {
        answers(4).iter().all(|x| x == "b")
    });
    server.wait_for(Duration::from_secs(5), "the log line", || {
        server.stderr().contains("is down (health check /healthz)")
    });
    healthy.store(true, Ordering::SeqCst);
    server.wait_for(Duration::from_secs(10), "a to come back", || {
        answers(4).contains(&"a".to_string())
    });
}

#[test]
fn a_hanging_health_endpoint_fails_its_probe_without_stalling_the_loop() {
    // One worker: the probes share its event loop with the requests.
    let hanging = upstream::start(|r| {
        if r.head.starts_with("GET /healthz") {
            return Answer::Hang;
        }
        ok("hanging")
    });
    let refused = { crate::server::listener().1 };
    let good = upstream::start(|_| ok("good"));
    let server = proxy_to(
        &format!(
            "workers 1;\nupstream app {{\n    server {};\n    server {};\n    server {};\n    health_check /healthz interval=2s fails=1 passes=1;\n}}",
            hanging.addr(),
            refused,
            good.addr()
        ),
        "        proxy_pass app;",
    );
    server.wait_for(
        Duration::from_secs(10),
        "both bad members to be taken out",
        || {
            let log = server.stderr();
            log.contains(&format!("member {} is down", hanging.addr()))
                && log.contains(&format!("member {refused} is down"))
        },
    );
    // Every request now goes to the good member, answered at once although
    // a probe of the hanging member is always under way.
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let r = server.get("/", &[]);
        assert_eq!(r.text(), "good");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a request waited {:?} behind the probes",
            started.elapsed()
        );
    }
}

#[test]
fn health_checks_start_on_an_idle_server() {
    let refused = { crate::server::listener().1 };
    // No request is ever sent: the probes must start on their own.
    let server = proxy_to(
        &format!(
            "workers 2;\nupstream app {{\n    server {refused};\n    health_check /healthz interval=200ms fails=1;\n}}"
        ),
        "        proxy_pass app;",
    );
    server.wait_for(
        Duration::from_secs(10),
        "the refusing member to be taken out",
        || {
            server
                .stderr()
                .contains(&format!("member {refused} is down"))
        },
    );
}

#[test]
fn backup_members_serve_only_when_no_primary_can() {
    let primary = upstream::start(|_| ok("primary"));
    let backup = upstream::start(|_| ok("backup"));
    let server = proxy_to(
        &format!(
            "upstream app {{\n    server {};\n    server {} backup;\n}}",
            primary.addr(),
            backup.addr()
        ),
        "        proxy_pass app;",
    );
    for _ in 0..10 {
        assert_eq!(server.get("/", &[]).text(), "primary");
    }
    assert_eq!(
        backup.count(),
        0,
        "the backup got traffic with a primary up"
    );
    let down = upstream::start(|_| ok("backup"));
    let server = proxy_to(
        &format!(
            "upstream app {{\n    server 127.0.0.1:{};\n    server {} backup;\n}}",
            closed_port(),
            down.addr()
        ),
        "        proxy_pass app;",
    );
    for _ in 0..5 {
        assert_eq!(server.get("/", &[]).text(), "backup");
    }
}

#[test]
fn a_group_with_every_member_down_answers_502_at_once_and_says_so() {
    let server = proxy_to(
        &format!(
            "upstream app {{\n    server 127.0.0.1:{} max_fails=1 fail_timeout=60s;\n}}",
            closed_port()
        ),
        "        proxy_pass app;",
    );
    assert_eq!(server.get("/", &[]).status, 502);
    // The member is now out: the next request is answered without a try.
    assert_eq!(server.get("/", &[]).status, 502);
    server.wait_for(Duration::from_secs(5), "the log line", || {
        server
            .stderr()
            .contains("upstream app: no member is up; answering 502")
    });
}

#[test]
fn an_idle_websocket_tunnel_closes_after_proxy_read_timeout() {
    let up = upstream::start(|_| {
        Answer::Tunnel(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec(),
        )
    });
    let server = proxy_to(
        "proxy_read_timeout 300ms;",
        &format!("        proxy_pass {};", up.addr()),
    );
    let mut s = server.connect();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .expect("send");
    assert_eq!(read_response(&mut s, true).expect("101").status, 101);
    s.write_all(b"ping").expect("send");
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).expect("echo");
    // Now idle: the tunnel ends after the timeout.
    let started = Instant::now();
    assert!(is_closed(&mut s), "an idle tunnel stayed open");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "closed before it was idle"
    );
}

#[test]
fn an_early_upstream_answer_ends_the_exchange_without_reading_the_body_as_a_request() {
    // The upstream answers 413 as soon as it has the head, without reading
    // the body, and closes.
    let (l, addr) = crate::server::listener();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                if !upstream::read_head(&mut s) {
                    return;
                }
                let _ = s.write_all(
                    b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig",
                );
            });
        }
    });
    // A body far bigger than the socket buffers between xps and the
    // upstream, so most of it is still unsent when the answer comes.
    let server = proxy_to(
        "client_max_body_size 64m;",
        &format!("        proxy_pass {addr};"),
    );
    let mut s = server.connect();
    // A body whose bytes look like a second request.
    let smuggled = b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut body = smuggled.to_vec();
    body.resize(32 << 20, b'x');
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    let mut writer = s.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        // Fails once xps closes; that is expected.
        let _ = writer.write_all(&body);
    });
    let r = read_response(&mut s, false).expect("the early answer");
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "big");
    // The connection ends: the rest of the body is never taken for a
    // request.
    assert!(
        is_closed(&mut s),
        "the connection stayed open after an early answer"
    );
    let _ = sender.join();
}

#[test]
fn an_idle_stream_tunnel_closes_after_proxy_timeout() {
    let up = upstream::start(|_| Answer::Hang);
    let server = stream_to(&format!(
        "        proxy_pass {};\n        proxy_timeout 300ms;",
        up.addr()
    ));
    let mut s = server.connect();
    s.write_all(b"hello").expect("send");
    let started = Instant::now();
    assert!(is_closed(&mut s), "an idle stream stayed open");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

pub fn stream_to(settings: &str) -> Server {
    let template = format!(
        "stream {{\n    server {{\n        listen 127.0.0.1:{{port}};\n{settings}\n    }}\n}}\n"
    );
    Server::start(&template, |_| {})
}

#[test]
fn a_stream_server_relays_bytes_both_ways() {
    let (echo, bound) = crate::server::listener();
    let port = bound.port();
    std::thread::spawn(move || {
        for s in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let server = stream_to(&format!("        proxy_pass 127.0.0.1:{port};"));
    let mut s = server.connect();
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut reader = s.try_clone().expect("clone");
    let expected = big.clone();
    let t = std::thread::spawn(move || {
        let mut got = vec![0u8; expected.len()];
        reader.read_exact(&mut got).expect("echo");
        got == expected
    });
    s.write_all(&big).expect("send");
    assert!(t.join().expect("reader"), "the echo differs");
}

#[test]
fn a_stream_upstream_that_closes_after_sending_delivers_every_byte_first() {
    let (source, bound) = crate::server::listener();
    let port = bound.port();
    let payload: Vec<u8> = (0..8_000_000u32).map(|i| (i % 239) as u8).collect();
    let sent = payload.clone();
    // Every connection (the harness's readiness check makes one too).
    std::thread::spawn(move || {
        for mut s in source.incoming().flatten() {
            let sent = sent.clone();
            std::thread::spawn(move || {
                let _ = s.write_all(&sent);
                // Dropped: the upstream closes right after its last byte.
            });
        }
    });
    let server = stream_to(&format!("        proxy_pass 127.0.0.1:{port};"));
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read to the close");
    assert_eq!(got.len(), payload.len(), "bytes lost before the close");
    assert!(got == payload, "the bytes differ");
}

#[test]
fn a_stream_client_is_closed_when_its_upstream_goes_or_is_denied() {
    let up = upstream::start(|_| Answer::Reset);
    let server = stream_to(&format!("        proxy_pass {};", up.addr()));
    let mut s = server.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert!(
        is_closed(&mut s),
        "the client stays open after its upstream left"
    );
    let denied = stream_to(&format!(
        "        proxy_pass {};\n        deny 127.0.0.1;",
        up.addr()
    ));
    let mut s = denied.connect();
    assert!(is_closed(&mut s));
    let refused = stream_to(&format!("        proxy_pass 127.0.0.1:{};", closed_port()));
    let mut s = refused.connect();
    assert!(is_closed(&mut s));
    let _ = connect;
}

#[test]
fn a_uri_in_proxy_pass_replaces_the_matched_prefix() {
    let up = upstream::start(|r| ok(r.head.lines().next().unwrap_or("")));
    let template = format!(
        "server {{
    listen 127.0.0.1:{{port}};
    location /api/ {{
        proxy_pass http://{0}/;
    }}
    location /v1/ {{
        proxy_pass http://{0}/backend/v2/;
    }}
    location = /exact {{
        proxy_pass http://{0}/other;
    }}
    location /plain/ {{
        proxy_pass {0};
    }}
}}
",
        up.addr()
    );
    let server = Server::start(&template, |_| {});
    let line = |path: &str| server.get(path, &[]).text();
    assert_eq!(line("/api/users?id=7"), "GET /users?id=7 HTTP/1.1");
    assert_eq!(line("/api/"), "GET / HTTP/1.1");
    assert_eq!(line("/v1/a%20b/c"), "GET /backend/v2/a%20b/c HTTP/1.1");
    assert_eq!(line("/exact?x=1"), "GET /other?x=1 HTTP/1.1");
    assert_eq!(line("/plain/p?q"), "GET /plain/p?q HTTP/1.1");
    // A path that differs as sent (dot segments) goes as normalised.
    assert_eq!(line("/api/./x/../y"), "GET /y HTTP/1.1");
    // `/api` without its slash: 301 to `/api/` (as nginx), query kept;
    // nothing reaches the upstream.
    let before = up.count();
    let r = server.get("/api?k=v", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/api/?k=v"));
    assert_eq!(up.count(), before);
}

#[test]
fn a_uri_part_needs_http_and_takes_no_variables() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (line, message) in [
        (
            "proxy_pass 127.0.0.1:3000/x;",
            "a URI part needs the `http://` form",
        ),
        (
            "proxy_pass http://127.0.0.1:3000/$uri;",
            "cannot hold variables",
        ),
    ] {
        std::fs::write(
            dir.path().join("xps.conf"),
            format!("server {{\n    listen 8080;\n    location / {{\n        {line}\n    }}\n}}\n"),
        )
        .expect("write");
        let out = crate::support::xps(dir.path(), &["--check", "xps.conf"]);
        assert_eq!(out.code, Some(1), "{line}");
        assert!(out.stderr.contains(message), "{line}: {}", out.stderr);
    }
}
