//! Checked tree → [`Snapshot`]: inheritance merged, upstream names
//! resolved, locations indexed, listeners grouped; and the checks that need
//! the whole picture (unknown upstreams, duplicate locations, two default
//! servers on one address, a location with nothing to serve, a missing
//! `root` folder).

use super::check::Node;
use super::diagnostic::{Diagnostic, suggestion};
use super::directives::Key;
use super::layer::{Layer, log_target};
use super::source::{SourceMap, Span};
use super::values::{ProxyTarget, Value};
use crate::log::{ErrorLog, LogLevel, LogTarget};
use crate::routing::{
    AccessTarget, Action, ConnectionLimits, HostIndex, Listener, Location, Locations, MainSettings,
    Match, Member, Origin, Server, ServerName, Snapshot, StreamServer, UpstreamGroup, UpstreamId,
    Workers,
};
use crate::upstream::Balance;
use crate::upstream::Endpoint;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Compiles the checked main block. Returns `None` when any error was
/// found (all of them are in `out`).
pub fn compile(
    nodes: &[Node],
    sources: &SourceMap,
    users: &HashMap<std::path::PathBuf, Arc<crate::routing::auth::UserFile>>,
    expserver: bool,
    out: &mut Vec<Diagnostic>,
) -> Option<Snapshot> {
    let errors_before = out.iter().filter(|d| d.is_error()).count();
    let mut c = Compiler {
        sources,
        users,
        auth_reported: HashSet::default(),
        zones: Vec::new(),
        zone_spans: HashMap::default(),
        proxy_protocol: HashMap::default(),
        formats: HashMap::default(),
        out,
        upstreams: Vec::new(),
        by_name: HashMap::default(),
        implicit: HashMap::default(),
        file_names: sources
            .files()
            .iter()
            .map(|f| Arc::from(f.name.as_str()))
            .collect(),
        roots_checked: HashSet::default(),
        stream_spans: Vec::new(),
        http_spans: HashMap::default(),
        expserver,
    };
    let mut main = MainSettings {
        workers: Workers::Auto,
        server_header: Some("eXpServer".to_string()),
        watch: true,
        error_log: ErrorLog {
            target: LogTarget::Stderr,
            level: LogLevel::Info,
        },
        max_connections: 10_000,
        shutdown_timeout: Duration::from_secs(10),
        gzip_cache: 16 << 20,
        expserver,
    };
    for n in nodes {
        match &n.value {
            Value::Zone(z) => c.zone(n, z),
            Value::LogFormat(f) => c.log_format(n, f),
            _ => {}
        }
    }
    let mut layer = Layer::default();
    for n in nodes {
        match (n.spec.key, &n.value) {
            (Key::LimitReqZone | Key::LimitConnZone | Key::LogFormat, _) => {}
            (Key::Workers, Value::Workers(w)) => main.workers = *w,
            (Key::ServerHeader, Value::TextOrOff(t)) => main.server_header = t.clone(),
            (Key::Watch, Value::Flag(b)) => main.watch = *b,
            (Key::ErrorLog, Value::ErrorLog(spec, level)) => {
                main.error_log = ErrorLog {
                    target: log_target(spec, c.folder(n.name)),
                    level: *level,
                }
            }
            (Key::MaxConnections, Value::Number(m)) => main.max_connections = *m,
            (Key::ShutdownTimeout, Value::Duration(d)) => main.shutdown_timeout = *d,
            (Key::GzipCache, Value::Size(n)) => main.gzip_cache = *n,
            (Key::Upstream, _) => c.upstream(n),
            _ => c.apply(&mut layer, n),
        }
    }
    let mut servers = Vec::new();
    let mut streams = Vec::new();
    for n in nodes {
        match n.spec.key {
            _ if n.value == Value::Invalid => {}
            Key::Server => servers.extend(c.server(n, &layer)),
            Key::Stream => streams.extend(c.stream(n)),
            _ => {}
        }
    }
    let listeners = c.listeners(&servers);
    c.stream_conflicts(&listeners);
    let other_errors = c.out.iter().any(Diagnostic::is_error);
    if !other_errors && servers.is_empty() && streams.is_empty() {
        c.out.push(
            Diagnostic::error("nothing to serve: the config has no `server` block")
                .help("add `server { listen 8080; root .; }`"),
        );
    }
    let errors_after = c.out.iter().filter(|d| d.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    Some(Snapshot {
        generation: 1,
        main,
        listeners,
        servers: servers.into_iter().map(|s| s.server).collect(),
        upstreams: c.upstreams,
        streams,
        files: sources
            .files()
            .iter()
            .map(|f| super::layer::absolute(Path::new("."), &f.path.to_string_lossy()))
            .collect(),
        zones: c.zones,
        log_formats: {
            let mut f: Vec<_> = c.formats.into_values().map(|(f, _)| f).collect();
            f.sort_by(|a, b| a.name.cmp(&b.name));
            f
        },
    })
}

struct Compiler<'a> {
    sources: &'a SourceMap,
    /// The user files, read before compiling.
    users: &'a HashMap<std::path::PathBuf, Arc<crate::routing::auth::UserFile>>,
    /// `auth_basic` directives already reported as having no user file.
    auth_reported: HashSet<Span>,
    /// `limit_req_zone` and `limit_conn_zone`, in order.
    zones: Vec<Arc<crate::routing::limits::ZoneDef>>,
    /// Zone name → span of its name.
    zone_spans: HashMap<String, Span>,
    /// `log_format`s by name, with the span of the name.
    formats: HashMap<String, (Arc<crate::routing::log_format::LogFormat>, Span)>,
    /// Whether an HTTP address takes the PROXY protocol, with the span of
    /// its first `listen`.
    proxy_protocol: HashMap<Endpoint, (bool, Span)>,
    out: &'a mut Vec<Diagnostic>,
    upstreams: Vec<UpstreamGroup>,
    /// Named group → index, with the span of its name.
    by_name: HashMap<String, (UpstreamId, Span)>,
    /// `HOST:PORT` of an implicit group → index.
    implicit: HashMap<String, UpstreamId>,
    /// Display names of files, shared by every [`Origin`].
    file_names: Vec<Arc<str>>,
    /// Root folders already checked for existence.
    roots_checked: HashSet<std::path::PathBuf>,
    /// Stream listen addresses with their spans, for the conflict check.
    stream_spans: Vec<(Endpoint, Span)>,
    /// HTTP listen addresses with the span of their first `listen`.
    http_spans: HashMap<Endpoint, Span>,
    /// Loading an eXpServer JSON file (changes some wording).
    expserver: bool,
}

