//! `--explain`: walks one request through the routing table the way the
//! server would — listener, server, path, locations, access, handler — and
//! says at every step what was picked and why.

use crate::http::target;
use crate::routing::location::Verdict;
use crate::routing::{Action, HostMatch, LocationMatch, Peer, Route, Server, Snapshot};
use crate::upstream::Endpoint;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// Explains `[METHOD] URL` from client `from`; `Err` when the request
/// cannot reach this config at all.
pub fn explain(s: &Snapshot, request: &[String], from: IpAddr) -> Result<String, String> {
    let (method, url) = match request {
        [url] => ("GET", url.as_str()),
        [method, url] => (method.as_str(), url.as_str()),
        [] => return Err("--explain needs a URL: xps --explain CONFIG [METHOD] URL".to_string()),
        _ => return Err("--explain takes [METHOD] URL".to_string()),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("`{method}` is not an HTTP method (GET, POST, …)"));
    }
    let url = Url::parse(url)?;
    // A client of a Unix socket has no address.
    let from = match url.socket {
        Some(_) => Peer::Unix,
        None => Peer::Inet(SocketAddr::new(from, 0)),
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "request    {method} {}{} from {from}",
        url.path,
        url.query.map(|q| format!("?{q}")).unwrap_or_default()
    );
    if s.listeners.is_empty() {
        return Err("this config has no HTTP listeners".to_string());
    }
    let (listener, why) = match (url.socket, &url.host) {
        (Some(path), _) => {
            let addr = Endpoint::Unix(Path::new(path).into());
            match s.listener(&addr) {
                Some(l) => (l, "accepts connections to that socket".to_string()),
                None => return Err(no_listener(s, &addr.to_string())),
            }
        }
        (None, None) => (
            &s.listeners[0],
            "the first listener (the URL names no host)".to_string(),
        ),
        (None, Some(host)) => {
            let local = local_addr(host, url.port);
            let found = local.and_then(|a| s.listener(&a)).or_else(|| {
                let on_port = s.listeners.iter().filter_map(|l| match l.addr {
                    Endpoint::Inet(a) if a.port() == url.port => Some((l, a)),
                    _ => None,
                });
                on_port
                    .min_by_key(|(_, a)| !a.ip().is_unspecified())
                    .map(|(l, _)| l)
            });
            match found {
                Some(l) => (l, format!("accepts connections to {host}:{}", url.port)),
                None => return Err(no_listener(s, &format!("port {}", url.port))),
            }
        }
    };
    let _ = writeln!(o, "listener   {} — {why}", listener.addr);
    let host_header = url.host.as_ref().map(|h| format!("{h}:{}", url.port));
    let (sid, host_match) = listener.server(host_header.as_deref());
    let server = &s.servers[sid];
    let reason = match host_match {
        HostMatch::Exact(n) => format!("server_name `{n}` matches exactly"),
        HostMatch::Wildcard(suffix) => {
            format!("server_name `*{suffix}` is the longest matching wildcard")
        }
        HostMatch::Default => {
            "no server_name matches; it is the default_server of this address".to_string()
        }
        HostMatch::CatchAll => {
            "no server_name matches; it is the first server here without server_name".to_string()
        }
        HostMatch::First => {
            "no server_name matches and there is no default_server; it is the first server here"
                .to_string()
        }
    };
    let _ = writeln!(
        o,
        "server     {} ({}) — {reason}",
        server.label(sid),
        server.origin
    );
    let path = match target::parse(&format!(
        "{}{}",
        url.path,
        url.query.map(|q| format!("?{q}")).unwrap_or_default()
    )) {
        Ok(t) => t.path,
        Err(e) => {
            let _ = writeln!(o, "path       {} — {e}", url.path);
            let _ = writeln!(o, "answer     400 Bad Request");
            return Ok(o);
        }
    };
    let _ = writeln!(
        o,
        "path       {path}{}",
        if path != url.path {
            " (normalised)"
        } else {
            ""
        }
    );
    if let Some(i) = server.slash_redirect(&path) {
        let loc = &server.locations.list()[i];
        let _ = writeln!(
            o,
            "location   {} takes {path} without its slash (it ends in `/` and proxies)",
            loc.matcher
        );
        if !access(&mut o, &loc.route, from) {
            answer(&mut o, &loc.route, 403, "Forbidden");
            return Ok(o);
        }
        answer(
            &mut o,
            &loc.route,
            301,
            &format!("Moved Permanently to {path}/"),
        );
        return Ok(o);
    }
    let (route, which) = server.route(&path);
    locations(&mut o, server, &path, which);
    real_ip(&mut o, route, from);
    limits(&mut o, route);
    if !access(&mut o, route, from) {
        answer(&mut o, route, 403, "Forbidden");
        return Ok(o);
    }
    if let Some(a) = &route.auth {
        let n = a.users.len();
        let _ = writeln!(
            o,
            "auth       auth_basic {:?}: {n} user{} in {}; without valid credentials 401 — with them:",
            a.realm,
            if n == 1 { "" } else { "s" },
            a.users.path.display()
        );
    }
    if let Some(target) = &route.access_log {
        let format = route
            .log_format
            .as_ref()
            .map_or("combined", |f| f.name.as_str());
        let target = match target {
            crate::log::LogTarget::Stdout => "stdout".to_string(),
            crate::log::LogTarget::Stderr => "stderr".to_string(),
            crate::log::LogTarget::File(p) => p.display().to_string(),
        };
        let _ = writeln!(o, "log        access_log {target} ({format})");
    }
    handler(&mut o, s, route, method, &path);
    Ok(o)
}

