//! The one table of directives: name, contexts, arity, whether it repeats,
//! the kind of value it takes, and its documentation.
//!
//! Every structural check in [`super::check`] reads this table, and
//! `docs/config.md` is generated from it (a test keeps the two equal), so
//! the language, its checks and its reference cannot drift apart.

use crate::log::LogLevel;
use crate::upstream::Balance;
use rustc_hash::FxHashMap as HashMap;
use std::sync::OnceLock;

/// Where a directive stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    /// The top level of the file.
    Main,
    /// Inside an HTTP `server { }`.
    Server,
    /// Inside a `location { }`.
    Location,
    /// Inside an `upstream NAME { }`.
    Upstream,
    /// Inside `stream { }`.
    Stream,
    /// Inside a `server { }` of a `stream`.
    StreamServer,
}

impl Context {
    /// The name used in messages and docs.
    pub fn name(self) -> &'static str {
        match self {
            Context::Main => "main",
            Context::Server => "server",
            Context::Location => "location",
            Context::Upstream => "upstream",
            Context::Stream => "stream",
            Context::StreamServer => "stream server",
        }
    }
}

/// Which directive a row is: compile dispatches on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Key {
    Workers,
    ServerHeader,
    Include,
    Watch,
    ErrorLog,
    AccessLog,
    Upstream,
    Server,
    Stream,
    StreamServer,
    Listen,
    StreamListen,
    ServerName,
    Location,
    Root,
    Index,
    Autoindex,
    AutoindexFormat,
    Dotfiles,
    Charset,
    Expires,
    TryFiles,
    ProxyPass,
    StreamProxyPass,
    ProxySetHeader,
    Return,
    Metrics,
    Allow,
    Deny,
    AddHeader,
    ErrorPage,
    Gzip,
    GzipTypes,
    GzipMinLength,
    GzipCompLevel,
    GzipStatic,
    ClientHeaderTimeout,
    ClientBodyTimeout,
    KeepaliveTimeout,
    KeepaliveRequests,
    SendTimeout,
    ProxyConnectTimeout,
    ProxyReadTimeout,
    ProxySendTimeout,
    ProxyTimeout,
    ClientMaxBodySize,
    ClientHeaderMaxSize,
    ClientMinRate,
    UnderscoresInHeaders,
    MaxConnections,
    /// `gzip_cache`.
    GzipCache,
    ShutdownTimeout,
    AuthBasic,
    AuthBasicUserFile,
    LimitReqZone,
    LimitReq,
    LimitReqStatus,
    LimitConnZone,
    LimitConn,
    LimitConnStatus,
    SetRealIpFrom,
    LogFormat,
    RealIpHeader,
    RealIpRecursive,
    Member,
    Balance,
    Keepalive,
    HealthCheck,
}

/// The kind of value a directive's arguments form; [`super::values`]
/// parses each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No arguments, or a block with no arguments.
    Nothing,
    /// `on` or `off`.
    Flag,
    /// `250ms`, `10s`, `5m`, `1h`, `1d`, combinations like `1m30s`; a bare
    /// number is seconds.
    Duration,
    /// `512`, `4k`, `1m`, `1g` (powers of 1024).
    Size,
    /// A whole number in a range.
    Number {
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// `auto` or a thread count.
    Workers,
    /// Any text, or `off`.
    TextOrOff,
    /// `off`, `epoch`, `max` or a duration.
    Expires,
    /// `try_files`.
    TryFiles,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A file system path; relative to the folder of the file it is in.
    Path,
    /// A glob of files to include.
    Glob,
    /// A name for an upstream group.
    Name,
    /// `server_name` entries.
    ServerNames,
    /// File names (`index`).
    Files,
    /// MIME types (`gzip_types`).
    MimeTypes,
    /// `[ADDR:]PORT`, plus `default_server` when allowed.
    Listen {
        /// Whether `default_server` may follow.
        default_server: bool,
    },
    /// `[=] PATH`.
    Location,
    /// `ADDR`, `CIDR` or `all`.
    Access,
    /// `CODE [URL|TEXT]`.
    Return,
    /// `CODE… PATH`.
    ErrorPage,
    /// `NAME VALUE`.
    Header,
    /// `NAME`, `HOST:PORT`, and `http://…` when `http`.
    ProxyPass {
        /// Whether this is the HTTP form (`http://` allowed).
        http: bool,
    },
    /// `HOST:PORT [weight=N] [max_fails=N] [fail_timeout=D] [backup]`.
    Member,
    /// `PATH [interval=D] [fails=N] [passes=N]`.
    HealthCheck,
    /// `stderr|PATH [LEVEL]`.
    ErrorLog,
    /// `stdout|stderr|PATH|off`, and a format name.
    AccessLog,
    /// `NAME [escape=…] STRING…`.
    LogFormat,
    /// `RATE [GRACE]` or `off`.
    MinRate,
    /// `KEY zone=NAME:SIZE`, with `rate=RATE` when `req`.
    Zone {
        /// `limit_req_zone` (else `limit_conn_zone`).
        req: bool,
    },
    /// `zone=NAME [burst=N] [nodelay]`.
    LimitReq,
    /// `NAME N`.
    LimitConn,
    /// A header name, or `proxy_protocol`.
    RealIpHeader,
}

/// One row of the table.
#[derive(Debug)]
pub struct Spec {
    /// Which directive.
    pub key: Key,
    /// Its name in the language.
    pub name: &'static str,
    /// Where it may stand.
    pub contexts: &'static [Context],
    /// Fewest arguments.
    pub min_args: usize,
    /// Most arguments; `None` for no limit.
    pub max_args: Option<usize>,
    /// The context its block opens; `None` when it takes `;`.
    pub block: Option<Context>,
    /// May appear more than once in a block.
    pub repeatable: bool,
    /// Set in an outer block, it is the default of inner blocks.
    pub inherited: bool,
    /// The value it takes.
    pub kind: Kind,
    /// Syntax line for the docs.
    pub syntax: &'static str,
    /// Default, as the docs state it.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
    /// A short example.
    pub example: &'static str,
}

