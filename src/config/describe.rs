//! `--dump`: the compiled routing table written back as xps.conf, with
//! every effective setting spelled out (inheritance merged, defaults
//! filled in, includes spliced, paths absolute), and where each block was
//! defined as a comment. The output is itself a valid config that compiles
//! to the same routes.

use super::fmt::quote;
use super::values::{duration_text as duration, size_text as size};
use crate::log::LogTarget;
use crate::routing::{Action, Route, Snapshot, UpstreamGroup, Workers};
use std::fmt::Write as _;

/// The whole table as text.
pub fn dump(s: &Snapshot) -> String {
    let mut o = String::new();
    let files: Vec<String> = s.files.iter().map(|f| f.display().to_string()).collect();
    let _ = writeln!(o, "# xps routing table, generation {}", s.generation);
    let _ = writeln!(o, "# read from: {}", files.join(", "));
    if s.main.expserver {
        o.push_str("# eXpServer mode: responses xps makes carry Access-Control-Allow-Origin: *\n");
    }
    main(&mut o, s);
    for u in s.named_upstreams() {
        upstream(&mut o, u);
    }
    for (id, server) in s.servers.iter().enumerate() {
        let _ = writeln!(o, "\nserver {{  # {} ({})", server.label(id), server.origin);
        for addr in &server.listen {
            let is_default = s
                .listeners
                .iter()
                .any(|l| l.addr == *addr && l.hosts.default_server() == Some(id));
            let suffix = if is_default { " default_server" } else { "" };
            let pp = s
                .listeners
                .iter()
                .any(|l| l.addr == *addr && l.proxy_protocol);
            let pp = if pp { " proxy_protocol" } else { "" };
            let _ = writeln!(o, "    listen {}{suffix}{pp};", quote(&addr.to_string()));
        }
        if !server.server_name.is_empty() {
            let names: Vec<String> = server.server_name.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(o, "    server_name {};", names.join(" "));
        }
        let c = &server.connection;
        let _ = writeln!(
            o,
            "    client_header_timeout {};",
            duration(c.client_header_timeout)
        );
        let _ = writeln!(
            o,
            "    keepalive_timeout {};",
            duration(c.keepalive_timeout)
        );
        let _ = writeln!(o, "    keepalive_requests {};", c.keepalive_requests);
        let _ = writeln!(
            o,
            "    client_header_max_size {};",
            size(c.client_header_max_size)
        );
        let _ = writeln!(
            o,
            "    client_min_rate {};",
            c.client_min_rate.map_or("off".to_string(), |r| format!(
                "{} {}",
                size(r.bytes_per_second),
                duration(r.grace)
            ))
        );
        if server.return_first {
            o.push_str("    # a server-level return answers every request\n");
        } else {
            o.push_str("    # when no location matches:\n");
        }
        route(&mut o, s, &server.fallback, 1, ";");
        for loc in server.locations.list() {
            let _ = writeln!(o, "\n    location {} {{  # {}", loc.matcher, loc.origin);
            route(&mut o, s, &loc.route, 2, ";");
            o.push_str("    }\n");
        }
        o.push_str("}\n");
    }
    if !s.streams.is_empty() {
        o.push_str("\nstream {\n");
        for st in &s.streams {
            let _ = writeln!(o, "    server {{  # {}", st.origin);
            for addr in &st.listen {
                let _ = writeln!(o, "        listen {};", quote(&addr.to_string()));
            }
            let _ = writeln!(
                o,
                "        proxy_pass {};",
                quote(&proxy_target(&s.upstreams[st.upstream]))
            );
            let _ = writeln!(o, "        proxy_timeout {};", duration(st.proxy_timeout));
            let _ = writeln!(
                o,
                "        proxy_connect_timeout {};",
                duration(st.proxy_connect_timeout)
            );
            for rule in &st.access.rules {
                let _ = writeln!(o, "        {rule};  # {}", rule.origin);
            }
            o.push_str("    }\n");
        }
        o.push_str("}\n");
    }
    o
}

fn main(o: &mut String, s: &Snapshot) {
    let m = &s.main;
    let workers = match m.workers {
        Workers::Auto => "auto".to_string(),
        Workers::Count(n) => n.to_string(),
    };
    let _ = writeln!(o, "workers {workers};");
    let _ = writeln!(
        o,
        "server_header {};",
        m.server_header.as_deref().map_or("off".to_string(), quote)
    );
    let _ = writeln!(o, "watch {};", on_off(m.watch));
    let _ = writeln!(
        o,
        "error_log {} {};",
        log_target(&m.error_log.target),
        m.error_log.level.name()
    );
    let _ = writeln!(o, "max_connections {};", m.max_connections);
    let _ = writeln!(o, "shutdown_timeout {};", duration(m.shutdown_timeout));
    let _ = writeln!(o, "gzip_cache {};", size(m.gzip_cache));
    for z in &s.zones {
        let _ = writeln!(o, "{};", zone_text(z));
    }
    for f in &s.log_formats {
        let _ = writeln!(
            o,
            "log_format {} escape={} {};",
            f.name,
            f.escape.name(),
            quote(f.template.source())
        );
    }
}