/// Why no listener takes the URL, with the ones there are.
fn no_listener(s: &Snapshot, what: &str) -> String {
    let all: Vec<String> = s.listeners.iter().map(|l| l.addr.to_string()).collect();
    format!("no listener for {what} (listeners: {})", all.join(", "))
}

/// A URL as `--explain` accepts it.
struct Url<'a> {
    /// `http://unix:/PATH:/uri`: the Unix socket the request comes to.
    socket: Option<&'a str>,
    host: Option<String>,
    port: u16,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Url<'a>, String> {
        let mut socket = None;
        let (host, port, rest) = if let Some(sock) = url.strip_prefix("http://unix:") {
            // nginx's form: the path, then a colon and the URI.
            let (path, rest) = sock.split_once(':').unwrap_or((sock, ""));
            if !path.starts_with('/') {
                return Err(format!(
                    "`{url}` names no socket path; write http://unix:/PATH:/uri"
                ));
            }
            socket = Some(path);
            (None, 80, if rest.is_empty() { "/" } else { rest })
        } else if let Some(after) = url.strip_prefix("http://") {
            let end = after.find(['/', '?']).unwrap_or(after.len());
            let authority = &after[..end];
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                    let port = p
                        .parse::<u16>()
                        .map_err(|_| format!("`{p}` is not a port"))?;
                    (h, port)
                }
                _ => (authority, 80),
            };
            if host.is_empty() {
                return Err(format!("`{url}` has no host"));
            }
            let rest = &after[end..];
            (
                Some(host.to_ascii_lowercase()),
                port,
                if rest.is_empty() { "/" } else { rest },
            )
        } else if url.starts_with('/') {
            (None, 80, url)
        } else if url.starts_with("https://") {
            return Err("xps serves plain HTTP only; use an http:// URL".to_string());
        } else {
            return Err(format!(
                "`{url}` is neither http://host[:port]/path nor /path"
            ));
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        Ok(Url {
            socket,
            host,
            port,
            path: if path.is_empty() { "/" } else { path },
            query,
        })
    }
}

/// The local address a connection to `host:port` would arrive on.
fn local_addr(host: &str, port: u16) -> Option<Endpoint> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "localhost" => Ipv4Addr::LOCALHOST.into(),
        _ => host.parse::<IpAddr>().ok()?,
    };
    Some(Endpoint::Inet(crate::routing::canonical(SocketAddr::new(
        ip, port,
    ))))
}

