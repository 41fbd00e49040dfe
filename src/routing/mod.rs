//! The compiled routing table: immutable, shared by every worker through an
//! `Arc`, replaced whole on reload.
//!
//! Everything a request needs is resolved here at config time: inheritance
//! is merged into each [`Route`], upstream names are indices, locations are
//! sorted. A request only looks things up: [`Snapshot::listener`] →
//! [`Listener::server`] → [`Server::route`]. Nothing here reads files or
//! knows the config syntax.

pub mod access;
pub mod auth;
pub mod host;
pub mod limits;
pub mod location;
pub mod log_format;
pub mod real_ip;
pub mod route;
pub mod template;
pub mod upstream;

pub use access::{AccessList, AccessRule, AccessTarget};
pub use host::{HostIndex, HostMatch, ServerName};
pub use location::{Location, LocationMatch, Locations, Match};
pub use route::{
    Action, ErrorPage, Expires, Gzip, Header, ListingFormat, ProxyUri, Return, Route, TryFallback,
    TryFiles,
};
pub use upstream::{HealthCheck, Member, UpstreamGroup};

use crate::log::ErrorLog;
use crate::upstream::Endpoint;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Index of a server in [`Snapshot::servers`].
pub type ServerId = usize;
/// Index of a group in [`Snapshot::upstreams`].
pub type UpstreamId = usize;

/// Where something was defined: `file:line:col`, for `--explain`, `--dump`
/// and log lines.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    /// The file's display name.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The whole compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Counts successful loads of a running server; 1 for the first.
    pub generation: u64,
    /// Settings of the process as a whole.
    pub main: MainSettings,
    /// One per distinct HTTP listen address, in order of first mention.
    pub listeners: Vec<Listener>,
    /// Every HTTP server, in declaration order.
    pub servers: Vec<Server>,
    /// Named groups first (declaration order), then the implicit one-member
    /// groups of `proxy_pass HOST:PORT`.
    pub upstreams: Vec<UpstreamGroup>,
    /// TCP proxy servers of `stream` blocks.
    pub streams: Vec<StreamServer>,
    /// Every file the config was read from (main file first), for watching.
    pub files: Vec<PathBuf>,
    /// `limit_req_zone` and `limit_conn_zone`, in order.
    pub zones: Vec<std::sync::Arc<limits::ZoneDef>>,
    /// `log_format`s, by name.
    pub log_formats: Vec<std::sync::Arc<log_format::LogFormat>>,
}

impl Snapshot {
    /// The listener a connection accepted on `local` belongs to: the exact
    /// address, else the wildcard address of the same port and family.
    pub fn listener(&self, local: &Endpoint) -> Option<&Listener> {
        let same = |l: &&Listener| match (&l.addr, local) {
            // A connection's address is a copy of its listener's: the same
            // path, found without comparing it (this runs per request).
            (Endpoint::Unix(a), Endpoint::Unix(b)) if Arc::ptr_eq(a, b) => true,
            (a, b) => a == b,
        };
        self.listeners.iter().find(same).or_else(|| {
            let local = wildcard_of(local)?;
            self.listeners.iter().find(|l| l.addr == local)
        })
    }

    /// The stream server a connection accepted on `local` belongs to.
    pub fn stream_for(&self, local: &Endpoint) -> Option<usize> {
        let find = |addr: &Endpoint| self.streams.iter().position(|s| s.listen.contains(addr));
        find(local).or_else(|| find(&wildcard_of(local)?))
    }

    /// Every address to listen on: HTTP listeners and stream servers.
    pub fn listen_addrs(&self) -> Vec<Endpoint> {
        let mut all: Vec<Endpoint> = self.listeners.iter().map(|l| l.addr.clone()).collect();
        for s in &self.streams {
            for a in &s.listen {
                if !all.contains(a) {
                    all.push(a.clone());
                }
            }
        }
        all
    }

    /// The named upstream groups (not the implicit ones).
    pub fn named_upstreams(&self) -> impl Iterator<Item = &UpstreamGroup> {
        self.upstreams.iter().filter(|u| !u.implicit)
    }

