//! Variables in `return`, `add_header` and `proxy_set_header`, through
//! the real binary: each one's value, `$$`, a request id shared by the
//! header sent upstream and the one sent back, and values with no
//! variable left as they are.

use crate::server::Server;
use crate::upstream::{self, ok};

#[test]
fn return_expands_the_request_s_variables() {
    let template = "server {
    listen 127.0.0.1:{port};
    server_name site.test;
    location /go {
        return 301 https://$host$request_uri;
    }
    location /all {
        return 200 \"m=$request_method u=$uri a=$args q=$query_string s=$scheme p=$server_port n=$server_name h=$http_host t=$http_x_token r=$remote_addr $$5\";
    }
}
";
    let server = Server::start(template, |_| {});
    let r = server.raw(b"GET /go/x%20y?b=1 HTTP/1.1\r\nHost: Site.Test:8080\r\n\r\n");
    assert_eq!(r.status, 301);
    // $host: lower case, without the port; $request_uri: as sent.
    assert_eq!(r.header("location"), Some("https://site.test/go/x%20y?b=1"));
    let r = server.raw(b"GET /all/./p?k=v HTTP/1.1\r\nHost: site.test:99\r\nX-Token: abc\r\n\r\n");
    assert_eq!(
        r.text(),
        format!(
            "m=GET u=/all/p a=k=v q=k=v s=http p={} n=site.test h=site.test:99 t=abc r=127.0.0.1 $5",
            server.port
        )
    );
    // A header the request lacks is empty.
    let r = server.raw(b"GET /all HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.text().contains(" t= "), "{}", r.text());
}

#[test]
fn headers_up_and_back_share_one_request_id() {
    let up = upstream::start(|_| ok("fine"));
    let template = format!(
        "server {{
    listen 127.0.0.1:{{port}};
    add_header X-Request-Id $request_id;
    add_header X-Static plain;
    location / {{
        proxy_pass {};
        proxy_set_header X-Request-Id $request_id;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Original-Host $http_host;
    }}
}}
",
        up.addr()
    );
    let server = Server::start(&template, |_| {});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = server.raw(b"GET /a HTTP/1.1\r\nHost: h.test\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-static"), Some("plain"));
        let id = r.header("x-request-id").expect("an id").to_string();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "a new id for every request");
    let received = up.received.lock().expect("lock");
    for (req, id) in received.iter().zip(&ids) {
        assert!(
            req.head.contains(&format!("X-Request-Id: {id}\r\n")),
            "{}",
            req.head
        );
        assert!(
            req.head.contains("X-Real-IP: 127.0.0.1\r\n"),
            "{}",
            req.head
        );
        assert!(
            req.head
                .contains("X-Forwarded-For: 10.1.1.1, 127.0.0.1\r\n"),
            "{}",
            req.head
        );
        assert!(
            req.head.contains("X-Original-Host: h.test\r\n"),
            "{}",
            req.head
        );
    }
}

#[test]
fn try_files_reads_request_headers_through_variables() {
    let template = "server {
    listen 127.0.0.1:{port};
    root {dir}/site;
    location / {
        try_files $uri /tenants/$http_x_tenant.html =404;
    }
}
";
    let server = Server::start(template, |dir| {
        std::fs::create_dir_all(dir.join("site/tenants")).expect("mkdir");
        std::fs::write(dir.join("site/tenants/acme.html"), "acme's page").expect("write");
    });
    let r = server.raw(b"GET /anything HTTP/1.1\r\nHost: x\r\nX-Tenant: acme\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "acme's page");
    let r = server.raw(b"GET /anything HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 404);
}