fn locations(o: &mut String, server: &Server, path: &str, which: LocationMatch) {
    if which == LocationMatch::ServerReturn {
        let _ = writeln!(
            o,
            "locations  not consulted: a server-level `return` answers every request"
        );
        return;
    }
    if server.locations.is_empty() {
        let _ = writeln!(o, "locations  none in this server");
    } else {
        let _ = writeln!(o, "locations");
        let width = server
            .locations
            .list()
            .iter()
            .map(|l| l.matcher.to_string().len())
            .max()
            .unwrap_or(0);
        for (loc, verdict) in server
            .locations
            .list()
            .iter()
            .zip(server.locations.explain(path))
        {
            let p = loc.matcher.path();
            let why = match verdict {
                Verdict::ExactMatch => "exact match".to_string(),
                Verdict::ExactMismatch => format!("exact location; the path is not `{p}`"),
                Verdict::PrefixMatch(n) => {
                    format!(
                        "prefix match on a segment boundary ({n} character{})",
                        if n == 1 { "" } else { "s" }
                    )
                }
                Verdict::NotAPrefix => format!("the path does not start with `{p}`"),
                Verdict::NotASegmentBoundary => format!("`{p}` ends inside a path segment here"),
            };
            let mark = if verdict.is_match() {
                "match   "
            } else {
                "no match"
            };
            let _ = writeln!(
                o,
                "  {mark}  {:<width$}  {}  {why}",
                loc.matcher.to_string(),
                loc.origin
            );
        }
    }
    match which {
        LocationMatch::Location(i) => {
            let loc = &server.locations.list()[i];
            let why = match loc.matcher {
                crate::routing::Match::Exact(_) => "an exact match wins outright",
                crate::routing::Match::Prefix(_) => "the longest matching prefix",
            };
            let _ = writeln!(o, "location   {} ({}) — {why}", loc.matcher, loc.origin);
        }
        _ => {
            let _ = writeln!(
                o,
                "location   none matched — the server-level settings apply"
            );
        }
    }
}

/// Whose address the request is from, when a balancer may say.
fn real_ip(o: &mut String, route: &Route, from: Peer) {
    use crate::routing::real_ip::RealIpSource;
    let Some(r) = &route.real_ip else {
        return;
    };
    let source = match &r.source {
        RealIpSource::ProxyProtocol => "the PROXY protocol header".to_string(),
        RealIpSource::Header(h) => format!("`{h}`"),
    };
    let _ = if r.trusted(from.ip()) {
        writeln!(
            o,
            "real ip    {from} is a listed balancer (set_real_ip_from): the client's address is read from {source}; below, {from} stands for it"
        )
    } else {
        writeln!(
            o,
            "real ip    {from} is not a listed balancer: its own address is the client's"
        )
    };
}

/// The limits the request is counted in, checked before anything else.
fn limits(o: &mut String, route: &Route) {
    let l = &route.limits;
    for r in &l.req {
        let rate = r.zone.rate().map(|rate| rate.text()).unwrap_or_default();
        let burst = match (r.burst, r.nodelay) {
            (0, _) => String::new(),
            (b, true) => format!(", burst {b} at once"),
            (b, false) => format!(", burst {b} waiting their turn"),
        };
        let _ = writeln!(
            o,
            "limit      limit_req zone={}: {rate} per {}{burst}; over it {} with Retry-After",
            r.zone.name,
            r.zone.key.source(),
            l.req_status
        );
    }
    for c in &l.conn {
        let _ = writeln!(
            o,
            "limit      limit_conn {}: {} at once per {}; one more {} with Retry-After",
            c.zone.name,
            c.max,
            c.zone.key.source(),
            l.conn_status
        );
    }
}

/// Writes the access decision; false when the client is denied.
fn access(o: &mut String, route: &Route, from: Peer) -> bool {
    let (allowed, rule) = route.access.check(from.ip());
    let verdict = if allowed { "allowed" } else { "denied" };
    match rule {
        Some(i) => {
            let r = &route.access.rules[i];
            let _ = writeln!(
                o,
                "access     `{r}` ({}) is the first rule matching {from} — {verdict}",
                r.origin
            );
        }
        None if route.access.is_empty() => {
            let _ = writeln!(o, "access     no allow/deny rules — allowed");
        }
        None => {
            let _ = writeln!(o, "access     no rule matches {from} — allowed");
        }
    }
    allowed
}

