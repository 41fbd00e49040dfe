//! The `metrics` location: the figures the server gathered ([`View`]),
//! as the eXpServer dashboard's JSON, the Prometheus text format, or a
//! page that draws them. Which one: `?format=`, else `Accept`.

use super::{Body, Reply, Text, canned};
use crate::http::parse::RequestHead;
use crate::metrics::process::Usage;
use crate::metrics::{BUCKETS_US, HistogramTotals, MemberTotals, RouteTotals, Totals};
use std::fmt::Write;

/// Everything the metrics show, gathered by the server.
#[derive(Debug, Default)]
pub struct View {
    /// The name shown (`server_name` of the eXpServer JSON).
    pub server_name: String,
    /// The process id.
    pub pid: u32,
    /// The number of workers.
    pub workers: usize,
    /// Since the start, milliseconds.
    pub uptime_ms: u64,
    /// Every worker's counters summed.
    pub totals: Totals,
    /// CPU and memory.
    pub usage: Usage,
    /// The loaded config's generation.
    pub generation: u64,
    /// When it was loaded, Unix milliseconds.
    pub loaded_at_ms: u64,
    /// Reloads that failed.
    pub reload_failures: u64,
    /// Per location: server label, location label, counters.
    pub routes: Vec<(String, String, RouteTotals)>,
    /// Per upstream member: group, `host:port`, up, counters.
    pub members: Vec<(String, String, bool, MemberTotals)>,
    /// Per `limit_req_zone` and `limit_conn_zone`.
    pub zones: Vec<ZoneFigures>,
}

/// The figures of one limit zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneFigures {
    /// `zone=NAME`.
    pub name: String,
    /// `req` (`limit_req_zone`) or `conn` (`limit_conn_zone`).
    pub kind: &'static str,
    /// Requests let through at once.
    pub passed: u64,
    /// Requests let through after waiting their turn (`req` only).
    pub delayed: u64,
    /// Requests refused.
    pub rejected: u64,
    /// Keys the zone holds now.
    pub keys: u64,
}

/// What the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The eXpServer dashboard's JSON.
    Json,
    /// The Prometheus text exposition format.
    Prometheus,
    /// The built-in page.
    Html,
    /// The page's script.
    Js,
    /// The page's style.
    Css,
}

/// The formats, for the 400 that lists them.
const FORMATS: &str = "json, prometheus, html (and js, css: the page's own script and style)";

/// The format a request asks for: `?format=` wins over `Accept`; `Err`
/// for a format that does not exist.
pub fn format(req: &RequestHead) -> Result<Format, String> {
    let asked = req.uri.query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("format="))
            .map(str::to_ascii_lowercase)
    });
    if let Some(f) = asked {
        return match f.as_str() {
            "json" => Ok(Format::Json),
            "prometheus" | "text" | "openmetrics" => Ok(Format::Prometheus),
            "html" => Ok(Format::Html),
            "js" => Ok(Format::Js),
            "css" => Ok(Format::Css),
            _ => Err(f),
        };
    }
    let accept = req.accept.as_deref().unwrap_or("").to_ascii_lowercase();
    // The first type named decides (browsers list text/html first).
    for t in accept.split(',') {
        let t = t.split(';').next().unwrap_or("").trim();
        match t {
            "text/html" | "application/xhtml+xml" => return Ok(Format::Html),
            "text/plain" | "application/openmetrics-text" => return Ok(Format::Prometheus),
            "application/json" | "*/*" => return Ok(Format::Json),
            _ => {}
        }
    }
    Ok(Format::Json)
}

