//! Upstreams on Unix domain sockets: `proxy_pass unix:/path`, nginx's
//! `proxy_pass http://unix:/path:/uri`, `server unix:/path` in an upstream
//! group (with failover and kept-alive connections), the stream proxy,
//! and the check-time errors.

use crate::server::Server;
use crate::support::xps;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An HTTP/1.1 upstream on a Unix socket that answers each request with
/// its request line and Host; counts its connections.
fn unix_upstream(path: &Path) -> Arc<AtomicUsize> {
    let listener = UnixListener::bind(path).expect("bind the socket");
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut host = String::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if h.to_ascii_lowercase().starts_with("host:") {
                            host = h[5..].trim().to_string();
                        }
                    }
                    let body = format!("{} @ {host}", line.trim_end());
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    connections
}

fn sock(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[test]
fn http_proxying_to_unix_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let app = sock(dir.path(), "app.sock");
    let connections = unix_upstream(&app);
    let missing = sock(dir.path(), "gone.sock");
    let template = format!(
        "upstream pool {{
    server unix:{missing};
    server unix:{app};
}}
server {{
    listen 127.0.0.1:{{port}};
    location /api/ {{
        proxy_pass http://unix:{app}:/v1/;
    }}
    location /pool/ {{
        proxy_pass pool;
    }}
    location / {{
        proxy_pass unix:{app};
    }}
}}
",
        missing = missing.display(),
        app = app.display()
    );
    let server = Server::start(&template, |_| {});
    assert_eq!(
        server.get("/x?y=1", &[]).text(),
        "GET /x?y=1 HTTP/1.1 @ localhost"
    );
    // The prefix is replaced by the URI, as for HOST:PORT.
    assert_eq!(
        server.get("/api/users", &[]).text(),
        "GET /v1/users HTTP/1.1 @ localhost"
    );
    // A socket nobody listens on fails over to the next member.
    for _ in 0..4 {
        let r = server.get("/pool/z", &[]);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "GET /pool/z HTTP/1.1 @ localhost")
        );
    }
    // Kept-alive connections are reused over Unix sockets too: six
    // requests, one after the other, on far fewer connections.
    assert!(
        connections.load(Ordering::SeqCst) < 6,
        "{}",
        connections.load(Ordering::SeqCst)
    );
}

#[test]
fn the_stream_proxy_relays_to_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let app = sock(dir.path(), "tcp.sock");
    unix_upstream(&app);
    let template = format!(
        "stream {{
    server {{
        listen 127.0.0.1:{{port}};
        proxy_pass unix:{};
    }}
}}
",
        app.display()
    );
    let server = Server::start(&template, |_| {});
    let mut s = server.connect();
    s.write_all(b"GET /raw HTTP/1.1\r\nHost: tcp\r\n\r\n")
        .unwrap();
    let mut got = [0u8; 200];
    let mut n = 0;
    while !String::from_utf8_lossy(&got[..n]).ends_with("@ tcp") {
        let m = s.read(&mut got[n..]).unwrap();
        assert!(m > 0, "{}", String::from_utf8_lossy(&got[..n]));
        n += m;
    }
    assert!(String::from_utf8_lossy(&got[..n]).contains("GET /raw HTTP/1.1 @ tcp"));
}

#[test]
fn check_reports_bad_socket_paths() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("/{}", "x".repeat(120));
    let conf = format!(
        "upstream u {{
    server unix:run/app.sock;
}}
server {{
    listen 127.0.0.1:8080;
    location / {{
        proxy_pass unix:{long};
    }}
    location /a/ {{
        proxy_pass unix:/run/app.sock:/api/;
    }}
    location /b/ {{
        proxy_pass http://unix:/run/app.sock:;
    }}
}}
"
    );
    std::fs::write(dir.path().join("xps.conf"), conf).unwrap();
    let out = xps(dir.path(), &["--check", "xps.conf"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    for expected in [
        "error: the socket path `run/app.sock` is not absolute",
        "error: the socket path is 121 bytes; a Unix socket path is at most 107",
        "error: a URI part needs the `http://` form",
        "error: `/run/app.sock:` is not a socket path",
    ] {
        assert!(
            out.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn dump_quotes_socket_paths_so_it_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let conf = "upstream u {
    server \"unix:/run/my app.sock\";
}
server {
    listen 127.0.0.1:8080;
    location / {
        proxy_pass \"http://unix:/run/my app.sock:/v1/\";
    }
    location /u/ {
        proxy_pass u;
    }
}
";
    std::fs::write(dir.path().join("xps.conf"), conf).unwrap();
    let out = xps(dir.path(), &["--dump", "xps.conf"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("server \"unix:/run/my app.sock\" weight=1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("proxy_pass \"http://unix:/run/my app.sock:/v1/\";"),
        "{}",
        out.stdout
    );
    std::fs::write(dir.path().join("dumped.conf"), &out.stdout).unwrap();
    let again = xps(dir.path(), &["--check", "dumped.conf"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
}

/// A Unix socket that listens and never accepts, its queue filled: a
/// connect to it is refused at once with `EAGAIN`.
fn full_socket(path: &Path) -> Vec<std::os::fd::OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    let addr = UnixAddr::new(path).unwrap();
    bind(fd.as_raw_fd(), &addr).unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let mut held = vec![fd];
    // Fill the queue: non-blocking connects until one is refused.
    for _ in 0..16 {
        let c = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK,
            None,
        )
        .unwrap();
        let refused = connect(c.as_raw_fd(), &addr).is_err();
        held.push(c);
        if refused {
            return held;
        }
    }
    panic!("the queue never filled");
}

#[test]
fn a_member_whose_queue_is_full_is_busy_not_down() {
    let dir = tempfile::tempdir().unwrap();
    let full = sock(dir.path(), "full.sock");
    let _held = full_socket(&full);
    let app = sock(dir.path(), "app.sock");
    unix_upstream(&app);
    let template = format!(
        "upstream pool {{
    server unix:{full};
    server unix:{app};
}}
server {{
    listen 127.0.0.1:{{port}};
    location / {{
        proxy_pass pool;
    }}
    location = /metrics {{
        metrics;
    }}
}}
",
        full = full.display(),
        app = app.display()
    );
    let server = Server::start(&template, |_| {});
    for _ in 0..4 {
        assert_eq!(server.get("/x", &[]).status, 200);
    }
    server.wait_for(std::time::Duration::from_secs(10), "the warning", || {
        server
            .stderr()
            .contains("listen queue full; trying the next member")
    });
    // Tried, refused, and never counted as a failure.
    let m: serde_json::Value =
        serde_json::from_str(&server.get("/metrics?format=json", &[]).text()).unwrap();
    let members = m["upstreams"].as_array().unwrap();
    let busy = members
        .iter()
        .find(|u| u["peer"].as_str().unwrap().contains("full.sock"))
        .unwrap();
    assert_eq!(
        (busy["failures"].as_u64(), busy["up"].as_bool()),
        (Some(0), Some(true)),
        "{m}"
    );
}
