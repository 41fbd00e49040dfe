//! System calls std does not wrap: listen sockets with `SO_REUSEPORT` and
//! `IPV6_V6ONLY` or on Unix socket paths, `accept4`, `sendfile`, `openat2(RESOLVE_BENEATH)`,
//! `eventfd`, `signalfd`, `pipe2` and `splice`, the descriptor limit. Each function is one
//! syscall (or a short fixed sequence) and returns `io::Result`.

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::signal::SigSet;
pub use nix::sys::signal::Signal;
use nix::sys::socket::{
    self, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, sockopt,
};
use std::fs::File;
use std::io;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

/// A non-blocking, close-on-exec TCP socket of `addr`'s family.
fn stream_socket(addr: SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io_err)
}

/// A non-blocking listen socket on `addr`. `[::]`-style IPv6 sockets are
/// IPv6-only, so `0.0.0.0:P` and `[::]:P` can both be bound. With
/// `reuseport`, several sockets may bind the same address (one per worker).
pub fn listen(addr: SocketAddr, reuseport: bool, backlog: i32) -> io::Result<ListenSocket> {
    let fd = bound(addr, reuseport)?;
    let backlog = Backlog::new(backlog).unwrap_or(Backlog::MAXCONN);
    socket::listen(&fd, backlog).map_err(io_err)?;
    Ok(ListenSocket::Tcp(TcpListener::from(fd)))
}

/// Whether `addr` can be bound without `SO_REUSEPORT`: no other socket
/// listens on it. The socket is bound and closed, never listening, so no
/// connection can land in it and be reset when it closes.
pub fn bindable(addr: SocketAddr) -> io::Result<()> {
    bound(addr, false).map(drop)
}

/// A stream socket bound to `addr` (`SO_REUSEADDR` always, `SO_REUSEPORT`
/// when asked).
fn bound(addr: SocketAddr, reuseport: bool) -> io::Result<OwnedFd> {
    let fd = stream_socket(addr)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(io_err)?;
    if reuseport {
        socket::setsockopt(&fd, sockopt::ReusePort, &true).map_err(io_err)?;
    }
    match addr {
        SocketAddr::V4(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn::from(a)).map_err(io_err)?,
        SocketAddr::V6(a) => {
            socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(io_err)?;
            socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(a)).map_err(io_err)?
        }
    }
    Ok(fd)
}

/// A listen socket: TCP, or a Unix domain socket.
#[derive(Debug)]
pub enum ListenSocket {
    /// TCP.
    Tcp(TcpListener),
    /// A Unix domain socket.
    Unix(UnixListener),
}

impl ListenSocket {
    /// Another descriptor for the same socket.
    pub fn try_clone(&self) -> io::Result<ListenSocket> {
        Ok(match self {
            ListenSocket::Tcp(l) => ListenSocket::Tcp(l.try_clone()?),
            ListenSocket::Unix(l) => ListenSocket::Unix(l.try_clone()?),
        })
    }
}

impl AsFd for ListenSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            ListenSocket::Tcp(l) => l.as_fd(),
            ListenSocket::Unix(l) => l.as_fd(),
        }
    }
}

/// A non-blocking, close-on-exec Unix stream socket, and `path` as its
/// address.
fn unix_socket(path: &std::path::Path) -> io::Result<(OwnedFd, socket::UnixAddr)> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io_err)?;
    Ok((fd, socket::UnixAddr::new(path).map_err(io_err)?))
}

/// A non-blocking listen socket on the Unix socket path `path`, which must
/// not exist.
pub fn listen_unix(path: &std::path::Path, backlog: i32) -> io::Result<ListenSocket> {
    let (fd, addr) = unix_socket(path)?;
    socket::bind(fd.as_raw_fd(), &addr).map_err(io_err)?;
    let backlog = Backlog::new(backlog).unwrap_or(Backlog::MAXCONN);
    socket::listen(&fd, backlog).map_err(io_err)?;
    Ok(ListenSocket::Unix(UnixListener::from(fd)))
}

