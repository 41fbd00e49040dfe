//! Hot reload through a real running server: every way editors save, an
//! invalid save that keeps the old routes, listen addresses that come and
//! go, SIGHUP, and the guarantees for requests in flight and kept-alive
//! connections.

use crate::server::{Server, read_response, request};
use std::io::{Read, Write};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn config(answer: &str) -> String {
    format!(
        "server {{\n    listen 127.0.0.1:{{port}};\n    root {{dir}};\n    location /v {{\n        return 200 \"{answer}\";\n    }}\n}}\n"
    )
}

fn body(server: &Server, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(server.addr()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request("GET", path, &[]).as_bytes()).ok()?;
    read_response(&mut s, false).map(|r| r.text())
}

fn expect_answer(server: &Server, answer: &str) {
    server.wait_for(WAIT, &format!("the route to answer {answer:?}"), || {
        body(server, "/v").as_deref() == Some(answer)
    });
}

#[test]
fn an_in_place_write_applies() {
    let server = Server::start(&config("one"), |_| {});
    assert_eq!(body(&server, "/v").as_deref(), Some("one"));
    std::fs::write(server.dir.join("xps.conf"), server.render(&config("two"))).expect("write");
    expect_answer(&server, "two");
    server.wait_for(WAIT, "the reload report", || {
        server.stderr().contains("generation 2")
    });
    assert!(
        server.stderr().contains("~ /v return 200 one → 200 two"),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_save_by_rename_applies() {
    let server = Server::start(&config("one"), |_| {});
    let tmp = server.dir.join(".xps.conf.swp");
    std::fs::write(&tmp, server.render(&config("two"))).expect("write");
    std::fs::rename(&tmp, server.dir.join("xps.conf")).expect("rename");
    expect_answer(&server, "two");
}

#[test]
fn delete_and_recreate_applies() {
    let server = Server::start(&config("one"), |_| {});
    std::fs::remove_file(server.dir.join("xps.conf")).expect("rm");
    std::fs::write(server.dir.join("xps.conf"), server.render(&config("two"))).expect("write");
    expect_answer(&server, "two");
    assert!(!server.stderr().contains("failed"), "{}", server.stderr());
}

#[test]
fn a_kubernetes_style_symlink_swap_applies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::create_dir(d.join("..v1")).expect("mkdir");
    std::os::unix::fs::symlink("..v1", d.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/xps.conf", d.join("xps.conf")).expect("symlink");
    // The server writes its config through the symlink.
    let server = Server::start_in(d, "xps.conf", &config("one"));
    assert_eq!(body(&server, "/v").as_deref(), Some("one"));
    std::fs::create_dir(d.join("..v2")).expect("mkdir");
    std::fs::write(d.join("..v2/xps.conf"), server.render(&config("two"))).expect("write");
    std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).expect("symlink");
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).expect("swap");
    expect_answer(&server, "two");
}

#[test]
fn included_files_and_new_files_of_a_glob_apply() {
    let template =
        "server {\n    listen 127.0.0.1:{port};\n    root {dir};\n    include sites/*.conf;\n}\n";
    let server = Server::start(template, |dir| {
        std::fs::create_dir(dir.join("sites")).expect("mkdir");
        std::fs::write(
            dir.join("sites/a.conf"),
            "location /v { return 200 \"one\"; }\n",
        )
        .expect("write");
    });
    assert_eq!(body(&server, "/v").as_deref(), Some("one"));
    std::fs::write(
        server.dir.join("sites/a.conf"),
        "location /v { return 200 \"two\"; }\n",
    )
    .expect("write");
    expect_answer(&server, "two");
    std::fs::write(
        server.dir.join("sites/b.conf"),
        "location /w { return 200 \"new file\"; }\n",
    )
    .expect("write");
    server.wait_for(WAIT, "the new included file", || {
        body(&server, "/w").as_deref() == Some("new file")
    });
    // A hidden file the glob does not match changes nothing.
    std::fs::write(server.dir.join("sites/.c.conf"), "this would not parse").expect("write");
    std::fs::write(
        server.dir.join("sites/a.conf"),
        "location /v { return 200 \"three\"; }\n",
    )
    .expect("write");
    expect_answer(&server, "three");
}

#[test]
fn an_invalid_save_keeps_the_old_routes_then_a_fix_applies() {
    let server = Server::start(&config("one"), |_| {});
    let path = server.dir.join("xps.conf");
    std::fs::write(&path, server.render(&config("two")).replace("root", "rot")).expect("write");
    server.wait_for(WAIT, "the failure report", || {
        server.stderr().contains("kept generation 1")
    });
    let err = server.stderr();
    assert!(err.contains("unknown directive `rot`"), "{err}");
    assert!(err.contains("--> xps.conf:3:5"), "{err}");
    assert_eq!(body(&server, "/v").as_deref(), Some("one"));
    std::fs::write(&path, server.render(&config("three"))).expect("write");
    expect_answer(&server, "three");
    // The log line is written by the reload thread, not ordered with the
    // first request the new table answers.
    server.wait_for(WAIT, "the reload to be logged", || {
        server.stderr().contains("generation 2")
    });
}

