//! eXpServer's `xps_config.json` → the same syntax tree an xps.conf gives.
//!
//! The JSON is parsed with spans (`jsonc-parser`, strict JSON), checked key
//! by key with messages that name the JSON path (`servers[0].listeners[1].port`)
//! and point at the bad value, then turned into directives whose spans point
//! back into the JSON. From there the usual checks and compile run, so both
//! formats become the same [`Snapshot`](crate::routing::Snapshot).
//!
//! The eXpServer meanings kept: `dir_path` is a `root` relative to the
//! working folder; file routes always list directories; a route's IP lists
//! mean allowed ⇔ (whitelist empty or IP in it) and IP not in blacklist;
//! responses xps makes carry `Access-Control-Allow-Origin: *`; a Host that
//! matches no server's `hostnames` gets 404.

use super::ast::{Arg, Block, Directive, Item, Word};
use super::diagnostic::{Diagnostic, suggestion};
use super::load as loader;
use super::source::{FileId, SourceMap, Span};
use crate::http::target;
use jsonc_parser::ast::{Array, Object, ObjectProp, Value as Json};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// The header eXpServer puts on every response it makes.
const CORS: (&str, &str) = ("Access-Control-Allow-Origin", "*");

/// Reads and converts an `xps_config.json`. `None` when it cannot be used
/// (every problem is in `out`).
pub fn load(
    path: &Path,
    name: &str,
    sources: &mut SourceMap,
    out: &mut Vec<Diagnostic>,
) -> Option<Vec<Item>> {
    let id = loader::read(path, name, sources, out, None)?;
    if out.iter().any(Diagnostic::is_error) {
        return None;
    }
    convert(sources, id, out)
}

/// Converts JSON text already in `sources`.
pub fn convert(sources: &SourceMap, id: FileId, out: &mut Vec<Diagnostic>) -> Option<Vec<Item>> {
    let text = &sources.file(id).text;
    let options = jsonc_parser::ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let parsed = match jsonc_parser::parse_to_ast(text, &Default::default(), &options) {
        Ok(p) => p,
        Err(e) => {
            let r = e.range();
            out.push(
                Diagnostic::error(format!("invalid JSON: {}", e.kind()))
                    .at(Span::new(id, r.start, r.end.max(r.start)), "here"),
            );
            return None;
        }
    };
    let Some(root) = parsed.value else {
        out.push(
            Diagnostic::error("the file is empty; an xps_config.json is one JSON object")
                .at(Span::new(id, 0, 0), "here"),
        );
        return None;
    };
    let errors_before = out.iter().filter(|d| d.is_error()).count();
    let mut c = Converter {
        id,
        out,
        cwd: std::env::current_dir().unwrap_or_default(),
        upstreams: Vec::new(),
    };
    let items = c.root(&root);
    let failed = c.out.iter().filter(|d| d.is_error()).count() > errors_before;
    (!failed).then_some(items)
}

struct Converter<'a> {
    id: FileId,
    out: &'a mut Vec<Diagnostic>,
    cwd: std::path::PathBuf,
    /// `upstream` blocks made for routes with several upstreams.
    upstreams: Vec<Item>,
}

/// What a JSON value is called in messages.
fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::StringLit(_) => "a string",
        Json::NumberLit(_) => "a number",
        Json::BooleanLit(_) => "a boolean",
        Json::Object(_) => "an object",
        Json::Array(_) => "an array",
        Json::NullKeyword(_) => "null",
    }
}

fn range_of(v: &Json) -> (usize, usize) {
    let r = match v {
        Json::StringLit(x) => x.range,
        Json::NumberLit(x) => x.range,
        Json::BooleanLit(x) => x.range,
        Json::Object(x) => x.range,
        Json::Array(x) => x.range,
        Json::NullKeyword(x) => x.range,
    };
    (r.start, r.end)
}

/// A server's listen addresses and whether it has `hostnames`, for picking
/// the default server of each address.
struct ServerInfo {
    listen: Vec<SocketAddr>,
    has_hostnames: bool,
    span: Span,
}

