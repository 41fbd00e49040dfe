//! `limit_req_zone`/`limit_req` and `limit_conn_zone`/`limit_conn`:
//! nginx's leaky bucket per key with `burst` and `nodelay`, the status
//! and `Retry-After` of a refusal, state shared by the workers and kept
//! across reloads that leave a zone as it was, the figures in the
//! metrics, and the check-time errors.

use crate::server::{Server, connect_from, read_response, request};
use crate::support::{assert_contains_all, xps};
use crate::upstream::{self, ok};
use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

fn send(server: &Server, from: [u8; 4], path: &str) -> TcpStream {
    let mut s = connect_from(Ipv4Addr::from(from), server.addr());
    s.write_all(request("GET", path, &[]).as_bytes()).unwrap();
    s
}

fn ask(server: &Server, from: [u8; 4], path: &str) -> crate::server::Response {
    read_response(&mut send(server, from, path), false).expect("an answer")
}

fn site(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/index.html"), "home").unwrap();
}

const RATES: &str = "limit_req_zone $binary_remote_addr zone=per_ip:1m rate=5r/s;
limit_req_zone $binary_remote_addr zone=slow:64k rate=1r/m;
limit_req_zone $binary_remote_addr zone=bursts:64k rate=1r/m;
server {
    listen 127.0.0.1:{port};
    root {dir}/site;
    location /strict/ {
        limit_req zone=slow;
        limit_req_status 429;
        return 200 \"ok\";
    }
    location /queued/ {
        limit_req zone=per_ip burst=2;
        return 200 \"$uri\";
    }
    location /bursty/ {
        limit_req zone=bursts burst=2 nodelay;
        return 200 \"ok\";
    }
    location /metrics {
        metrics;
    }
}
";

#[test]
fn a_rate_limit_refuses_past_its_burst_with_retry_after_per_client() {
    let server = Server::start(RATES, site);
    assert_eq!(ask(&server, [127, 0, 0, 1], "/strict/").status, 200);
    let r = ask(&server, [127, 0, 0, 1], "/strict/");
    assert_eq!(r.status, 429);
    // One request a minute: the next fits in 60 s.
    assert_eq!(r.header("retry-after"), Some("60"));
    // Each address has its own bucket; other locations are not limited.
    assert_eq!(ask(&server, [127, 0, 0, 2], "/strict/").status, 200);
    assert_eq!(ask(&server, [127, 0, 0, 1], "/").status, 200);
    // nodelay: the burst goes at once, one more is refused. The four
    // connections may land on different workers: the zone is shared.
    let conns: Vec<TcpStream> = (0..4)
        .map(|_| send(&server, [127, 0, 0, 3], "/bursty/"))
        .collect();
    let mut statuses: Vec<u16> = conns
        .into_iter()
        .map(|mut s| read_response(&mut s, false).expect("an answer").status)
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 200, 503]);
    // The figures.
    let text = server.get("/metrics?format=prometheus", &[]).text();
    for line in [
        "xps_limit_requests_total{zone=\"slow\",kind=\"req\",result=\"rejected\"} 1",
        "xps_limit_requests_total{zone=\"slow\",kind=\"req\",result=\"passed\"} 2",
        "xps_limit_requests_total{zone=\"bursts\",kind=\"req\",result=\"rejected\"} 1",
        "xps_limit_keys{zone=\"slow\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&server.get("/metrics?format=json", &[]).text()).unwrap();
    let slow = &json["limits"][1];
    assert_eq!(
        (slow["zone"].as_str(), slow["rejected"].as_u64()),
        (Some("slow"), Some(1))
    );
}

#[test]
fn requests_within_the_burst_wait_their_turn_at_the_rate() {
    let server = Server::start(RATES, site);
    let started = Instant::now();
    let conns: Vec<TcpStream> = (0..4)
        .map(|_| send(&server, [127, 0, 0, 1], "/queued/"))
        .collect();
    let mut answers: Vec<(u16, Duration)> = Vec::new();
    let (tx, rx) = mpsc::channel();
    for mut s in conns {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = read_response(&mut s, false).expect("an answer");
            tx.send((r.status, started.elapsed())).unwrap();
        });
    }
    for _ in 0..4 {
        answers.push(
            rx.recv_timeout(Duration::from_secs(10))
                .expect("all answered"),
        );
    }
    answers.sort();
    // 5r/s, burst 2: one at once, two after 200 and 400 ms, one refused.
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, vec![200, 200, 200, 503], "{answers:?}");
    let mut waits: Vec<Duration> = answers[..3].iter().map(|a| a.1).collect();
    waits.sort();
    assert!(waits[1] >= Duration::from_millis(180), "{answers:?}");
    assert!(waits[2] >= Duration::from_millis(380), "{answers:?}");
    // The refusal did not wait.
    assert!(answers[3].1 < waits[2], "{answers:?}");
}

