//! `expires`: `Cache-Control` and `Expires` on the answers nginx sets them
//! on, for files, `return`s and proxied responses (whose own are
//! replaced); not on errors; `off` inside turns it off.

use crate::server::Server;
use crate::upstream::{self, Answer};
use std::time::{Duration, SystemTime};

fn date(v: Option<&str>) -> SystemTime {
    httpdate::parse_http_date(v.expect("a date")).expect("an HTTP date")
}

#[test]
fn expires_sets_cache_control_and_expires() {
    let up = upstream::start(|_| {
        Answer::Bytes(
            b"HTTP/1.1 200 OK\r\nCache-Control: private\r\nExpires: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nup"
                .to_vec(),
        )
    });
    let template = format!(
        "server {{
    listen 127.0.0.1:{{port}};
    root {{dir}}/site;
    expires 1h;
    location /max/ {{
        expires max;
    }}
    location /epoch/ {{
        expires epoch;
    }}
    location /off/ {{
        expires off;
    }}
    location /moved {{
        return 302 /a.txt;
    }}
    location /api/ {{
        proxy_pass {};
    }}
}}
",
        up.addr()
    );
    let server = Server::start(&template, |dir| {
        for d in ["site", "site/max", "site/epoch", "site/off"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        for f in [
            "site/a.txt",
            "site/max/a.txt",
            "site/epoch/a.txt",
            "site/off/a.txt",
        ] {
            std::fs::write(dir.join(f), "hello").expect("write");
        }
    });
    let r = server.get("/a.txt", &[]);
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    let ahead = date(r.header("expires"))
        .duration_since(date(r.header("date")))
        .expect("later");
    assert!(
        ahead >= Duration::from_secs(3599) && ahead <= Duration::from_secs(3601),
        "{ahead:?}"
    );
    let r = server.get("/max/a.txt", &[]);
    assert_eq!(r.header("cache-control"), Some("max-age=315360000"));
    assert_eq!(r.header("expires"), Some("Thu, 31 Dec 2037 23:55:55 GMT"));
    let r = server.get("/epoch/a.txt", &[]);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("expires"), Some("Thu, 01 Jan 1970 00:00:01 GMT"));
    let r = server.get("/off/a.txt", &[]);
    assert_eq!(r.header("cache-control"), None);
    assert_eq!(r.header("expires"), None);
    // A redirect (3xx) gets it; an error does not.
    let r = server.get("/moved", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    let r = server.get("/missing.txt", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("cache-control"), None);
    // A proxied answer's own are replaced.
    let r = server.get("/api/x", &[]);
    assert_eq!(r.text(), "up");
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    assert_eq!(
        r.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("expires"))
            .count(),
        1
    );
    assert_ne!(r.header("expires"), Some("Mon, 01 Jan 2024 00:00:00 GMT"));
}

#[test]
fn a_bad_expires_value_is_a_check_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("xps.conf"),
        "server {\n    listen 8080;\n    expires forever;\n}\n",
    )
    .expect("write");
    let out = crate::support::xps(dir.path(), &["--check", "xps.conf"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("invalid `expires` value `forever`"),
        "{}",
        out.stderr
    );
}