/// A `limit_req_zone` or `limit_conn_zone` as written.
pub fn zone_text(z: &crate::routing::limits::ZoneDef) -> String {
    let key = quote(z.key.source());
    match z.rate() {
        Some(rate) => format!(
            "limit_req_zone {key} zone={}:{} rate={}",
            z.name,
            size(z.size),
            rate.text()
        ),
        None => format!("limit_conn_zone {key} zone={}:{}", z.name, size(z.size)),
    }
}

fn upstream(o: &mut String, u: &UpstreamGroup) {
    let _ = writeln!(o, "\nupstream {} {{  # {}", u.name, u.origin);
    for m in &u.members {
        let backup = if m.backup { " backup" } else { "" };
        let _ = writeln!(
            o,
            "    server {} weight={} max_fails={} fail_timeout={}{backup};",
            quote(&m.addr.to_string()),
            m.weight,
            m.max_fails,
            duration(m.fail_timeout)
        );
    }
    let _ = writeln!(o, "    balance {};", u.balance);
    let _ = writeln!(o, "    keepalive {};", u.keepalive);
    if let Some(h) = &u.health_check {
        let _ = writeln!(
            o,
            "    health_check {} interval={} fails={} passes={};",
            quote(&h.path),
            duration(h.interval),
            h.fails,
            h.passes
        );
    }
    o.push_str("}\n");
}

/// The settings of a route that matter for its handler.
/// The effective settings of a route as directive lines (`gzip on`),
/// without indentation or `;` — what a reload's route diff compares.
pub fn route_lines(s: &Snapshot, r: &Route) -> Vec<String> {
    let mut o = String::new();
    route(&mut o, s, r, 0, "");
    o.lines().map(str::to_string).collect()
}

/// Directive lines at one depth of `--dump`.
struct Lines<'a> {
    o: &'a mut String,
    pad: String,
    /// What ends a directive: `;`, or nothing for a reload's route diff.
    end: &'static str,
}

impl Lines<'_> {
    fn line(&mut self, text: String) {
        self.o.push_str(&self.pad);
        self.o.push_str(&text);
        self.o.push_str(self.end);
        self.o.push('\n');
    }

    /// A line with a comment after its `;`.
    fn commented(&mut self, text: String, comment: String) {
        self.o.push_str(&self.pad);
        self.o.push_str(&text);
        self.o.push_str(self.end);
        self.o.push_str("  # ");
        self.o.push_str(&comment);
        self.o.push('\n');
    }
}