/// Accepts one connection as a non-blocking, close-on-exec stream.
pub fn accept(listener: &ListenSocket) -> io::Result<Stream> {
    let fd: OwnedFd = socket::accept4(
        listener.as_fd(),
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io_err)?;
    Ok(match listener {
        ListenSocket::Tcp(_) => Stream::Tcp(TcpStream::from(fd)),
        ListenSocket::Unix(_) => Stream::Unix(UnixStream::from(fd)),
    })
}

/// Sends up to `count` bytes of `file` from `*offset` to the socket
/// without copying through user space; advances `*offset`.
pub fn sendfile(out: impl AsFd, file: &File, offset: &mut i64, count: usize) -> io::Result<usize> {
    nix::sys::sendfile::sendfile64(out.as_fd(), file.as_fd(), Some(offset), count).map_err(io_err)
}

/// Opens `relative` (no leading `/`) for reading inside the folder `dir`;
/// the kernel refuses any resolution that leaves the folder, through `..`
/// or a symlink (`EXDEV`). Falls back to a plain open checked against the
/// canonical folder where `openat2` does not exist.
pub fn open_beneath(dir: &File, dir_path: &std::path::Path, relative: &str) -> io::Result<File> {
    let path = if relative.is_empty() { "." } else { relative };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(dir.as_fd(), path, how) {
        Ok(fd) => Ok(File::from(fd)),
        Err(nix::Error::ENOSYS) => {
            let root = std::fs::canonicalize(dir_path)?;
            let target = std::fs::canonicalize(dir_path.join(path))?;
            if target.starts_with(&root) {
                File::open(target)
            } else {
                Err(io::Error::from_raw_os_error(libc::EXDEV))
            }
        }
        Err(e) => Err(io_err(e)),
    }
}

/// A wake-up other threads send to a worker: an eventfd in its epoll.
pub struct Wake(nix::sys::eventfd::EventFd);

impl Wake {
    /// A new wake-up (non-blocking, close-on-exec).
    pub fn new() -> io::Result<Wake> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map(Wake)
            .map_err(io_err)
    }

    /// Wakes the worker's poll.
    pub fn wake(&self) {
        let _ = self.0.write(1);
    }

    /// Clears it (the worker, after its poll reported it).
    pub fn clear(&self) {
        let _ = self.0.read();
    }
}

impl AsFd for Wake {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The signals the server reads through a signalfd: the ones it acts on
/// (stop, exit, reload, reopen logs) and the ones a process manager or a
/// terminal may send whose default action would kill or stop it, which it
/// reads and ignores. (`SIGPIPE` is ignored by the Rust runtime already.)
pub const SIGNALS: [Signal; 15] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGTTOU,
    Signal::SIGTTIN,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGXFSZ,
];

/// The signals of [`SIGNALS`], read in turn from a signalfd.
pub struct Signals(nix::sys::signalfd::SignalFd);

impl Signals {
    /// Blocks [`SIGNALS`] in this thread (threads spawned later inherit
    /// the mask) and makes a signalfd that reads them.
    pub fn new() -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for s in SIGNALS {
            set.add(s);
        }
        set.thread_block().map_err(io_err)?;
        nix::sys::signalfd::SignalFd::new(&set)
            .map(Signals)
            .map_err(io_err)
    }

    /// Waits for the next signal (`None`: one this platform cannot name).
    pub fn next(&self) -> io::Result<Option<Signal>> {
        loop {
            match self.0.read_signal() {
                Ok(Some(info)) => return Ok(Signal::try_from(info.ssi_signo as i32).ok()),
                Ok(None) | Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(io_err(e)),
            }
        }
    }
}

/// Raises the soft limit on open descriptors towards `want` (at most the
/// hard limit); returns the new soft limit.
pub fn raise_fd_limit(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    let target = want.min(hard);
    if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
        return target;
    }
    soft
}

/// What [`stat_at`] reports about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: i64,
    /// A directory.
    pub is_dir: bool,
    /// A regular file.
    pub is_file: bool,
}

impl Stat {
    fn from_raw(st: &libc::stat) -> Stat {
        let fmt = st.st_mode & libc::S_IFMT;
        Stat {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size.max(0) as u64,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
            is_dir: fmt == libc::S_IFDIR,
            is_file: fmt == libc::S_IFREG,
        }
    }
}

