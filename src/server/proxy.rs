//! The proxy leg of a client connection: pick a member, connect (or reuse
//! an idle connection), send the request head and stream the body up,
//! read the response head strictly, stream the body down — both
//! directions through bounded buffers, so a slow side stops reads from the
//! other — and hand the upstream connection back to the pool only after a
//! complete, well-framed response. A `101` turns the connection into a
//! WebSocket tunnel.
//!
//! Failures before any response byte try the next member (each once), then
//! answer 502 (504 for timeouts); after the response started, the client's
//! connection closes without a falsely complete body.

use super::Ctx;
use super::conn::{Conn, RateClock, earliest};
use crate::handler::proxy::{self, ClientBody, RequestBody, ResponseBody, UpstreamHead};
use crate::handler::{Reply, canned};
use crate::http::body::ChunkedDecoder;
use crate::http::{Framing, Method, RequestHead, Version};
use crate::net::{Token, next_generation, sys};
use crate::routing::{LocationMatch, Route, ServerId, Snapshot, UpstreamId};
use crate::upstream::{Candidate, Limits, Picker, client_hash};
use rustc_hash::FxHashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes buffered per direction at most before reads from the producer
/// stop.
const WINDOW: usize = 16 << 10;
/// Bodies that fit after the pending head within this are copied, so head
/// and body leave in one write; larger ones go straight from the relay
/// buffer to the client.
const COPY_LIMIT: usize = 8 << 10;
/// Body bytes gathered before the upstream connection is opened, at most
/// (less than the client's read buffer, which then never has to grow).
const GATHER: usize = 8 << 10;
/// The relay buffer of a fast client on a big body.
const BIG_RELAY: usize = 128 << 10;
/// Idle upstream connections older than this are not reused.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// An upstream socket. It is registered in the worker's epoll once, under
/// its own token, for its whole life; which client connection it serves
/// at a given moment is looked up in [`Sockets`], so handing it from one
/// request to the next costs no system call.
pub struct UpSock {
    stream: TcpStream,
    id: usize,
}

/// The worker's upstream sockets: generation and current owner (a client
/// connection's token) per slot.
#[derive(Default)]
pub struct Sockets {
    slots: Vec<(u32, Option<Token>)>,
    free: Vec<usize>,
}

impl Sockets {
    fn token(&self, id: usize) -> Token {
        Token::Upstream {
            slot: id as u32,
            generation: self.slots[id].0,
        }
    }

    /// Registers a new socket owned by `owner`.
    fn add(
        &mut self,
        stream: TcpStream,
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

    fn set_owner(&mut self, id: usize, owner: Option<Token>) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.1 = owner;
        }
    }

    fn release(&mut self, id: usize) {
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
    idle: FxHashMap<SocketAddr, Vec<(UpSock, Instant)>>,
}

impl Pool {
    /// The most recently idled connection to `addr`, if any. One the
    /// upstream closed meanwhile is usually evicted at once (its socket
    /// reports it); one that slips through is noticed on use and replaced
    /// by a fresh connection, unseen by the client.
    fn take(&mut self, addr: SocketAddr, now: Instant, sockets: &mut Sockets) -> Option<UpSock> {
        let list = self.idle.get_mut(&addr)?;
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
    fn give(&mut self, addr: SocketAddr, s: UpSock, max: u64, now: Instant, sockets: &mut Sockets) {
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
fn quiet(stream: &TcpStream) -> bool {
    matches!(
        stream.peek(&mut [0u8; 1]),
        Err(ref e) if e.kind() == io::ErrorKind::WouldBlock
    )
}

/// Bytes read from the upstream and not yet passed on: `buf[start..end]`.
/// Allocated once (16 KiB) on first use, never zeroed again.
#[derive(Default)]
struct RelayBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl RelayBuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.clear();
        }
    }

    /// Room to read into (empty when full).
    fn spare(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; 16 << 10];
        }
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    fn filled(&mut self, n: usize) {
        self.end += n;
    }

    fn has_room(&self) -> bool {
        self.buf.is_empty() || self.end < self.buf.len() || self.start > 0
    }

    /// Grows to [`BIG_RELAY`] for a client that keeps up with a big body:
    /// it then moves more per system call. Only while empty, so nothing
    /// moves.
    fn grow(&mut self) {
        if self.buf.len() < BIG_RELAY && self.is_empty() {
            self.buf = vec![0; BIG_RELAY];
            self.clear();
        }
    }
}

/// Bytes asked of one `splice` (what a pipe holds by default).
const PIPE_CHUNK: usize = 64 << 10;

/// A stream tunnel's pipes: bytes go socket → pipe → socket with
/// `splice`, never through user space.
struct Pipes {
    /// Client → upstream.
    up: Pipe,
    /// Upstream → client.
    down: Pipe,
}

/// One direction of a spliced tunnel.
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    /// Bytes in the pipe.
    pending: usize,
    /// The source ended.
    eof: bool,
}

impl Pipes {
    fn new() -> io::Result<Pipes> {
        Ok(Pipes {
            up: Pipe::new()?,
            down: Pipe::new()?,
        })
    }

    /// A side ended and everything it sent is out: the tunnel closes.
    fn finished(&self) -> bool {
        (self.up.eof || self.down.eof) && self.up.pending == 0 && self.down.pending == 0
    }
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (r, w) = sys::pipe()?;
        Ok(Pipe {
            r,
            w,
            pending: 0,
            eof: false,
        })
    }

    /// Moves what it can from `src` into the pipe and from the pipe to
    /// `dst`, clearing a readiness flag on `WouldBlock`; at most `limit`
    /// bytes are taken from `src` (a body's remaining length, so nothing
    /// past it is ever read). Returns whether anything moved and the bytes
    /// delivered to `dst`.
    fn pump(
        &mut self,
        src: &TcpStream,
        src_readable: &mut bool,
        dst: &TcpStream,
        dst_writable: &mut bool,
        limit: usize,
    ) -> io::Result<(bool, usize)> {
        let mut moved = false;
        let want = (PIPE_CHUNK - self.pending.min(PIPE_CHUNK)).min(limit);
        if *src_readable && !self.eof && want > 0 {
            match sys::splice(src, &self.w, want) {
                Ok(0) => {
                    self.eof = true;
                    moved = true;
                }
                Ok(n) => {
                    self.pending += n;
                    moved = true;
                }
                // With bytes in the pipe, `WouldBlock` may mean a full pipe
                // rather than an empty socket: the source stays marked
                // readable and is tried again once the pipe drained.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.pending == 0 {
                        *src_readable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => moved = true,
                Err(e) => return Err(e),
            }
        }
        let mut delivered = 0;
        if self.pending > 0 && *dst_writable {
            match sys::splice(&self.r, dst, self.pending) {
                Ok(n) => {
                    self.pending -= n;
                    delivered = n;
                    moved |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => *dst_writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => moved = true,
                Err(e) => return Err(e),
            }
        }
        Ok((moved, delivered))
    }
}

/// The members one request has tried: a bit each for the first 64 (no
/// allocation per request), a list beyond.
#[derive(Default)]
struct Tried {
    low: u64,
    high: Vec<usize>,
}

impl Tried {
    fn contains(&self, i: usize) -> bool {
        if i < 64 {
            self.low >> i & 1 == 1
        } else {
            self.high.contains(&i)
        }
    }

