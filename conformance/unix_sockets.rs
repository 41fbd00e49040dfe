//! Unix domain sockets. Upstreams on them: `proxy_pass unix:/path`,
//! nginx's `proxy_pass http://unix:/path:/uri`, `server unix:/path` in an
//! upstream group (with failover and kept-alive connections), the stream
//! proxy. Clients on them: `listen unix:/path` for HTTP and stream
//! servers, what such a client is to rules, logs and variables, the socket
//! file's life, reloads; and the check-time errors.

use crate::server::{Response, Server, read_response, request};
use crate::support::{assert_contains_all, xps, xps_in};
use crate::upstream;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
    assert_contains_all(
        &out.stderr,
        &[
            "error: the socket path `run/app.sock` is not absolute",
            "error: the socket path is 121 bytes; a Unix socket path is at most 107",
            "error: a URI part needs the `http://` form",
            "error: `/run/app.sock:` is not a socket path",
        ],
    );
}

#[test]
fn dump_quotes_socket_paths_so_it_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let conf = "upstream u {
    server \"unix:/run/my app.sock\";
}
server {
    listen 127.0.0.1:8080;
    listen \"unix:/tmp/my app.sock\";
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
        out.stdout.contains("listen \"unix:/tmp/my app.sock\";"),
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

/// Sends one request over a Unix socket connection and reads its answer.
fn unix_get(s: &mut UnixStream, path: &str, headers: &[&str]) -> Response {
    s.write_all(request("GET", path, headers).as_bytes())
        .expect("send");
    read_response(s, false).expect("an answer")
}

/// A new connection to xps's Unix socket. The server counts as started
/// once its first TCP address accepts, which may be before its Unix
/// sockets are bound: this waits for the socket, within a deadline.
fn unix_connect(path: &Path) -> UnixStream {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let s = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ),
                    "connect to {}: {e}",
                    path.display()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("connect to {}: {e}", path.display()),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn clients_on_a_unix_socket_are_served_and_are_unix_to_access_rules_logs_and_variables() {
    let template = "log_format who '$remote_addr|$remote_port|$server_port|$status';
server {
    listen 127.0.0.1:{port};
    listen unix:{dir}/xps.sock;
    root {dir}/site;
    access_log {dir}/access.log who;
    add_header X-Client \"$remote_addr|$remote_port|$server_port\";
    location /local/ {
        allow unix:;
        deny all;
    }
    location /tcp/ {
        deny unix:;
    }
}
";
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let server = Server::start(template, |dir| {
        for d in ["site/local", "site/tcp"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("site/a.txt"), "hello").unwrap();
        std::fs::write(dir.join("site/local/x.txt"), "local").unwrap();
        std::fs::write(dir.join("site/tcp/x.txt"), "tcp").unwrap();
        std::fs::write(dir.join("site/big.bin"), &big).unwrap();
    });
    let sock = server.dir.join("xps.sock");
    let mut s = unix_connect(&sock);
    // Two requests on one kept-alive connection.
    let r = unix_get(&mut s, "/a.txt", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert_eq!(r.header("x-client"), Some("unix:||"));
    let r = unix_get(&mut s, "/local/x.txt", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "local"));
    // A file large enough to go by sendfile arrives whole.
    let r = unix_get(&mut s, "/big.bin", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == big, "the file arrived changed");
    assert_eq!(unix_get(&mut s, "/tcp/x.txt", &[]).status, 403);
    // Over TCP the same rules see an address.
    assert_eq!(server.get("/local/x.txt", &[]).status, 403);
    let r = server.get("/tcp/x.txt", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "tcp"));
    let port = server.port.to_string();
    assert!(
        r.header("x-client")
            .is_some_and(|v| v.starts_with("127.0.0.1|") && v.ends_with(&format!("|{port}"))),
        "{:?}",
        r.header("x-client")
    );
    let log = server.dir.join("access.log");
    server.wait_for(Duration::from_secs(10), "six log lines", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 6)
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Empty values are `-` in a log line, as in nginx.
    assert_eq!(
        lines[..4],
        [
            "unix:|-|-|200",
            "unix:|-|-|200",
            "unix:|-|-|200",
            "unix:|-|-|403"
        ],
        "{text}"
    );
}