/// The answer of a `metrics` location.
pub fn answer(req: &RequestHead, view: &View) -> Reply {
    let mut r = match format(req) {
        Err(asked) => {
            let mut r = canned::error(400);
            r.content_type = Some(Text::Static("text/plain; charset=utf-8"));
            r.body = Body::Owned(
                format!("unknown metrics format {asked:?}; the formats are: {FORMATS}\n")
                    .into_bytes(),
            );
            r
        }
        Ok(Format::Json) => {
            let mut r = Reply::new(200);
            r.content_type = Some(Text::Static("application/json"));
            r.body = Body::Owned(json(view).into_bytes());
            r
        }
        Ok(Format::Prometheus) => {
            let mut r = Reply::new(200);
            r.content_type = Some(Text::Static("text/plain; version=0.0.4; charset=utf-8"));
            r.body = Body::Owned(prometheus(view).into_bytes());
            r
        }
        Ok(Format::Html) => {
            let mut r = asset("text/html; charset=utf-8", PAGE);
            // Its own policy, strict: nothing inline, nothing from elsewhere.
            r.csp = Some(CSP);
            r
        }
        Ok(Format::Js) => asset("text/javascript; charset=utf-8", SCRIPT),
        Ok(Format::Css) => asset("text/css; charset=utf-8", STYLE),
    };
    r.no_store = true;
    r.cors = true;
    r
}

fn avg_ms(t: &Totals) -> u64 {
    let count = t.duration.count();
    if count == 0 {
        0
    } else {
        (t.duration.sum_us as f64 / count as f64 / 1000.0).round() as u64
    }
}

/// The eXpServer dashboard's object, and a little more.
pub fn json(v: &View) -> String {
    let t = &v.totals;
    let conn_current = t.conn_accepted.saturating_sub(t.conn_closed);
    let req_current = t.req_started.saturating_sub(t.req_done);
    let upstreams: Vec<serde_json::Value> = v
        .members
        .iter()
        .map(|(group, peer, up, m)| {
            serde_json::json!({
                "upstream": group,
                "peer": peer,
                "up": up,
                "requests": m.requests,
                "failures": m.failures,
                "active": m.active,
            })
        })
        .collect();
    let limits: Vec<serde_json::Value> = v
        .zones
        .iter()
        .map(|z| {
            serde_json::json!({
                "zone": z.name,
                "kind": z.kind,
                "passed": z.passed,
                "delayed": z.delayed,
                "rejected": z.rejected,
                "keys": z.keys,
            })
        })
        .collect();
    let value = serde_json::json!({
        "server_name": v.server_name,
        "pid": v.pid,
        "workers": v.workers,
        "uptime_msec": v.uptime_ms,
        "sys_cpu_usage_percent": v.usage.machine_cpu_percent,
        "sys_ram_usage_bytes": v.usage.ram_used_bytes,
        "sys_ram_total_bytes": v.usage.ram_total_bytes,
        "workers_cpu_usage_percent": v.usage.worker_cpu_percent,
        "workers_ram_usage_bytes": v.usage.rss_bytes,
        "server_cpu_usage_time_msec": v.usage.process_cpu_ms,
        "server_ram_usage_bytes": v.usage.rss_bytes,
        "conn_current": conn_current,
        "conn_accepted": t.conn_accepted,
        "conn_error": t.conn_error,
        "conn_timeout": t.conn_timeout,
        "conn_accepted_error": t.accept_errors,
        "req_current": req_current,
        "req_total": t.req_started,
        "req_file_serve": t.req_file,
        "req_reverse_proxy": t.req_proxy,
        "req_redirect": t.req_redirect,
        "res_code_1xx": t.status[0],
        "res_code_2xx": t.status[1],
        "res_code_3xx": t.status[2],
        "res_code_4xx": t.status[3],
        "res_code_5xx": t.status[4],
        "res_avg_res_time_msec": avg_ms(t),
        "res_peak_res_time_msec": (t.time_peak_us as f64 / 1000.0).round() as u64,
        "res_time_bucket_bounds_msec": BUCKETS_US.iter().map(|b| b / 1000).collect::<Vec<_>>(),
        "res_time_buckets": t.duration.buckets.to_vec(),
        "traffic_total_send_bytes": t.sent,
        "traffic_total_recv_bytes": t.received,
        "config_generation": v.generation,
        "config_loaded_at": v.loaded_at_ms,
        "reload_failures": v.reload_failures,
        "upstreams": upstreams,
        "limits": limits,
    });
    value.to_string()
}

/// A label value, escaped for the text format.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds(us: u64) -> String {
    let s = us as f64 / 1e6;
    format!("{s}")
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramTotals) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, count) in BUCKETS_US.iter().zip(h.cumulative()) {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{}\"}} {count}",
            seconds(*bound)
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
        h.count()
    );
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", seconds(h.sum_us));
    let _ = writeln!(out, "{name}_count{braces} {}", h.count());
}