#[test]
fn a_connection_limit_counts_requests_in_progress() {
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let up = upstream::start(move |_| {
        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
        ok("done")
    });
    let template = format!(
        "limit_conn_zone $binary_remote_addr zone=conns:64k;
server {{
    listen 127.0.0.1:{{port}};
    root {{dir}}/site;
    location /app/ {{
        limit_conn conns 1;
        proxy_pass {};
    }}
    location /app2/ {{
        limit_conn conns 1;
        limit_conn_status 429;
        proxy_pass {};
    }}
}}
",
        up.addr(),
        up.addr()
    );
    let server = Server::start(&template, site);
    let mut first = send(&server, [127, 0, 0, 1], "/app/");
    server.wait_for(
        Duration::from_secs(10),
        "the first request upstream",
        || up.count() == 1,
    );
    let r = ask(&server, [127, 0, 0, 1], "/app/");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    // The same zone from another location, with its own status.
    let r = ask(&server, [127, 0, 0, 1], "/app2/");
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    release.send(()).unwrap();
    assert_eq!(read_response(&mut first, false).unwrap().text(), "done");
    // The slot is given back once the response is out (the worker may
    // finish that a moment after the client has read it: poll).
    release.send(()).unwrap();
    let mut answer = String::new();
    server.wait_for(Duration::from_secs(10), "the slot given back", || {
        let r = ask(&server, [127, 0, 0, 1], "/app/");
        answer = r.text();
        r.status != 503
    });
    assert_eq!(answer, "done");
    assert_eq!(up.count(), 2);
}

#[test]
fn a_reload_keeps_the_state_of_an_unchanged_zone() {
    let server = Server::start(RATES, site);
    assert_eq!(ask(&server, [127, 0, 0, 1], "/strict/").status, 200);
    assert_eq!(ask(&server, [127, 0, 0, 1], "/strict/").status, 429);
    // A change elsewhere: the bucket is kept.
    let changed = RATES.replace(
        "return 200 \"ok\";\n    }\n    location /queued/",
        "return 200 \"ok!\";\n    }\n    location /queued/",
    );
    assert_ne!(changed, RATES);
    std::fs::write(server.dir.join("xps.conf"), server.render(&changed)).unwrap();
    server.wait_for(Duration::from_secs(10), "the reload", || {
        server.stderr().contains("generation 2")
    });
    assert_eq!(ask(&server, [127, 0, 0, 2], "/strict/").text(), "ok!");
    assert_eq!(ask(&server, [127, 0, 0, 1], "/strict/").status, 429);
    // A new size: the zone starts empty.
    let resized = changed.replace("zone=slow:64k", "zone=slow:128k");
    std::fs::write(server.dir.join("xps.conf"), server.render(&resized)).unwrap();
    server.wait_for(Duration::from_secs(10), "the resized zone", || {
        server.stderr().contains("its state starts empty")
    });
    server.wait_for(Duration::from_secs(10), "an empty bucket", || {
        ask(&server, [127, 0, 0, 1], "/strict/").status == 200
    });
    assert!(
        server
            .stderr()
            .contains("~ /strict/ return 200 ok → 200 ok!"),
        "{}",
        server.stderr()
    );
}