#[test]
fn a_proxy_in_front_on_a_unix_socket_passes_the_client_address() {
    let template = "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
server {
    listen 127.0.0.1:{port};
    listen unix:{dir}/xps.sock;
    listen unix:{dir}/pp.sock proxy_protocol;
    add_header X-Client $remote_addr;
    location /header/ {
        set_real_ip_from unix:;
        real_ip_header X-Forwarded-For;
        limit_req zone=one;
        return 200 \"$remote_addr|$remote_port\";
    }
    location /plain/ {
        limit_req zone=one;
        return 200 \"$remote_addr\";
    }
    location /pp/ {
        set_real_ip_from unix:;
        real_ip_header proxy_protocol;
        return 200 \"$remote_addr\";
    }
}
";
    let server = Server::start(template, |_| {});
    let sock = server.dir.join("xps.sock");
    let mut s = unix_connect(&sock);
    let xff = |ip: &str| format!("X-Forwarded-For: {ip}");
    let r = unix_get(&mut s, "/header/", &[&xff("203.0.113.7")]);
    // A header gives no port: `$remote_port` stays empty, as in nginx.
    assert_eq!((r.status, r.text().as_str()), (200, "203.0.113.7|"));
    // Limits count the real client: another one passes, the same one
    // again is over its rate.
    let r = unix_get(&mut s, "/header/", &[&xff("203.0.113.8")]);
    assert_eq!((r.status, r.text().as_str()), (200, "203.0.113.8|"));
    assert_eq!(
        unix_get(&mut s, "/header/", &[&xff("203.0.113.7")]).status,
        503
    );
    // Without set_real_ip_from, every client of the socket is `unix:`,
    // one key for the limits (as in nginx).
    let r = unix_get(&mut s, "/plain/", &[&xff("198.51.100.1")]);
    assert_eq!((r.status, r.text().as_str()), (200, "unix:"));
    assert_eq!(
        unix_get(&mut s, "/plain/", &[&xff("198.51.100.2")]).status,
        503
    );
    // A PROXY protocol header on a Unix socket (HAProxy's `send-proxy`).
    let mut p = unix_connect(&server.dir.join("pp.sock"));
    p.write_all(b"PROXY TCP4 192.0.2.44 192.0.2.1 40000 80\r\n")
        .unwrap();
    let r = unix_get(&mut p, "/pp/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "192.0.2.44"));
}

#[test]
fn a_stream_server_listens_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let app = sock(dir.path(), "app.sock");
    unix_upstream(&app);
    let template = format!(
        "stream {{
    server {{
        listen 127.0.0.1:{{port}};
        listen unix:{{dir}}/tunnel.sock;
        proxy_pass unix:{};
    }}
}}
",
        app.display()
    );
    let server = Server::start(&template, |_| {});
    let mut s = unix_connect(&server.dir.join("tunnel.sock"));
    let r = unix_get(&mut s, "/through", &["Host: tunnel"]);
    assert_eq!(r.text(), "GET /through HTTP/1.1 @ tunnel");
}

fn unix_site(extra: &str) -> String {
    format!(
        "server {{
    listen 127.0.0.1:{{port}};
    listen unix:{{dir}}/xps.sock;
{extra}    return 200 \"up\";
}}
"
    )
}

#[test]
fn a_stale_socket_file_is_replaced_and_the_file_goes_when_the_server_stops() {
    let mut server = Server::start(&unix_site(""), |dir| {
        // Left by a process that did not exit cleanly: a socket file
        // nothing listens on.
        drop(UnixListener::bind(dir.join("xps.sock")).unwrap());
    });
    let sock = server.dir.join("xps.sock");
    assert_eq!(unix_get(&mut unix_connect(&sock), "/", &[]).text(), "up");
    // Any user may connect (a proxy in front runs as another), as nginx
    // makes its sockets.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666, "{mode:o}");
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!sock.exists(), "the socket file stayed");
}