/// The Prometheus text exposition format (0.0.4). Label values come only
/// from the config.
pub fn prometheus(v: &View) -> String {
    let t = &v.totals;
    let mut o = String::with_capacity(4096);
    let conn_current = t.conn_accepted.saturating_sub(t.conn_closed);
    let req_current = t.req_started.saturating_sub(t.req_done);
    let simple: [(&str, &str, &str, String); 12] = [
        (
            "xps_connections_accepted_total",
            "counter",
            "Client connections accepted.",
            t.conn_accepted.to_string(),
        ),
        (
            "xps_connection_errors_total",
            "counter",
            "Client connections that ended in a read or write error or an unparsable request.",
            t.conn_error.to_string(),
        ),
        (
            "xps_connection_timeouts_total",
            "counter",
            "Client connections closed because a client deadline passed.",
            t.conn_timeout.to_string(),
        ),
        (
            "xps_accept_errors_total",
            "counter",
            "accept() calls that failed for want of descriptors or memory.",
            t.accept_errors.to_string(),
        ),
        (
            "xps_requests_current",
            "gauge",
            "Requests being answered.",
            req_current.to_string(),
        ),
        (
            "xps_sent_bytes_total",
            "counter",
            "Bytes written to clients (heads and bodies).",
            t.sent.to_string(),
        ),
        (
            "xps_received_bytes_total",
            "counter",
            "Bytes read from clients (heads and bodies).",
            t.received.to_string(),
        ),
        (
            "xps_config_generation",
            "gauge",
            "Generation of the loaded config (1 at start, one more per reload).",
            v.generation.to_string(),
        ),
        (
            "xps_config_loaded_timestamp_seconds",
            "gauge",
            "When the loaded config was loaded, Unix time.",
            format!("{}", v.loaded_at_ms as f64 / 1000.0),
        ),
        (
            "xps_reload_failures_total",
            "counter",
            "Reloads that failed (the last good config kept serving).",
            v.reload_failures.to_string(),
        ),
        (
            "xps_process_cpu_seconds_total",
            "counter",
            "CPU time of the process, user and system.",
            format!("{}", v.usage.process_cpu_ms as f64 / 1000.0),
        ),
        (
            "xps_process_resident_memory_bytes",
            "gauge",
            "Resident memory of the process.",
            v.usage.rss_bytes.to_string(),
        ),
    ];
    for (name, kind, help, value) in &simple {
        head(&mut o, name, kind, help);
        let _ = writeln!(o, "{name} {value}");
    }
    head(
        &mut o,
        "xps_connections_current",
        "gauge",
        "Open client connections: with a request in progress (active) or between requests (idle).",
    );
    let _ = writeln!(
        o,
        "xps_connections_current{{state=\"active\"}} {req_current}"
    );
    let _ = writeln!(
        o,
        "xps_connections_current{{state=\"idle\"}} {}",
        conn_current.saturating_sub(req_current)
    );
    head(
        &mut o,
        "xps_requests_total",
        "counter",
        "Responses by server, location and status class.",
    );
    for (server, location, r) in &v.routes {
        for (i, n) in r.status.iter().enumerate() {
            let _ = writeln!(
                o,
                "xps_requests_total{{server=\"{}\",location=\"{}\",class=\"{}xx\"}} {n}",
                label(server),
                label(location),
                i + 1
            );
        }
    }
    head(
        &mut o,
        "xps_request_duration_seconds",
        "histogram",
        "Time from a request's head to the end of its response, by server and location.",
    );
    for (server, location, r) in &v.routes {
        let labels = format!(
            "server=\"{}\",location=\"{}\"",
            label(server),
            label(location)
        );
        histogram(&mut o, "xps_request_duration_seconds", &labels, &r.duration);
    }
    let member_metrics: [(&str, &str, &str); 4] = [
        (
            "xps_upstream_up",
            "gauge",
            "1 when the member takes traffic, 0 when health checks took it out.",
        ),
        (
            "xps_upstream_requests_total",
            "counter",
            "Exchanges started with the member.",
        ),
        (
            "xps_upstream_failures_total",
            "counter",
            "Connections or exchanges with the member that failed.",
        ),
        (
            "xps_upstream_active",
            "gauge",
            "Exchanges with the member in progress.",
        ),
    ];
    for (i, (name, kind, help)) in member_metrics.iter().enumerate() {
        head(&mut o, name, kind, help);
        for (group, peer, up, m) in &v.members {
            let value = match i {
                0 => u64::from(*up),
                1 => m.requests,
                2 => m.failures,
                _ => m.active,
            };
            let _ = writeln!(
                o,
                "{name}{{upstream=\"{}\",peer=\"{}\"}} {value}",
                label(group),
                label(peer)
            );
        }
    }
    head(
        &mut o,
        "xps_upstream_response_duration_seconds",
        "histogram",
        "Time of an exchange with the member, from its start to the end of the response.",
    );
    for (group, peer, _, m) in &v.members {
        let labels = format!("upstream=\"{}\",peer=\"{}\"", label(group), label(peer));
        histogram(
            &mut o,
            "xps_upstream_response_duration_seconds",
            &labels,
            &m.duration,
        );
    }
    head(
        &mut o,
        "xps_limit_requests_total",
        "counter",
        "Requests a limit_req or limit_conn zone passed, delayed or rejected.",
    );
    for z in &v.zones {
        for (result, n) in [
            ("passed", z.passed),
            ("delayed", z.delayed),
            ("rejected", z.rejected),
        ] {
            if z.kind == "conn" && result == "delayed" {
                continue;
            }
            let _ = writeln!(
                o,
                "xps_limit_requests_total{{zone=\"{}\",kind=\"{}\",result=\"{result}\"}} {n}",
                label(&z.name),
                z.kind
            );
        }
    }
    head(
        &mut o,
        "xps_limit_keys",
        "gauge",
        "Keys a limit zone holds now (bounded by its size).",
    );
    for z in &v.zones {
        let _ = writeln!(
            o,
            "xps_limit_keys{{zone=\"{}\"}} {}",
            label(&z.name),
            z.keys
        );
    }
    o
}

