//! What a reload changed, in the terms of the config: `+ listen …`,
//! `+ location /v2 → upstream api`, `~ /static gzip off → on`,
//! `- location /old`. Routes are compared through their `--dump` lines, so
//! every effective setting is covered.

use super::describe::{proxy_target, route_lines};
use crate::routing::{Action, Route, Server, Snapshot};
use std::collections::BTreeMap;

/// The changes from `old` to `new`, one line each.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for l in &new.listeners {
        if !old.listeners.iter().any(|o| o.addr == l.addr) {
            out.push(format!("+ listen {}", l.addr));
        }
    }
    for l in &old.listeners {
        if !new.listeners.iter().any(|n| n.addr == l.addr) {
            out.push(format!("- listen {}", l.addr));
        }
    }
    upstreams(old, new, &mut out);
    zones(old, new, &mut out);
    log_formats(old, new, &mut out);
    let several = new.servers.len() > 1 || old.servers.len() > 1;
    for (i, s) in new.servers.iter().enumerate() {
        let label = server_label(s, i);
        match old
            .servers
            .iter()
            .enumerate()
            .find(|(j, o)| server_label(o, *j) == label)
        {
            None => out.push(format!("+ server {label}")),
            Some((_, o)) => server(
                old,
                new,
                o,
                s,
                if several { Some(&label) } else { None },
                &mut out,
            ),
        }
    }
    for (j, o) in old.servers.iter().enumerate() {
        let label = server_label(o, j);
        if !new
            .servers
            .iter()
            .enumerate()
            .any(|(i, s)| server_label(s, i) == label)
        {
            out.push(format!("- server {label}"));
        }
    }
    out
}

/// A server by its first name (or its place, `#2`, when it has none).
fn server_label(s: &Server, id: usize) -> String {
    s.label(id)
}

fn upstreams(old: &Snapshot, new: &Snapshot, out: &mut Vec<String>) {
    let summary = |u: &crate::routing::UpstreamGroup| {
        // Each member with what differs from the defaults.
        let members: Vec<String> = u.members.iter().map(|m| m.label(true)).collect();
        let mut s = format!("{} ({}", members.join(", "), u.balance);
        if let Some(c) = &u.health_check {
            s.push_str(&format!(", health_check {} every {:?}", c.path, c.interval));
        }
        if u.keepalive > 0 {
            s.push_str(&format!(", keepalive {}", u.keepalive));
        }
        s.push(')');
        s
    };
    for u in new.named_upstreams() {
        match old.named_upstreams().find(|o| o.name == u.name) {
            None => out.push(format!("+ upstream {}: {}", u.name, summary(u))),
            Some(o) if o != u => out.push(format!(
                "~ upstream {}: {} → {}",
                u.name,
                summary(o),
                summary(u)
            )),
            Some(_) => {}
        }
    }
    for o in old.named_upstreams() {
        if !new.named_upstreams().any(|u| u.name == o.name) {
            out.push(format!("- upstream {}", o.name));
        }
    }
}

/// Zones added, changed (and whether their state is kept) or removed.
fn zones(old: &Snapshot, new: &Snapshot, out: &mut Vec<String>) {
    use super::describe::zone_text;
    for z in &new.zones {
        match old.zones.iter().find(|o| o.name == z.name) {
            None => out.push(format!("+ {}", zone_text(z))),
            Some(o) if o != z => {
                let kept = if o.signature() == z.signature() && o.is_req() == z.is_req() {
                    "its state kept"
                } else {
                    "its state starts empty"
                };
                out.push(format!("~ {} → {} ({kept})", zone_text(o), zone_text(z)))
            }
            Some(_) => {}
        }
    }
    for o in &old.zones {
        if !new.zones.iter().any(|z| z.name == o.name) {
            out.push(format!("- {}", zone_text(o)));
        }
    }
}

/// `log_format`s added, changed or removed.
fn log_formats(old: &Snapshot, new: &Snapshot, out: &mut Vec<String>) {
    for f in &new.log_formats {
        match old.log_formats.iter().find(|o| o.name == f.name) {
            None => out.push(format!("+ log_format {}", f.name)),
            Some(o) if o != f => out.push(format!(
                "~ log_format {}: {} → {}",
                f.name,
                o.template.source(),
                f.template.source()
            )),
            Some(_) => {}
        }
    }
    for o in &old.log_formats {
        if !new.log_formats.iter().any(|f| f.name == o.name) {
            out.push(format!("- log_format {}", o.name));
        }
    }
}

fn server(
    old: &Snapshot,
    new: &Snapshot,
    o: &Server,
    s: &Server,
    label: Option<&String>,
    out: &mut Vec<String>,
) {
    let suffix = label.map(|l| format!(" (server {l})")).unwrap_or_default();
    settings(
        old,
        new,
        &o.fallback,
        &s.fallback,
        &format!(
            "server{}",
            label.map(|l| format!(" {l}")).unwrap_or_default()
        ),
        out,
    );
    for loc in s.locations.list() {
        match o
            .locations
            .list()
            .iter()
            .find(|ol| ol.matcher == loc.matcher)
        {
            None => out.push(format!(
                "+ location {} → {}{suffix}",
                loc.matcher,
                describe(new, &loc.route)
            )),
            Some(ol) => settings(
                old,
                new,
                &ol.route,
                &loc.route,
                &format!("{}{suffix}", loc.matcher),
                out,
            ),
        }
    }
    for ol in o.locations.list() {
        if !s.locations.list().iter().any(|l| l.matcher == ol.matcher) {
            out.push(format!("- location {}{suffix}", ol.matcher));
        }
    }
}

/// `~ WHAT directive old → new` for every directive whose value changed.
fn settings(
    old: &Snapshot,
    new: &Snapshot,
    a: &Route,
    b: &Route,
    what: &str,
    out: &mut Vec<String>,
) {
    let before = by_directive(route_lines(old, a));
    let after = by_directive(route_lines(new, b));
    if before == after {
        return;
    }
    for (name, value) in &after {
        match before.get(name) {
            Some(v) if v == value => {}
            Some(v) => out.push(format!("~ {what} {name} {v} → {value}")),
            None => out.push(format!("~ {what} + {name} {value}")),
        }
    }
    for (name, value) in &before {
        if !after.contains_key(name) {
            out.push(format!("~ {what} - {name} {value}"));
        }
    }
}

/// Directive lines grouped by name (repeated ones joined with `; `).
fn by_directive(lines: Vec<String>) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for line in lines {
        let (name, value) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        map.entry(name.to_string())
            .and_modify(|v| {
                v.push_str("; ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_string());
    }
    map
}

/// What answers a route, in a few words.
fn describe(s: &Snapshot, r: &Route) -> String {
    match &r.action {
        Action::Proxy(id) => match s.upstreams.get(*id) {
            Some(u) if !u.implicit => format!("upstream {}", u.name),
            Some(u) => proxy_target(u),
            None => "proxy".to_string(),
        },
        Action::Return(ret) => match &ret.text {
            Some(t) => format!("return {} {t}", ret.code),
            None => format!("return {}", ret.code),
        },
        Action::Metrics => "metrics".to_string(),
        Action::Static => match &r.root {
            Some(root) => format!("files from {}", root.display()),
            None => "files".to_string(),
        },
        Action::NotFound => "404".to_string(),
    }
}