#[test]
fn a_socket_path_in_use_or_not_a_socket_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let conf = |path: &Path| {
        format!(
            "server {{\n    listen 127.0.0.1:{};\n    listen unix:{};\n    return 200;\n}}\n",
            crate::server::free_port(),
            path.display()
        )
    };
    let live = dir.path().join("live.sock");
    let _other = UnixListener::bind(&live).unwrap();
    std::fs::write(dir.path().join("a.conf"), conf(&live)).unwrap();
    let out = xps_in(dir.path(), &["a.conf"], Duration::from_secs(10));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "unix:{} is already in use (another server is listening there)",
            live.display()
        )),
        "{}",
        out.stderr
    );
    // A listener too busy to accept (its queue full) is in use too, and
    // finding that out does not wait for it.
    let busy = dir.path().join("busy.sock");
    let _held = full_socket(&busy);
    std::fs::write(dir.path().join("c.conf"), conf(&busy)).unwrap();
    let out = xps_in(dir.path(), &["c.conf"], Duration::from_secs(10));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("unix:{} is already in use", busy.display())),
        "{}",
        out.stderr
    );
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    std::fs::write(dir.path().join("b.conf"), conf(&file)).unwrap();
    let out = xps_in(dir.path(), &["b.conf"], Duration::from_secs(10));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the path exists and is not a socket (xps will not replace it)"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn reloads_add_and_remove_unix_sockets_and_a_socket_in_use_rejects_the_whole_reload() {
    let server = Server::start(&unix_site(""), |_| {});
    let first = server.dir.join("xps.sock");
    let second = server.dir.join("b.sock");
    let conf = server.dir.join("xps.conf");
    let with_second = unix_site("    listen unix:{dir}/b.sock;\n");
    std::fs::write(
        &conf,
        server
            .render(&with_second)
            .replace("{dir}", &server.dir.display().to_string()),
    )
    .unwrap();
    // The report comes after the socket is bound and handed to the workers.
    let added = format!("+ listen unix:{}", second.display());
    server.wait_for(Duration::from_secs(10), "the reload report", || {
        server.stderr().contains(&added)
    });
    assert_eq!(unix_get(&mut unix_connect(&second), "/", &[]).text(), "up");
    // Removed: its file goes, so a client is refused at once.
    std::fs::write(
        &conf,
        server
            .render(&unix_site(""))
            .replace("{dir}", &server.dir.display().to_string()),
    )
    .unwrap();
    server.wait_for(
        Duration::from_secs(10),
        "the removed socket's file to go",
        || !second.exists(),
    );
    assert_eq!(unix_get(&mut unix_connect(&first), "/", &[]).text(), "up");
    // A socket another process listens on: nothing of the reload applies,
    // not even its new TCP address.
    let taken = server.dir.join("taken.sock");
    let _other = UnixListener::bind(&taken).unwrap();
    let port3 = crate::server::free_port();
    let bad = unix_site(&format!(
        "    listen 127.0.0.1:{port3};\n    listen unix:{{dir}}/taken.sock;\n"
    ))
    .replace("\"up\"", "\"changed\"");
    std::fs::write(
        &conf,
        bad.replace("{port}", &server.port.to_string())
            .replace("{dir}", &server.dir.display().to_string()),
    )
    .unwrap();
    server.wait_for(Duration::from_secs(10), "the rejection", || {
        server.stderr().contains("rejected")
    });
    assert!(
        server
            .stderr()
            .contains(&format!("unix:{} is already in use", taken.display())),
        "{}",
        server.stderr()
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port3)).is_err());
    assert_eq!(unix_get(&mut unix_connect(&first), "/", &[]).text(), "up");
    assert!(taken.exists(), "the other process's socket was removed");
}

