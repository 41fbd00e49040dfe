//! Live figures: the eXpServer dashboard's JSON (fields, types, counts
//! after a known sequence), Prometheus text (parsed back, and promtool
//! where it is installed), counters across reloads, access rules, the
//! JSON config's `metrics` route, and the page in a real Chromium.

use crate::server::{Server, request};
use crate::upstream::{self, closed_port, ok};
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

fn site(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("site")).expect("mkdir");
    std::fs::write(dir.join("site/a.txt"), "hello\n").expect("write");
}

/// One worker (so each response is counted before the next request is
/// read), a static root, a redirect, a proxy, a dead upstream and the
/// metrics location.
fn server(up: &str, dead: u16, extra: &str) -> Server {
    let template = format!(
        "workers 1;
{extra}
server {{
    listen 127.0.0.1:{{port}};
    root {{dir}}/site;
    client_header_timeout 300ms;
    location = /metrics {{
        metrics;
    }}
    location = /go {{
        return 301 /a.txt;
    }}
    location /api/ {{
        proxy_pass {up};
    }}
    location /dead/ {{
        proxy_pass 127.0.0.1:{dead};
    }}
}}
"
    );
    Server::start(&template, site)
}

fn metrics(server: &Server) -> Value {
    let r = server.get("/metrics", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("etag"), None);
    assert_eq!(r.header("last-modified"), None);
    serde_json::from_slice(&r.body).expect("JSON")
}

fn n(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not an integer: {}", v[field]))
}

/// The dashboard's fields: every one but these three is a JSON integer.
const INTEGERS: &[&str] = &[
    "pid",
    "workers",
    "uptime_msec",
    "sys_ram_usage_bytes",
    "sys_ram_total_bytes",
    "workers_ram_usage_bytes",
    "conn_current",
    "conn_accepted",
    "conn_error",
    "conn_timeout",
    "conn_accepted_error",
    "req_current",
    "req_total",
    "req_file_serve",
    "req_reverse_proxy",
    "req_redirect",
    "res_code_2xx",
    "res_code_3xx",
    "res_code_4xx",
    "res_code_5xx",
    "res_avg_res_time_msec",
    "res_peak_res_time_msec",
    "traffic_total_send_bytes",
    "traffic_total_recv_bytes",
    "server_cpu_usage_time_msec",
    "server_ram_usage_bytes",
    "config_generation",
    "config_loaded_at",
    "reload_failures",
];