#[test]
fn new_listen_addresses_accept_and_removed_ones_refuse() {
    let two = "server {\n    listen 127.0.0.1:{port};\n    listen 127.0.0.1:{port2};\n    root {dir};\n    location /v { return 200 \"two\"; }\n}\n";
    let only_second = "server {\n    listen 127.0.0.1:{port2};\n    root {dir};\n    location /v { return 200 \"second\"; }\n}\n";
    let server = Server::start(&config("one"), |_| {});
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port2)).is_err());
    std::fs::write(server.dir.join("xps.conf"), server.render(two)).expect("write");
    server.wait_for(WAIT, "the new port to accept", || {
        std::net::TcpStream::connect(("127.0.0.1", server.port2)).is_ok()
    });
    std::fs::write(server.dir.join("xps.conf"), server.render(only_second)).expect("write");
    server.wait_for(WAIT, "the old port to refuse", || {
        std::net::TcpStream::connect(server.addr()).is_err()
    });
    let mut s = crate::server::connect(std::net::SocketAddr::from(([127, 0, 0, 1], server.port2)));
    s.write_all(request("GET", "/v", &[]).as_bytes())
        .expect("send");
    assert_eq!(
        read_response(&mut s, false).expect("answer").text(),
        "second"
    );
}

#[test]
fn a_listen_address_that_cannot_be_bound_rejects_the_whole_reload() {
    let server = Server::start(&config("one"), |_| {});
    let (_taken, bound) = crate::server::listener();
    let port = bound.port();
    let text = server.render(&config("two")).replace(
        "    root",
        &format!("    listen 127.0.0.1:{port};\n    root"),
    );
    std::fs::write(server.dir.join("xps.conf"), text).expect("write");
    server.wait_for(WAIT, "the rejection", || {
        server.stderr().contains("rejected")
    });
    assert!(
        server.stderr().contains("already in use"),
        "{}",
        server.stderr()
    );
    assert_eq!(
        body(&server, "/v").as_deref(),
        Some("one"),
        "a rejected reload changed routes"
    );
}

#[test]
fn sighup_reloads_even_when_watching_is_off() {
    let server = Server::start(&format!("watch off;\n{}", config("one")), |_| {});
    std::fs::write(
        server.dir.join("xps.conf"),
        server.render(&format!("watch off;\n{}", config("two"))),
    )
    .expect("write");
    server.signal("HUP");
    expect_answer(&server, "two");
}

#[test]
fn a_request_in_flight_finishes_with_the_old_route() {
    let big_a: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let template = |root: &str| {
        format!(
            "server {{\n    listen 127.0.0.1:{{port}};\n    root {{dir}}/{root};\n    location /v {{ return 200 \"{root}\"; }}\n}}\n"
        )
    };
    let server = Server::start(&template("a"), |dir| {
        std::fs::create_dir(dir.join("a")).expect("mkdir");
        std::fs::create_dir(dir.join("b")).expect("mkdir");
        std::fs::write(
            dir.join("a/big.bin"),
            (0..16u32 << 20)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        )
        .expect("write");
        std::fs::write(dir.join("b/big.bin"), "other").expect("write");
    });
    let mut s = server.connect();
    s.write_all(request("GET", "/big.bin", &[]).as_bytes())
        .expect("send");
    let mut first = [0u8; 4096];
    s.read_exact(&mut first).expect("the download starts");
    std::fs::write(server.dir.join("xps.conf"), server.render(&template("b"))).expect("write");
    expect_answer(&server, "b");
    let head_end = crate::server::head_len(&first).expect("head");
    let mut got = first[head_end..].to_vec();
    let mut rest = vec![0u8; big_a.len() - got.len()];
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.read_exact(&mut rest).expect("the rest of the body");
    got.extend_from_slice(&rest);
    assert!(
        got == big_a,
        "the download in flight changed under the reload"
    );
}

#[test]
fn a_kept_alive_connection_sees_the_new_route_without_reconnecting() {
    let server = Server::start(&config("one"), |_| {});
    let mut s = server.connect();
    let get = |s: &mut std::net::TcpStream| {
        s.write_all(request("GET", "/v", &[]).as_bytes())
            .expect("send on the same connection");
        read_response(s, false)
            .expect("an answer on the same connection")
            .text()
    };
    assert_eq!(get(&mut s), "one");
    std::fs::write(server.dir.join("xps.conf"), server.render(&config("two"))).expect("write");
    server.wait_for(WAIT, "the new route on the kept-alive connection", || {
        get(&mut s) == "two"
    });
}

#[test]
fn an_idle_keep_alive_connection_survives_a_reload() {
    let server = Server::start(&config("one"), |_| {});
    let mut s = server.connect();
    s.write_all(request("GET", "/v", &[]).as_bytes())
        .expect("send");
    assert_eq!(read_response(&mut s, false).expect("answer").text(), "one");
    std::fs::write(server.dir.join("xps.conf"), server.render(&config("two"))).expect("write");
    expect_answer(&server, "two");
    s.write_all(request("GET", "/v", &[]).as_bytes())
        .expect("the idle connection is still open");
    assert_eq!(read_response(&mut s, false).expect("answer").text(), "two");
}

#[test]
fn the_reload_report_shows_a_member_weight_change() {
    let template = "upstream app {\n    server 127.0.0.1:9001;\n    server 127.0.0.1:9002;\n}\nserver {\n    listen 127.0.0.1:{port};\n    location / { proxy_pass app; }\n}\n";
    let server = Server::start(template, |_| {});
    let changed = template.replace("127.0.0.1:9002;", "127.0.0.1:9002 weight=3 backup;");
    std::fs::write(server.dir.join("xps.conf"), server.render(&changed)).expect("write");
    server.wait_for(WAIT, "the reload report", || {
        server.stderr().contains("generation 2")
    });
    assert!(
        server.stderr().contains(
            "~ upstream app: 127.0.0.1:9001, 127.0.0.1:9002 (round_robin, keepalive 32) → 127.0.0.1:9001, 127.0.0.1:9002 weight=3 backup (round_robin, keepalive 32)"
        ),
        "{}",
        server.stderr()
    );
}