impl Spec {
    const fn new(
        key: Key,
        name: &'static str,
        contexts: &'static [Context],
        args: (usize, Option<usize>),
        kind: Kind,
    ) -> Spec {
        Spec {
            key,
            name,
            contexts,
            min_args: args.0,
            max_args: args.1,
            block: None,
            repeatable: false,
            inherited: false,
            kind,
            syntax: "",
            default: "–",
            doc: "",
            example: "",
        }
    }

    const fn block(mut self, ctx: Context) -> Spec {
        self.block = Some(ctx);
        self
    }

    const fn repeatable(mut self) -> Spec {
        self.repeatable = true;
        self
    }

    const fn inherited(mut self) -> Spec {
        self.inherited = true;
        self
    }

    const fn docs(
        mut self,
        syntax: &'static str,
        default: &'static str,
        doc: &'static str,
        example: &'static str,
    ) -> Spec {
        self.syntax = syntax;
        self.default = default;
        self.doc = doc;
        self.example = example;
        self
    }

    /// The heading of this row in the docs: the name, plus the context when
    /// another row shares the name.
    pub fn title(&self) -> String {
        let shared = TABLE.iter().filter(|s| s.name == self.name).count() > 1;
        if shared {
            let ctx: Vec<&str> = self.contexts.iter().map(|c| c.name()).collect();
            format!("{} (in {})", self.name, ctx.join(", "))
        } else {
            self.name.to_string()
        }
    }
}

use Context::{
    Location as L, Main as M, Server as S, Stream as ST, StreamServer as SS, Upstream as U,
};

const MSL: &[Context] = &[M, S, L];
const MS: &[Context] = &[M, S];
const ONE: (usize, Option<usize>) = (1, Some(1));
const NONE: (usize, Option<usize>) = (0, Some(0));
const FLAG: Kind = Kind::Flag;
const DUR: Kind = Kind::Duration;