#[test]
fn the_json_has_the_dashboards_fields_and_counts_a_known_sequence() {
    let up = upstream::start(|_| ok("from the app"));
    let dead = closed_port();
    let server = server(&up.addr(), dead, "");
    let before = metrics(&server);
    for f in INTEGERS {
        n(&before, f);
    }
    assert!(before["server_name"].is_string());
    assert!(before["sys_cpu_usage_percent"].is_number());
    let cpu = before["workers_cpu_usage_percent"]
        .as_array()
        .expect("an array");
    assert_eq!(cpu.len(), 1);
    assert!(cpu.iter().all(Value::is_number));
    // The request being answered is in the gauges.
    assert_eq!(n(&before, "req_current"), 1);
    assert_eq!(n(&before, "conn_current"), 1);
    assert!(n(&before, "config_loaded_at") > 1_700_000_000_000);

    // The sequence: two files, a 404, a redirect, a proxied 200, a dead
    // upstream's 502, a head that times out, and a malformed request.
    assert_eq!(server.get("/a.txt", &[]).status, 200);
    assert_eq!(server.get("/a.txt", &[]).status, 200);
    assert_eq!(server.get("/missing", &[]).status, 404);
    assert_eq!(server.get("/go", &[]).status, 301);
    assert_eq!(server.get("/api/x", &[]).status, 200);
    assert_eq!(server.get("/dead/x", &[]).status, 502);
    let mut slow = server.connect();
    slow.write_all(b"GET /a.txt HTTP/1.1\r\n").expect("send");
    let mut answer = String::new();
    slow.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let bad = server
        .raw(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(bad.status, 400);

    let after = metrics(&server);
    let d = |f: &str| n(&after, f) - n(&before, f);
    // Eight requests, then this metrics request.
    assert_eq!(d("req_total"), 9);
    assert_eq!(d("req_file_serve"), 3);
    assert_eq!(d("req_redirect"), 1);
    assert_eq!(d("req_reverse_proxy"), 2);
    // The first metrics request (200) is counted now; this one is not done.
    assert_eq!(d("res_code_2xx"), 4);
    assert_eq!(d("res_code_3xx"), 1);
    assert_eq!(d("res_code_4xx"), 3);
    assert_eq!(d("res_code_5xx"), 1);
    assert_eq!(n(&after, "req_current"), 1);
    assert_eq!(d("conn_accepted"), 9);
    assert!(d("traffic_total_send_bytes") > 6 * 100);
    assert!(d("traffic_total_recv_bytes") > 8 * 20);
    assert_eq!(n(&after, "config_generation"), 1);
    let members = after["upstreams"].as_array().expect("members");
    let dead_member = members
        .iter()
        .find(|m| m["peer"] == format!("127.0.0.1:{dead}"))
        .expect("the dead member");
    assert_eq!(dead_member["up"], false);
    assert_eq!(dead_member["failures"], 1);
    // A connection is counted when it closes, which is when its client
    // goes: the 408's a timeout, the 400's an error, the rest normal.
    server.wait_for(Duration::from_secs(5), "the closes counted", || {
        let m = metrics(&server);
        let d = |f: &str| n(&m, f) - n(&before, f);
        d("conn_timeout") == 1 && d("conn_error") == 1 && n(&m, "conn_current") == 1
    });
    let m = metrics(&server);
    assert!(n(&m, "conn_error") + n(&m, "conn_timeout") <= n(&m, "conn_accepted"));
}

#[test]
fn prometheus_text_parses_back_and_passes_promtool() {
    let up = upstream::start(|_| ok("from the app"));
    let dead = closed_port();
    let server = server(&up.addr(), dead, "");
    assert_eq!(server.get("/a.txt", &[]).status, 200);
    assert_eq!(server.get("/api/x", &[]).status, 200);
    assert_eq!(server.get("/dead/x", &[]).status, 502);
    // `format=` wins over Accept.
    for (path, accept) in [
        ("/metrics?format=prometheus", "Accept: application/json"),
        ("/metrics", "Accept: text/plain;version=0.0.4"),
    ] {
        let r = server.get(path, &[accept]);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    let text = server.get("/metrics?format=prometheus", &[]).text();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{text}"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain value"),
        }
    };
    let server_label = format!("127.0.0.1:{}", server.port);
    let at = |location: &'static str| {
        vec![
            ("server", server_label.clone()),
            ("location", location.to_string()),
        ]
    };
    let with = |base: &[(String, String)], k: &'static str, v: &'static str| {
        let mut all: Vec<(String, String)> = base.to_vec();
        all.push((k.to_string(), v.to_string()));
        all
    };
    let get = |name: &str, labels: Vec<(String, String)>| {
        let refs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        value(name, &refs)
    };
    let base: Vec<(String, String)> = at("(server)")
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(get("xps_requests_total", with(&base, "class", "2xx")), 1.0);
    let api: Vec<(String, String)> = at("/api/")
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(get("xps_requests_total", with(&api, "class", "2xx")), 1.0);
    let deadloc: Vec<(String, String)> = at("/dead/")
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(
        get("xps_requests_total", with(&deadloc, "class", "5xx")),
        1.0
    );
    let peer = format!("127.0.0.1:{dead}");
    assert_eq!(value("xps_upstream_up", &[("peer", &peer)]), 0.0);
    assert_eq!(
        value("xps_upstream_failures_total", &[("peer", &peer)]),
        1.0
    );
    assert_eq!(value("xps_upstream_up", &[("peer", &up.addr())]), 1.0);
    assert_eq!(
        value("xps_upstream_requests_total", &[("peer", &up.addr())]),
        1.0
    );
    assert_eq!(value("xps_config_generation", &[]), 1.0);
    assert!(value("xps_process_resident_memory_bytes", &[]) > 0.0);
    // The histogram of a location: cumulative buckets ending in +Inf.
    let buckets: Vec<&prometheus_parse::Sample> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "xps_request_duration_seconds" && s.labels.get("location") == Some("/api/")
        })
        .collect();
    assert_eq!(buckets.len(), 1, "one histogram sample");
    match &buckets[0].value {
        prometheus_parse::Value::Histogram(h) => {
            assert_eq!(h.len(), 13);
            assert!(h.windows(2).all(|w| w[0].count <= w[1].count));
            assert_eq!(h.last().map(|b| b.count), Some(1.0));
        }
        other => panic!("not a histogram: {other:?}"),
    }
    // No label value comes from a request.
    assert_eq!(server.get("/api/%22evil%0a", &[]).status, 200);
    let again = server.get("/metrics?format=prometheus", &[]).text();
    assert!(!again.contains("evil"));
    assert_eq!(
        again.lines().filter(|l| !l.starts_with('#')).count(),
        text.lines().filter(|l| !l.starts_with('#')).count(),
        "a request made a new series"
    );
    promtool(&text);
}