/// `fstatat(dir, relative)`, following symlinks: one syscall, no path
/// allocation. Says nothing about whether the path stays inside `dir`;
/// [`open_beneath`] does.
pub fn stat_at(dir: &File, relative: &str) -> io::Result<Stat> {
    let path = if relative.is_empty() { "." } else { relative };
    nix::sys::stat::fstatat(dir.as_fd(), path, nix::fcntl::AtFlags::empty())
        .map(|st| Stat::from_raw(&st))
        .map_err(io_err)
}

/// The path an open file was reached by, with every symlink resolved (as
/// the kernel reports it in `/proc/self/fd`).
pub fn resolved_path(file: &File) -> io::Result<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// `fstat` of an open file.
pub fn stat_file(file: &File) -> io::Result<Stat> {
    nix::sys::stat::fstat(file.as_fd())
        .map(|st| Stat::from_raw(&st))
        .map_err(io_err)
}

/// Makes the next close of `s` a reset (RST) instead of an orderly FIN:
/// for a close-delimited body cut short, where a FIN would mark it whole.
pub fn reset_on_close(s: impl AsFd) -> io::Result<()> {
    let abort = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    socket::setsockopt(&s, sockopt::Linger, &abort).map_err(io_err)
}

/// `send` with `MSG_MORE`: the kernel holds the bytes back briefly to join
/// them with what follows (a response head before its `sendfile` body).
pub fn send_more(out: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    use nix::sys::socket::MsgFlags;
    socket::send(
        out.as_fd().as_raw_fd(),
        buf,
        MsgFlags::from_bits_retain(libc::MSG_MORE | libc::MSG_NOSIGNAL),
    )
    .map_err(io_err)
}

/// A non-blocking pipe (read end, write end) for [`splice`].
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(io_err)
}

/// Moves up to `len` bytes from `from` to `to` without copying them
/// through user space; one of the two is a pipe. `Ok(0)` from a socket is
/// its end of stream; `WouldBlock` is an empty source or a full
/// destination.
pub fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    use nix::fcntl::SpliceFFlags;
    nix::fcntl::splice(
        from,
        None,
        to,
        None,
        len,
        SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
    )
    .map_err(io_err)
}

/// Change notifications for folders (inotify), non-blocking; readable
/// through epoll when something changed.
pub struct DirWatch {
    inotify: nix::sys::inotify::Inotify,
    /// Where events are read into: kept, and never cleared (a read says
    /// how much of it holds events).
    buf: Vec<u8>,
}

/// Identifies one watched folder of a [`DirWatch`].
pub type WatchId = i32;

impl DirWatch {
    /// A new watcher.
    pub fn new() -> io::Result<DirWatch> {
        use nix::sys::inotify::{InitFlags, Inotify};
        let inotify =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(io_err)?;
        Ok(DirWatch {
            inotify,
            buf: vec![0; 4096],
        })
    }

    /// Watches a folder for any change to its entries or itself.
    pub fn add(&self, dir: &std::path::Path) -> io::Result<WatchId> {
        use nix::sys::inotify::AddWatchFlags as F;
        let mask = F::IN_MODIFY
            | F::IN_ATTRIB
            | F::IN_CLOSE_WRITE
            | F::IN_CREATE
            | F::IN_DELETE
            | F::IN_MOVED_FROM
            | F::IN_MOVED_TO
            | F::IN_DELETE_SELF
            | F::IN_MOVE_SELF
            | F::IN_ONLYDIR;
        self.inotify
            .add_watch(dir, mask)
            .map(|wd| wd.as_raw())
            .map_err(io_err)
    }