/// A server with what the listener and duplicate checks need.
struct Compiled {
    server: Server,
    /// `(address, default_server, span of the listen argument)`.
    listen: Vec<(Endpoint, bool, Span)>,
    /// Span of the `server_name` arguments.
    names_span: Option<Span>,
}

impl Compiler<'_> {
    fn folder(&self, span: Span) -> &Path {
        self.sources.file(span.file).folder()
    }

    fn origin(&self, span: Span) -> Origin {
        let (line, column) = self.sources.file(span.file).line_col(span.start);
        Origin {
            file: self.file_names[span.file].clone(),
            line,
            column,
        }
    }

    /// Adds an inheritable setting to a layer; warns about a missing root.
    fn apply(&mut self, layer: &mut Layer, n: &Node) {
        if matches!(n.spec.key, Key::Allow | Key::Deny) {
            self.check_shadowed_rule(layer, n);
        }
        let folder = self.sources.file(n.name.file).folder();
        if let (Key::AuthBasicUserFile, Value::Text(p)) = (n.spec.key, &n.value) {
            // Not found: it could not be read, which is reported already.
            layer.auth_basic_user_file =
                Some(self.users.get(&super::layer::absolute(folder, p)).cloned());
            return;
        }
        match (n.spec.key, &n.value) {
            (Key::AccessLog, Value::AccessLog(_, format)) => {
                layer.log_format = Some(match format.as_deref() {
                    None | Some("combined") => None,
                    Some(name) => match self.formats.get(name) {
                        Some((f, _)) => Some(f.clone()),
                        None => {
                            let names = self.formats.keys().map(String::as_str).chain(["combined"]);
                            self.out.push(
                                Diagnostic::error(format!("unknown log format `{name}`"))
                                    .at(n.args, "no `log_format` of this name")
                                    .maybe_help(suggestion(name, names))
                                    .note("formats are declared at the top level with `log_format NAME …`"),
                            );
                            None
                        }
                    },
                });
            }
            (Key::LimitReq, Value::LimitReq(zone, burst, nodelay)) => {
                if let Some(zone) = self.zone_named(zone, true, n) {
                    layer.limit_req.get_or_insert_with(Vec::new).push(
                        crate::routing::limits::LimitReq {
                            zone,
                            burst: *burst,
                            nodelay: *nodelay,
                        },
                    );
                }
                return;
            }
            (Key::LimitConn, Value::LimitConn(zone, max)) => {
                if let Some(zone) = self.zone_named(zone, false, n) {
                    layer
                        .limit_conn
                        .get_or_insert_with(Vec::new)
                        .push(crate::routing::limits::LimitConn { zone, max: *max });
                }
                return;
            }
            _ => {}
        }
        if !layer.apply(n, folder, || self.origin(n.name)) {
            return;
        }
        if n.spec.key == Key::Root {
            if let Some(root) = layer.root.clone() {
                self.check_root(&root, n);
            }
        }
    }

    /// Records a `log_format`.
    fn log_format(&mut self, n: &Node, f: &crate::routing::log_format::LogFormat) {
        if let Some((_, first)) = self.formats.get(&f.name) {
            self.out.push(
                Diagnostic::error(format!("log format `{}` is declared twice", f.name))
                    .at(n.args, "second declaration")
                    .also(*first, "first declared here"),
            );
            return;
        }
        self.formats
            .insert(f.name.clone(), (Arc::new(f.clone()), n.args));
    }

    /// Records a `limit_req_zone` or `limit_conn_zone`.
    fn zone(&mut self, n: &Node, z: &super::values::ZoneSpec) {
        if let Some(first) = self.zone_spans.get(&z.name) {
            self.out.push(
                Diagnostic::error(format!("zone `{}` is declared twice", z.name))
                    .at(n.args, "second declaration")
                    .also(*first, "first declared here")
                    .help("give each zone its own name"),
            );
            return;
        }
        self.zone_spans.insert(z.name.clone(), n.args);
        self.zones.push(Arc::new(crate::routing::limits::ZoneDef {
            name: z.name.clone(),
            key: z.key.clone(),
            size: z.size,
            kind: match z.rate {
                Some(rate) => crate::routing::limits::ZoneKind::Req {
                    rate,
                    state: Default::default(),
                },
                None => crate::routing::limits::ZoneKind::Conn {
                    state: Default::default(),
                },
            },
        }));
    }

    /// The zone a `limit_req` (`req`) or `limit_conn` names.
    fn zone_named(
        &mut self,
        name: &str,
        req: bool,
        n: &Node,
    ) -> Option<Arc<crate::routing::limits::ZoneDef>> {
        let (want, other) = if req {
            ("limit_req_zone", "limit_conn_zone")
        } else {
            ("limit_conn_zone", "limit_req_zone")
        };
        match self.zones.iter().find(|z| z.name == name) {
            Some(z) if z.is_req() == req => Some(z.clone()),
            Some(_) => {
                self.out.push(
                    Diagnostic::error(format!("zone `{name}` is a `{other}`, not a `{want}`"))
                        .at(n.args, "wrong kind of zone")
                        .help(format!("declare one with `{want}` for `{}`", n.spec.name)),
                );
                None
            }
            None => {
                let names = self
                    .zones
                    .iter()
                    .filter(|z| z.is_req() == req)
                    .map(|z| z.name.as_str());
                self.out.push(
                    Diagnostic::error(format!("unknown zone `{name}`"))
                        .at(n.args, "no zone of this name")
                        .maybe_help(suggestion(name, names))
                        .note(format!("zones are declared at the top level with `{want}`")),
                );
                None
            }
        }
    }

    /// `auth_basic REALM` needs the users it checks: without a user file
    /// nginx lets everyone in, which is never what was meant.
    fn check_auth(&mut self, layer: &Layer) {
        if let (Some((Some(_), span)), None) = (&layer.auth_basic, &layer.auth_basic_user_file) {
            if self.auth_reported.insert(*span) {
                self.out.push(
                    Diagnostic::error("`auth_basic` has no `auth_basic_user_file`")
                        .at(*span, "no users to check passwords against")
                        .help("add `auth_basic_user_file PATH;` in this block or an outer one"),
                );
            }
        }
    }

    /// Warns about an access rule that follows an `allow all` or `deny all`
    /// of the same block: it can never match.
    fn check_shadowed_rule(&mut self, layer: &Layer, n: &Node) {
        let Some(all) = layer
            .access
            .iter()
            .flatten()
            .find(|r| r.target == AccessTarget::All)
        else {
            return;
        };
        let verb = if all.allow { "allow" } else { "deny" };
        self.out.push(
            Diagnostic::warning("this rule can never match")
                .at(
                    n.args,
                    format!("`{verb} all` above decides every client first"),
                )
                .note(format!("`{verb} all` is at {}", all.origin))
                .help("the first matching rule wins: put `all` last"),
        );
    }

    fn check_root(&mut self, root: &Path, n: &Node) {
        if !self.roots_checked.insert(root.to_path_buf()) {
            return;
        }
        let written = self.sources.text(n.args).trim_matches('"').to_string();
        let file_name = &self.sources.file(n.name.file).name;
        let relative_to = if self.expserver {
            "a relative `dir_path` is relative to the folder xps is started in".to_string()
        } else {
            format!("relative roots are relative to the folder of `{file_name}`")
        };
        if !root.exists() {
            self.out.push(
                Diagnostic::warning(format!("root folder `{written}` does not exist"))
                    .at(n.args, "no such folder")
                    .note(relative_to)
                    .note("requests for it will get 404 until it is created"),
            );
        } else if root.is_file() {
            let name = root
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.out.push(
                Diagnostic::warning(format!("root `{written}` is a file, not a folder"))
                    .at(n.args, "a file")
                    .help(format!(
                        "`root` names the folder files are served from; to serve `{name}` for `/`, write `root` with its folder and `index {name};`"
                    )),
            );
        } else if !root.is_dir() {
            self.out.push(
                Diagnostic::warning(format!("root `{written}` is not a folder"))
                    .at(n.args, "not a folder"),
            );
        }
    }

    fn upstream(&mut self, n: &Node) {
        let Value::Text(name) = &n.value else { return };
        if let Some((_, first)) = self.by_name.get(name) {
            let first = *first;
            self.out.push(
                Diagnostic::error(format!("upstream `{name}` is defined twice"))
                    .at(n.args, "defined again here")
                    .also(first, "first defined here"),
            );
            return;
        }
        let mut group = UpstreamGroup {
            name: name.clone(),
            members: Vec::new(),
            balance: Balance::RoundRobin,
            keepalive: 32,
            health_check: None,
            implicit: false,
            origin: self.origin(n.name),
        };
        let mut seen: HashMap<crate::upstream::Endpoint, Span> = HashMap::default();
        for child in &n.children {
            match &child.value {
                Value::Member(m) => {
                    if let Some(first) = seen.insert(m.addr.clone(), child.args) {
                        self.out.push(
                            Diagnostic::error(format!(
                                "`{}` is a member of `{name}` twice",
                                m.name
                            ))
                            .at(child.args, "repeated member")
                            .also(first, "first listed here"),
                        );
                    }
                    group.members.push(m.clone());
                }
                Value::Choice(b) => group.balance = Balance::from_name(b).unwrap_or_default(),
                Value::Number(k) => group.keepalive = *k,
                Value::HealthCheck(h) => group.health_check = Some(h.clone()),
                _ => {}
            }
        }
        if !n.children.iter().any(|c| c.spec.key == Key::Member) {
            self.out.push(
                Diagnostic::error(format!("upstream `{name}` has no members"))
                    .at(n.args, "empty group")
                    .help("add `server HOST:PORT;` inside the block"),
            );
        }
        self.by_name
            .insert(name.clone(), (self.upstreams.len(), n.args));
        self.upstreams.push(group);
    }

    /// The group a `proxy_pass` names, creating implicit groups for
    /// `HOST:PORT`.
    fn resolve(&mut self, target: &ProxyTarget, n: &Node) -> Option<UpstreamId> {
        match target {
            ProxyTarget::Name(name) => match self.by_name.get(name) {
                Some((id, _)) => Some(*id),
                None => {
                    let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
                    let mut d = Diagnostic::error(format!("unknown upstream `{name}`"))
                        .at(n.args, "no upstream group has this name")
                        .maybe_help(suggestion(name, known.iter().copied()));
                    if d.help.is_none() {
                        d = d.help(format!("define `upstream {name} {{ server HOST:PORT; }}`, or write the backend as HOST:PORT"));
                    }
                    self.out.push(d);
                    None
                }
            },
            ProxyTarget::Address(name, addr) => {
                if let Some(&id) = self.implicit.get(name) {
                    return Some(id);
                }
                let id = self.upstreams.len();
                self.upstreams.push(UpstreamGroup {
                    name: name.clone(),
                    members: vec![Member::new(name.clone(), addr.clone())],
                    balance: Balance::RoundRobin,
                    keepalive: 32,
                    health_check: None,
                    implicit: true,
                    origin: self.origin(n.args),
                });
                self.implicit.insert(name.clone(), id);
                Some(id)
            }
        }
    }

    fn server(&mut self, n: &Node, main: &Layer) -> Option<Compiled> {
        let mut layer = Layer::default();
        let mut listen = Vec::new();
        let mut names: Vec<ServerName> = Vec::new();
        let mut names_span = None;
        let mut server_return = None;
        let mut location_nodes = Vec::new();
        for child in &n.children {
            match (&child.spec.key, &child.value) {
                (Key::Listen, Value::Listen(addr, default, proxy_protocol)) => {
                    match self.proxy_protocol.get(addr) {
                        Some((pp, first)) if pp != proxy_protocol => {
                            self.out.push(
                                Diagnostic::error(format!(
                                    "servers on {addr} disagree about `proxy_protocol`"
                                ))
                                .at(child.args, "this one")
                                .also(*first, "another server's listen here")
                                .help("a connection either starts with a PROXY header or not: say `proxy_protocol` in every `listen` of this address, or in none"),
                            );
                        }
                        Some(_) => {}
                        None => {
                            self.proxy_protocol
                                .insert(addr.clone(), (*proxy_protocol, child.args));
                        }
                    }
                    if let Some((_, _, first)) = listen.iter().find(|(a, _, _)| a == addr) {
                        self.out.push(
                            Diagnostic::error(format!("this server listens on {addr} twice"))
                                .at(child.args, "repeated address")
                                .also(*first, "first listed here"),
                        );
                        continue;
                    }
                    self.unix_folder(addr, child);
                    listen.push((addr.clone(), *default, child.args));
                }
                (Key::ServerName, Value::ServerNames(list)) => {
                    names = list.clone();
                    names_span = Some(child.args);
                }
                (Key::Return, Value::Return(r)) => server_return = Some((r.clone(), child.name)),
                (Key::Location, _) => location_nodes.push(child),
                _ => self.apply(&mut layer, child),
            }
        }
        let layer = layer.inherit(main);
        if let Some(size) = layer.client_header_max_size.filter(|&s| s < 1024) {
            if let Some(node) = n
                .children
                .iter()
                .find(|c| c.spec.key == Key::ClientHeaderMaxSize)
            {
                self.out.push(
                    Diagnostic::error(format!(
                        "`client_header_max_size` must be at least 1k, not {size} bytes"
                    ))
                    .at(node.args, "too small"),
                );
            }
        }
        if !n.children.iter().any(|c| c.spec.key == Key::Listen) {
            self.out.push(
                Diagnostic::error("server has no `listen`")
                    .at(n.name, "this server accepts no connections")
                    .help("add `listen PORT;`, for example `listen 8080;`"),
            );
        }
        let mut locations = Vec::new();
        let mut seen: HashMap<Match, Span> = HashMap::default();
        for loc in &location_nodes {
            let Value::Location(matcher) = &loc.value else {
                continue;
            };
            if let Some(first) = seen.get(matcher) {
                self.out.push(
                    Diagnostic::error(format!("duplicate location `{matcher}`"))
                        .at(loc.args, "this location matches the same paths")
                        .also(*first, "first defined here")
                        .help("merge the two blocks"),
                );
                continue;
            }
            seen.insert(matcher.clone(), loc.args);
            if let Some(location) = self.location(loc, matcher, &layer) {
                locations.push(location);
            }
        }
        if let (Some((_, span)), false) = (&server_return, location_nodes.is_empty()) {
            self.out.push(
                Diagnostic::warning("this server's locations are unreachable")
                    .at(*span, "a server-level `return` answers every request first")
                    .note("move the `return` into a location, or remove the locations"),
            );
        }
        let fallback_action = match server_return {
            Some((r, _)) => Action::Return(r),
            None if layer.root.is_some() => Action::Static,
            None => Action::NotFound,
        };
        let return_first = matches!(fallback_action, Action::Return(_));
        self.try_files_serves_files(n, &fallback_action);
        self.check_auth(&layer);
        Some(Compiled {
            server: Server {
                server_name: names,
                listen: listen.iter().map(|(a, _, _)| a.clone()).collect(),
                locations: Locations::new(locations),
                fallback: layer.route(fallback_action),
                return_first,
                connection: ConnectionLimits {
                    client_header_timeout: layer
                        .client_header_timeout
                        .unwrap_or(Duration::from_secs(10)),
                    keepalive_timeout: layer.keepalive_timeout.unwrap_or(Duration::from_secs(75)),
                    keepalive_requests: layer.keepalive_requests.unwrap_or(1000),
                    client_header_max_size: layer.client_header_max_size.unwrap_or(16 << 10),
                    client_min_rate: layer
                        .client_min_rate
                        .unwrap_or(Some(crate::routing::MinRate::DEFAULT)),
                },
                origin: self.origin(n.name),
            },
            listen,
            names_span,
        })
    }

    fn location(&mut self, n: &Node, matcher: &Match, server: &Layer) -> Option<Location> {
        let mut layer = Layer::default();
        let mut handlers: Vec<(Action, Span)> = Vec::new();
        let mut proxy_uri = None;
        for child in &n.children {
            match (&child.spec.key, &child.value) {
                (Key::ProxyPass | Key::Return | Key::Metrics, Value::Invalid) => return None,
                (Key::ProxyPass, Value::ProxyPass(target, uri)) => {
                    let id = self.resolve(target, child)?;
                    handlers.push((Action::Proxy(id), child.name));
                    proxy_uri = uri.clone().map(|uri| crate::routing::ProxyUri {
                        prefix: matcher.path().to_string(),
                        uri,
                    });
                }
                (Key::Return, Value::Return(r)) => {
                    handlers.push((Action::Return(r.clone()), child.name))
                }
                (Key::Metrics, _) => handlers.push((Action::Metrics, child.name)),
                _ => self.apply(&mut layer, child),
            }
        }
        let layer = layer.inherit(server);
        if let [(_, first), (_, second), ..] = handlers.as_slice() {
            let (a, b) = (
                self.sources.text(*first).to_string(),
                self.sources.text(*second).to_string(),
            );
            self.out.push(
                Diagnostic::error(format!("location `{matcher}` has both `{a}` and `{b}`"))
                    .at(*second, "second handler")
                    .also(*first, "first handler")
                    .help("a location answers in one way: keep one of them, or split the location"),
            );
            return None;
        }
        let action = match handlers.pop() {
            Some((action, _)) => action,
            None if layer.root.is_some() => Action::Static,
            None => {
                self.out.push(
                    Diagnostic::error(format!("location `{matcher}` has nothing to serve"))
                        .at(n.args, "no root, proxy_pass, return or metrics")
                        .help("add `root PATH;` here or in the server, or `proxy_pass`, `return` or `metrics`"),
                );
                return None;
            }
        };
        self.try_files_serves_files(n, &action);
        self.check_auth(&layer);
        let mut route = layer.route(action);
        route.proxy_uri = proxy_uri;
        Some(Location {
            matcher: matcher.clone(),
            route,
            origin: self.origin(n.name),
        })
    }

    /// `try_files` in block `n` is an error unless the block serves files
    /// (it would do nothing).
    fn try_files_serves_files(&mut self, n: &Node, action: &Action) {
        if matches!(action, Action::Static) {
            return;
        }
        for child in n.children.iter().filter(|c| c.spec.key == Key::TryFiles) {
            self.out.push(
                Diagnostic::error("`try_files` needs a block that serves files")
                    .at(child.name, "would do nothing here")
                    .help("give the block a `root` and no `proxy_pass` or `return`; route the fallback to a proxying location by its path"),
            );
        }
    }

    /// A Unix socket to listen on goes in a folder that exists (the socket
    /// file itself is made, or replaced when stale, at bind time).
    fn unix_folder(&mut self, addr: &Endpoint, child: &Node) {
        let Endpoint::Unix(path) = addr else {
            return;
        };
        let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) else {
            return;
        };
        match std::fs::metadata(folder) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => self.out.push(
                Diagnostic::error(format!("{} is not a folder", folder.display()))
                    .at(child.args, "the socket would go in it"),
            ),
            Err(e) => self.out.push(
                Diagnostic::error(format!(
                    "cannot listen on {addr}: the folder {} {}",
                    folder.display(),
                    match e.kind() {
                        std::io::ErrorKind::NotFound => "does not exist".to_string(),
                        _ => format!("cannot be read ({})", crate::config::load::io_reason(&e)),
                    }
                ))
                .at(child.args, "no folder for the socket")
                .help(format!("create it first: `mkdir -p {}`", folder.display())),
            ),
        }
    }

    /// Groups servers by listen address; checks default servers and names.
    fn listeners(&mut self, servers: &[Compiled]) -> Vec<Listener> {
        let mut order: Vec<Endpoint> = Vec::new();
        let mut members: HashMap<Endpoint, Vec<usize>> = HashMap::default();
        let mut defaults: HashMap<Endpoint, Span> = HashMap::default();
        let mut names: HashMap<(Endpoint, String), Span> = HashMap::default();
        for (id, s) in servers.iter().enumerate() {
            for (addr, is_default, span) in &s.listen {
                if !members.contains_key(addr) {
                    order.push(addr.clone());
                    self.http_spans.insert(addr.clone(), *span);
                }
                members.entry(addr.clone()).or_default().push(id);
                if *is_default {
                    if let Some(first) = defaults.get(addr) {
                        self.out.push(
                            Diagnostic::error(format!("two default servers for {addr}"))
                                .at(*span, "second default_server")
                                .also(*first, "first default_server"),
                        );
                    } else {
                        defaults.insert(addr.clone(), *span);
                    }
                }
                for name in &s.server.server_name {
                    let key = (addr.clone(), name.to_string());
                    let here = s.names_span.unwrap_or(*span);
                    if let Some(first) = names.get(&key) {
                        self.out.push(
                            Diagnostic::warning(format!(
                                "server name `{name}` is used twice on {addr}"
                            ))
                            .at(here, "the earlier server keeps it")
                            .also(*first, "first used here"),
                        );
                    } else {
                        names.insert(key, here);
                    }
                }
            }
        }
        order
            .into_iter()
            .map(|addr| {
                let ids = members.remove(&addr).unwrap_or_default();
                let hosts = HostIndex::new(ids.iter().map(|&id| {
                    let s = &servers[id];
                    let is_default = s.listen.iter().any(|(a, d, _)| *a == addr && *d);
                    (id, s.server.server_name.as_slice(), is_default)
                }));
                Listener {
                    proxy_protocol: self.proxy_protocol.get(&addr).is_some_and(|(pp, _)| *pp),
                    addr,
                    servers: ids,
                    hosts,
                }
            })
            .collect()
    }

    fn stream(&mut self, n: &Node) -> Vec<StreamServer> {
        let mut outer = Layer::default();
        for child in n
            .children
            .iter()
            .filter(|c| c.spec.key != Key::StreamServer)
        {
            self.apply(&mut outer, child);
        }
        let mut streams = Vec::new();
        for s in n
            .children
            .iter()
            .filter(|c| c.spec.key == Key::StreamServer)
        {
            let mut layer = Layer::default();
            let mut listen = Vec::new();
            let mut upstream = None;
            let mut has_proxy = false;
            for child in &s.children {
                match (&child.spec.key, &child.value) {
                    (Key::StreamListen, Value::Listen(addr, _, _)) => {
                        self.unix_folder(addr, child);
                        listen.push((addr.clone(), child.args))
                    }
                    (Key::StreamProxyPass, Value::ProxyPass(target, _)) => {
                        has_proxy = true;
                        upstream = self.resolve(target, child);
                    }
                    (Key::StreamProxyPass, _) => has_proxy = true,
                    _ => self.apply(&mut layer, child),
                }
            }
            let layer = layer.inherit(&outer);
            if !s.children.iter().any(|c| c.spec.key == Key::StreamListen) {
                self.out.push(
                    Diagnostic::error("stream server has no `listen`")
                        .at(s.name, "this server accepts no connections")
                        .help("add `listen PORT;`"),
                );
            }
            if !has_proxy {
                self.out.push(
                    Diagnostic::error("stream server has no `proxy_pass`")
                        .at(s.name, "nowhere to relay connections")
                        .help("add `proxy_pass HOST:PORT;` or `proxy_pass UPSTREAM;`"),
                );
            }
            let Some(upstream) = upstream else { continue };
            streams.push(StreamServer {
                listen: listen.iter().map(|(a, _)| a.clone()).collect(),
                upstream,
                proxy_timeout: layer.proxy_timeout.unwrap_or(Duration::from_secs(600)),
                proxy_connect_timeout: layer
                    .proxy_connect_timeout
                    .unwrap_or(Duration::from_secs(5)),
                access: crate::routing::AccessList {
                    rules: layer.access.clone().unwrap_or_default(),
                },
                origin: self.origin(s.name),
            });
            self.stream_spans.extend(listen);
        }
        streams
    }

    /// An address is either HTTP or stream, and one stream server's.
    fn stream_conflicts(&mut self, listeners: &[Listener]) {
        let spans = std::mem::take(&mut self.stream_spans);
        let mut seen: HashMap<Endpoint, Span> = HashMap::default();
        for (addr, span) in spans {
            if let Some(http) = listeners
                .iter()
                .find(|l| l.addr == addr)
                .and_then(|l| self.http_spans.get(&l.addr))
            {
                let http = *http;
                self.out.push(
                    Diagnostic::error(format!("{addr} is both an HTTP and a stream address"))
                        .at(span, "a stream server listens here")
                        .also(http, "an HTTP server listens here")
                        .help("give one of them another address"),
                );
            } else if let Some(first) = seen.get(&addr) {
                self.out.push(
                    Diagnostic::error(format!("two stream servers listen on {addr}"))
                        .at(span, "second listener")
                        .also(*first, "first listener"),
                );
            } else {
                seen.insert(addr, span);
            }
        }
    }
}