impl Converter<'_> {
    fn span(&self, v: &Json) -> Span {
        let (a, b) = range_of(v);
        Span::new(self.id, a, b)
    }

    fn wrong_type(&mut self, v: &Json, path: &str, expected: &str) {
        let d = Diagnostic::error(format!("`{path}` must be {expected}, not {}", kind_of(v)))
            .at(self.span(v), format!("expected {expected}"));
        self.out.push(d);
    }

    fn invalid(&mut self, v: &Json, path: &str, why: impl Into<String>, label: &str) {
        let d =
            Diagnostic::error(format!("invalid `{path}`: {}", why.into())).at(self.span(v), label);
        self.out.push(d);
    }

    fn object<'v>(&mut self, v: &'v Json<'v>, path: &str) -> Option<&'v Object<'v>> {
        match v {
            Json::Object(o) => Some(o),
            other => {
                self.wrong_type(other, path, "an object");
                None
            }
        }
    }

    fn array<'v>(&mut self, v: &'v Json<'v>, path: &str) -> Option<&'v Array<'v>> {
        match v {
            Json::Array(a) => Some(a),
            other => {
                self.wrong_type(other, path, "an array");
                None
            }
        }
    }

    fn string(&mut self, v: &Json, path: &str) -> Option<String> {
        match v {
            Json::StringLit(s) => Some(s.value.to_string()),
            other => {
                self.wrong_type(other, path, "a string");
                None
            }
        }
    }

    fn integer(&mut self, v: &Json, path: &str, min: i64, max: i64) -> Option<i64> {
        match v {
            Json::NumberLit(n) => match n.value.parse::<i64>() {
                Ok(i) if (min..=max).contains(&i) => Some(i),
                _ => {
                    self.invalid(
                        v,
                        path,
                        format!(
                            "expected a whole number from {min} to {max}, found {}",
                            n.value
                        ),
                        "out of range",
                    );
                    None
                }
            },
            other => {
                self.wrong_type(other, path, "a number");
                None
            }
        }
    }

    fn boolean(&mut self, v: &Json, path: &str) -> Option<bool> {
        match v {
            Json::BooleanLit(b) => Some(b.value),
            other => {
                self.wrong_type(other, path, "true or false");
                None
            }
        }
    }

    /// Warns about keys outside `known` and returns the properties by name.
    fn keys<'v>(
        &mut self,
        o: &'v Object<'v>,
        path: &str,
        known: &[&str],
    ) -> HashMap<String, &'v ObjectProp<'v>> {
        let mut map = HashMap::new();
        for p in &o.properties {
            let name = p.name.as_str().to_string();
            if !known.contains(&name.as_str()) {
                let span = Span::new(self.id, p.range.start, p.range.start + name.len() + 2);
                let at = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                self.out.push(
                    Diagnostic::warning(format!("unknown key `{at}` is ignored"))
                        .at(span, "not an xps_config.json key here")
                        .maybe_help(suggestion(&name, known.iter().copied())),
                );
            }
            map.insert(name, p);
        }
        map
    }

    fn missing(&mut self, o: &Object, path: &str, key: &str) {
        let span = Span::new(self.id, o.range.start, o.range.start + 1);
        let what = if path.is_empty() {
            "the top-level object".to_string()
        } else {
            format!("`{path}`")
        };
        self.out.push(
            Diagnostic::error(format!("{what} has no `{key}`"))
                .at(span, format!("`{key}` is required here")),
        );
    }

    fn root(&mut self, v: &Json) -> Vec<Item> {
        let Some(o) = self.object(v, "(top level)") else {
            return Vec::new();
        };
        let keys = self.keys(o, "", &["server_name", "workers", "servers"]);
        let mut items = Vec::new();
        if let Some(p) = keys.get("workers") {
            if let Some(n) = self.integer(&p.value, "workers", 0, 1024) {
                let arg = if n == 0 {
                    "auto".to_string()
                } else {
                    n.to_string()
                };
                items.push(directive("workers", &[&arg], self.span(&p.value)));
            }
        }
        if let Some(p) = keys.get("server_name") {
            if let Some(name) = self.string(&p.value, "server_name") {
                if name.is_empty() || name.chars().any(char::is_control) {
                    self.invalid(
                        &p.value,
                        "server_name",
                        "expected a name without control characters",
                        "invalid",
                    );
                } else {
                    items.push(directive("server_header", &[&name], self.span(&p.value)));
                }
            }
        }
        let mut servers = Vec::new();
        let mut infos = Vec::new();
        match keys.get("servers") {
            None => self.missing(o, "", "servers"),
            Some(p) => {
                if let Some(list) = self.array(&p.value, "servers") {
                    for (i, s) in list.elements.iter().enumerate() {
                        if let Some((server, info)) = self.server(s, i) {
                            servers.push(server);
                            infos.push(info);
                        }
                    }
                }
            }
        }
        default_servers(&mut servers, &infos);
        items.append(&mut self.upstreams);
        items.extend(servers.into_iter().map(Item::Directive));
        items
    }

    fn server(&mut self, v: &Json, i: usize) -> Option<(Directive, ServerInfo)> {
        let path = format!("servers[{i}]");
        let o = self.object(v, &path)?;
        let keys = self.keys(o, &path, &["listeners", "hostnames", "routes"]);
        let span = self.span(v);
        let mut body = Vec::new();
        let mut listen = Vec::new();
        match keys.get("listeners") {
            None => self.missing(o, &path, "listeners"),
            Some(p) => {
                let lpath = format!("{path}.listeners");
                if let Some(list) = self.array(&p.value, &lpath) {
                    if list.elements.is_empty() {
                        self.invalid(
                            &p.value,
                            &lpath,
                            "a server needs at least one listener",
                            "empty",
                        );
                    }
                    for (j, l) in list.elements.iter().enumerate() {
                        if let Some(addr) = self.listener(l, &format!("{lpath}[{j}]")) {
                            if !listen.contains(&addr) {
                                listen.push(addr);
                                body.push(directive("listen", &[&listen_text(addr)], self.span(l)));
                            }
                        }
                    }
                }
            }
        }
        let mut has_hostnames = false;
        if let Some(p) = keys.get("hostnames") {
            let hpath = format!("{path}.hostnames");
            if let Some(list) = self.array(&p.value, &hpath) {
                let mut names = Vec::new();
                for (j, h) in list.elements.iter().enumerate() {
                    if let Some(name) = self.string(h, &format!("{hpath}[{j}]")) {
                        names.push((name, self.span(h)));
                    }
                }
                if !names.is_empty() {
                    has_hostnames = true;
                    body.push(Item::Directive(Directive {
                        name: word("server_name", self.span(&p.value)),
                        args: names.into_iter().map(|(n, s)| arg(&n, s)).collect(),
                        block: None,
                        span: self.span(&p.value),
                        inner_comments: Vec::new(),
                    }));
                }
            }
        }
        let mut paths: HashMap<String, Span> = HashMap::new();
        let mut catch_all = false;
        if let Some(p) = keys.get("routes") {
            let rpath = format!("{path}.routes");
            if let Some(list) = self.array(&p.value, &rpath) {
                for (j, r) in list.elements.iter().enumerate() {
                    if let Some((req_path, loc)) = self.route(r, i, j, &format!("{rpath}[{j}]")) {
                        if let Some(first) = paths.get(&req_path) {
                            self.out.push(
                                Diagnostic::warning(format!(
                                    "route for `{req_path}` is shadowed by an earlier one"
                                ))
                                .at(self.span(r), "never used")
                                .also(*first, "this route has the same `req_path` and comes first"),
                            );
                            continue;
                        }
                        catch_all |= req_path == "/";
                        paths.insert(req_path, self.span(r));
                        body.push(Item::Directive(loc));
                    }
                }
            }
        }
        if !catch_all {
            // No route for a path is a 404 that still carries the CORS header.
            body.push(Item::Directive(block(
                "location",
                &["/"],
                vec![directive("return", &["404"], span), cors(span)],
                span,
            )));
        }
        Some((
            Directive {
                name: word("server", span),
                args: Vec::new(),
                block: Some(Block {
                    items: body,
                    open: span,
                    close: span,
                }),
                span,
                inner_comments: Vec::new(),
            },
            ServerInfo {
                listen,
                has_hostnames,
                span,
            },
        ))
    }

    fn listener(&mut self, v: &Json, path: &str) -> Option<SocketAddr> {
        let o = self.object(v, path)?;
        let keys = self.keys(o, path, &["host", "port"]);
        let ip = match keys.get("host") {
            None => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            Some(p) => {
                let host = self.string(&p.value, &format!("{path}.host"))?;
                match host.as_str() {
                    "localhost" => Some(Ipv4Addr::LOCALHOST.into()),
                    h => match h.parse::<IpAddr>() {
                        Ok(ip) => Some(ip),
                        Err(_) => {
                            self.invalid(
                                &p.value,
                                &format!("{path}.host"),
                                format!("`{h}` is not an IP address or `localhost`"),
                                "not an address",
                            );
                            None
                        }
                    },
                }
            }
        };
        let port = match keys.get("port") {
            None => {
                self.missing(o, path, "port");
                None
            }
            Some(p) => self.integer(&p.value, &format!("{path}.port"), 1, 65535),
        };
        Some(SocketAddr::new(ip?, port? as u16))
    }

    /// One route → `(normalised req_path, location directive)`.
    fn route(&mut self, v: &Json, i: usize, j: usize, path: &str) -> Option<(String, Directive)> {
        let o = self.object(v, path)?;
        let known = [
            "req_path",
            "type",
            "dir_path",
            "index",
            "upstreams",
            "http_status_code",
            "redirect_url",
            "ip_whitelist",
            "ip_blacklist",
            "gzip_enable",
            "gzip_level",
        ];
        let keys = self.keys(o, path, &known);
        let span = self.span(v);
        let req_path = match keys.get("req_path") {
            None => {
                self.missing(o, path, "req_path");
                None
            }
            Some(p) => {
                let rp = format!("{path}.req_path");
                let raw = self.string(&p.value, &rp)?;
                if !raw.starts_with('/') {
                    self.invalid(
                        &p.value,
                        &rp,
                        "a request path starts with `/`",
                        "expected /…",
                    );
                    None
                } else {
                    match target::normalise(&raw) {
                        Ok(n) => Some(n),
                        Err(e) => {
                            self.invalid(&p.value, &rp, e.to_string(), "invalid path");
                            None
                        }
                    }
                }
            }
        };
        let kind = match keys.get("type") {
            None => {
                self.missing(o, path, "type");
                None
            }
            Some(p) => {
                let tp = format!("{path}.type");
                let t = self.string(&p.value, &tp)?;
                let types = ["file_serve", "reverse_proxy", "redirect", "metrics"];
                if types.contains(&t.as_str()) {
                    Some(t)
                } else {
                    let d = Diagnostic::error(format!("invalid `{tp}`: `{t}` is not a route type"))
                        .at(self.span(&p.value), "unknown type")
                        .maybe_help(suggestion(&t, types))
                        .note("route types are file_serve, reverse_proxy, redirect and metrics");
                    self.out.push(d);
                    None
                }
            }
        };
        let mut body = self.access(&keys, path);
        body.extend(self.gzip(&keys, path));
        let handler = match kind.as_deref() {
            Some("file_serve") => self.file_serve(o, &keys, path),
            Some("reverse_proxy") => self.reverse_proxy(o, &keys, path, i, j),
            Some("redirect") => self.redirect(o, &keys, path),
            Some("metrics") => Some(vec![directive("metrics", &[], span)]),
            _ => None,
        };
        let (req_path, handler) = (req_path?, handler?);
        body.extend(handler);
        Some((
            req_path.clone(),
            block("location", &[&req_path], body, span),
        ))
    }

    fn file_serve(
        &mut self,
        o: &Object,
        keys: &HashMap<String, &ObjectProp>,
        path: &str,
    ) -> Option<Vec<Item>> {
        let Some(p) = keys.get("dir_path") else {
            self.missing(o, path, "dir_path");
            return None;
        };
        let dir = self.string(&p.value, &format!("{path}.dir_path"))?;
        if dir.is_empty() {
            self.invalid(
                &p.value,
                &format!("{path}.dir_path"),
                "the folder path is empty",
                "empty",
            );
            return None;
        }
        let root = super::layer::absolute(&self.cwd, &dir);
        let span = self.span(&p.value);
        let mut items = vec![directive("root", &[&root.to_string_lossy()], span)];
        if let Some(p) = keys.get("index") {
            let ipath = format!("{path}.index");
            let list = self.array(&p.value, &ipath)?;
            let mut names = Vec::new();
            for (k, e) in list.elements.iter().enumerate() {
                names.push((self.string(e, &format!("{ipath}[{k}]"))?, self.span(e)));
            }
            if !names.is_empty() {
                items.push(Item::Directive(Directive {
                    name: word("index", self.span(&p.value)),
                    args: names.iter().map(|(n, s)| arg(n, *s)).collect(),
                    block: None,
                    span: self.span(&p.value),
                    inner_comments: Vec::new(),
                }));
            }
        }
        items.push(directive("autoindex", &["on"], span));
        items.push(cors(span));
        Some(items)
    }

    fn reverse_proxy(
        &mut self,
        o: &Object,
        keys: &HashMap<String, &ObjectProp>,
        path: &str,
        i: usize,
        j: usize,
    ) -> Option<Vec<Item>> {
        let Some(p) = keys.get("upstreams") else {
            self.missing(o, path, "upstreams");
            return None;
        };
        let upath = format!("{path}.upstreams");
        let list = self.array(&p.value, &upath)?;
        let mut members = Vec::new();
        for (k, e) in list.elements.iter().enumerate() {
            let epath = format!("{upath}[{k}]");
            let text = self.string(e, &epath)?;
            let Some((host, port)) = text.rsplit_once(':') else {
                self.invalid(
                    e,
                    &epath,
                    format!("`{text}` is not host:port"),
                    "expected host:port",
                );
                return None;
            };
            let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
            let host = if host == "localhost" {
                "127.0.0.1"
            } else {
                host
            };
            if !port_ok || host.is_empty() {
                self.invalid(
                    e,
                    &epath,
                    format!("`{text}` is not host:port with a port from 1 to 65535"),
                    "expected host:port",
                );
                return None;
            }
            members.push((format!("{host}:{port}"), self.span(e)));
        }
        let span = self.span(&p.value);
        match members.as_slice() {
            [] => {
                self.invalid(
                    &p.value,
                    &upath,
                    "a reverse_proxy route needs at least one upstream",
                    "empty",
                );
                None
            }
            [(one, s)] => Some(vec![directive("proxy_pass", &[one], *s)]),
            _ => {
                let name = format!("route_{}_{}", i + 1, j + 1);
                let servers = members
                    .iter()
                    .map(|(m, s)| directive("server", &[m], *s))
                    .collect();
                self.upstreams
                    .push(Item::Directive(block("upstream", &[&name], servers, span)));
                Some(vec![directive("proxy_pass", &[&name], span)])
            }
        }
    }

    fn redirect(
        &mut self,
        o: &Object,
        keys: &HashMap<String, &ObjectProp>,
        path: &str,
    ) -> Option<Vec<Item>> {
        let code = match keys.get("http_status_code") {
            None => {
                self.missing(o, path, "http_status_code");
                None
            }
            Some(p) => {
                let cpath = format!("{path}.http_status_code");
                let code = self.integer(&p.value, &cpath, 100, 599)?;
                if ![301, 302, 303, 307, 308].contains(&code) {
                    self.invalid(
                        &p.value,
                        &cpath,
                        format!("{code} is not a redirect status"),
                        "expected 301, 302, 303, 307 or 308",
                    );
                    None
                } else {
                    Some((code, self.span(&p.value)))
                }
            }
        };
        let url = match keys.get("redirect_url") {
            None => {
                self.missing(o, path, "redirect_url");
                None
            }
            Some(p) => {
                let upath = format!("{path}.redirect_url");
                let url = self.string(&p.value, &upath)?;
                if url.is_empty() || url.chars().any(|c| c.is_control() || c == ' ') {
                    self.invalid(
                        &p.value,
                        &upath,
                        "a URL has no blanks or control characters and is not empty",
                        "invalid URL",
                    );
                    None
                } else {
                    Some(url)
                }
            }
        };
        let ((code, span), url) = (code?, url?);
        Some(vec![
            directive("return", &[&code.to_string(), &url], span),
            cors(span),
        ])
    }

    /// `ip_blacklist` → `deny`s, then `ip_whitelist` → `allow`s and `deny all`.
    fn access(&mut self, keys: &HashMap<String, &ObjectProp>, path: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut whitelisted = false;
        for (key, verb) in [("ip_blacklist", "deny"), ("ip_whitelist", "allow")] {
            let Some(p) = keys.get(key) else { continue };
            let lpath = format!("{path}.{key}");
            let Some(list) = self.array(&p.value, &lpath) else {
                continue;
            };
            for (k, e) in list.elements.iter().enumerate() {
                let epath = format!("{lpath}[{k}]");
                let Some(ip) = self.string(e, &epath) else {
                    continue;
                };
                if ip.parse::<Ipv4Addr>().is_err() {
                    self.invalid(
                        e,
                        &epath,
                        format!("`{ip}` is not an IPv4 address"),
                        "expected an IPv4 address",
                    );
                    continue;
                }
                whitelisted |= verb == "allow";
                items.push(directive(verb, &[&ip], self.span(e)));
            }
            if whitelisted {
                items.push(directive("deny", &["all"], self.span(&p.value)));
            }
        }
        items
    }

    fn gzip(&mut self, keys: &HashMap<String, &ObjectProp>, path: &str) -> Vec<Item> {
        let mut items = Vec::new();
        if let Some(p) = keys.get("gzip_enable") {
            if let Some(on) = self.boolean(&p.value, &format!("{path}.gzip_enable")) {
                items.push(directive(
                    "gzip",
                    &[if on { "on" } else { "off" }],
                    self.span(&p.value),
                ));
            }
        }
        if let Some(p) = keys.get("gzip_level") {
            if let Some(level) = self.integer(&p.value, &format!("{path}.gzip_level"), 1, 9) {
                items.push(directive(
                    "gzip_comp_level",
                    &[&level.to_string()],
                    self.span(&p.value),
                ));
            }
        }
        items
    }
}