#[test]
fn check_dump_and_explain_speak_of_unix_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "server {{
    listen unix:{dir}/xps.sock proxy_protocol;
    server_name app.test;
    location /api/ {{
        allow unix:;
        deny all;
        return 200;
    }}
}}
",
        dir = dir.path().display()
    );
    std::fs::write(dir.path().join("xps.conf"), conf).unwrap();
    let out = xps(dir.path(), &["--check", "xps.conf"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = xps(dir.path(), &["--dump", "xps.conf"]);
    let listen = format!(
        "listen unix:{}/xps.sock proxy_protocol;",
        dir.path().display()
    );
    assert!(out.stdout.contains(&listen), "{}", out.stdout);
    assert!(out.stdout.contains("allow unix:;"), "{}", out.stdout);
    std::fs::write(dir.path().join("dumped.conf"), &out.stdout).unwrap();
    let again = xps(dir.path(), &["--check", "dumped.conf"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let url = format!("http://unix:{}/xps.sock:/api/x", dir.path().display());
    let out = xps(dir.path(), &["--explain", "xps.conf", &url]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_contains_all(
        &out.stdout,
        &[
            "request    GET /api/x from unix:",
            &format!("listener   unix:{}/xps.sock", dir.path().display()),
            "access     `allow unix:`",
        ],
    );
    let out = xps(
        dir.path(),
        &["--explain", "xps.conf", "http://unix:/elsewhere.sock:/"],
    );
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(
        out.stderr.contains("no listener for unix:/elsewhere.sock"),
        "{}",
        out.stderr
    );
}

#[test]
fn only_its_own_socket_file_is_removed_and_sigquit_removes_it_too() {
    // A socket another process put at the path after xps made its own
    // stays when xps stops.
    let mut server = Server::start(&unix_site(""), |_| {});
    let sock = server.dir.join("xps.sock");
    drop(unix_connect(&sock));
    std::fs::remove_file(&sock).unwrap();
    let _theirs = UnixListener::bind(&sock).unwrap();
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        UnixStream::connect(&sock).is_ok(),
        "the other socket was removed"
    );
    // SIGQUIT exits at once, and still leaves no file behind.
    let mut server = Server::start(&unix_site(""), |_| {});
    let sock = server.dir.join("xps.sock");
    drop(unix_connect(&sock));
    server.signal("QUIT");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!sock.exists(), "the socket file stayed");
}

#[test]
fn a_unix_client_proxied_upstream_is_unix_in_x_forwarded_for_and_to_stream_rules() {
    let up = upstream::start(|r| {
        upstream::ok(&format!(
            "{:?} {:?}",
            r.header("x-forwarded-for"),
            r.header("x-real-ip")
        ))
    });
    let template = format!(
        "server {{
    listen 127.0.0.1:{{port}};
    listen unix:{{dir}}/xps.sock;
    location / {{
        proxy_pass {};
    }}
}}
stream {{
    server {{
        listen 127.0.0.1:{{port2}};
        listen unix:{{dir}}/open.sock;
        proxy_pass {};
    }}
    server {{
        listen unix:{{dir}}/closed.sock;
        deny unix:;
        proxy_pass {};
    }}
}}
",
        up.addr(),
        up.addr(),
        up.addr()
    );
    let server = Server::start(&template, |_| {});
    let mut s = unix_connect(&server.dir.join("xps.sock"));
    let r = unix_get(&mut s, "/", &["X-Forwarded-For: 203.0.113.1"]);
    assert_eq!(
        r.text(),
        "Some(\"203.0.113.1, unix:\") Some(\"unix:\")",
        "as nginx sends for a Unix socket client"
    );
    // A stream server lets a Unix client through unless a rule denies it.
    let mut open = unix_connect(&server.dir.join("open.sock"));
    assert_eq!(unix_get(&mut open, "/", &[]).status, 200);
    // A denied one is closed at once: the request may not even be taken
    // (a broken pipe), and nothing comes back.
    let mut closed = unix_connect(&server.dir.join("closed.sock"));
    let _ = closed.write_all(request("GET", "/", &[]).as_bytes());
    let mut rest = Vec::new();
    let _ = closed.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}