/// `promtool check metrics`, where promtool is installed (Debian's
/// `prometheus` package); says so where it is not.
fn promtool(text: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("NOTE: promtool is not installed; `promtool check metrics` was not run");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn formats_access_rules_and_an_unknown_format() {
    let template = "workers 1;
server {
    listen 127.0.0.1:{port};
    location = /metrics {
        metrics;
    }
    location = /private {
        metrics;
        deny all;
    }
}
";
    let server = Server::start(template, |_| {});
    let bad = server.get("/metrics?format=xml", &[]);
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("json, prometheus, html"),
        "{}",
        bad.text()
    );
    assert_eq!(server.get("/private", &[]).status, 403);
    let page = server.get("/metrics", &["Accept: text/html,application/xhtml+xml"]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("access-control-allow-origin"), Some("*"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'none'"));
    let html = page.text();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "an external asset"
    );
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "inline code"
    );
    for (format, kind) in [("js", "text/javascript"), ("css", "text/css")] {
        let r = server.get(&format!("/metrics?format={format}"), &[]);
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with(kind))
        );
    }
}

#[test]
fn counters_survive_a_reload_and_the_generation_moves() {
    let up = upstream::start(|_| ok("x"));
    let server = server(&up.addr(), closed_port(), "");
    for _ in 0..3 {
        assert_eq!(server.get("/a.txt", &[]).status, 200);
    }
    let before = metrics(&server);
    let config = server.dir.join("xps.conf");
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(
        &config,
        text.replace("return 301 /a.txt;", "return 302 /a.txt;"),
    )
    .expect("write");
    server.wait_for(Duration::from_secs(10), "the reload", || {
        server.stderr().contains("generation 2")
    });
    let after = metrics(&server);
    assert_eq!(n(&after, "config_generation"), 2);
    assert!(n(&after, "config_loaded_at") >= n(&before, "config_loaded_at"));
    assert_eq!(n(&after, "req_total"), n(&before, "req_total") + 1);
    assert_eq!(n(&after, "res_code_2xx"), n(&before, "res_code_2xx") + 1);
    // A location's counters too.
    let prom = server.get("/metrics?format=prometheus", &[]).text();
    let line = format!(
        "xps_requests_total{{server=\"127.0.0.1:{}\",location=\"(server)\",class=\"2xx\"}} 3",
        server.port
    );
    assert!(prom.contains(&line), "{line} not in\n{prom}");
    // A bad config is counted and changes nothing else.
    std::fs::write(&config, "server { listen nowhere; }").expect("write");
    server.wait_for(Duration::from_secs(10), "the failed reload", || {
        server.stderr().contains("kept generation 2")
    });
    let failed = metrics(&server);
    assert_eq!(n(&failed, "reload_failures"), 1);
    assert_eq!(n(&failed, "config_generation"), 2);
}