/// eXpServer picks the first server whose `hostnames` match, or that has
/// none; a Host nobody matches gets 404. In xps terms: on each address the
/// first server without hostnames is the `default_server`; where every
/// server has hostnames, a 404 server is added as the default.
fn default_servers(servers: &mut Vec<Directive>, infos: &[ServerInfo]) {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for info in infos {
        for a in &info.listen {
            if !addrs.contains(a) {
                addrs.push(*a);
            }
        }
    }
    for addr in addrs {
        let first_open = infos
            .iter()
            .position(|s| s.listen.contains(&addr) && !s.has_hostnames);
        match first_open {
            Some(i) => mark_default(&mut servers[i], addr),
            None => {
                let span = infos
                    .iter()
                    .find(|s| s.listen.contains(&addr))
                    .map_or_else(Span::default, |s| s.span);
                servers.push(block(
                    "server",
                    &[],
                    vec![
                        directive("listen", &[&listen_text(addr), "default_server"], span),
                        directive("return", &["404"], span),
                        cors(span),
                    ],
                    span,
                ));
            }
        }
    }
}

fn mark_default(server: &mut Directive, addr: SocketAddr) {
    let text = listen_text(addr);
    let Some(b) = server.block.as_mut() else {
        return;
    };
    for item in &mut b.items {
        if let Item::Directive(d) = item {
            if d.name.text == "listen" && d.args.first().is_some_and(|a| a.value == text) {
                let span = d.span;
                d.args.push(arg("default_server", span));
                return;
            }
        }
    }
}

fn listen_text(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

fn word(text: &str, span: Span) -> Word {
    Word {
        text: text.to_string(),
        span,
    }
}

fn arg(value: &str, span: Span) -> Arg {
    Arg {
        value: value.to_string(),
        quoted: false,
        span,
    }
}

fn directive(name: &str, args: &[&str], span: Span) -> Item {
    Item::Directive(Directive {
        name: word(name, span),
        args: args.iter().map(|a| arg(a, span)).collect(),
        block: None,
        span,
        inner_comments: Vec::new(),
    })
}

fn block(name: &str, args: &[&str], items: Vec<Item>, span: Span) -> Directive {
    Directive {
        name: word(name, span),
        args: args.iter().map(|a| arg(a, span)).collect(),
        block: Some(Block {
            items,
            open: span,
            close: span,
        }),
        span,
        inner_comments: Vec::new(),
    }
}

fn cors(span: Span) -> Item {
    directive("add_header", &[CORS.0, CORS.1], span)
}
