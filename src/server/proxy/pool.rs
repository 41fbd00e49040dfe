//! Upstream sockets: each registered once in the worker's epoll under its
//! own token, the client connection it serves looked up per event; and the
//! pool of idle connections per member, checked on the way in and out.

use crate::net::sys::Stream;
use crate::net::{Token, next_generation};
use crate::upstream::Endpoint;
use rustc_hash::FxHashMap;
use std::io;
use std::time::{Duration, Instant};

/// Idle upstream connections older than this are not reused.
pub(super) const POOL_IDLE: Duration = Duration::from_secs(60);

/// An upstream socket. It is registered in the worker's epoll once, under
/// its own token, for its whole life; which client connection it serves
/// at a given moment is looked up in [`Sockets`], so handing it from one
/// request to the next costs no system call.
pub struct UpSock {
    pub(super) stream: Stream,
    pub(super) id: usize,
}

/// The worker's upstream sockets: generation and current owner (a client
/// connection's token) per slot.
#[derive(Default)]
pub struct Sockets {
    pub(super) slots: Vec<(u32, Option<Token>)>,
    pub(super) free: Vec<usize>,
}

impl Sockets {
    pub(super) fn token(&self, id: usize) -> Token {
        Token::Upstream {
            slot: id as u32,
            generation: self.slots[id].0,
        }
    }

    /// Registers a new socket owned by `owner`.
    pub(super) fn add(
        &mut self,
        stream: Stream,
        owner: Token,
        poller: &crate::net::Poller,
    ) -> io::Result<UpSock> {
        let id = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((1, None));
                self.slots.len() - 1
            }
        };
        self.slots[id].1 = Some(owner);
        if let Err(e) = poller.add_stream(&stream, self.token(id)) {
            self.release(id);
            return Err(e);
        }
        Ok(UpSock { stream, id })
    }

    pub(super) fn set_owner(&mut self, id: usize, owner: Option<Token>) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.1 = owner;
        }
    }

    pub(super) fn release(&mut self, id: usize) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.0 = next_generation(slot.0);
            slot.1 = None;
            self.free.push(id);
        }
    }

    /// Closes a socket (dropping it takes it out of epoll).
    pub fn close(&mut self, sock: UpSock) {
        self.release(sock.id);
    }

    /// For the socket in `slot` at `generation` (an event's token): the
    /// slot and, if it serves a request, the client connection's token.
    /// `None` for a stale token.
    pub fn owner(&self, slot: u32, generation: u32) -> Option<(usize, Option<Token>)> {
        let id = slot as usize;
        let (g, owner) = self.slots.get(id)?;
        (*g == generation).then_some((id, *owner))
    }
}

/// A worker's idle upstream connections, per member address.
#[derive(Default)]
pub struct Pool {
    pub(super) idle: FxHashMap<Endpoint, Vec<(UpSock, Instant)>>,
}

impl Pool {
    /// The most recently idled connection to `addr`, if any. One the
    /// upstream closed meanwhile is usually evicted at once (its socket
    /// reports it); one that slips through is noticed on use and replaced
    /// by a fresh connection, unseen by the client.
    pub(super) fn take(
        &mut self,
        addr: &Endpoint,
        now: Instant,
        sockets: &mut Sockets,
    ) -> Option<UpSock> {
        let list = self.idle.get_mut(addr)?;
        while let Some((s, since)) = list.pop() {
            // Checked again on the way out: bytes that arrived after it was
            // pooled, whose event this loop turn has not seen yet, would
            // otherwise be read as the next request's answer.
            if now.duration_since(since) <= POOL_IDLE && quiet(&s.stream) {
                return Some(s);
            }
            sockets.close(s);
        }
        None
    }

    /// Keeps a connection for reuse, up to `max` per member.
    pub(super) fn give(
        &mut self,
        addr: Endpoint,
        s: UpSock,
        max: u64,
        now: Instant,
        sockets: &mut Sockets,
    ) {
        let list = self.idle.entry(addr).or_default();
        if (list.len() as u64) < max {
            sockets.set_owner(s.id, None);
            list.push((s, now));
        } else {
            sockets.close(s);
        }
    }

    /// An idle socket reported readable or hung up. If the upstream closed
    /// it (or sent what nobody asked for) it is dropped. A readable edge
    /// can also arrive late, for bytes the request it served already took
    /// (a splice takes exactly a body's length and never sees `EAGAIN`):
    /// a peek that finds nothing keeps the connection.
    pub fn evict(&mut self, id: usize, hung_up: bool, sockets: &mut Sockets) {
        for list in self.idle.values_mut() {
            if let Some(i) = list.iter().position(|(s, _)| s.id == id) {
                if hung_up || !quiet(&list[i].0.stream) {
                    let (s, _) = list.swap_remove(i);
                    sockets.close(s);
                }
                return;
            }
        }
    }
}

/// Whether nothing at all waits on an upstream socket: no byte and no end
/// of file (a non-blocking peek). Only such a connection may carry the
/// next request: a byte already there would be read as its answer — an
/// upstream that sent more than its `Content-Length` would answer one
/// client's request with bytes meant for nobody, or for someone else.
pub(super) fn quiet(stream: &Stream) -> bool {
    matches!(
        stream.peek(&mut [0u8; 1]),
        Err(ref e) if e.kind() == io::ErrorKind::WouldBlock
    )
}