fn handler(o: &mut String, s: &Snapshot, route: &Route, method: &str, path: &str) {
    match &route.action {
        Action::Return(r) => {
            let _ = writeln!(o, "handler    return {}", r.code);
            match &r.text {
                Some(url) if crate::routing::Return::is_redirect(r.code) => {
                    let _ = writeln!(o, "answer     {} with Location: {url}", r.code);
                }
                Some(text) => {
                    let _ = writeln!(o, "answer     {} with the body {text:?}", r.code);
                }
                None => {
                    let _ = writeln!(o, "answer     {} with the built-in page", r.code);
                }
            }
        }
        Action::Proxy(id) => {
            let u = &s.upstreams[*id];
            let members: Vec<String> = u.members.iter().map(|m| m.label(false)).collect();
            let what = if u.implicit {
                format!("proxy_pass {}", u.name)
            } else {
                format!(
                    "proxy_pass upstream `{}` ({}, balance {})",
                    u.name, u.origin, u.balance
                )
            };
            let _ = writeln!(o, "handler    {what}");
            if let Some(p) = &route.proxy_uri {
                let _ = writeln!(
                    o,
                    "upstream   the path goes up with `{}` replaced by `{}`",
                    p.prefix, p.uri
                );
            }
            let _ = writeln!(o, "answer     forwarded to one of: {}", members.join(", "));
        }
        Action::Metrics => {
            let _ = writeln!(o, "handler    metrics");
            let _ = writeln!(
                o,
                "answer     200 with live figures (json, prometheus or html)"
            );
        }
        Action::NotFound => {
            let _ = writeln!(
                o,
                "handler    none: no location matched and the server has no root"
            );
            answer(o, route, 404, "Not Found");
        }
        Action::Static => {
            if let Some(tf) = &route.try_files {
                let files: Vec<&str> = tf.files.iter().map(|t| t.source()).collect();
                let fallback = match &tf.fallback {
                    crate::routing::TryFallback::Code(c) => format!("answers {c}"),
                    crate::routing::TryFallback::Uri(t) => {
                        format!("routes the request again as {}", t.source())
                    }
                };
                let _ = writeln!(
                    o,
                    "try_files  the first of {} that exists is served; if none, it {fallback}",
                    files.join(" ")
                );
                let _ = writeln!(o, "           (below: the request's own path)");
            }
            static_file(o, route, method, path)
        }
    }
}

fn static_file(o: &mut String, route: &Route, method: &str, path: &str) {
    let Some(root) = &route.root else { return };
    let file = root.join(path.trim_start_matches('/'));
    let _ = writeln!(o, "handler    static files from {}", root.display());
    let _ = writeln!(o, "file       {}", file.display());
    if method == "OPTIONS" {
        answer(o, route, 204, "No Content (Allow: GET, HEAD, OPTIONS)");
        return;
    }
    if method != "GET" && method != "HEAD" {
        answer(
            o,
            route,
            405,
            "Method Not Allowed (Allow: GET, HEAD, OPTIONS)",
        );
        return;
    }
    if !route.dotfiles && path.split('/').any(|seg| seg.starts_with('.')) {
        answer(
            o,
            route,
            404,
            "Not Found (a path segment starts with `.` and dotfiles are denied)",
        );
        return;
    }
    let (code, text) = if file.is_file() {
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        (200, format!("with the file ({len} bytes)"))
    } else if file.is_dir() && !path.ends_with('/') {
        (
            301,
            format!("to {path}/ (a folder is requested with a trailing slash)"),
        )
    } else if file.is_dir() {
        match route
            .index
            .iter()
            .map(|i| file.join(i))
            .find(|p| p.is_file())
        {
            Some(index) => (200, format!("with the index file {}", index_name(&index))),
            None if route.autoindex => (
                200,
                "with a listing of the folder (autoindex on)".to_string(),
            ),
            None => (
                404,
                format!(
                    "Not Found (no index file among {} and autoindex is off)",
                    route.index.join(", ")
                ),
            ),
        }
    } else {
        (404, "Not Found (no such file)".to_string())
    };
    answer(o, route, code, &text);
}

/// Writes the answer line, and the `error_page` that replaces the built-in
/// page for an error status.
fn answer(o: &mut String, route: &Route, code: u16, text: &str) {
    let _ = writeln!(o, "answer     {code} {text}");
    if code >= 400 {
        if let Some(page) = route.error_page_for(code) {
            let _ = writeln!(
                o,
                "page       {} (error_page) instead of the built-in page{}",
                page.path,
                page.status
                    .map(|s| format!(", sent as {s}"))
                    .unwrap_or_default()
            );
        }
    }
}

fn index_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