    fn insert(&mut self, i: usize) {
        if i < 64 {
            self.low |= 1 << i;
        } else if !self.high.contains(&i) {
            self.high.push(i);
        }
    }

    fn remove(&mut self, i: usize) {
        if i < 64 {
            self.low &= !(1 << i);
        } else {
            self.high.retain(|&j| j != i);
        }
    }
}

/// Why an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Refused, reset, closed before a response byte.
    Error,
    /// `proxy_connect_timeout`.
    Timeout,
}

/// Where the leg is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No upstream connection yet: the request's body is gathered in the
    /// client's read buffer until it is whole or [`GATHER`] bytes of it
    /// are in, so a client trickling its body never holds an upstream
    /// connection (or wakes the upstream for each byte).
    Gathering,
    /// Waiting for the TCP handshake.
    Connecting,
    /// Request going up, response coming down.
    Exchanging,
    /// A WebSocket after `101`: bytes both ways.
    Tunnel,
}

/// The response being relayed.
struct Relay {
    head: UpstreamHead,
    to_client: ClientBody,
    /// Bytes of a `Content-Length` body still to come.
    left: u64,
    decoder: Option<ChunkedDecoder>,
    done: bool,
}

/// The proxy leg of one request.
pub struct Proxy {
    snapshot: Arc<Snapshot>,
    server: ServerId,
    location: LocationMatch,
    group: UpstreamId,
    member: usize,
    addr: SocketAddr,
    stream: Option<UpSock>,
    reused: bool,
    tried: Tried,
    state: State,
    up_readable: bool,
    up_writable: bool,
    raw_head: Vec<u8>,
    websocket: bool,
    head_request: bool,
    client_version: Version,
    client_keep_alive: bool,
    body: RequestBody,
    req_left: u64,
    req_decoder: Option<ChunkedDecoder>,
    req_done: bool,
    body_consumed: bool,
    to_up: Vec<u8>,
    to_up_pos: usize,
    from_up: RelayBuf,
    relay: Option<Relay>,
    started: bool,
    progress: Instant,
    connect_started: Instant,
    last_failure: Failure,
    /// Body bytes sent to the client (for the access log).
    pub sent: u64,
    /// A stream (TCP) tunnel rather than an HTTP exchange.
    raw: bool,
    /// `proxy_connect_timeout`, and the read and send gaps (for a stream,
    /// both are `proxy_timeout`).
    connect_timeout: Duration,
    read_timeout: Duration,
    send_timeout: Duration,
    /// One side of a tunnel ended: close once the other side's pending
    /// bytes are out.
    draining: bool,
    /// The upstream closed its side (ends a close-delimited body).
    up_eof: bool,
    /// A stream tunnel's pipes, when it splices.
    pipes: Option<Box<Pipes>>,
    /// A long `Content-Length` download to a client that keeps up goes
    /// upstream → pipe → client with `splice`, never through user space.
    body_pipe: Option<Box<Pipe>>,
    /// It qualified: the pipe is made once the buffers are empty.
    splice_body: bool,
    /// Writing the request body upstream failed: only the answer is still
    /// awaited.
    up_write_failed: bool,
    /// A stream tunnel filled a whole buffer: it moves bulk data and
    /// switches to `splice` when its buffers are empty.
    bulk: bool,
    /// The request body's bytes from the client since xps last waited on
    /// the upstream, for `client_min_rate`.
    body_clock: RateClock,
    /// When the client last sent a body byte (or xps last waited on the
    /// upstream), for `client_body_timeout`.
    body_progress: Instant,
    /// The method may be sent twice (RFC 9110 §9.2.2).
    idempotent: bool,
    /// The last read from the upstream was short: its socket was empty
    /// then. A splice never knows, and clears it.
    up_drained: bool,
    /// While gathering a chunked body: a decoder run over the buffered
    /// bytes without consuming them (to see the body end, or a bad
    /// chunk), and how many it has seen.
    probe: Option<(ChunkedDecoder, usize)>,
    /// Some of the request reached the current attempt's socket.
    wrote: bool,
}

/// Whose clock runs while a leg waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// The client is not taking the response: `send_timeout`.
    ClientSend,
    /// xps waits on the client's request body: `client_body_timeout` and
    /// `client_min_rate`.
    ClientBody,
    /// xps waits on the upstream: the leg's own timeouts.
    Upstream,
}

/// What the relay does with a parsed upstream response head.
enum Plan {
    /// An interim answer (`100`, `102`, `103`): dropped.
    Interim,
    /// A `101` to a request that asked for no upgrade: 502.
    UnaskedSwitch,
    /// Relayed with this framing to the client; `true`: it becomes a
    /// WebSocket tunnel.
    Relay(ClientBody, bool),
}

/// What the leg says after running.
pub enum Step {
    /// Waiting for readiness or a deadline.
    Wait,
    /// The exchange is complete and the client's output flushed.
    Done,
    /// Close the client connection.
    Close,
}

impl Proxy {
    fn route(&self) -> &Route {
        let server = &self.snapshot.servers[self.server];
        match self.location {
            LocationMatch::Location(i) => &server.locations.list()[i].route,
            _ => &server.fallback,
        }
    }

    /// The deadline of the leg.
    pub fn deadline(&self) -> Instant {
        match self.state {
            State::Connecting => self.connect_started + self.connect_timeout,
            State::Gathering | State::Tunnel => self.progress + self.read_timeout,
            State::Exchanging if self.to_up_pos < self.to_up.len() && !self.up_writable => {
                self.progress + self.send_timeout
            }
            State::Exchanging => self.progress + self.read_timeout,
        }
    }

    /// Starts the client's body clocks again: xps was the one waiting (on
    /// a connection, or on the upstream taking the body), not the client.
    fn restart_body_clocks(&mut self, now: Instant) {
        self.body_clock = RateClock::start(now);
        self.body_progress = now;
    }

    /// Upstream readiness from epoll.
    pub fn ready(&mut self, readable: bool, writable: bool, closed: bool) {
        self.up_readable |= readable || closed;
        self.up_writable |= writable || closed;
    }
}

impl Proxy {
    /// A proxy leg for `group` with nothing sent yet: no request body, HTTP/1.1
    /// client, not yet connected. Callers set what their exchange needs.
    fn boxed(
        snapshot: &Arc<Snapshot>,
        server: ServerId,
        location: LocationMatch,
        group: UpstreamId,
        ctx: &mut Ctx,
    ) -> Box<Proxy> {
        Box::new(Proxy {
            snapshot: snapshot.clone(),
            server,
            location,
            group,
            member: 0,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stream: None,
            reused: false,
            tried: Tried::default(),
            state: State::Connecting,
            up_readable: false,
            up_writable: false,
            raw_head: Vec::new(),
            websocket: false,
            head_request: false,
            client_version: Version::Http11,
            client_keep_alive: false,
            body: RequestBody::None,
            req_left: 0,
            req_decoder: None,
            req_done: true,
            body_consumed: false,
            to_up: Vec::new(),
            to_up_pos: 0,
            from_up: RelayBuf {
                buf: ctx.take_relay_buffer(),
                start: 0,
                end: 0,
            },
            relay: None,
            started: false,
            progress: ctx.now,
            connect_started: ctx.now,
            last_failure: Failure::Error,
            sent: 0,
            raw: false,
            connect_timeout: Duration::ZERO,
            read_timeout: Duration::ZERO,
            send_timeout: Duration::ZERO,
            draining: false,
            up_eof: false,
            pipes: None,
            body_pipe: None,
            splice_body: false,
            bulk: false,
            up_write_failed: false,
            body_clock: RateClock::start(ctx.now),
            body_progress: ctx.now,
            idempotent: true,
            up_drained: false,
            probe: None,
            wrote: false,
        })
    }
}

