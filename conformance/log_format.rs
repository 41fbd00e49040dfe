//! `log_format` and `access_log PATH FORMAT`: lines with variables, JSON
//! lines that parse, `$request_id` the same in the log as in the
//! response, late values (status, bytes, time) for files, returns and
//! proxied requests, `access_log off` in a location, nginx's single-quoted
//! strings, and the check-time errors.

use crate::server::Server;
use crate::support::{assert_contains_all, xps};
use crate::upstream::{self, ok};
use std::time::{Duration, Instant};

fn lines(server: &Server, file: &str, n: usize) -> Vec<String> {
    let path = server.dir.join(file);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() >= n {
            return text.lines().map(str::to_string).collect();
        }
        assert!(Instant::now() < deadline, "{file} has {text:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn json_lines_and_custom_formats() {
    let up = upstream::start(|_| ok("from upstream"));
    let template = format!(
        r#"log_format json escape=json '{{"time":"$time_iso8601","ip":"$remote_addr",'
    '"request":"$request","status":$status,"bytes":$body_bytes_sent,'
    '"id":"$request_id","ua":"$http_user_agent","took":$request_time}}';
log_format short '$request_method $uri?$args $status "$http_referer"';
server {{
    listen 127.0.0.1:{{port}};
    root {{dir}}/site;
    access_log {{dir}}/access.json json;
    add_header X-Request-Id $request_id;
    location /app/ {{
        proxy_pass {};
    }}
    location /short/ {{
        access_log {{dir}}/short.log short;
        return 200 "s";
    }}
    location /quiet/ {{
        access_log off;
        return 200 "q";
    }}
    location /classic/ {{
        access_log {{dir}}/classic.log;
        return 200 "c";
    }}
}}
"#,
        up.addr()
    );
    let server = Server::start(&template, |dir| {
        std::fs::create_dir_all(dir.join("site")).unwrap();
        std::fs::write(dir.join("site/a.txt"), "hello").unwrap();
    });
    let file = server.get("/a.txt", &["User-Agent: say \"hi\"\\"]);
    let id = file.header("x-request-id").unwrap().to_string();
    let proxied = server.get("/app/x", &[]);
    assert_eq!(proxied.text(), "from upstream");
    assert_eq!(server.get("/missing", &[]).status, 404);
    server.get("/quiet/", &[]);
    assert_eq!(
        server.get("/short/?q=1", &["Referer: http://r/\"é"]).status,
        200
    );
    server.get("/classic/", &[]);
    let json = lines(&server, "access.json", 3);
    assert_eq!(json.len(), 3, "{json:?}");
    let parsed: Vec<serde_json::Value> = json
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(parsed[0]["id"], id.as_str());
    assert_eq!(parsed[0]["ua"], "say \"hi\"\\");
    assert_eq!(parsed[0]["status"], 200);
    assert_eq!(parsed[0]["bytes"], 5);
    assert_eq!(parsed[0]["request"], "GET /a.txt HTTP/1.1");
    assert_eq!(parsed[0]["ip"], "127.0.0.1");
    assert!(parsed[0]["took"].as_f64().unwrap() < 5.0);
    assert!(parsed[0]["time"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(parsed[1]["status"], 200);
    assert_eq!(parsed[1]["bytes"], "from upstream".len());
    assert_eq!(parsed[1]["id"].as_str().unwrap().len(), 32);
    assert_eq!(parsed[2]["status"], 404);
    assert_eq!(parsed[2]["ua"], "");
    // Default escaping: non-ASCII and control bytes as \xHH.
    assert_eq!(
        lines(&server, "short.log", 1),
        vec!["GET /short/?q=1 200 \"http://r/\\x22\\xC3\\xA9\""]
    );
    // No format: the combined line, as before.
    let classic = lines(&server, "classic.log", 1);
    assert!(classic[0].starts_with("127.0.0.1 - - ["), "{classic:?}");
    assert!(classic[0].contains("\"GET /classic/ HTTP/1.1\" 200 1 \"-\" \"-\" "));
}

#[test]
fn check_reports_format_mistakes_and_fmt_keeps_single_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let conf = "log_format main '$remote_addr \"$request\" $status';
log_format main '$status';
log_format combined '$status';
log_format bad escape=xml '$status';
server {
    listen 127.0.0.1:8080;
    access_log x.log mian;
    add_header X-Status $status;
    return 200;
}
";
    std::fs::write(dir.path().join("xps.conf"), conf).unwrap();
    let out = xps(dir.path(), &["--check", "xps.conf"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_contains_all(
        &out.stderr,
        &[
            "error: log format `main` is declared twice",
            "error: `combined` is the built-in format",
            "error: unknown escape `xml`",
            "error: unknown log format `mian`",
            "help: did you mean `main`?",
            "error: unknown variable `$status`",
            "`$status` is known in `log_format` only",
        ],
    );
    let conf = "log_format main escape=json '{\"s\":$status}';\n";
    std::fs::write(dir.path().join("f.conf"), conf).unwrap();
    let out = xps(dir.path(), &["--fmt", "f.conf"]);
    assert_eq!(out.stdout, conf, "{}", out.stderr);
}

#[test]
fn the_time_variables_and_escape_none() {
    let template =
        "log_format times escape=none '$time_local|$time_iso8601|$msec|$request|$http_x_raw';
server {
    listen 127.0.0.1:{port};
    access_log {dir}/times.log times;
    return 200 ok;
}
";
    let server = Server::start(template, |_| {});
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    server.get("/t?a=1", &["X-Raw: say \"hi\""]);
    let line = lines(&server, "times.log", 1).remove(0);
    let parts: Vec<&str> = line.split('|').collect();
    assert_eq!(parts.len(), 5, "{line}");
    // 01/Dec/2026:10:00:00 +0000
    assert!(
        parts[0].ends_with(" +0000") && parts[0].len() == 26,
        "{line}"
    );
    // 2026-12-01T10:00:00+00:00
    assert!(
        parts[1].ends_with("+00:00") && parts[1].contains('T') && parts[1].len() == 25,
        "{line}"
    );
    let msec: f64 = parts[2].parse().expect("seconds");
    assert!(parts[2].len() - parts[2].find('.').unwrap() == 4, "{line}");
    assert!((msec - before).abs() < 60.0, "{line}");
    assert_eq!(parts[3], "GET /t?a=1 HTTP/1.1");
    // escape=none: the value as sent.
    assert_eq!(parts[4], "say \"hi\"");
}
