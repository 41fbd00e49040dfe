//! `set_real_ip_from`, `real_ip_header`, `real_ip_recursive` and
//! `listen … proxy_protocol`: the address a trusted balancer reports is
//! the one `$remote_addr`, `allow`/`deny`, limits, the access log and the
//! upstream see; anyone else keeps their own; a PROXY header (v1 or v2)
//! is required where it is configured.

use crate::server::{Server, connect_from, read_response, request};
use crate::support::{assert_contains_all, xps};
use crate::upstream;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn ask(server: &Server, from: [u8; 4], path: &str, headers: &[&str]) -> crate::server::Response {
    let mut s = connect_from(Ipv4Addr::from(from), server.addr());
    s.write_all(request("GET", path, headers).as_bytes())
        .unwrap();
    read_response(&mut s, false).expect("an answer")
}

#[test]
fn a_trusted_balancer_says_who_the_client_is() {
    let up = upstream::start(|r| upstream::ok(&r.header("x-real-ip").unwrap_or_default()));
    let template = format!(
        "limit_req_zone $binary_remote_addr zone=per_client:64k rate=1r/m;
server {{
    listen 127.0.0.1:{{port}};
    set_real_ip_from 127.0.0.1;
    set_real_ip_from 10.0.0.0/8;
    real_ip_header X-Forwarded-For;
    access_log {{dir}}/access.log;
    location / {{
        return 200 \"$remote_addr\";
    }}
    location /chain/ {{
        real_ip_recursive on;
        return 200 \"$remote_addr\";
    }}
    location /members/ {{
        deny 203.0.113.0/24;
        return 200 \"in\";
    }}
    location /limited/ {{
        limit_req zone=per_client;
        return 200 \"ok\";
    }}
    location /app/ {{
        proxy_pass {};
    }}
}}
",
        up.addr()
    );
    let server = Server::start(&template, |_| {});
    let xff = "X-Forwarded-For: 203.0.113.9, 10.1.1.1";
    // The rightmost address; recursively, the rightmost untrusted one.
    assert_eq!(ask(&server, [127, 0, 0, 1], "/", &[xff]).text(), "10.1.1.1");
    assert_eq!(
        ask(&server, [127, 0, 0, 1], "/chain/", &[xff]).text(),
        "203.0.113.9"
    );
    // Without the header, or from an address not trusted, the
    // connection's own address.
    assert_eq!(ask(&server, [127, 0, 0, 1], "/", &[]).text(), "127.0.0.1");
    assert_eq!(
        ask(&server, [127, 0, 0, 2], "/", &[xff]).text(),
        "127.0.0.2"
    );
    assert_eq!(
        ask(&server, [127, 0, 0, 1], "/", &["X-Forwarded-For: nonsense"]).text(),
        "127.0.0.1"
    );
    // A balancer that adds a field of its own after the client's is the
    // one believed: a client's own field cannot pick its address.
    assert_eq!(
        ask(
            &server,
            [127, 0, 0, 1],
            "/",
            &["X-Forwarded-For: 10.0.0.9", client_field()]
        )
        .text(),
        "203.0.113.9"
    );
    // allow/deny see the client.
    let client = "X-Forwarded-For: 203.0.113.9";
    assert_eq!(
        ask(&server, [127, 0, 0, 1], "/members/", &[client]).status,
        403
    );
    assert_eq!(ask(&server, [127, 0, 0, 1], "/members/", &[]).status, 200);
    // Limits count per client, not per balancer.
    assert_eq!(
        ask(&server, [127, 0, 0, 1], "/limited/", &[client]).status,
        200
    );
    assert_eq!(
        ask(&server, [127, 0, 0, 1], "/limited/", &[client]).status,
        503
    );
    let other = "X-Forwarded-For: 198.51.100.1";
    assert_eq!(
        ask(&server, [127, 0, 0, 1], "/limited/", &[other]).status,
        200
    );
    // The upstream is told the client.
    assert_eq!(
        ask(&server, [127, 0, 0, 1], "/app/", &[client]).text(),
        "203.0.113.9"
    );
    // So is the log.
    let log = server.dir.join("access.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.starts_with("203.0.113.9 - - [") && l.contains("/app/"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "access log:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn client_field() -> &'static str {
    "X-Forwarded-For: 203.0.113.9"
}

const PROXIED: &str = "server {
    listen 127.0.0.1:{port} proxy_protocol;
    set_real_ip_from 127.0.0.1;
    real_ip_header proxy_protocol;
    return 200 \"$remote_addr $remote_port\";
}
";

#[test]
fn a_proxy_protocol_listener_reads_v1_and_v2_headers_and_closes_without_one() {
    let server = Server::start(PROXIED, |_| {});
    // Version 1, then two requests on the connection: both are the
    // client's.
    let mut s = server.connect();
    let req = request("GET", "/", &[]);
    s.write_all(format!("PROXY TCP4 198.51.100.4 127.0.0.1 4000 80\r\n{req}").as_bytes())
        .unwrap();
    assert_eq!(
        read_response(&mut s, false).unwrap().text(),
        "198.51.100.4 4000"
    );
    s.write_all(req.as_bytes()).unwrap();
    assert_eq!(
        read_response(&mut s, false).unwrap().text(),
        "198.51.100.4 4000"
    );
    // Version 2 (binary), IPv6, sent in two writes.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    src[15] = 9;
    v2.extend_from_slice(&src);
    v2.extend_from_slice(&[0u8; 16]);
    v2.extend_from_slice(&[0x13, 0x88, 0, 80]);
    let mut s = server.connect();
    s.set_nodelay(true).unwrap();
    s.write_all(&v2[..10]).unwrap();
    s.write_all(&v2[10..]).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    assert_eq!(
        read_response(&mut s, false).unwrap().text(),
        "2001:db8::9 5000"
    );
    // A plain HTTP request is not a PROXY header: closed, nothing sent.
    let mut s = server.connect();
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    // A balancer not trusted: its header is read, its word not taken.
    let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 3), server.addr());
    s.write_all(format!("PROXY TCP4 198.51.100.4 127.0.0.1 4000 80\r\n{req}").as_bytes())
        .unwrap();
    assert!(
        read_response(&mut s, false)
            .unwrap()
            .text()
            .starts_with("127.0.0.3 ")
    );
}