impl Conn {
    /// Starts proxying `head` to group `id`. `Some(reply)` when no member
    /// can be tried at all (502 at once).
    pub(super) fn start_proxy(
        &mut self,
        head: &RequestHead,
        raw_head: Vec<u8>,
        snapshot: &Arc<Snapshot>,
        at: (ServerId, LocationMatch),
        id: UpstreamId,
        ctx: &mut Ctx,
    ) -> Option<Reply> {
        let body = match head.framing {
            Framing::None => RequestBody::None,
            Framing::Length(n) => RequestBody::Length(n),
            Framing::Chunked => RequestBody::Chunked,
        };
        let mut p = Proxy::boxed(snapshot, at.0, at.1, id, ctx);
        p.raw_head = raw_head;
        p.head_request = head.method == Method::Head;
        p.idempotent = head.method.is_idempotent();
        p.client_version = head.version;
        p.client_keep_alive = head.keep_alive;
        p.body = body;
        p.req_left = match body {
            RequestBody::Length(n) => n,
            _ => 0,
        };
        p.req_decoder =
            (body == RequestBody::Chunked).then(|| ChunkedDecoder::new(p_limit(snapshot, at)));
        p.req_done = body == RequestBody::None;
        let route = p.route();
        (p.connect_timeout, p.read_timeout, p.send_timeout) = (
            route.proxy_connect_timeout,
            route.proxy_read_timeout,
            route.proxy_send_timeout,
        );
        if body == RequestBody::None {
            if !self.connect_next(&mut p, ctx) {
                no_member_up(&p);
                return Some(canned::error(502));
            }
        } else {
            p.state = State::Gathering;
            p.probe = (body == RequestBody::Chunked)
                .then(|| (ChunkedDecoder::new(p_limit(snapshot, at)), 0));
        }
        if head.expect_continue && body != RequestBody::None {
            self.out
                .head
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.proxy = Some(p);
        None
    }

    /// Starts relaying a stream (TCP) connection accepted for stream server
    /// `index`; `false` when no member can be tried (close the client).
    pub(crate) fn start_stream(
        &mut self,
        snapshot: &Arc<Snapshot>,
        index: usize,
        ctx: &mut Ctx,
    ) -> bool {
        let st = &snapshot.streams[index];
        let mut p = Proxy::boxed(snapshot, 0, LocationMatch::NoLocation, st.upstream, ctx);
        p.raw = true;
        p.connect_timeout = st.proxy_connect_timeout;
        p.read_timeout = st.proxy_timeout;
        p.send_timeout = st.proxy_timeout;
        if !self.connect_next(&mut p, ctx) {
            crate::log::warn(&format!(
                "stream upstream {}: no member is up; closing the client",
                snapshot.upstreams[st.upstream].name
            ));
            return false;
        }
        self.close_after = true;
        self.proxy = Some(p);
        true
    }

    /// Picks the next member and connects (or reuses an idle connection).
    fn connect_next(&mut self, p: &mut Proxy, ctx: &mut Ctx) -> bool {
        let group = &p.snapshot.upstreams[p.group];
        let health = &ctx.shared.health;
        loop {
            // Reused from request to request: no allocation per pick.
            let mut candidates = std::mem::take(&mut ctx.candidates);
            candidates.clear();
            candidates.extend(group.members.iter().enumerate().map(|(i, m)| Candidate {
                weight: m.weight,
                backup: m.backup,
                usable: !p.tried.contains(i) && health.is_up(&group.name, m.addr, ctx.now),
            }));
            let addrs = group.members.iter().map(|m| m.addr);
            let picker = match ctx.pickers.get_mut(&group.name) {
                Some(picker) => {
                    picker.follow(addrs);
                    picker
                }
                None => {
                    let seed = ctx.seed();
                    let addrs: Vec<_> = addrs.collect();
                    ctx.pickers
                        .entry(group.name.clone())
                        .or_insert_with(|| Picker::new(&addrs, seed))
                }
            };
            let picked = picker.pick(group.balance, &candidates, client_hash(self.peer.ip()));
            ctx.candidates = candidates;
            let Some(i) = picked else {
                return false;
            };
            p.tried.insert(i);
            let addr = group.members[i].addr;
            p.member = i;
            p.addr = addr;
            if !p.raw {
                let (head, websocket) = proxy::request_head(
                    &p.raw_head,
                    p.route(),
                    self.peer.ip(),
                    &group.members[i].name,
                    p.body,
                );
                p.to_up = head;
                p.websocket = websocket;
            }
            p.to_up_pos = 0;
            p.wrote = false;
            p.up_drained = false;
            p.from_up.clear();
            p.progress = ctx.now;
            if let Some(s) = (!p.raw)
                .then(|| ctx.upstream_pool.take(addr, ctx.now, &mut ctx.sockets))
                .flatten()
            {
                ctx.sockets.set_owner(s.id, Some(self.token));
                p.stream = Some(s);
                p.reused = true;
                p.restart_body_clocks(ctx.now);
                p.state = State::Exchanging;
                p.up_writable = true;
                p.up_readable = false;
                picker.started(i);
                return true;
            }
            match sys::connect(addr).and_then(|s| ctx.sockets.add(s, self.token, &ctx.poller)) {
                Ok(s) => {
                    p.stream = Some(s);
                    p.reused = false;
                    p.state = State::Connecting;
                    p.connect_started = ctx.now;
                    p.up_writable = false;
                    p.up_readable = false;
                    picker.started(i);
                    return true;
                }
                Err(e) => {
                    crate::log::warn(&format!("upstream {} member {addr}: {e}", group.name));
                    let m = &group.members[i];
                    health.failed(
                        &group.name,
                        addr,
                        Limits {
                            max_fails: m.max_fails,
                            fail_timeout: m.fail_timeout,
                        },
                        ctx.now,
                    );
                }
            }
        }
    }

    /// Runs the leg as far as it can go.
    pub(super) fn proxy_run(&mut self, ctx: &mut Ctx) -> Step {
        let Some(mut p) = self.proxy.take() else {
            return Step::Done;
        };
        let step = loop {
            match self.proxy_step(&mut p, ctx) {
                Ok(true) => continue,
                Ok(false) => break Step::Wait,
                Err(End::Close) => break Step::Close,
                Err(End::Done) => break Step::Done,
                Err(End::Failed(kind)) => match self.proxy_failed(&mut p, kind, ctx) {
                    Some(step) => break step,
                    None => continue,
                },
            }
        };
        if matches!(step, Step::Wait) {
            self.proxy = Some(p);
        } else {
            ctx.give_relay_buffer(std::mem::take(&mut p.from_up.buf));
            self.finish_leg(&mut p, ctx);
            if let (Step::Done, Some(log)) = (&step, self.log.as_mut()) {
                log.status = p.relay.as_ref().map_or(log.status, |r| r.head.status);
            }
            self.out.body_sent = p.sent;
            self.out.send_body = true;
        }
        step
    }

    /// Bytes for the client are waiting on its socket (in the output, the
    /// relay buffer or the body pipe): then only its `send_timeout` runs,
    /// since the upstream side is held back by it. A raw TCP (stream)
    /// tunnel keeps its one `proxy_timeout` for both directions.
    pub(super) fn waiting_on_client(&self, p: &Proxy) -> bool {
        !p.raw
            && !self.writable
            && (self.out_pending()
                || (p.started && !p.from_up.is_empty())
                || p.body_pipe.as_ref().is_some_and(|b| b.pending > 0))
    }

    /// xps waits on the client's request body: nothing of it is left to
    /// send up, and the exchange is not a tunnel.
    fn waiting_on_client_body(&self, p: &Proxy) -> bool {
        !p.raw
            && (p.state == State::Gathering
                || (p.state == State::Exchanging
                    && !p.req_done
                    && !p.up_write_failed
                    && p.stream.is_some()
                    && p.to_up_pos == p.to_up.len()))
    }

    /// While xps waits on the client's request body: since when it has
    /// been measured, and the bytes sent since.
    pub(super) fn body_rate_since(&self, p: &Proxy) -> Option<(Instant, u64)> {
        (!self.waiting_on_client(p) && self.waiting_on_client_body(p))
            .then_some((p.body_clock.since, p.body_clock.bytes))
    }

    /// Whose clock runs now, and when it runs out.
    fn leg_clock(&self, p: &Proxy) -> (Clock, Instant) {
        if self.waiting_on_client(p) {
            (Clock::ClientSend, self.progress + self.send_timeout)
        } else if self.waiting_on_client_body(p) {
            let rate = p.body_clock.deadline(self.limits.client_min_rate);
            (
                Clock::ClientBody,
                earliest(p.body_progress + self.body_timeout, rate),
            )
        } else {
            (Clock::Upstream, p.deadline())
        }
    }

    /// The deadline of the current leg.
    pub(super) fn leg_deadline(&self, p: &Proxy) -> Instant {
        self.leg_clock(p).1
    }

    /// Handles a deadline that passed while proxying.
    pub(super) fn proxy_timeout(&mut self, ctx: &mut Ctx) -> Step {
        let Some(mut p) = self.proxy.take() else {
            return Step::Close;
        };
        let (clock, deadline) = self.leg_clock(&p);
        if ctx.now < deadline {
            self.proxy = Some(p);
            return Step::Wait;
        }
        match clock {
            Clock::ClientSend => {
                // The client took nothing for send_timeout.
                self.finish_leg(&mut p, ctx);
                return Step::Close;
            }
            Clock::ClientBody if p.started => {
                self.finish_leg(&mut p, ctx);
                return Step::Close;
            }
            Clock::ClientBody => {
                // The upstream connection closes without the rest of the
                // body (it never gets a whole request, and is never pooled);
                // the client gets 408 and its connection closes.
                self.leg_error(&mut p, 408, ctx);
                self.proxy = Some(p);
                return self.proxy_run(ctx);
            }
            Clock::Upstream => {}
        }
        let step = match p.state {
            State::Gathering => Some(Step::Close),
            State::Connecting => self.proxy_failed(&mut p, Failure::Timeout, ctx),
            State::Tunnel => Some(Step::Close),
            State::Exchanging if p.started => Some(Step::Close),
            State::Exchanging => {
                crate::log::warn(&format!(
                    "upstream member {} timed out; answering 504",
                    p.addr
                ));
                self.leg_error(&mut p, 504, ctx);
                None
            }
        };
        match step {
            Some(s) => {
                self.finish_leg(&mut p, ctx);
                s
            }
            None => {
                self.proxy = Some(p);
                self.proxy_run(ctx)
            }
        }
    }

    /// An attempt failed: the next member, or an error answer. `Some` ends
    /// the leg.
    fn proxy_failed(&mut self, p: &mut Proxy, kind: Failure, ctx: &mut Ctx) -> Option<Step> {
        let snapshot = p.snapshot.clone();
        let group = &snapshot.upstreams[p.group];
        let stale = p.reused && kind == Failure::Error;
        if let Some(s) = take_upstream(p, ctx) {
            ctx.sockets.close(s);
        }
        if !stale {
            let m = &group.members[p.member];
            ctx.shared.health.failed(
                &group.name,
                p.addr,
                Limits {
                    max_fails: m.max_fails,
                    fail_timeout: m.fail_timeout,
                },
                ctx.now,
            );
            crate::log::warn(&format!(
                "upstream {} member {}: {}",
                group.name,
                p.addr,
                if kind == Failure::Timeout {
                    "connect timed out"
                } else {
                    "failed before answering"
                }
            ));
        }
        if p.started {
            return Some(Step::Close);
        }
        if p.raw {
            return (!self.connect_next(p, ctx)).then_some(Step::Close);
        }
        if p.body_consumed || (p.wrote && !p.idempotent) {
            // The body cannot be sent again; and a request that may have
            // reached the member and is not idempotent (POST, PATCH, LOCK…)
            // is never sent twice: the member may have acted on it.
            self.leg_error(p, 502, ctx);
            return None;
        }
        if stale {
            // An idle connection the upstream had closed: try the same member afresh.
            p.tried.remove(p.member);
        }
        p.last_failure = kind;
        if self.connect_next(p, ctx) {
            return None;
        }
        let status = if p.last_failure == Failure::Timeout {
            504
        } else {
            502
        };
        crate::log::warn(&format!(
            "upstream {}: no member left to try; answering {status}",
            group.name
        ));
        self.leg_error(p, status, ctx);
        None
    }

    /// Answers the client with an error page instead of the upstream's
    /// response; the leg is then done (it closes when the page is out).
    fn leg_error(&mut self, p: &mut Proxy, status: u16, ctx: &mut Ctx) {
        if let Some(s) = take_upstream(p, ctx) {
            ctx.sockets.close(s);
        }
        self.close_after |= !p.req_done;
        let snapshot = p.snapshot.clone();
        let route = p.route();
        let reply = canned::error(status);
        let len = reply.body.len();
        self.write_reply(
            reply,
            Some(route),
            p.client_version,
            p.head_request,
            &snapshot,
            ctx,
        );
        // The page goes out through the leg's end: the body is in `out`.
        if let crate::handler::Body::Shared { bytes, start, end } =
            std::mem::replace(&mut self.out.body, crate::handler::Body::Empty)
        {
            if self.out.send_body {
                self.out.head.extend_from_slice(&bytes[start..end]);
            }
        }
        self.out.send_body = false;
        // The page's own clock starts now.
        p.progress = ctx.now;
        self.progress = ctx.now;
        p.sent = if p.head_request { 0 } else { len };
        p.started = true;
        p.req_done = true;
        p.state = State::Exchanging;
        p.to_up.clear();
        p.to_up_pos = 0;
        p.from_up.clear();
        p.up_readable = false;
        p.up_writable = false;
        p.relay = Some(Relay {
            head: UpstreamHead {
                status,
                len: 0,
                body: ResponseBody::None,
                keep_alive: false,
                length: None,
            },
            to_client: ClientBody::None,
            left: 0,
            decoder: None,
            done: true,
        });
        if let Some(log) = self.log.as_mut() {
            log.status = status;
        }
    }

    /// Ends the leg of a connection that is being closed from outside (to
    /// make room): its buffers go back to the pools and its upstream
    /// connection is pooled or closed as [`Conn::finish_leg`] decides.
    pub(super) fn drop_leg(&mut self, ctx: &mut Ctx) {
        if let Some(mut p) = self.proxy.take() {
            ctx.give_relay_buffer(std::mem::take(&mut p.from_up.buf));
            self.finish_leg(&mut p, ctx);
        }
    }

    /// Releases the upstream side: back to the pool after a complete,
    /// well-framed exchange, else closed.
    fn finish_leg(&mut self, p: &mut Proxy, ctx: &mut Ctx) {
        let snapshot = p.snapshot.clone();
        let group = &snapshot.upstreams[p.group];
        let Some(s) = take_upstream(p, ctx) else {
            return;
        };
        let framed = p.req_done
            && p.to_up_pos == p.to_up.len()
            && !p.up_eof
            && p.from_up.is_empty()
            && p.state == State::Exchanging
            && p.relay
                .as_ref()
                .is_some_and(|r| r.done && r.head.keep_alive);
        // Nothing may wait on the socket either (see [`quiet`]). When the
        // read that ended the response found the socket empty, bytes that
        // came after it raise an edge that evicts the pooled connection, and
        // `Pool::take` looks again: the peek is needed only when no read
        // said so (a spliced body stops at its length and never knows).
        let clean = framed && (p.up_drained || quiet(&s.stream));
        if framed && !clean && matches!(s.stream.peek(&mut [0u8; 1]), Ok(n) if n > 0) {
            // More than the response: the upstream's framing cannot be
            // trusted, and whatever it sent must reach no one.
            crate::log::warn(&format!(
                "upstream member {}: bytes after a complete response; closing its connection",
                p.addr
            ));
        }
        if clean {
            ctx.shared.health.succeeded(&group.name, p.addr);
            ctx.upstream_pool
                .give(p.addr, s, group.keepalive, ctx.now, &mut ctx.sockets);
        } else {
            ctx.sockets.close(s);
        }
    }

    /// One pass over everything the leg can do now. `Ok(true)`: progress
    /// was made, run again.
    fn proxy_step(&mut self, p: &mut Proxy, ctx: &mut Ctx) -> Result<bool, End> {
        if p.state == State::Gathering {
            return self.gather_body(p, ctx);
        }
        let mut progress = false;
        if p.state == State::Connecting {
            if !p.up_writable {
                return Ok(false);
            }
            let err = p
                .stream
                .as_ref()
                .and_then(|s| s.stream.take_error().ok().flatten());
            if err.is_some() {
                return Err(End::Failed(Failure::Error));
            }
            p.state = if p.raw {
                State::Tunnel
            } else {
                State::Exchanging
            };
            p.progress = ctx.now;
            // xps read nothing of the body while it connected.
            p.restart_body_clocks(ctx.now);
            progress = true;
        }
        if p.bulk && p.pipes.is_none() {
            self.start_splicing(p, ctx);
        }
        if p.pipes.is_some() {
            return self.splice_step(p, ctx);
        }
        if p.splice_body && p.body_pipe.is_none() {
            self.start_body_splice(p, ctx);
        }
        if p.body_pipe.is_some() {
            return self.body_splice_step(p, ctx);
        }
        // A request fully sent leaves the client's read buffer empty: it
        // goes back to the pool for as long as the response takes.
        if p.req_done
            && p.state != State::Tunnel
            && self.input.as_ref().is_some_and(|i| i.start == i.end)
        {
            if let Some(input) = self.input.take() {
                ctx.give_buffer(input.buf);
            }
        }
        // Client → upstream: the head, then body bytes re-framed.
        if (!p.req_done || p.state == State::Tunnel)
            && !p.up_write_failed
            && p.to_up.len() - p.to_up_pos < WINDOW
        {
            progress |= self.pull_request_body(p, ctx)?;
        }
        if p.to_up_pos < p.to_up.len() && p.up_writable && p.stream.is_some() {
            let Some(UpSock { stream: s, .. }) = p.stream.as_mut() else {
                return Err(End::Failed(Failure::Error));
            };
            match s.write(&p.to_up[p.to_up_pos..]) {
                Ok(n) => {
                    p.wrote |= n > 0;
                    p.to_up_pos += n;
                    p.progress = ctx.now;
                    progress = true;
                    if p.to_up_pos == p.to_up.len() {
                        p.to_up.clear();
                        p.to_up_pos = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => p.up_writable = false,
                Err(_) if p.state == State::Tunnel => return Err(End::Close),
                Err(_) if p.relay.is_none() && !p.body_consumed => {
                    // Nothing of the request is lost yet (a stale kept-alive
                    // connection, a member that went away): try again.
                    return Err(End::Failed(Failure::Error));
                }
                Err(_) => {
                    // The upstream stopped taking the body: it may have
                    // answered early (413, 401) and closed. Its answer is
                    // still read and relayed; the rest of the client's body
                    // is not sent, so the client's connection closes after
                    // it. No answer at all is a 502.
                    p.up_write_failed = true;
                    p.to_up.clear();
                    p.to_up_pos = 0;
                    p.up_readable = true;
                    self.close_after = true;
                    progress = true;
                }
            }
        }
        if !p.req_done && p.to_up_pos < p.to_up.len() {
            // Waiting on the upstream to take the body.
            p.restart_body_clocks(ctx.now);
        }
        // Upstream → client, while the client's window has room.
        let out_pending = self.out.head.len() - self.out.head_pos;
        if p.up_readable
            && p.from_up.has_room()
            && p.stream.is_some()
            && out_pending < WINDOW
            && p.relay.as_ref().is_none_or(|r| !r.done)
        {
            let Some(UpSock { stream: s, .. }) = p.stream.as_mut() else {
                return Err(End::Failed(Failure::Error));
            };
            let spare = p.from_up.spare();
            debug_assert!(!spare.is_empty());
            let room = spare.len();
            match s.read(spare) {
                Ok(0) => {
                    p.up_readable = false;
                    return self.upstream_closed(p);
                }
                Ok(n) => {
                    p.bulk |= p.raw && n >= super::conn::READ_BUF;
                    // A short read emptied the socket (as far as the kernel
                    // knew then): bytes arriving later raise a new edge.
                    p.up_drained = n < room;
                    p.from_up.filled(n);
                    // Until the final response head is in, only writing
                    // the request counts as progress: the head must arrive
                    // within proxy_read_timeout, whatever interim answers
                    // or pieces of a head come meanwhile.
                    if p.relay.is_some() || p.state != State::Exchanging {
                        p.progress = ctx.now;
                    }
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    p.up_readable = false;
                }
                Err(_) => {
                    return if p.relay.is_none() && p.state != State::Tunnel {
                        Err(End::Failed(Failure::Error))
                    } else {
                        Err(End::Close)
                    };
                }
            }
        }
        if !p.from_up.is_empty() {
            progress |= self.relay_response(p, ctx)?;
        }
        // The client's output.
        if self.out.head_pos < self.out.head.len() {
            if self.writable {
                let before = self.out.head_pos;
                match self.flush() {
                    Ok(_) => progress = true,
                    Err(_) => return Err(End::Close),
                }
                if self.out.head_pos != before || !self.writable {
                    // The client took bytes, or its socket just filled:
                    // its send_timeout starts now (as nginx's does).
                    self.progress = ctx.now;
                    p.progress = ctx.now;
                }
            }
            if self.out.head_pos == self.out.head.len() {
                self.out.head.clear();
                self.out.head_pos = 0;
            }
        }
        let flushed = self.out.head_pos == self.out.head.len();
        if p.state == State::Tunnel && p.draining && flushed && p.to_up_pos == p.to_up.len() {
            return Err(End::Close);
        }
        // A body that completed is done even if the upstream closed right
        // behind it (Content-Length with Connection: close).
        let done = p.relay.as_ref().is_some_and(|r| r.done);
        if p.state == State::Exchanging && p.draining && !done && flushed && p.from_up.is_empty() {
            if p.relay
                .as_ref()
                .is_some_and(|r| r.to_client == ClientBody::Close)
            {
                // A close-delimited body cut short: a FIN would mark the
                // part as the whole body; a reset says it is not.
                let _ = sys::reset_on_close(&self.stream);
            }
            return Err(End::Close);
        }
        if done && flushed && p.state != State::Tunnel {
            if !p.req_done {
                // The response ended before the request body did: the rest
                // of the body cannot be told apart from a next request.
                self.close_after = true;
            }
            return Err(End::Done);
        }
        Ok(progress)
    }

    /// Reads the request body into the client's buffer (consuming nothing)
    /// until it is whole or [`GATHER`] bytes of it are in, then connects.
    /// A bad chunk found meanwhile is answered (400, 413) without an
    /// upstream ever seeing the request.
    fn gather_body(&mut self, p: &mut Proxy, ctx: &mut Ctx) -> Result<bool, End> {
        let mut progress = false;
        loop {
            // `100 Continue` goes out first: the client waits for it.
            if self.out.head_pos < self.out.head.len() && self.writable {
                match self.flush() {
                    Ok(_) => progress = true,
                    Err(_) => return Err(End::Close),
                }
                if self.out.head_pos == self.out.head.len() {
                    self.out.head.clear();
                    self.out.head_pos = 0;
                }
            }
            let data = self.input.as_ref().map_or(&[][..], |i| i.data());
            let enough = match (p.body, p.probe.as_mut()) {
                (RequestBody::Length(n), _) => data.len() as u64 >= n.min(GATHER as u64),
                (RequestBody::Chunked, Some((d, seen))) => {
                    match d.decode(&data[*seen..], |_| {}) {
                        Ok(n) => *seen += n,
                        Err(e) => {
                            self.leg_error(p, e.status(), ctx);
                            return Ok(true);
                        }
                    }
                    d.is_done() || data.len() >= GATHER
                }
                _ => true,
            };
            if enough {
                p.probe = None;
                if !self.connect_next(p, ctx) {
                    no_member_up(p);
                    self.leg_error(p, 502, ctx);
                }
                return Ok(true);
            }
            if self.peer_closed {
                return Err(End::Close);
            }
            if !self.readable {
                return Ok(progress);
            }
            match self.read(ctx) {
                Ok(0) => {
                    self.peer_closed = true;
                    return Err(End::Close);
                }
                Ok(n) => {
                    p.body_progress = ctx.now;
                    p.body_clock.bytes += n as u64;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(progress);
                }
                Err(_) => return Err(End::Close),
            }
        }
    }

    /// A stream tunnel moving bulk data switches from copying to `splice`
    /// once nothing is left in its buffers (then they go back to the
    /// pools). Small exchanges keep copying: for them the pipe's extra
    /// descriptors and calls cost more than the copies.
    fn start_splicing(&mut self, p: &mut Proxy, ctx: &mut Ctx) {
        // A tunnel whose side already ended finishes on the copy path.
        let idle = !p.draining
            && p.to_up_pos == p.to_up.len()
            && p.from_up.is_empty()
            && self.out.head_pos == self.out.head.len()
            && self.input.as_ref().is_none_or(|i| i.start == i.end);
        if !idle {
            return;
        }
        p.bulk = false;
        let Ok(pipes) = Pipes::new() else {
            // Out of descriptors: it keeps copying.
            return;
        };
        p.pipes = Some(Box::new(pipes));
        p.to_up = Vec::new();
        p.to_up_pos = 0;
        ctx.give_relay_buffer(std::mem::take(&mut p.from_up.buf));
        p.from_up.clear();
        if let Some(input) = self.input.take() {
            ctx.give_buffer(input.buf);
        }
        self.out.head = Vec::new();
        self.out.head_pos = 0;
    }

    /// Switches a long identity download to `splice` once its buffers are
    /// empty; if a pipe cannot be made (out of descriptors) it keeps
    /// copying.
    fn start_body_splice(&mut self, p: &mut Proxy, ctx: &mut Ctx) {
        // Nothing may be left to send either way: the pipe carries only the
        // download, and bytes of the request still in `to_up` would never go.
        let empty = p.from_up.is_empty()
            && self.out.head_pos == self.out.head.len()
            && p.to_up_pos == p.to_up.len();
        if !empty || p.draining || p.up_eof {
            return;
        }
        p.splice_body = false;
        p.up_drained = false;
        let Ok(pipe) = Pipe::new() else {
            p.from_up.grow();
            return;
        };
        p.body_pipe = Some(Box::new(pipe));
        ctx.give_relay_buffer(std::mem::take(&mut p.from_up.buf));
        p.from_up.clear();
        self.out.head = Vec::new();
        self.out.head_pos = 0;
    }

    /// One round of a spliced download: upstream → pipe → client, never
    /// more than the body's remaining length from the upstream, so the
    /// connection stays reusable.
    fn body_splice_step(&mut self, p: &mut Proxy, ctx: &mut Ctx) -> Result<bool, End> {
        let (Some(pipe), Some(up), Some(r)) =
            (p.body_pipe.as_mut(), p.stream.as_ref(), p.relay.as_mut())
        else {
            return Err(End::Close);
        };
        let was_writable = self.writable;
        let limit = (r.left - pipe.pending as u64).min(PIPE_CHUNK as u64) as usize;
        let (moved, delivered) = pipe
            .pump(
                &up.stream,
                &mut p.up_readable,
                &self.stream,
                &mut self.writable,
                limit,
            )
            .map_err(|_| End::Close)?;
        r.left -= delivered as u64;
        p.sent += delivered as u64;
        if moved {
            p.progress = ctx.now;
        }
        if delivered > 0 || (was_writable && !self.writable) {
            // The client took bytes, or its socket just filled.
            self.progress = ctx.now;
        }
        if r.left == 0 {
            r.done = true;
            return Err(End::Done);
        }
        if pipe.eof && pipe.pending == 0 {
            // The upstream left in the middle: the client's connection
            // closes short of its Content-Length, so the gap shows.
            p.up_eof = true;
            return Err(End::Close);
        }
        Ok(moved)
    }

    /// One round of a spliced stream tunnel, both directions.
    fn splice_step(&mut self, p: &mut Proxy, ctx: &mut Ctx) -> Result<bool, End> {
        let (Some(pipes), Some(up)) = (p.pipes.as_mut(), p.stream.as_ref()) else {
            return Err(End::Close);
        };
        let (sent_up, _) = pipes
            .up
            .pump(
                &self.stream,
                &mut self.readable,
                &up.stream,
                &mut p.up_writable,
                usize::MAX,
            )
            .map_err(|_| End::Close)?;
        let (sent_down, delivered) = pipes
            .down
            .pump(
                &up.stream,
                &mut p.up_readable,
                &self.stream,
                &mut self.writable,
                usize::MAX,
            )
            .map_err(|_| End::Close)?;
        p.sent += delivered as u64;
        if pipes.finished() {
            return Err(End::Close);
        }
        let progress = sent_up || sent_down;
        if progress {
            p.progress = ctx.now;
        }
        Ok(progress)
    }

    /// Moves request body bytes from the client's input into `to_up`.
    fn pull_request_body(&mut self, p: &mut Proxy, ctx: &mut Ctx) -> Result<bool, End> {
        let mut progress = false;
        loop {
            let mut bad = None;
            if let Some(input) = self.input.as_mut() {
                let data = input.data();
                let used = if p.state == State::Tunnel {
                    p.bulk |= p.raw && data.len() >= super::conn::READ_BUF;
                    p.to_up.extend_from_slice(data);
                    data.len()
                } else if let Some(d) = p.req_decoder.as_mut() {
                    let to_up = &mut p.to_up;
                    let decoded = d.decode(data, |chunk| {
                        to_up.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        to_up.extend_from_slice(chunk);
                        to_up.extend_from_slice(b"\r\n");
                    });
                    let n = decoded.unwrap_or_else(|e| {
                        bad = Some(e);
                        0
                    });
                    if d.is_done() {
                        p.to_up.extend_from_slice(b"0\r\n\r\n");
                        p.req_done = true;
                    }
                    n
                } else {
                    let n = (p.req_left.min(data.len() as u64)) as usize;
                    p.to_up.extend_from_slice(&data[..n]);
                    p.req_left -= n as u64;
                    if p.req_left == 0 {
                        p.req_done = true;
                    }
                    n
                };
                if used > 0 {
                    input.consume(used);
                    p.body_consumed = true;
                    p.progress = ctx.now;
                    p.body_progress = ctx.now;
                    p.body_clock.bytes += used as u64;
                    progress = true;
                }
            }
            if let Some(e) = bad {
                // A bad chunk or too big a body: the upstream connection
                // closes without the last chunk, so it never gets a whole
                // request, and the client gets 400 or 413 if no answer
                // has started, else the close.
                if p.started {
                    return Err(End::Close);
                }
                let status = e.status();
                self.leg_error(p, status, ctx);
                return Ok(true);
            }
            if (p.req_done && p.state != State::Tunnel)
                || p.to_up.len() - p.to_up_pos >= WINDOW
                || !self.readable
                || self.peer_closed
            {
                if self.peer_closed && !p.req_done {
                    return Err(End::Close);
                }
                return Ok(progress);
            }
            match self.read(ctx) {
                Ok(0) => {
                    self.peer_closed = true;
                    if p.state == State::Tunnel {
                        p.draining = true;
                        return Ok(true);
                    }
                    if !p.req_done {
                        return Err(End::Close);
                    }
                    return Ok(progress);
                }
                Ok(_) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(progress);
                }
                Err(_) => return Err(End::Close),
            }
        }
    }

    /// The upstream closed its side.
    fn upstream_closed(&mut self, p: &mut Proxy) -> Result<bool, End> {
        if p.state == State::Tunnel {
            // The client gets what is still buffered, then the close.
            p.draining = true;
            return Ok(true);
        }
        match p.relay.as_mut() {
            None => Err(End::Failed(Failure::Error)),
            Some(r) if r.head.body == ResponseBody::Close && !r.done => {
                // The close ends the body: done once what is still buffered
                // has gone out (the relay finishes it otherwise).
                p.up_eof = true;
                if p.from_up.is_empty() {
                    r.done = true;
                    if r.to_client == ClientBody::Chunked {
                        self.out.head.extend_from_slice(b"0\r\n\r\n");
                    }
                }
                Ok(true)
            }
            Some(_) if p.state == State::Tunnel => Err(End::Close),
            Some(r) if r.done => Ok(false),
            // Gone in the middle of a body: what arrived is passed on, then
            // the client's connection closes, so it cannot take the part
            // for a whole response.
            Some(_) => {
                p.up_eof = true;
                p.draining = true;
                Ok(true)
            }
        }
    }

    /// Parses the response head when it is complete, then passes body
    /// bytes to the client re-framed.
    fn relay_response(&mut self, p: &mut Proxy, ctx: &mut Ctx) -> Result<bool, End> {
        if p.state == State::Tunnel {
            self.out.head.extend_from_slice(p.from_up.data());
            p.sent += p.from_up.data().len() as u64;
            p.from_up.clear();
            return Ok(true);
        }
        if p.relay.is_none() {
            let http11 = p.client_version == Version::Http11;
            let (client_keep_alive, stopping) = (p.client_keep_alive, ctx.stopping);
            let websocket = p.websocket;
            let http10 = p.client_version == Version::Http10;
            let route = p.route();
            let (out, close_after) = (&mut self.out.head, &mut self.close_after);
            // One parse: the head is checked, then the client's head is
            // written from the same fields.
            let parsed =
                proxy::parse_response_then(p.from_up.data(), p.head_request, |head, fields| {
                    if head.status < 200 && head.status != 101 {
                        // 100 Continue, 103 Early Hints: not relayed (xps
                        // answered Expect itself).
                        return Plan::Interim;
                    }
                    if head.status == 101 && !websocket {
                        // A switch nobody asked for: the bytes after it
                        // would be nobody's protocol.
                        return Plan::UnaskedSwitch;
                    }
                    let upgrade = head.status == 101;
                    let to_client = match head.body {
                        // HEAD and 304 pass the declared length on; 1xx
                        // and 204 never have one.
                        ResponseBody::None => match head.length {
                            Some(n) if head.status >= 200 && head.status != 204 => {
                                ClientBody::Declared(n)
                            }
                            _ => ClientBody::None,
                        },
                        ResponseBody::Length(n) => ClientBody::Length(n),
                        ResponseBody::Chunked | ResponseBody::Close if http11 => {
                            ClientBody::Chunked
                        }
                        ResponseBody::Chunked | ResponseBody::Close => ClientBody::Close,
                    };
                    if to_client == ClientBody::Close || !client_keep_alive || stopping {
                        *close_after = true;
                    }
                    let http10_ka = http10 && !*close_after;
                    fields.client_head(out, route, to_client, *close_after, http10_ka);
                    Plan::Relay(to_client, upgrade)
                });
            let (head, (to_client, upgrade)) = match parsed {
                Ok(Some((h, Plan::Relay(to_client, upgrade)))) => (h, (to_client, upgrade)),
                Ok(Some((_, Plan::UnaskedSwitch))) => {
                    crate::log::warn(&format!(
                        "upstream member {}: 101 Switching Protocols to a request that asked for no upgrade; answering 502",
                        p.addr
                    ));
                    self.leg_error(p, 502, ctx);
                    p.from_up.clear();
                    return Ok(true);
                }
                Ok(Some((h, Plan::Interim))) => {
                    // Interim answers are not progress: a `102` a second
                    // must not hold a request forever.
                    p.from_up.consume(h.len);
                    return Ok(true);
                }
                Ok(None) if !p.from_up.has_room() => {
                    // The head does not fit the relay buffer (16 KiB;
                    // nginx's default limit is 4–8 KiB).
                    crate::log::warn(&format!(
                        "upstream member {}: response head too large; answering 502",
                        p.addr
                    ));
                    self.leg_error(p, 502, ctx);
                    p.from_up.clear();
                    return Ok(true);
                }
                Ok(None) => return Ok(false),
                Err(bad) => {
                    crate::log::warn(&format!(
                        "upstream member {}: {}; answering 502",
                        p.addr, bad.0
                    ));
                    self.leg_error(p, 502, ctx);
                    p.from_up.clear();
                    return Ok(true);
                }
            };
            p.from_up.consume(head.len);
            p.started = true;
            p.progress = ctx.now;
            if let Some(log) = self.log.as_mut() {
                log.status = head.status;
            }
            if upgrade {
                p.state = State::Tunnel;
                p.req_done = true;
                p.relay = Some(Relay {
                    head,
                    to_client,
                    left: 0,
                    decoder: None,
                    done: false,
                });
                return Ok(true);
            }
            let done = head.body == ResponseBody::None || head.body == ResponseBody::Length(0);
            p.relay = Some(Relay {
                left: match head.body {
                    ResponseBody::Length(n) => n,
                    _ => 0,
                },
                decoder: (head.body == ResponseBody::Chunked)
                    .then(|| ChunkedDecoder::new(u64::MAX)),
                head,
                to_client,
                done,
            });
            if done {
                if to_client == ClientBody::Chunked {
                    self.out.head.extend_from_slice(b"0\r\n\r\n");
                }
                return Ok(true);
            }
        }
        let Some(r) = p.relay.as_mut() else {
            return Ok(false);
        };
        if r.done {
            // Bytes after a complete response: the connection is not reused.
            p.from_up.clear();
            r.head.keep_alive = false;
            return Ok(false);
        }
        let chunked_out = r.to_client == ClientBody::Chunked;
        let identity =
            matches!(r.head.body, ResponseBody::Length(_) | ResponseBody::Close) && !chunked_out;
        let avail = match r.head.body {
            ResponseBody::Length(_) => (r.left.min(p.from_up.data().len() as u64)) as usize,
            _ => p.from_up.data().len(),
        };
        let pending = self.out.head.len() - self.out.head_pos;
        if identity && pending + avail > COPY_LIMIT {
            // Straight from the relay buffer to the client, once the head
            // is out: no copy, and no more memory than the buffer. (Small
            // bodies are copied after the head: one write for both.)
            if pending > 0 || !self.writable || avail == 0 {
                return Ok(false);
            }
            match self.stream.write(&p.from_up.data()[..avail]) {
                Ok(n) => {
                    let whole = n == p.from_up.buf.len();
                    p.from_up.consume(n);
                    // A client that took a whole buffer at once after the
                    // first 8 MiB keeps up (a stalled one cannot get
                    // that far: its socket buffers fill first).
                    if whole && p.sent >= 8 << 20 {
                        // Splice the rest when it is long and the request
                        // is all sent (the pipe then carries one direction).
                        let request_sent =
                            p.req_done && p.to_up_pos == p.to_up.len() && !p.up_write_failed;
                        if r.left >= (1 << 20) + n as u64 && request_sent && !p.raw {
                            p.splice_body = true;
                        } else {
                            p.from_up.grow();
                        }
                    }
                    p.sent += n as u64;
                    p.progress = ctx.now;
                    self.progress = ctx.now;
                    if let ResponseBody::Length(_) = r.head.body {
                        r.left -= n as u64;
                        r.done = r.left == 0;
                    } else {
                        r.done = p.up_eof && p.from_up.is_empty();
                    }
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The client's socket just filled: its send_timeout
                    // starts now.
                    self.writable = false;
                    self.progress = ctx.now;
                    return Ok(false);
                }
                Err(_) => return Err(End::Close),
            }
        }
        let out = &mut self.out.head;
        let mut sent = 0u64;
        let mut emit = |data: &[u8]| {
            if data.is_empty() {
                return;
            }
            if chunked_out {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(data);
            }
            sent += data.len() as u64;
        };
        let used = match r.head.body {
            ResponseBody::Length(_) => {
                let n = (r.left.min(p.from_up.data().len() as u64)) as usize;
                emit(&p.from_up.data()[..n]);
                r.left -= n as u64;
                r.done = r.left == 0;
                n
            }
            ResponseBody::Chunked => {
                let Some(d) = r.decoder.as_mut() else {
                    return Err(End::Close);
                };
                let n = match d.decode(p.from_up.data(), &mut emit) {
                    Ok(n) => n,
                    Err(_) => {
                        // What was good goes out, then the client's
                        // connection closes without the last chunk: it
                        // cannot take the part for a whole body.
                        crate::log::warn(&format!(
                            "upstream member {}: bad chunked body; closing the client's connection",
                            p.addr
                        ));
                        p.sent += sent;
                        p.from_up.clear();
                        if let Some(s) = take_upstream(p, ctx) {
                            ctx.sockets.close(s);
                        }
                        p.up_readable = false;
                        p.up_eof = true;
                        p.draining = true;
                        return Ok(true);
                    }
                };
                r.done = d.is_done();
                n
            }
            ResponseBody::Close => {
                let n = p.from_up.data().len();
                emit(p.from_up.data());
                // After the upstream's close this was the rest.
                r.done = p.up_eof;
                n
            }
            ResponseBody::None => 0,
        };
        p.sent += sent;
        p.from_up.consume(used);
        if r.done && chunked_out {
            self.out.head.extend_from_slice(b"0\r\n\r\n");
        }
        Ok(used > 0)
    }
}

/// Takes the upstream socket off the leg; its member has one request less
/// in flight (for `least_conn` and `random`). Every socket the leg drops
/// goes through here, so the count stays exact.
fn take_upstream(p: &mut Proxy, ctx: &mut Ctx) -> Option<UpSock> {
    let s = p.stream.take()?;
    let name = &p.snapshot.upstreams[p.group].name;
    if let Some(picker) = ctx.pickers.get_mut(name) {
        picker.finished(p.addr);
    }
    Some(s)
}

/// Logs that a request finds no member of its group up (it gets 502).
fn no_member_up(p: &Proxy) {
    crate::log::warn(&format!(
        "upstream {}: no member is up; answering 502",
        p.snapshot.upstreams[p.group].name
    ));
}

/// Why a step ended the loop.
enum End {
    /// Close the client.
    Close,
    /// The exchange is complete.
    Done,
    /// The attempt failed before any response byte.
    Failed(Failure),
}

/// `client_max_body_size` of the route a request is proxied from.
fn p_limit(snapshot: &Snapshot, at: (ServerId, LocationMatch)) -> u64 {
    let server = &snapshot.servers[at.0];
    match at.1 {
        LocationMatch::Location(i) => server.locations.list()[i].route.client_max_body_size,
        _ => server.fallback.client_max_body_size,
    }
}
