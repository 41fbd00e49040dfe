//! Edge-triggered epoll. A connection is registered once for reading,
//! writing and peer hang-up, edge-triggered: the owner must drain every
//! read and write to `WouldBlock`, and remember readiness it has not used
//! up, because no new edge comes for it. Listeners are registered
//! level-triggered with `EPOLLEXCLUSIVE` (one worker is woken per
//! connection) or plainly (their own `SO_REUSEPORT` socket).

use super::Token;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

/// What an event says about its descriptor.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// The token it was registered with.
    pub token: Token,
    /// Bytes (or a connection) can be read.
    pub readable: bool,
    /// Bytes can be written.
    pub writable: bool,
    /// The peer hung up (its side, or both) or the socket failed.
    pub closed: bool,
}

/// One epoll instance. Registration takes `&self`, so a worker can share
/// it with the connections that register their upstream sockets.
pub struct Poller {
    epoll: Epoll,
}

/// Room for the events one wait returns.
pub struct Events(Vec<EpollEvent>);

impl Events {
    /// Room for `capacity` events.
    pub fn new(capacity: usize) -> Events {
        Events(vec![EpollEvent::empty(); capacity])
    }
}

impl Poller {
    /// A new poller.
    pub fn new() -> io::Result<Poller> {
        Ok(Poller {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?,
        })
    }

    /// Registers a connection: read, write and hang-up, edge-triggered.
    pub fn add_stream(&self, fd: impl AsFd, token: Token) -> io::Result<()> {
        let flags = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLOUT
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLET;
        self.epoll
            .add(fd, EpollEvent::new(flags, token.encode()))
            .map_err(io::Error::from)
    }

    /// Registers a listener (level-triggered), exclusively when several
    /// workers share it.
    pub fn add_listener(&self, fd: impl AsFd, token: Token, exclusive: bool) -> io::Result<()> {
        let mut flags = EpollFlags::EPOLLIN;
        if exclusive {
            flags |= EpollFlags::EPOLLEXCLUSIVE;
        }
        self.epoll
            .add(fd, EpollEvent::new(flags, token.encode()))
            .map_err(io::Error::from)
    }

    /// Registers a wake-up descriptor (eventfd, signalfd), level-triggered.
    pub fn add_reader(&self, fd: impl AsFd, token: Token) -> io::Result<()> {
        self.epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token.encode()))
            .map_err(io::Error::from)
    }

    /// Removes a descriptor. Closing a descriptor removes it too; this is
    /// for descriptors that stay open (listeners of a paused worker).
    pub fn remove(&self, fd: impl AsFd) -> io::Result<()> {
        self.epoll.delete(fd).map_err(io::Error::from)
    }

    /// Waits for events (`None`: without limit) and returns them.
    pub fn wait<'e>(
        &self,
        events: &'e mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<impl Iterator<Item = Event> + 'e> {
        let timeout = match timeout {
            None => EpollTimeout::NONE,
            Some(d) => {
                // Round up: waking a hair early would only spin.
                let ms = d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
                EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::NONE)
            }
        };
        let n = loop {
            match self.epoll.wait(&mut events.0, timeout) {
                Ok(n) => break n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        };
        // Every registration encodes a token, so every event decodes.
        Ok(events.0[..n].iter().filter_map(|e| {
            let f = e.events();
            Some(Event {
                token: Token::decode(e.data())?,
                readable: f.intersects(
                    EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP,
                ),
                writable: f.contains(EpollFlags::EPOLLOUT),
                closed: f.intersects(
                    EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR,
                ),
            })
        }))
    }
}