#[test]
fn the_worker_array_has_one_number_per_worker() {
    let template = "workers 3;
server {
    listen 127.0.0.1:{port};
    location /metrics { metrics; }
}
";
    let server = Server::start(template, |_| {});
    let m = metrics(&server);
    assert_eq!(n(&m, "workers"), 3);
    let cpu = m["workers_cpu_usage_percent"].as_array().expect("array");
    assert_eq!(cpu.len(), 3);
    assert!(
        cpu.iter()
            .all(|c| c.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)))
    );
}

#[test]
fn the_json_config_metrics_route_answers_as_the_dashboard_calls_it() {
    let json = r#"{
  "server_name": "eXpServer",
  "servers": [
    {
      "listeners": [ { "host": "127.0.0.1", "port": {port} } ],
      "routes": [
        { "req_path": "/api", "type": "metrics" },
        { "req_path": "/", "type": "file_serve", "dir_path": "site" }
      ]
    }
  ]
}"#;
    let dir = tempfile::tempdir().expect("temp dir");
    site(dir.path());
    let server = Server::start_in(dir.path(), "xps_config.json", json);
    // What the dashboard's fetch sends, from a page on another origin.
    let r = server.get(
        "/api",
        &[
            "Accept: */*",
            "Origin: http://localhost:5173",
            "Accept-Encoding: gzip, deflate",
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let m: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(m["server_name"], "eXpServer");
    for f in INTEGERS {
        n(&m, f);
    }
}

#[test]
fn the_page_renders_live_figures_in_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!(
            "\n*** SKIPPED the_page_renders_live_figures_in_chromium: Chromium is not \
             installed (apt-get install chromium; .ci/run installs it) ***\n"
        );
        return;
    };
    let template = "workers 1;
server {
    listen 127.0.0.1:{port};
    location /metrics { metrics; }
}
";
    let server = Server::start(template, |_| {});
    let profile = tempfile::tempdir().expect("profile");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=4000",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &format!("http://127.0.0.1:{}/metrics?format=html", server.port),
        ])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    // Every console message (an error, a CSP refusal) is a failure.
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    let field = |id: &str| -> String {
        let start = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id} in\n{dom}"));
        let rest = &dom[start..];
        let open = rest.find('>').expect("tag") + 1;
        let close = rest.find('<').expect("end");
        rest[open..close].to_string()
    };
    // A rate needs two polls: it is a number only after the second.
    let rps = field("rps");
    assert!(rps.parse::<f64>().is_ok(), "requests/s is {rps:?}\n{dom}");
    assert!(field("uptime").ends_with('s'));
    let polls: u64 = field("total").parse().expect("a count");
    assert!(polls >= 2, "{polls} polls");
    assert_eq!(field("generation"), "1");
    assert!(field("state").starts_with("live"));
}

#[test]
fn a_request_cut_short_counts_as_an_error_and_leaves_no_request_current() {
    let slow = upstream::start(|_| upstream::Answer::Hang);
    let server = server(&slow.addr(), closed_port(), "");
    let before = metrics(&server);
    {
        let mut s = server.connect();
        s.write_all(request("GET", "/api/slow", &[]).as_bytes())
            .expect("send");
        server.wait_for(Duration::from_secs(5), "the request upstream", || {
            slow.count() == 1
        });
    } // the client leaves
    server.wait_for(Duration::from_secs(5), "the close counted", || {
        let m = metrics(&server);
        n(&m, "conn_error") == n(&before, "conn_error") + 1
    });
    let m = metrics(&server);
    assert_eq!(n(&m, "req_current"), 1);
    assert_eq!(n(&m, "conn_current"), 1);
}