/// Every directive of the language.
pub static TABLE: &[Spec] = &[
    // main
    Spec::new(Key::Workers, "workers", &[M], ONE, Kind::Workers).docs(
        "workers auto | N",
        "auto",
        "Number of event-loop threads. `auto` starts one per CPU.",
        "workers 4;",
    ),
    Spec::new(Key::ServerHeader, "server_header", &[M], ONE, Kind::TextOrOff).docs(
        "server_header TEXT | off",
        "eXpServer",
        "Value of the `Server` header on responses xps makes; `off` leaves the header out. Proxied responses keep their upstream's `Server`.",
        "server_header off;",
    ),
    Spec::new(Key::Include, "include", &[M, S, ST], ONE, Kind::Glob).repeatable().docs(
        "include GLOB",
        "–",
        "Splices the directives of other files in at this point. The glob is relative to the folder of the file that includes; files are read in name order, and as in a shell `*` does not match a leading dot (hidden files and editor backups are skipped). A glob that matches nothing is fine, a plain path that does not exist is an error, and so is a file that includes itself. Included files are watched for changes too.",
        "include sites/*.conf;",
    ),
    Spec::new(Key::Watch, "watch", &[M], ONE, FLAG).docs(
        "watch on | off",
        "on",
        "Reload the running server when any loaded file changes. `SIGHUP` reloads either way.",
        "watch off;",
    ),
    Spec::new(Key::ErrorLog, "error_log", &[M], (1, Some(2)), Kind::ErrorLog).docs(
        "error_log stderr | PATH [debug | info | warn | error]",
        "stderr info",
        "Where diagnostics and lifecycle events go, and the least severe level written. A relative PATH is relative to the file's folder.",
        "error_log logs/error.log warn;",
    ),
    Spec::new(Key::AccessLog, "access_log", MSL, (1, Some(2)), Kind::AccessLog).inherited().docs(
        "access_log stdout | stderr | PATH [FORMAT] | off",
        "off",
        "One line per request, in FORMAT (a `log_format` name) or else `combined`: the combined log format followed by the request time in seconds. A relative PATH is relative to the file's folder. `off` in an inner block stops logging there.",
        "access_log logs/access.log;\naccess_log logs/api.json json;",
    ),
    Spec::new(Key::LogFormat, "log_format", &[M], (2, None), Kind::LogFormat).repeatable().docs(
        "log_format NAME [escape=default | json | none] STRING…",
        "`combined` is built in",
        "A named access-log line: the STRINGs joined, with variables — every variable of the Variables table, and `$status`, `$body_bytes_sent`, `$request_time` (seconds, to the millisecond), `$time_local`, `$time_iso8601`, `$msec` and `$request` (the request line). Variable values are escaped: by default `\"`, `\\`, control and non-ASCII bytes as `\\xHH` and an empty value as `-`; `escape=json` makes them JSON string contents (an empty value stays empty); `escape=none` writes them as they are. Literal text is written as is.",
        "log_format json escape=json '{\"time\":\"$time_iso8601\",\"ip\":\"$remote_addr\",'\n    '\"request\":\"$request\",\"status\":$status,\"bytes\":$body_bytes_sent,'\n    '\"id\":\"$request_id\",\"took\":$request_time}';",
    ),
    Spec::new(Key::MaxConnections, "max_connections", &[M], ONE, Kind::Number { min: 1, max: 1_000_000 }).docs(
        "max_connections N",
        "10000",
        "Most client connections open at once, over all workers. When a new one arrives past it, a connection gives way: one closing, else the longest idle, else the slowest client still sending a head or body (after its first second); if none can, the new connection gets `503` and is closed at once.",
        "max_connections 20000;",
    ),
    Spec::new(Key::GzipCache, "gzip_cache", &[M], ONE, Kind::Size).docs(
        "gzip_cache SIZE",
        "16m",
        "Compressed bytes of files and listings each worker keeps in memory, so a file is compressed once and then sent like a small file; the least recently used are dropped first, and a change to a file drops its compressed bytes at once. `0` keeps none. A file the cache does not take (over 8 MiB, or with `0`) is compressed as it is sent, in chunks (close-delimited to HTTP/1.0 clients), read a piece at a time as the client takes it.",
        "gzip_cache 64m;",
    ),
    Spec::new(Key::ShutdownTimeout, "shutdown_timeout", &[M], ONE, DUR).docs(
        "shutdown_timeout DURATION",
        "10s",
        "On `SIGTERM`/`SIGINT`, how long requests in flight may take before xps exits anyway.",
        "shutdown_timeout 30s;",
    ),
    Spec::new(Key::Upstream, "upstream", &[M], ONE, Kind::Name).block(U).repeatable().docs(
        "upstream NAME { … }",
        "–",
        "A named group of backends for `proxy_pass NAME`. It needs at least one `server` member.",
        "upstream app {\n    server 127.0.0.1:3000;\n    server 127.0.0.1:3001;\n}",
    ),
    Spec::new(Key::Server, "server", &[M], NONE, Kind::Nothing).block(S).repeatable().docs(
        "server { … }",
        "–",
        "An HTTP virtual server. It needs at least one `listen`.",
        "server {\n    listen 8001;\n    root ./public;\n}",
    ),
    Spec::new(Key::Stream, "stream", &[M], NONE, Kind::Nothing).block(ST).docs(
        "stream { … }",
        "–",
        "Plain TCP proxying. Its `server` blocks relay bytes unchanged to an upstream. Nothing is inherited from the HTTP side.",
        "stream {\n    server {\n        listen 9000;\n        proxy_pass 127.0.0.1:5432;\n    }\n}",
    ),
    // server
    Spec::new(Key::Listen, "listen", &[S], (1, Some(3)), Kind::Listen { default_server: true }).repeatable().docs(
        "listen [ADDRESS:]PORT | unix:/PATH [default_server] [proxy_protocol]",
        "– (required)",
        "An address the server accepts connections on: `8001` is `0.0.0.0:8001`; `[::]:8001` is IPv6 only, so both can be given; `127.0.0.1:8001`; `localhost:8001` is `127.0.0.1:8001`; `unix:/run/xps/web.sock` is a Unix domain socket, for a proxy on the same machine (an absolute path of at most 107 bytes, in a folder that exists; any user may connect, as to nginx's, so the folder's permissions say who reaches it). xps makes the socket file at start or reload, replaces one nothing listens on (left by a crash), refuses one another process listens on and any other kind of file, and removes it when the address leaves the config and when the server stops. A client of a Unix socket has no address: `$remote_addr` is `unix:` (as in nginx), `$remote_port` and `$server_port` are empty, `allow`/`deny` match it with `unix:` or `all`, limits keyed by the address count all such clients as one, unless `set_real_ip_from unix:` takes the address the proxy sends. `default_server` makes this server answer requests whose Host matches no `server_name` on that address. `proxy_protocol`: every connection starts with a PROXY protocol header (version 1 or 2, as HAProxy and cloud load balancers send it); a connection without a valid one is closed. Every server on the address must say it alike. See `real_ip_header proxy_protocol`.",
        "listen 8001;\nlisten [::]:8001;\nlisten 127.0.0.1:8080 default_server;\nlisten unix:/run/xps/web.sock;",
    ),
    Spec::new(Key::ServerName, "server_name", &[S], (1, None), Kind::ServerNames).docs(
        "server_name NAME…",
        "none (matches any Host)",
        "Host names this server answers: exact names, and leading wildcards `*.example.test` (which do not match `example.test` itself). Matching ignores case and the port. A Host picks: an exact name, then the longest wildcard, then the `default_server` of the address, then the first server without `server_name`, then the first server.",
        "server_name example.test *.example.test;",
    ),
    Spec::new(Key::Location, "location", &[S], (1, Some(2)), Kind::Location).block(L).repeatable().docs(
        "location [=] PATH { … }",
        "–",
        "Settings for a part of the site. `location = /p` matches only `/p` and wins outright. `location /p` matches `/p` and everything under `/p/`, but not `/px`; `location /p/` matches everything under `/p/`. The longest matching prefix wins. Paths are matched after percent-decoding and resolving `.`, `..` and `//`; the query is ignored. Locations do not nest.",
        "location /api {\n    proxy_pass app;\n}\nlocation = /old {\n    return 301 /new;\n}",
    ),
    Spec::new(Key::Return, "return", &[S, L], (1, Some(2)), Kind::Return).docs(
        "return CODE [URL | TEXT]",
        "–",
        "Answers with a fixed response. 301, 302, 303, 307 and 308 need a URL (the `Location`); other codes take an optional body text (never sent with 204 or 304: a warning). `return 444;` sends nothing and closes the connection, as in nginx (to drop unwanted hosts and scanners). The URL and the text may hold variables: `return 301 https://$host$request_uri;`. A server-level `return` answers every request of the server before locations are looked at. Access rules are checked first.",
        "return 301 https://example.test/;\nreturn 403 \"not here\";",
    ),
    // static files
    Spec::new(Key::Root, "root", MSL, ONE, Kind::Path).inherited().docs(
        "root PATH",
        "–",
        "Folder of static files: the file served is root + request path. A relative PATH is relative to the folder of the file it is written in. Files whose real path (symlinks resolved) leaves the root are not served.",
        "root ./public;",
    ),
    Spec::new(Key::Index, "index", MSL, (1, None), Kind::Files).inherited().docs(
        "index FILE…",
        "index.html",
        "Files tried in order for a request that names a directory.",
        "index index.html index.htm;",
    ),
    Spec::new(Key::Autoindex, "autoindex", MSL, ONE, FLAG).inherited().docs(
        "autoindex on | off",
        "off",
        "List a directory that has no index file.",
        "autoindex on;",
    ),
    Spec::new(Key::AutoindexFormat, "autoindex_format", MSL, ONE, Kind::Choice(&["html", "json"])).inherited().docs(
        "autoindex_format html | json",
        "html",
        "Format of directory listings. A request with `Accept: application/json` gets JSON either way.",
        "autoindex_format json;",
    ),
    Spec::new(Key::Dotfiles, "dotfiles", MSL, ONE, Kind::Choice(&["deny", "allow"])).inherited().docs(
        "dotfiles deny | allow",
        "deny",
        "Whether paths with a segment starting with `.` are served and listed. Denied ones answer 404.",
        "dotfiles allow;",
    ),
    Spec::new(Key::TryFiles, "try_files", &[S, L], (2, None), Kind::TryFiles).docs(
        "try_files FILE… URI | =CODE",
        "–",
        "Serves the first FILE that exists under the root (a FILE ending in `/` names a folder, served with its index or listing), else routes the request again with URI (an internal redirect: the location that path matches answers it), or answers =CODE. FILEs and URI may hold variables: `try_files $uri $uri/ /index.html;` is a single-page app's fallback. A location with `try_files` serves files (not `proxy_pass` or `return`); a server-level one applies to requests no location takes.",
        "location / {\n    try_files $uri $uri/ /index.html;\n}",
    ),
    Spec::new(Key::Expires, "expires", MSL, ONE, Kind::Expires).inherited().docs(
        "expires DURATION | max | epoch | off",
        "off",
        "How long clients may keep a response: `Cache-Control: max-age=N` and `Expires` (now + DURATION) on answers with status 200, 201, 204, 206, 301, 302, 303, 304, 307 or 308, files, listings, `return`s and proxied responses alike (a proxied response's own `Expires` and `Cache-Control` are replaced). `max` is ten years (`Expires` in 2037), `epoch` sends `Expires` in 1970 with `Cache-Control: no-cache`, `off` adds nothing.",
        "location /assets/ {\n    expires 30d;\n}",
    ),
    Spec::new(Key::Charset, "charset", MSL, ONE, Kind::TextOrOff).inherited().docs(
        "charset NAME | off",
        "off",
        "Appends `; charset=NAME` to the `text/*` content types of files and `return` texts. Pages xps generates (listings, error pages) are UTF-8 and always say `charset=utf-8`.",
        "charset utf-8;",
    ),
    Spec::new(Key::ErrorPage, "error_page", MSL, (2, None), Kind::ErrorPage).repeatable().inherited().docs(
        "error_page CODE… [=CODE] PATH",
        "a small built-in page",
        "Serves PATH (a file under the effective root) instead of the built-in page, with the error's status, or with `=CODE` when given: `error_page 404 =200 /index.html;` answers every missing path with the app's page (a single-page app's fallback). Codes are 300–599; `=CODE` is 200–599.",
        "error_page 404 /404.html;\nerror_page 500 502 503 504 /50x.html;\nerror_page 404 =200 /index.html;",
    ),
    Spec::new(Key::AddHeader, "add_header", MSL, (2, Some(2)), Kind::Header).repeatable().inherited().docs(
        "add_header NAME VALUE",
        "–",
        "A header added to every response of the block, proxied ones included. VALUE may hold variables (`add_header X-Request-Id $request_id;`).",
        "add_header X-Frame-Options DENY;",
    ),
    // proxy
    Spec::new(Key::ProxyPass, "proxy_pass", &[L], ONE, Kind::ProxyPass { http: true }).docs(
        "proxy_pass NAME | HOST:PORT | http://HOST:PORT[/URI] | unix:/PATH | http://unix:/PATH[:/URI]",
        "–",
        "Sends requests to an upstream group, or to one backend — on an address, or on a Unix domain socket (`unix:/run/app.sock`; with a URI, nginx's `http://unix:/run/app.sock:/api/`); `http://NAME` names a group too. A request to a Unix socket backend goes with the client's `Host` (or `localhost` when it has none). Without a URI the request goes with its own path and query. With one (`proxy_pass http://app/;` in `location /api/`), the part of the normalised path the location matched is replaced by the URI, as in nginx: `/api/users?id=7` goes up as `/users?id=7` (the rest of the path escaped again, the query as sent). A prefix location ending in `/` that proxies also answers its path without the slash (`/api`) with a 301 to the slash form, unless an exact location takes it.",
        "proxy_pass app;\nproxy_pass 127.0.0.1:3000;\nproxy_pass http://app/v2/;",
    ),
    Spec::new(Key::ProxySetHeader, "proxy_set_header", MSL, (2, Some(2)), Kind::Header).repeatable().inherited().docs(
        "proxy_set_header NAME VALUE",
        "–",
        "Adds or replaces a request header sent upstream; an empty VALUE (`\"\"`) removes it (as does a VALUE whose variables are all empty). VALUE may hold variables (`proxy_set_header X-Real-IP $remote_addr;`).",
        "proxy_set_header X-Request-Source edge;",
    ),
    Spec::new(Key::ProxyConnectTimeout, "proxy_connect_timeout", &[M, S, L, ST, SS], ONE, DUR).inherited().docs(
        "proxy_connect_timeout DURATION",
        "5s",
        "Time to connect to a backend; past it the next member is tried, and when none is left the answer is 504.",
        "proxy_connect_timeout 2s;",
    ),
    Spec::new(Key::ProxyReadTimeout, "proxy_read_timeout", MSL, ONE, DUR).inherited().docs(
        "proxy_read_timeout DURATION",
        "60s",
        "Longest gap between two reads from a backend; past it the answer is 504 (or the connection closes, if the response had started). Also the idle timeout of WebSocket tunnels.",
        "proxy_read_timeout 5m;",
    ),
    Spec::new(Key::ProxySendTimeout, "proxy_send_timeout", MSL, ONE, DUR).inherited().docs(
        "proxy_send_timeout DURATION",
        "60s",
        "Longest gap between two writes to a backend.",
        "proxy_send_timeout 30s;",
    ),
    Spec::new(Key::Metrics, "metrics", &[L], NONE, Kind::Nothing).docs(
        "metrics",
        "–",
        "Answers with live figures: JSON (the eXpServer dashboard's fields), Prometheus text, or an HTML page that polls the JSON, by `?format=` (`json`, `prometheus`, `html`) or else `Accept`; always `Access-Control-Allow-Origin: *` and `Cache-Control: no-store`. Counters are per worker, summed when read, and kept across reloads. Every figure is defined in `docs/metrics.md`.",
        "location /_status {\n    metrics;\n}",
    ),
    // access
    Spec::new(Key::Allow, "allow", &[M, S, L, ST, SS], ONE, Kind::Access).repeatable().inherited().docs(
        "allow ADDRESS | CIDR | unix: | all",
        "–",
        "Lets matching clients in (`unix:`: clients of a `listen unix:` socket, which no address or CIDR block matches). `allow` and `deny` rules form one ordered list: the first that matches decides, and a client no rule matches is allowed. Denied requests get 403; denied stream connections are closed. Checked before anything else, `return` included.",
        "allow 127.0.0.0/8;\nallow ::1;\nallow unix:;\ndeny all;",
    ),
    Spec::new(Key::Deny, "deny", &[M, S, L, ST, SS], ONE, Kind::Access).repeatable().inherited().docs(
        "deny ADDRESS | CIDR | unix: | all",
        "–",
        "Keeps matching clients out; see `allow`.",
        "deny 10.0.0.0/8;",
    ),
    Spec::new(Key::AuthBasic, "auth_basic", MSL, ONE, Kind::TextOrOff).inherited().docs(
        "auth_basic REALM | off",
        "off",
        "Asks for a user name and password (HTTP Basic authentication) checked against `auth_basic_user_file`; a request without valid ones gets 401 with `WWW-Authenticate: Basic realm=\"REALM\"`. Checked after `allow`/`deny` (a denied client gets 403 first) and before anything else, `return` included. `off` lifts it in an inner block. Use it over TLS (a load balancer in front): the password crosses the network in the clear.",
        "location /admin/ {\n    auth_basic \"Team only\";\n    auth_basic_user_file htpasswd;\n}",
    ),
    Spec::new(Key::AuthBasicUserFile, "auth_basic_user_file", MSL, ONE, Kind::Path).inherited().docs(
        "auth_basic_user_file PATH",
        "–",
        "The users for `auth_basic`: a file of `user:hash` lines as `htpasswd` writes them, with bcrypt (`htpasswd -B`), SHA-512 or SHA-256 crypt (`-5`, `-2`) or apr1-MD5 (`-m`, its default) hashes; `#` lines are comments. It is read with the config: a missing file is an error, a line that cannot be used is a warning with its place, and saving the file reloads it like an included config. Each worker remembers the credentials it checked (up to 1,024), so a bcrypt hash is computed once per client, not per request; an address sending many new credentials gets 429 (see server.md, Basic authentication).",
        "auth_basic_user_file /etc/xps/htpasswd;",
    ),
    Spec::new(Key::LimitReqZone, "limit_req_zone", &[M], (3, Some(3)), Kind::Zone { req: true }).repeatable().docs(
        "limit_req_zone KEY zone=NAME:SIZE rate=RATE",
        "–",
        "A request rate limit for `limit_req` to apply: each value of KEY (`$binary_remote_addr`: per client address; any variables) is a leaky bucket that lets RATE requests through (`10r/s`, `30r/m`). SIZE bounds its memory (about 8,000 keys per `1m`; at least `32k`); when it is full, keys whose bucket is empty make room, and while none is, new keys get the limit's status. A request whose KEY is empty is not limited. The state is shared by the workers and kept across a reload that leaves KEY and SIZE as they were.",
        "limit_req_zone $binary_remote_addr zone=per_ip:10m rate=10r/s;",
    ),
    Spec::new(Key::LimitReq, "limit_req", MSL, (1, Some(3)), Kind::LimitReq).repeatable().inherited().docs(
        "limit_req zone=NAME [burst=N] [nodelay]",
        "–",
        "Limits the rate of requests per key of zone NAME, as nginx does: a request over the rate waits its turn when fewer than N are waiting (`burst`), or with `nodelay` goes at once; past the burst it gets `limit_req_status` with `Retry-After` (seconds until a request fits again). Checked before `allow`/`deny`, `auth_basic` and everything else but a 413. Several `limit_req` in a block all apply; a block with its own replaces the outer ones.",
        "location /login {\n    limit_req zone=per_ip burst=5 nodelay;\n}",
    ),
    Spec::new(Key::LimitReqStatus, "limit_req_status", MSL, ONE, Kind::Number { min: 400, max: 599 }).inherited().docs(
        "limit_req_status CODE",
        "503",
        "The status of a request `limit_req` refuses (429 says \"too many requests\" to clients and crawlers; nginx's default is 503).",
        "limit_req_status 429;",
    ),
    Spec::new(Key::LimitConnZone, "limit_conn_zone", &[M], (2, Some(2)), Kind::Zone { req: false }).repeatable().docs(
        "limit_conn_zone KEY zone=NAME:SIZE",
        "–",
        "A concurrency limit for `limit_conn` to apply: the requests in progress per value of KEY, shared by the workers, kept across a reload that leaves KEY and SIZE as they were. SIZE as for `limit_req_zone`.",
        "limit_conn_zone $binary_remote_addr zone=per_ip_conn:10m;",
    ),
    Spec::new(Key::LimitConn, "limit_conn", MSL, (2, Some(2)), Kind::LimitConn).repeatable().inherited().docs(
        "limit_conn NAME N",
        "–",
        "At most N requests per key of zone NAME in progress at once (a request counts from its head until its response is out, a proxied one included); one more gets `limit_conn_status` with `Retry-After: 1`. Checked with `limit_req`.",
        "limit_conn per_ip_conn 10;",
    ),
    Spec::new(Key::LimitConnStatus, "limit_conn_status", MSL, ONE, Kind::Number { min: 400, max: 599 }).inherited().docs(
        "limit_conn_status CODE",
        "503",
        "The status of a request `limit_conn` refuses.",
        "limit_conn_status 429;",
    ),
    Spec::new(Key::SetRealIpFrom, "set_real_ip_from", MSL, ONE, Kind::Access).repeatable().inherited().docs(
        "set_real_ip_from ADDRESS | CIDR | unix: | all",
        "–",
        "A load balancer whose word on the client's address is taken (`unix:`: whatever connects to a `listen unix:` socket, such as nginx on the same machine): a request arriving from one of these gets the address `real_ip_header` carries, and that address is what `allow`/`deny`, `ip_hash`, limits, `auth_basic`'s allowance, the access log, `$remote_addr` and the `X-Forwarded-For` sent upstream see. Requests from other addresses keep their own. A block with its own list replaces the outer one.",
        "set_real_ip_from 10.0.0.0/8;\nset_real_ip_from unix:;\nreal_ip_header X-Forwarded-For;",
    ),
    Spec::new(Key::RealIpHeader, "real_ip_header", MSL, ONE, Kind::RealIpHeader).inherited().docs(
        "real_ip_header NAME | proxy_protocol",
        "X-Real-IP",
        "Where a trusted balancer puts the client's address: a header (`X-Real-IP`, `X-Forwarded-For` — its rightmost address, see `real_ip_recursive` — or any other, such as `CF-Connecting-IP`), or `proxy_protocol`: the PROXY header of a `listen … proxy_protocol` connection (its port becomes `$remote_port`). A value that is not an address leaves the balancer's.",
        "real_ip_header proxy_protocol;",
    ),
    Spec::new(Key::RealIpRecursive, "real_ip_recursive", MSL, ONE, Kind::Flag).inherited().docs(
        "real_ip_recursive on | off",
        "off",
        "With `on`, the client's address is the rightmost one of `X-Forwarded-For` that is not itself a trusted balancer (for chains of balancers); with `off`, the rightmost one.",
        "real_ip_recursive on;",
    ),
    // gzip
    Spec::new(Key::Gzip, "gzip", MSL, ONE, FLAG).inherited().docs(
        "gzip on | off",
        "off",
        "Compress responses (files, listings, error pages, `return` bodies, proxied bodies) for clients whose `Accept-Encoding` takes gzip (q-values, `x-gzip` and `*` understood), when the type is in `gzip_types`, the body is at least `gzip_min_length` and the answer is not a range, a 304 or a 204. Sets `Content-Encoding: gzip` and a weak `ETag`, and drops `Accept-Ranges` (a `Range` request gets the identity bytes, so a compressed download is never resumed with one); `Vary: Accept-Encoding` goes on every response of a listed type, compressed or not. A file is compressed once and kept compressed in memory until it changes (see `gzip_cache`); files over 8 MiB are compressed as they are sent, in chunks. Proxied responses are compressed as they stream (unless already encoded or marked `Cache-Control: no-transform`), flushed after every read so a body that trickles reaches the client as it comes; their length is not known ahead, so they go chunked (close-delimited to HTTP/1.0 clients).",
        "gzip on;",
    ),
    Spec::new(Key::GzipTypes, "gzip_types", MSL, (1, None), Kind::MimeTypes).inherited().docs(
        "gzip_types TYPE…",
        "text/html text/plain text/css text/xml text/javascript application/javascript application/json application/xml image/svg+xml",
        "Content types that are compressed; `*` for all.",
        "gzip_types text/html application/json;",
    ),
    Spec::new(Key::GzipMinLength, "gzip_min_length", MSL, ONE, Kind::Size).inherited().docs(
        "gzip_min_length SIZE",
        "256",
        "Smaller bodies go uncompressed.",
        "gzip_min_length 1k;",
    ),
    Spec::new(Key::GzipCompLevel, "gzip_comp_level", MSL, ONE, Kind::Number { min: 1, max: 9 }).inherited().docs(
        "gzip_comp_level 1-9",
        "5",
        "Compression level: 1 is fastest, 9 smallest. Level 1 is a faster strategy that gives up more size than nginx's level 1; level 2 is still faster than nginx's level 1 and smaller (figures in `docs/performance.md`).",
        "gzip_comp_level 6;",
    ),
    Spec::new(Key::GzipStatic, "gzip_static", MSL, ONE, FLAG).inherited().docs(
        "gzip_static on | off",
        "off",
        "Send `FILE.gz` from beside `FILE`, as it is, to clients that accept gzip (with the type of `FILE` and the `.gz` file's own length and validators); works with `gzip` on or off. A `.gz` older than `FILE` is stale and ignored (the log says so, once per file and worker); a range request gets `FILE`.",
        "gzip_static on;",
    ),
    // limits and timeouts
    Spec::new(Key::ClientHeaderTimeout, "client_header_timeout", MS, ONE, DUR).inherited().docs(
        "client_header_timeout DURATION",
        "10s",
        "The whole request head must arrive within this time, else 408 and the connection closes.",
        "client_header_timeout 5s;",
    ),
    Spec::new(Key::ClientBodyTimeout, "client_body_timeout", MSL, ONE, DUR).inherited().docs(
        "client_body_timeout DURATION",
        "10s",
        "Longest gap between two reads of a request body, else 408.",
        "client_body_timeout 30s;",
    ),
    Spec::new(Key::KeepaliveTimeout, "keepalive_timeout", MS, ONE, DUR).inherited().docs(
        "keepalive_timeout DURATION",
        "75s",
        "How long an idle connection is kept open between requests; `0` turns keep-alive off.",
        "keepalive_timeout 30s;",
    ),
    Spec::new(Key::KeepaliveRequests, "keepalive_requests", MS, ONE, Kind::Number { min: 1, max: u32::MAX as u64 }).inherited().docs(
        "keepalive_requests N",
        "1000",
        "Requests served on one connection before it is closed.",
        "keepalive_requests 100;",
    ),
    Spec::new(Key::SendTimeout, "send_timeout", MSL, ONE, DUR).inherited().docs(
        "send_timeout DURATION",
        "30s",
        "Longest gap between two writes to a client, else the connection closes.",
        "send_timeout 60s;",
    ),
    Spec::new(Key::ClientMaxBodySize, "client_max_body_size", MSL, ONE, Kind::Size).inherited().docs(
        "client_max_body_size SIZE",
        "1m",
        "Largest request body accepted, else 413.",
        "client_max_body_size 50m;",
    ),
    Spec::new(Key::ClientHeaderMaxSize, "client_header_max_size", MS, ONE, Kind::Size).inherited().docs(
        "client_header_max_size SIZE",
        "16k",
        "Largest request head (request line and headers) accepted, else 431; a request line alone past it gets 414. At least 1k.",
        "client_header_max_size 32k;",
    ),
    Spec::new(Key::ClientMinRate, "client_min_rate", MS, (1, Some(2)), Kind::MinRate).inherited().docs(
        "client_min_rate BYTES_PER_SECOND [GRACE] | off",
        "240 5s",
        "The slowest a client may send a request head or body once GRACE has passed: counted from the head's first byte, and from the start of a body (a pause while xps itself waits on an upstream does not count against the client). A client below it gets 408 (or, once its answer has started, its connection closes). It stops slow-sending clients from holding connections for as long as each gap stays under `client_header_timeout` or `client_body_timeout`. `off` turns it off.",
        "client_min_rate 1k 10s;",
    ),
    Spec::new(Key::UnderscoresInHeaders, "underscores_in_headers", MSL, ONE, FLAG).inherited().docs(
        "underscores_in_headers on | off",
        "off",
        "Whether request header fields whose names contain `_` are passed to upstreams. Off (as in nginx), they are dropped: `Transfer_Encoding` or `X_Real_IP` may be read by an application as `Transfer-Encoding` or `X-Real-IP`.",
        "underscores_in_headers on;",
    ),
    // upstream
    Spec::new(Key::Member, "server", &[U], (1, Some(5)), Kind::Member).repeatable().docs(
        "server HOST:PORT | unix:/PATH [weight=N] [max_fails=N] [fail_timeout=DURATION] [backup]",
        "–",
        "A member of the group, on an address or a Unix domain socket (`unix:/run/app.sock`, an absolute path; gunicorn, uvicorn, php-fpm's HTTP side). `weight` (default 1) is its share of requests; after `max_fails` failures (default 1; 0 never) within `fail_timeout` (default 10s) it gets no traffic for `fail_timeout`; `backup` members serve only when no primary is up. `localhost` is 127.0.0.1; other names are resolved when the config loads, each within 5 s (a resolver that does not answer is an error that names the host, never a hang).",
        "server 127.0.0.1:3000 weight=3;\nserver 127.0.0.1:3001 max_fails=2 fail_timeout=10s;\nserver unix:/run/app.sock backup;",
    ),
    Spec::new(Key::Balance, "balance", &[U], ONE, Kind::Choice(Balance::NAMES)).docs(
        "balance round_robin | least_conn | ip_hash | random",
        "round_robin",
        "How a member is picked: smooth weighted round robin; fewest active requests; a hash of the client address; or the less loaded of two random members.",
        "balance least_conn;",
    ),
    Spec::new(Key::Keepalive, "keepalive", &[U], ONE, Kind::Number { min: 0, max: 100_000 }).docs(
        "keepalive N",
        "32",
        "Idle connections to the group's members kept open per worker for reuse; 0 closes each after use.",
        "keepalive 64;",
    ),
    Spec::new(Key::HealthCheck, "health_check", &[U], (1, Some(4)), Kind::HealthCheck).docs(
        "health_check PATH [interval=DURATION] [fails=N] [passes=N]",
        "off; when given: interval=5s fails=2 passes=1",
        "Probes every member with `GET PATH` in the background, the first time as soon as the group loads. A 2xx or 3xx answer is healthy. `fails` failed probes in a row take a member out, `passes` good ones bring it back.",
        "health_check /healthz interval=2s fails=3;",
    ),
    // stream
    Spec::new(Key::StreamServer, "server", &[ST], NONE, Kind::Nothing).block(SS).repeatable().docs(
        "server { … }",
        "–",
        "A TCP proxy server: every connection accepted on its `listen` addresses is relayed to `proxy_pass`.",
        "server {\n    listen 9000;\n    proxy_pass db;\n}",
    ),
    Spec::new(Key::StreamListen, "listen", &[SS], (1, Some(2)), Kind::Listen { default_server: false }).repeatable().docs(
        "listen [ADDRESS:]PORT | unix:/PATH",
        "– (required)",
        "An address the stream server accepts connections on; the forms are those of the HTTP `listen`, Unix sockets included. An address cannot be both HTTP and stream.",
        "listen 127.0.0.1:9000;",
    ),
    Spec::new(Key::StreamProxyPass, "proxy_pass", &[SS], ONE, Kind::ProxyPass { http: false }).docs(
        "proxy_pass NAME | HOST:PORT | unix:/PATH",
        "– (required)",
        "Where the stream server relays connections: an upstream group (balanced as for HTTP) or one backend, on an address or a Unix domain socket.",
        "proxy_pass 127.0.0.1:6379;",
    ),
    Spec::new(Key::ProxyTimeout, "proxy_timeout", &[ST, SS], ONE, DUR).inherited().docs(
        "proxy_timeout DURATION",
        "10m",
        "A tunnel with no bytes either way for this long is closed.",
        "proxy_timeout 1h;",
    ),
];