fn route(o: &mut String, s: &Snapshot, r: &Route, depth: usize, end: &'static str) {
    let mut out = Lines {
        o,
        pad: "    ".repeat(depth),
        end,
    };
    for rule in &r.access.rules {
        out.line(format!("{rule}"));
    }
    if let Some(real) = &r.real_ip {
        for t in &real.from {
            out.line(format!("set_real_ip_from {t}"));
        }
        out.line(format!(
            "real_ip_header {}",
            match &real.source {
                crate::routing::real_ip::RealIpSource::ProxyProtocol => "proxy_protocol",
                crate::routing::real_ip::RealIpSource::Header(h) => h.as_str(),
            }
        ));
        out.line(format!("real_ip_recursive {}", on_off(real.recursive)));
    }
    for l in &r.limits.req {
        out.line(l.text());
    }
    if !r.limits.req.is_empty() {
        out.line(format!("limit_req_status {}", r.limits.req_status));
    }
    for l in &r.limits.conn {
        out.line(format!("limit_conn {} {}", l.zone.name, l.max));
    }
    if !r.limits.conn.is_empty() {
        out.line(format!("limit_conn_status {}", r.limits.conn_status));
    }
    if let Some(auth) = &r.auth {
        out.line(format!("auth_basic {}", quote(&auth.realm)));
        let n = auth.users.len();
        out.commented(
            format!(
                "auth_basic_user_file {}",
                quote(&auth.users.path.to_string_lossy())
            ),
            format!(
                "{n} user{}, version {:08x}",
                if n == 1 { "" } else { "s" },
                auth.users.version
            ),
        );
    }
    match &r.action {
        Action::Return(ret) => match &ret.text {
            Some(t) => out.line(format!("return {} {}", ret.code, quote(t.source()))),
            None => out.line(format!("return {}", ret.code)),
        },
        Action::Proxy(id) => {
            match &r.proxy_uri {
                Some(p) => {
                    let target = proxy_target(&s.upstreams[*id]);
                    // nginx's form for a socket: `http://unix:/path:/uri`.
                    let colon = if target.starts_with("unix:") { ":" } else { "" };
                    out.line(format!(
                        "proxy_pass {}",
                        quote(&format!("http://{target}{colon}{}", p.uri))
                    ))
                }
                None => out.line(format!(
                    "proxy_pass {}",
                    quote(&proxy_target(&s.upstreams[*id]))
                )),
            }
            for h in &r.proxy_set_header {
                out.line(format!(
                    "proxy_set_header {} {}",
                    quote(&h.name),
                    quote(h.value.source())
                ));
            }
            out.line(format!(
                "proxy_connect_timeout {}",
                duration(r.proxy_connect_timeout)
            ));
            out.line(format!(
                "proxy_read_timeout {}",
                duration(r.proxy_read_timeout)
            ));
            out.line(format!(
                "proxy_send_timeout {}",
                duration(r.proxy_send_timeout)
            ));
        }
        Action::Metrics => out.line("metrics".to_string()),
        Action::Static | Action::NotFound => {}
    }
    if let Some(root) = &r.root {
        out.line(format!("root {}", quote(&root.to_string_lossy())));
        let index: Vec<String> = r.index.iter().map(|i| quote(i)).collect();
        out.line(format!("index {}", index.join(" ")));
        out.line(format!("autoindex {}", on_off(r.autoindex)));
        out.line(format!("autoindex_format {}", r.autoindex_format.name()));
        out.line(format!(
            "dotfiles {}",
            if r.dotfiles { "allow" } else { "deny" }
        ));
        out.line(format!(
            "charset {}",
            r.charset.as_deref().map_or("off".to_string(), quote)
        ));
        out.line(format!("gzip_static {}", on_off(r.gzip.static_files)));
    }
    for p in &r.error_page {
        let codes: Vec<String> = p.codes.iter().map(u16::to_string).collect();
        let answer = p.status.map(|s| format!(" ={s}")).unwrap_or_default();
        out.line(format!(
            "error_page {}{answer} {}",
            codes.join(" "),
            quote(&p.path)
        ));
    }
    if let Some(tf) = &r.try_files {
        let mut args: Vec<String> = tf.files.iter().map(|t| quote(t.source())).collect();
        args.push(match &tf.fallback {
            crate::routing::TryFallback::Code(c) => format!("={c}"),
            crate::routing::TryFallback::Uri(t) => quote(t.source()),
        });
        out.line(format!("try_files {}", args.join(" ")));
    }
    if r.expires != crate::routing::Expires::Off {
        out.line(format!("expires {}", r.expires.text()));
    }
    for h in &r.add_header {
        out.line(format!(
            "add_header {} {}",
            quote(&h.name),
            quote(h.value.source())
        ));
    }
    out.line(format!("gzip {}", on_off(r.gzip.enabled)));
    if r.gzip.enabled {
        out.line(format!("gzip_types {}", r.gzip.types.join(" ")));
        out.line(format!("gzip_min_length {}", size(r.gzip.min_length)));
        out.line(format!("gzip_comp_level {}", r.gzip.comp_level));
    }
    out.line(format!(
        "client_max_body_size {}",
        size(r.client_max_body_size)
    ));
    out.line(format!(
        "client_body_timeout {}",
        duration(r.client_body_timeout)
    ));
    out.line(format!("send_timeout {}", duration(r.send_timeout)));
    if matches!(r.action, Action::Proxy(_)) {
        out.line(format!(
            "underscores_in_headers {}",
            on_off(r.underscores_in_headers)
        ));
    }
    let format = match (&r.access_log, &r.log_format) {
        (Some(_), Some(f)) => format!(" {}", f.name),
        _ => String::new(),
    };
    out.line(format!(
        "access_log {}{format}",
        r.access_log.as_ref().map_or("off".to_string(), log_target)
    ));
}

/// How `proxy_pass` names a group: its name, or the address of an
/// implicit one.
pub fn proxy_target(u: &UpstreamGroup) -> String {
    if u.implicit {
        u.members
            .first()
            .map_or_else(|| u.name.clone(), |m| m.addr.to_string())
    } else {
        u.name.clone()
    }
}

fn log_target(t: &LogTarget) -> String {
    match t {
        LogTarget::Stdout => "stdout".to_string(),
        LogTarget::Stderr => "stderr".to_string(),
        LogTarget::File(p) => quote(&p.to_string_lossy()),
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}