#[test]
fn check_reports_listen_disagreements() {
    let dir = tempfile::tempdir().unwrap();
    let conf = "server {
    listen 127.0.0.1:8080 proxy_protocol;
    return 200;
}
server {
    listen 127.0.0.1:8080;
    server_name other;
    return 200;
}
stream {
    server {
        listen 127.0.0.1:9000 proxy_protocol;
        proxy_pass 127.0.0.1:9001;
    }
}
";
    std::fs::write(dir.path().join("xps.conf"), conf).unwrap();
    let out = xps(dir.path(), &["--check", "xps.conf"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_contains_all(
        &out.stderr,
        &[
            "error: servers on 127.0.0.1:8080 disagree about `proxy_protocol`\n --> xps.conf:6:12",
            "error: `proxy_protocol` applies to HTTP servers only",
        ],
    );
}

#[test]
fn x_real_ip_is_the_default_header_and_any_header_can_be_named() {
    let template = "server {
    listen 127.0.0.1:{port};
    set_real_ip_from 127.0.0.1;
    location / {
        return 200 \"$remote_addr\";
    }
    location /cdn/ {
        real_ip_header CF-Connecting-IP;
        return 200 \"$remote_addr\";
    }
}
";
    let server = Server::start(template, |_| {});
    // Without real_ip_header: X-Real-IP, and X-Forwarded-For is not read.
    assert_eq!(
        ask(&server, [127, 0, 0, 1], "/", &["X-Real-IP: 198.51.100.7"]).text(),
        "198.51.100.7"
    );
    assert_eq!(
        ask(
            &server,
            [127, 0, 0, 1],
            "/",
            &["X-Forwarded-For: 198.51.100.7"]
        )
        .text(),
        "127.0.0.1"
    );
    assert_eq!(
        ask(
            &server,
            [127, 0, 0, 1],
            "/cdn/",
            &["CF-Connecting-IP: 2001:db8::5"]
        )
        .text(),
        "2001:db8::5"
    );
    assert_eq!(
        ask(
            &server,
            [127, 0, 0, 1],
            "/cdn/",
            &["X-Real-IP: 198.51.100.7"]
        )
        .text(),
        "127.0.0.1"
    );
}