/// What the table says about a name in a context.
pub enum Lookup {
    /// The row for this name in this context.
    Found(&'static Spec),
    /// The name exists, but not here; the rows that have it.
    WrongContext(Vec<&'static Spec>),
    /// No directive has this name.
    Unknown,
}

/// Looks a directive name up for a context.
pub fn lookup(name: &str, ctx: Context) -> Lookup {
    let Some(rows) = by_name().get(name) else {
        return Lookup::Unknown;
    };
    match rows.iter().find(|s| s.contexts.contains(&ctx)) {
        Some(spec) => Lookup::Found(spec),
        None => Lookup::WrongContext(rows.clone()),
    }
}

/// The table indexed by name (several rows may share one).
fn by_name() -> &'static HashMap<&'static str, Vec<&'static Spec>> {
    static INDEX: OnceLock<HashMap<&'static str, Vec<&'static Spec>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map: HashMap<&'static str, Vec<&'static Spec>> = HashMap::default();
        for spec in TABLE {
            map.entry(spec.name).or_default().push(spec);
        }
        map
    })
}

/// The context the block of `name` opens when written in `parent`.
pub fn block_context(parent: Context, name: &str) -> Option<Context> {
    match lookup(name, parent) {
        Lookup::Found(spec) => spec.block,
        _ => None,
    }
}