#[test]
fn check_reports_zone_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let conf = "limit_req_zone $binary_remote_addr zone=per_ip:1m rate=10r/s;
limit_req_zone $binary_remote_addr zone=per_ip:1m rate=1r/s;
limit_conn_zone $binary_remote_addr zone=conns:1m;
limit_req_zone $binary_remote_addr zone=x:1m rate=10r/h;
limit_req_zone $binary_remote_addr zone=y:1k rate=1r/s;
limit_req_zone all zone=z:1m rate=1r/s;
server {
    listen 127.0.0.1:8080;
    root .;
    limit_req zone=per_iq;
    limit_req zone=conns;
    limit_conn per_ip 5;
}
";
    std::fs::write(dir.path().join("xps.conf"), conf).unwrap();
    let out = xps(dir.path(), &["--check", "xps.conf"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let e = &out.stderr;
    assert_contains_all(
        e,
        &[
            "error: zone `per_ip` is declared twice\n --> xps.conf:2:16",
            "error: invalid rate `10r/h`",
            "error: a zone needs at least 32k, not `1k`",
            "error: the key `all` names no variable",
            "error: unknown zone `per_iq`\n  --> xps.conf:10:15",
            "help: did you mean `per_ip`?",
            "error: zone `conns` is a `limit_conn_zone`, not a `limit_req_zone`",
            "error: zone `per_ip` is a `limit_req_zone`, not a `limit_conn_zone`",
        ],
    );
}

#[test]
fn pipelined_requests_wait_their_turn_in_order() {
    let server = Server::start(RATES, site);
    let mut s = send(&server, [127, 0, 0, 9], "/queued/");
    // Three more on the same connection, in one write. They are taken one
    // at a time, each once the one before is answered, so each waits its
    // 200 ms turn (5r/s) and none is refused; each answer is its own.
    let more: String = ["/queued/a", "/queued/b", "/queued/c"]
        .iter()
        .map(|p| request("GET", p, &[]))
        .collect();
    s.write_all(more.as_bytes()).unwrap();
    let started = Instant::now();
    let statuses: Vec<(u16, String)> = (0..4)
        .map(|_| {
            let r = read_response(&mut s, false).expect("an answer");
            (r.status, r.text())
        })
        .collect();
    let expected: Vec<(u16, String)> = ["/queued/", "/queued/a", "/queued/b", "/queued/c"]
        .iter()
        .map(|p| (200, p.to_string()))
        .collect();
    assert_eq!(statuses, expected);
    assert!(
        started.elapsed() >= Duration::from_millis(580),
        "{:?}",
        started.elapsed()
    );
    // A client that leaves while its request waits costs nothing more.
    let mut gone = send(&server, [127, 0, 0, 9], "/queued/");
    drop(gone.write_all(b""));
    drop(gone);
    assert_eq!(ask(&server, [127, 0, 0, 10], "/").status, 200);
}

#[test]
fn a_try_files_fallback_applies_the_limits_of_its_location() {
    let template = "limit_req_zone $binary_remote_addr zone=app:64k rate=1r/m;
server {
    listen 127.0.0.1:{port};
    root {dir}/site;
    location / {
        try_files $uri /app;
    }
    location /app {
        limit_req zone=app;
        return 200 \"app\";
    }
}
";
    let server = Server::start(template, site);
    // Files are served without limit; what falls back to /app is limited.
    assert_eq!(ask(&server, [127, 0, 0, 1], "/index.html").text(), "home");
    assert_eq!(ask(&server, [127, 0, 0, 1], "/x").text(), "app");
    assert_eq!(ask(&server, [127, 0, 0, 1], "/y").status, 503);
    assert_eq!(ask(&server, [127, 0, 0, 1], "/index.html").status, 200);
}

#[test]
fn explain_shows_real_address_limits_auth_and_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        "apr1:$apr1$Cf.IpkwU$ote1UrulhdpWQcRFj91k0.\n",
    )
    .unwrap();
    let conf = "limit_req_zone $binary_remote_addr zone=per_ip:1m rate=2r/s;
limit_conn_zone $binary_remote_addr zone=conns:1m;
log_format j escape=json '{\"s\":$status}';
server {
    listen 127.0.0.1:8080;
    set_real_ip_from 10.0.0.0/8;
    real_ip_header X-Forwarded-For;
    location /admin/ {
        limit_req zone=per_ip burst=5;
        limit_conn conns 3;
        limit_conn_status 429;
        auth_basic Team;
        auth_basic_user_file users;
        access_log admin.log j;
        return 200 ok;
    }
}
";
    std::fs::write(dir.path().join("xps.conf"), conf).unwrap();
    let out = xps(
        dir.path(),
        &["--explain", "xps.conf", "/admin/x", "--from", "10.1.1.1"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_contains_all(
        &out.stdout,
        &[
            "real ip    10.1.1.1 is a listed balancer (set_real_ip_from): the client's address is read from `x-forwarded-for`",
            "limit      limit_req zone=per_ip: 2r/s per $binary_remote_addr, burst 5 waiting their turn; over it 503 with Retry-After",
            "limit      limit_conn conns: 3 at once per $binary_remote_addr; one more 429 with Retry-After",
            "auth       auth_basic \"Team\": 1 user in ",
            "log        access_log ",
            "admin.log (j)",
        ],
    );
    let out = xps(
        dir.path(),
        &["--explain", "xps.conf", "/admin/x", "--from", "192.0.2.1"],
    );
    assert!(
        out.stdout
            .contains("real ip    192.0.2.1 is not a listed balancer"),
        "{}",
        out.stdout
    );
}