    /// What changed since the last call (empty when nothing).
    pub fn changed(&mut self) -> Vec<DirChange> {
        let mut out = Vec::new();
        // `struct inotify_event`: wd, mask, cookie, len, then `len` bytes
        // of name padded with NULs.
        const HEADER: usize = 16;
        while let Ok(n @ 1..) = nix::unistd::read(&self.inotify, &mut self.buf) {
            let events = &self.buf[..n];
            let mut at = 0;
            while at + HEADER <= n {
                let word = |i: usize| {
                    let b = &events[at + 4 * i..at + 4 * i + 4];
                    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                };
                let (wd, mask, len) = (word(0) as i32, word(1), word(3) as usize);
                let name_bytes = events.get(at + HEADER..at + HEADER + len).unwrap_or(&[]);
                let name = name_bytes.split(|&b| b == 0).next().unwrap_or(&[]);
                at += HEADER + len;
                let content = libc::IN_MODIFY | libc::IN_CLOSE_WRITE;
                out.push(if mask & libc::IN_Q_OVERFLOW != 0 {
                    DirChange::Overflow
                } else if mask & !content == 0 && !name.is_empty() {
                    // Written to: the file's bytes changed, not the
                    // folder's entries (a log appended to, say).
                    match std::str::from_utf8(name) {
                        Ok(name) => DirChange::File(wd, name.to_string()),
                        // Not UTF-8, so no key: the whole folder.
                        Err(_) => DirChange::Folder(wd),
                    }
                } else {
                    DirChange::Folder(wd)
                });
            }
        }
        out
    }
}

/// One change a [`DirWatch`] reports.
#[derive(Debug)]
pub enum DirChange {
    /// The folder's entries, or the folder itself (created, removed,
    /// renamed, attributes): anything in it may differ.
    Folder(WatchId),
    /// The bytes of one file in the folder (its name).
    File(WatchId, String),
    /// Events were lost (the kernel's queue overflowed): anything may
    /// differ, anywhere.
    Overflow,
}

impl AsFd for DirWatch {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

/// A connected stream socket, a client's or an upstream's: TCP, or a Unix
/// domain socket. Reads and writes go to whichever it is.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix domain socket.
    Unix(UnixStream),
}

impl Stream {
    /// The pending error of a connection that was started non-blocking.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Unix(s) => s.take_error(),
        }
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Reads without taking the bytes.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.peek(buf),
            Stream::Unix(s) => {
                socket::recv(s.as_raw_fd(), buf, socket::MsgFlags::MSG_PEEK).map_err(io_err)
            }
        }
    }
}

impl io::Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl io::Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write_vectored(bufs),
            Stream::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// Starts a non-blocking connection to a Unix domain socket. A listener
/// whose queue is full refuses at once (`EAGAIN`), as a closed port does.
pub fn connect_unix(path: &std::path::Path) -> io::Result<Stream> {
    let (fd, addr) = unix_socket(path)?;
    match socket::connect(fd.as_raw_fd(), &addr) {
        Ok(()) | Err(nix::Error::EINPROGRESS) => {}
        Err(e) => return Err(io_err(e)),
    }
    Ok(Stream::Unix(UnixStream::from(fd)))
}

/// Starts a non-blocking connection to `addr`; it completes when the
/// socket becomes writable (then `take_error` says how it went).
pub fn connect(addr: SocketAddr) -> io::Result<Stream> {
    let fd = stream_socket(addr)?;
    let result = match addr {
        SocketAddr::V4(a) => socket::connect(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => socket::connect(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    };
    match result {
        Ok(()) | Err(nix::Error::EINPROGRESS) => {}
        Err(e) => return Err(io_err(e)),
    }
    let stream = TcpStream::from(fd);
    let _ = stream.set_nodelay(true);
    Ok(Stream::Tcp(stream))
}

/// The id of the calling thread (as `/proc/self/task/` names it).
pub fn thread_id() -> u64 {
    nix::unistd::gettid().as_raw() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dir_watch_tells_a_written_file_from_a_changed_folder() {
        let dir = std::env::temp_dir().join(format!("xps-dirwatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("log.txt"), "a").unwrap();
        let mut watch = DirWatch::new().unwrap();
        let id = watch.add(&dir).unwrap();
        // Appended to in place: that file only.
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("log.txt"))
            .unwrap();
        io::Write::write_all(&mut log, b"more").unwrap();
        let changes = watch.changed();
        assert!(
            changes
                .iter()
                .all(|c| matches!(c, DirChange::File(w, n) if *w == id && n == "log.txt")),
            "{changes:?}"
        );
        assert!(!changes.is_empty());
        // A new entry: the folder.
        std::fs::write(dir.join("new.txt"), "n").unwrap();
        let changes = watch.changed();
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, DirChange::Folder(w) if *w == id)),
            "{changes:?}"
        );
        assert!(watch.changed().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