/// Names of directives allowed in a context (for suggestions).
pub fn names_in(ctx: Context) -> impl Iterator<Item = &'static str> {
    TABLE
        .iter()
        .filter(move |s| s.contexts.contains(&ctx))
        .map(|s| s.name)
}

/// Advice for names that exist in nginx but not in xps.
pub fn nginx_advice(name: &str) -> Option<&'static str> {
    Some(match name {
        "http" => "xps has no `http` block: write `server` and `upstream` blocks at the top level",
        "events" => {
            "xps needs no `events` block: `workers` and `max_connections` are top-level directives"
        }
        "worker_processes" => "the xps name is `workers`",
        "worker_connections" => "the xps name is `max_connections`",
        "alias" => "xps has `root` only: the file served is root + request path",
        "server_tokens" => "`server_header off;` leaves the Server header out",
        "sendfile" | "tcp_nopush" | "tcp_nodelay" | "open_file_cache" => {
            "xps always serves files with sendfile; there is nothing to turn on"
        }
        "types" | "default_type" => "xps knows the MIME types itself",
        "user" | "pid" | "daemon" | "master_process" => {
            "xps runs in the foreground as the user that starts it"
        }
        "rewrite" | "try_files" | "if" | "set" | "map" => {
            "xps has no rewriting; `return` answers with a redirect"
        }
        "proxy_redirect" => {
            "xps passes the upstream's `Location` headers unchanged; there is nothing to turn off"
        }
        "proxy_buffering" | "proxy_buffers" | "proxy_http_version" => {
            "xps always streams proxied bodies over HTTP/1.1 with bounded buffers"
        }
        "gzip_vary" => "xps always sends `Vary: Accept-Encoding` with compressed responses",
        "keepalive_time" => "the xps name is `keepalive_timeout`",
        "client_header_buffer_size" | "large_client_header_buffers" => {
            "the xps name is `client_header_max_size`"
        }
        "limit_except" => "static locations answer only GET and HEAD already",
        "listen_backlog" | "reuseport" => "xps sets the listen backlog and SO_REUSEPORT itself",
        _ if name.starts_with("ssl") => {
            "TLS is not supported by xps; put a TLS terminator in front"
        }
        "http2" => "HTTP/2 is not supported by xps",
        _ => return None,
    })
}