    /// Number of locations over all servers.
    pub fn location_count(&self) -> usize {
        self.servers.iter().map(|s| s.locations.len()).sum()
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match access::unmapped(addr.ip()) {
        IpAddr::V4(v4) if addr.is_ipv6() => SocketAddr::new(v4.into(), addr.port()),
        _ => addr,
    }
}

/// The wildcard address (`0.0.0.0:P` or `[::]:P`) a connection accepted on
/// `local` may have come through; none for a Unix socket.
fn wildcard_of(local: &Endpoint) -> Option<Endpoint> {
    let Endpoint::Inet(addr) = local else {
        return None;
    };
    let any: IpAddr = match addr {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    Some(Endpoint::Inet(SocketAddr::new(any, addr.port())))
}

/// Who is at the other end of a client connection: an address and port,
/// or a client of a Unix domain socket, which has none (nginx writes its
/// address as `unix:`, and so does xps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client (IPv4-mapped IPv6 addresses already made IPv4).
    Inet(SocketAddr),
    /// A client of a `listen unix:` socket.
    Unix,
}

impl Peer {
    /// The client's IP address; `None` for a Unix socket client.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Peer::Inet(a) => Some(a.ip()),
            Peer::Unix => None,
        }
    }

    /// Appends `$remote_addr`: the address (an IPv4 one without the
    /// formatting machinery), or `unix:`.
    pub fn push_to(self, out: &mut String) {
        match self.ip() {
            None => out.push_str("unix:"),
            Some(IpAddr::V4(v4)) => {
                for (i, o) in v4.octets().iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(itoa::Buffer::new().format(*o));
                }
            }
            Some(IpAddr::V6(v6)) => {
                use std::fmt::Write;
                let _ = write!(out, "{v6}");
            }
        }
    }

    /// The client's port; `None` for a Unix socket client.
    pub fn port(self) -> Option<u16> {
        match self {
            Peer::Inet(a) => Some(a.port()),
            Peer::Unix => None,
        }
    }
}

/// `$remote_addr`: the IP address, or `unix:`.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Delegated, not re-formatted: this is on every proxied
            // request's path (`X-Forwarded-For`).
            Peer::Inet(a) => fmt::Display::fmt(&a.ip(), f),
            Peer::Unix => f.write_str("unix:"),
        }
    }
}

/// Settings of the process as a whole (`main` context).
#[derive(Clone, Debug, PartialEq)]
pub struct MainSettings {
    /// `workers`.
    pub workers: Workers,
    /// `server_header`: the `Server` value, `None` for `off`.
    pub server_header: Option<String>,
    /// `watch`.
    pub watch: bool,
    /// `error_log`.
    pub error_log: ErrorLog,
    /// `max_connections`.
    pub max_connections: u64,
    /// `shutdown_timeout`.
    pub shutdown_timeout: Duration,
    /// `gzip_cache`: compressed bytes one worker keeps.
    pub gzip_cache: u64,
    /// Loaded from an eXpServer `xps_config.json`: responses xps makes
    /// carry `Access-Control-Allow-Origin: *`.
    pub expserver: bool,
}

/// `workers auto|N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    /// One per CPU.
    Auto,
    /// Exactly this many.
    Count(usize),
}

/// One HTTP listen address and the servers on it.
#[derive(Debug)]
pub struct Listener {
    /// The address bound: an IP address and port, or a Unix socket path.
    pub addr: Endpoint,
    /// Servers on this address in declaration order.
    pub servers: Vec<ServerId>,
    /// Host → server for this address.
    pub hosts: HostIndex,
    /// `listen … proxy_protocol`: connections start with a PROXY header.
    pub proxy_protocol: bool,
}

impl Listener {
    /// The server a `Host` value picks on this listener, and why.
    pub fn server<'a>(&'a self, host: Option<&str>) -> (ServerId, HostMatch<'a>) {
        self.hosts.lookup(host)
    }
}

