//! Listen sockets: one per address shared by the workers, or one
//! `SO_REUSEPORT` socket per worker; the socket files of Unix socket
//! listeners; and what to say when an address cannot be bound.

use crate::net::sys::{self, ListenSocket};
use crate::upstream::Endpoint;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

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
pub fn bind_error(addr: &Endpoint, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            format!("{addr} is already in use (another server is listening there)")
        }
        Some(libc::EACCES) if matches!(addr, Endpoint::Unix(_)) => {
            format!("{addr}: permission denied (the folder is not writable by this user)")
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

/// Listen sockets for every worker, and the Unix socket files made for
/// them.
pub struct Bound {
    /// Each worker's sockets, with their addresses.
    pub per_worker: Vec<Vec<(Endpoint, ListenSocket)>>,
    /// Removed from the file system when dropped.
    pub files: Vec<SocketFile>,
}

/// Binds `addrs` for `workers` workers: a `SO_REUSEPORT` socket per
/// worker, or one socket shared by all (always for a Unix socket). A probe
/// without `SO_REUSEPORT` first makes sure no other process holds the
/// address (which `SO_REUSEPORT` would silently share). Used at start and
/// by reloads; nothing stays bound when one address fails.
pub fn bind_addrs(addrs: &[Endpoint], workers: usize, mode: ListenMode) -> Result<Bound, String> {
    let mut bound = Bound {
        per_worker: (0..workers).map(|_| Vec::new()).collect(),
        files: Vec::new(),
    };
    for addr in addrs {
        let fail = |e: io::Error| bind_error(addr, &e);
        match (addr, mode) {
            (Endpoint::Unix(path), _) => {
                let (socket, file) = bind_unix(path).map_err(|e| match e {
                    UnixBindError::Io(e) => fail(e),
                    UnixBindError::NotSocket => {
                        format!("{addr}: the path exists and is not a socket (xps will not replace it)")
                    }
                    UnixBindError::Probe(e) => format!(
                        "{addr}: a socket is there, and whether something listens on it cannot be told ({})",
                        crate::config::load::io_reason(&e)
                    ),
                })?;
                bound.files.push(file);
                share(&mut bound, addr, &socket).map_err(fail)?;
            }
            (Endpoint::Inet(a), ListenMode::Exclusive) => {
                let socket = sys::listen(*a, false, BACKLOG).map_err(fail)?;
                share(&mut bound, addr, &socket).map_err(fail)?;
            }
            (Endpoint::Inet(a), ListenMode::ReusePort) => {
                sys::bindable(*a).map_err(fail)?;
                for w in bound.per_worker.iter_mut() {
                    w.push((addr.clone(), sys::listen(*a, true, BACKLOG).map_err(fail)?));
                }
            }
        }
    }
    Ok(bound)
}

/// The listen queue asked for (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 4096;

/// One socket in every worker.
fn share(bound: &mut Bound, addr: &Endpoint, socket: &ListenSocket) -> io::Result<()> {
    for w in bound.per_worker.iter_mut() {
        w.push((addr.clone(), socket.try_clone()?));
    }
    Ok(())
}

enum UnixBindError {
    Io(io::Error),
    NotSocket,
    /// Whether something listens on the socket there could not be told.
    Probe(io::Error),
}

/// Binds a Unix socket at `path`. A socket file already there that
/// nothing listens on (left by a process that did not exit cleanly) is
/// replaced; one with a listener is "in use"; anything else is left alone.
fn bind_unix(path: &Arc<Path>) -> Result<(ListenSocket, SocketFile), UnixBindError> {
    let in_use = || UnixBindError::Io(io::Error::from_raw_os_error(libc::EADDRINUSE));
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => return Err(UnixBindError::NotSocket),
        // The probe never waits: a listener whose queue is full refuses
        // at once (`EAGAIN`), and is in use all the same.
        Ok(_) => match sys::connect_unix(path) {
            Ok(_) => return Err(in_use()),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Err(in_use()),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                std::fs::remove_file(path).map_err(UnixBindError::Io)?;
            }
            Err(e) => return Err(UnixBindError::Probe(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(UnixBindError::Io(e)),
    }
    let socket = sys::listen_unix(path, BACKLOG).map_err(UnixBindError::Io)?;
    // The file as bound, opened without following a symlink that may have
    // taken its place since: its identity is what removal checks, and its
    // mode is what changes, never a symlink target's.
    let node = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(UnixBindError::Io)?;
    let made = node.metadata().map_err(UnixBindError::Io)?;
    if !made.file_type().is_socket() {
        return Err(UnixBindError::NotSocket);
    }
    let file = SocketFile {
        path: path.clone(),
        id: (made.dev(), made.ino()),
    };
    // Anyone may connect, as to nginx's Unix sockets: a proxy in front
    // usually runs as another user. The folder's permissions say who
    // reaches the file.
    let mode = std::fs::Permissions::from_mode(0o666);
    std::fs::set_permissions(format!("/proc/self/fd/{}", node.as_raw_fd()), mode)
        .map_err(UnixBindError::Io)?;
    Ok((socket, file))
}

/// A Unix socket file xps made; dropping it removes the file, unless
/// another one has taken its path since.
#[derive(Debug)]
pub struct SocketFile {
    path: Arc<Path>,
    /// Device and inode of the file bound.
    id: (u64, u64),
}

impl SocketFile {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}