/// Levels `error_log` accepts (re-exported for the value parser).
pub const LOG_LEVELS: &[&str] = LogLevel::NAMES;

/// The `docs/config.md` section generated from the table.
pub fn reference_markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for spec in TABLE {
        let ctx: Vec<&str> = spec.contexts.iter().map(|c| c.name()).collect();
        let _ = writeln!(out, "### `{}`\n", spec.title());
        let _ = writeln!(out, "```\n{}\n```\n", spec.syntax);
        let _ = writeln!(out, "- **Context:** {}", ctx.join(", "));
        let _ = writeln!(out, "- **Default:** {}", spec.default);
        let mut traits = Vec::new();
        if spec.repeatable {
            traits.push("may be repeated in a block");
        } else {
            traits.push("at most once per block");
        }
        if spec.inherited {
            traits.push("inherited by inner blocks");
        }
        let _ = writeln!(out, "- **Use:** {}\n", traits.join("; "));
        let _ = writeln!(out, "{}\n", spec.doc);
        let _ = writeln!(out, "```nginx\n{}\n```\n", spec.example);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_documented_and_unique_per_context() {
        for spec in TABLE {
            assert!(
                !spec.syntax.is_empty() && !spec.doc.is_empty() && !spec.example.is_empty(),
                "{}",
                spec.name
            );
            assert!(spec.syntax.starts_with(spec.name), "{}", spec.name);
            for ctx in spec.contexts {
                let n = TABLE
                    .iter()
                    .filter(|s| s.name == spec.name && s.contexts.contains(ctx))
                    .count();
                assert_eq!(n, 1, "{} twice in {}", spec.name, ctx.name());
            }
        }
    }

    #[test]
    fn lookup_distinguishes_unknown_and_wrong_context() {
        assert!(matches!(
            lookup("root", Context::Location),
            Lookup::Found(_)
        ));
        assert!(matches!(
            lookup("root", Context::Upstream),
            Lookup::WrongContext(_)
        ));
        assert!(matches!(lookup("rot", Context::Server), Lookup::Unknown));
        assert_eq!(
            block_context(Context::Stream, "server"),
            Some(Context::StreamServer)
        );
        assert_eq!(
            block_context(Context::Main, "server"),
            Some(Context::Server)
        );
        assert_eq!(block_context(Context::Upstream, "server"), None);
    }
}
