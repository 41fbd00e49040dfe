//! Upstream groups at run time: the balancing policies, and the health
//! state that outlives a config reload. Uses nothing else in the crate.

pub mod balance;
pub mod health;

pub use balance::{Balance, Candidate, Picker, client_hash};
pub use health::{Health, Limits};

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Where a stream socket listens: an address and port, or a Unix domain
/// socket. An upstream member (gunicorn, php-fpm's HTTP side and many app
/// servers listen on Unix sockets) or one of xps's own listen addresses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `HOST:PORT`, resolved.
    Inet(SocketAddr),
    /// `unix:/path` (shared: a request copies it for its attempt).
    Unix(Arc<Path>),
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Endpoint {
        Endpoint::Inet(a)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Inet(SocketAddr::V6(a)) => write!(f, "[{}]:{}", a.ip(), a.port()),
            Endpoint::Inet(a) => write!(f, "{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}