/// An HTTP virtual server.
#[derive(Debug)]
pub struct Server {
    /// `server_name`s; empty matches any Host.
    pub server_name: Vec<ServerName>,
    /// The addresses it listens on.
    pub listen: Vec<Endpoint>,
    /// Its locations, sorted for lookup.
    pub locations: Locations,
    /// What a request gets when no location matches: the server-level
    /// settings, static files when there is a `root`, else 404; or the
    /// server-level `return`.
    pub fallback: Route,
    /// A server-level `return` answers before locations are consulted.
    pub return_first: bool,
    /// Per-connection limits (`client_header_timeout`, `keepalive_*`,
    /// `client_header_max_size`).
    pub connection: ConnectionLimits,
    /// Where the `server` block starts.
    pub origin: Origin,
}

impl Server {
    /// The location that answers `path` with a 301 to `path/` (see
    /// [`Locations::slash_redirect`]); never for a server-level `return`.
    pub fn slash_redirect(&self, path: &str) -> Option<usize> {
        if self.return_first {
            return None;
        }
        self.locations.slash_redirect(path)
    }

    /// The route for a normalised path, and which location gave it.
    pub fn route(&self, path: &str) -> (&Route, LocationMatch) {
        if self.return_first {
            return (&self.fallback, LocationMatch::ServerReturn);
        }
        match self.locations.find(path) {
            Some(i) => (&self.locations.list()[i].route, LocationMatch::Location(i)),
            None => (&self.fallback, LocationMatch::NoLocation),
        }
    }

    /// The route a [`Server::route`] lookup gave.
    pub fn route_of(&self, at: LocationMatch) -> &Route {
        match at {
            LocationMatch::Location(i) => &self.locations.list()[i].route,
            _ => &self.fallback,
        }
    }

    /// A short name for messages: the first server_name, or `#N`.
    pub fn label(&self, id: ServerId) -> String {
        match self.server_name.first() {
            Some(name) => name.to_string(),
            None => format!("#{}", id + 1),
        }
    }
}

/// Limits that belong to a client connection rather than a route, because
/// they apply before a request is routed or between requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `client_header_timeout`.
    pub client_header_timeout: Duration,
    /// `keepalive_timeout`; zero disables keep-alive.
    pub keepalive_timeout: Duration,
    /// `keepalive_requests`.
    pub keepalive_requests: u64,
    /// `client_header_max_size`.
    pub client_header_max_size: u64,
    /// `client_min_rate`; `None` for off.
    pub client_min_rate: Option<MinRate>,
}

/// `client_min_rate`: the slowest a client may send a head or a body once
/// the grace period has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinRate {
    /// Bytes per second at least.
    pub bytes_per_second: u64,
    /// Time allowed before the rate counts.
    pub grace: Duration,
}

impl MinRate {
    /// The default: 240 bytes/s after 5 s.
    pub const DEFAULT: MinRate = MinRate {
        bytes_per_second: 240,
        grace: Duration::from_secs(5),
    };

    /// When a client that started at `since` and has sent `bytes` since
    /// falls below the rate: each byte buys `1 / rate` seconds, and the
    /// grace period is always granted.
    pub fn deadline(&self, since: std::time::Instant, bytes: u64) -> std::time::Instant {
        let earned = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        since
            + self
                .grace
                .max(earned.min(Duration::from_secs(365 * 86_400)))
    }
}

/// A `stream { server { … } }`: raw TCP relayed to an upstream.
#[derive(Debug)]
pub struct StreamServer {
    /// The addresses it listens on.
    pub listen: Vec<Endpoint>,
    /// The group connections are relayed to.
    pub upstream: UpstreamId,
    /// `proxy_timeout`: idle time after which the tunnel closes.
    pub proxy_timeout: Duration,
    /// `proxy_connect_timeout`.
    pub proxy_connect_timeout: Duration,
    /// `allow`/`deny`; a denied client is closed.
    pub access: AccessList,
    /// Where the stream `server` block starts.
    pub origin: Origin,
}