/// The built-in page; its script and style come from the same location
/// (`?format=js`, `?format=css`), and the script polls the JSON.
pub const PAGE: &str = include_str!("page/metrics.html");
const SCRIPT: &str = include_str!("page/metrics.js");
const STYLE: &str = include_str!("page/metrics.css");

/// The page's `Content-Security-Policy`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, text: &'static str) -> Reply {
    let mut r = Reply::new(200);
    r.content_type = Some(Text::Static(content_type));
    r.body = Body::Owned(text.as_bytes().to_vec());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, accept: Option<&str>) -> RequestHead {
        let mut text = format!("GET {target} HTTP/1.1\r\nHost: x\r\n");
        if let Some(a) = accept {
            text.push_str(&format!("Accept: {a}\r\n"));
        }
        text.push_str("\r\n");
        match crate::http::parse::parse(text.as_bytes(), 8192) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn format_query_beats_accept() {
        assert_eq!(format(&req("/m", None)), Ok(Format::Json));
        assert_eq!(format(&req("/m", Some("*/*"))), Ok(Format::Json));
        assert_eq!(
            format(&req("/m", Some("text/html,application/xhtml+xml"))),
            Ok(Format::Html)
        );
        assert_eq!(
            format(&req("/m", Some("text/plain;version=0.0.4"))),
            Ok(Format::Prometheus)
        );
        assert_eq!(
            format(&req("/m?format=json", Some("text/html"))),
            Ok(Format::Json)
        );
        assert_eq!(format(&req("/m?format=xml", None)), Err("xml".into()));
    }

    #[test]
    fn json_numbers_are_integers_where_the_dashboard_needs_them() {
        let mut v = View::default();
        v.totals.duration.sum_us = 1_400;
        v.totals.duration.buckets[0] = 1;
        v.usage.worker_cpu_percent = vec![0.5, 1.0];
        let j: serde_json::Value = serde_json::from_str(&json(&v)).unwrap();
        assert!(j["res_avg_res_time_msec"].is_u64());
        assert_eq!(j["res_avg_res_time_msec"], 1);
        assert!(j["workers_cpu_usage_percent"].is_array());
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
