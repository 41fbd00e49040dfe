//! Listen sockets: one per address shared by the workers, or one
//! `SO_REUSEPORT` socket per worker, and what to say when an address
//! cannot be bound.

use crate::net::sys;
use std::io;
use std::net::{SocketAddr, TcpListener};

/// How workers share listen addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenMode {
    /// One socket per address, in every worker's epoll with
    /// `EPOLLEXCLUSIVE`.
    Exclusive,
    /// One `SO_REUSEPORT` socket per address per worker; the kernel
    /// spreads connections.
    ReusePort,
}

impl ListenMode {
    /// From `XPS_LISTEN_MODE` (`reuseport` or `exclusive`), for
    /// benchmarks; the default is [`ListenMode::ReusePort`].
    pub fn from_env() -> ListenMode {
        match std::env::var("XPS_LISTEN_MODE").as_deref() {
            Ok("exclusive") => ListenMode::Exclusive,
            _ => ListenMode::ReusePort,
        }
    }
}

/// Why the server could not start.
pub fn bind_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            format!("{addr} is already in use (another server is listening there)")
        }
        Some(libc::EACCES) => {
            format!("{addr}: permission denied (ports below 1024 need privileges)")
        }
        Some(libc::EADDRNOTAVAIL) => format!("{addr} is not an address of this machine"),
        _ => format!(
            "cannot listen on {addr}: {}",
            crate::config::load::io_reason(e)
        ),
    }
}

/// Binds `addrs` for `workers` workers: a `SO_REUSEPORT` socket per
/// worker, or one socket shared by all. A probe without `SO_REUSEPORT`
/// first makes sure no other process holds the address (which
/// `SO_REUSEPORT` would silently share). Used at start and by reloads.
pub fn bind_addrs(
    addrs: &[SocketAddr],
    workers: usize,
    mode: ListenMode,
) -> Result<Vec<Vec<(SocketAddr, TcpListener)>>, String> {
    let mut per_worker: Vec<Vec<(SocketAddr, TcpListener)>> =
        (0..workers).map(|_| Vec::new()).collect();
    for &addr in addrs {
        match mode {
            ListenMode::Exclusive => {
                let socket = sys::listen(addr, false, 4096).map_err(|e| bind_error(addr, &e))?;
                for w in per_worker.iter_mut() {
                    w.push((addr, socket.try_clone().map_err(|e| bind_error(addr, &e))?));
                }
            }
            ListenMode::ReusePort => {
                sys::bindable(addr).map_err(|e| bind_error(addr, &e))?;
                for w in per_worker.iter_mut() {
                    w.push((
                        addr,
                        sys::listen(addr, true, 4096).map_err(|e| bind_error(addr, &e))?,
                    ));
                }
            }
        }
    }
    Ok(per_worker)
}
