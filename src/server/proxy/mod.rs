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

use super::client::{Client, RateClock};
use super::ctx::Ctx;
use super::vars::KeptVars;
use crate::handler::proxy::{ClientBody, RequestBody, ResponseBody, UpstreamHead};
use crate::handler::{Body, Reply, canned};
use crate::http::body::ChunkedDecoder;
use crate::http::{Framing, Method, RequestHead, Version};
use crate::net::Token;
use crate::routing::{LocationMatch, MinRate, Route, ServerId, Snapshot, UpstreamId};
use crate::upstream::Limits;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest `error_page` file a proxied request's error is answered
/// with (read into memory; a larger one gives the built-in page).
const ERROR_PAGE_MAX: u64 = 1 << 20;

use parts::{Pipe, Pipes, Relay, RelayBuf, Tried};
use pool::{UpSock, quiet};

mod choose;
mod clock;
mod exchange;
mod parts;
pub mod pool;
mod relay;
mod splice;

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

/// The proxy leg of one request.
pub struct Proxy {
    snapshot: Arc<Snapshot>,
    /// The client connection's token (its upstream socket's owner).
    owner: Token,
    /// The client's `client_body_timeout` and `client_min_rate`, for the
    /// clock that runs while xps waits on the request body.
    client_body_timeout: Duration,
    client_min_rate: Option<MinRate>,
    /// The client's `Accept-Encoding` takes gzip.
    accepts_gzip: bool,
    server: ServerId,
    location: LocationMatch,
    group: UpstreamId,
    member: usize,
    addr: crate::upstream::Endpoint,
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
    /// The request's head, kept only when the route has `error_page`s:
    /// an error xps answers itself goes through them.
    error_head: Option<Box<RequestHead>>,
    /// The request's variables, when the route's values name any.
    pub(super) kept: Option<Box<KeptVars>>,
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
    /// When the exchange with the current member started (for its
    /// response-time counters).
    pub(super) attempt_at: u64,
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

/// What the leg says after running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Waiting for readiness or a deadline.
    Wait,
    /// The exchange is complete and the client's output flushed.
    Done,
    /// Close the client connection.
    Close,
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

impl Proxy {
    fn route(&self) -> &Route {
        self.snapshot.servers[self.server].route_of(self.location)
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
        (server, location): (ServerId, LocationMatch),
        group: UpstreamId,
        owner: Token,
        ctx: &mut Ctx,
    ) -> Box<Proxy> {
        Box::new(Proxy {
            snapshot: snapshot.clone(),
            owner,
            client_body_timeout: Duration::ZERO,
            client_min_rate: None,
            accepts_gzip: false,
            server,
            location,
            group,
            member: 0,
            addr: crate::upstream::Endpoint::Inet(SocketAddr::from(([0, 0, 0, 0], 0))),
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
            error_head: None,
            kept: None,
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
            attempt_at: ctx.now_us,
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

    /// The leg of an HTTP request; `None` when no member can be tried at
    /// all (the client gets 502 at once).
    pub fn http(
        start: Start,
        c: &mut Client,
        snapshot: &Arc<Snapshot>,
        ctx: &mut Ctx,
    ) -> Option<Box<Proxy>> {
        let (head, at) = (start.head, start.at);
        let body = match head.framing {
            Framing::None => RequestBody::None,
            Framing::Length(n) => RequestBody::Length(n),
            Framing::Chunked => RequestBody::Chunked,
        };
        let mut p = Proxy::boxed(snapshot, at, start.group, start.owner, ctx);
        p.client_body_timeout = start.body_timeout;
        p.client_min_rate = start.min_rate;
        // Read only where gzip can apply.
        p.accepts_gzip = p.route().gzip.enabled
            && crate::http::encoding::accepts_gzip(head.accept_encoding.as_deref());
        p.raw_head = start.raw_head;
        p.head_request = head.method == Method::Head;
        p.idempotent = head.method.is_idempotent();
        p.client_version = head.version;
        p.client_keep_alive = head.keep_alive;
        p.kept = start.kept;
        if !p.route().error_page.is_empty() {
            p.error_head = Some(Box::new(head.clone()));
        }
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
            if !p.connect_next(c, ctx) {
                p.no_member_up();
                return None;
            }
        } else {
            p.state = State::Gathering;
            p.probe = (body == RequestBody::Chunked)
                .then(|| (ChunkedDecoder::new(p_limit(snapshot, at)), 0));
        }
        if head.expect_continue && body != RequestBody::None {
            c.out
                .head
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        Some(p)
    }

    /// The leg of a stream (TCP) connection accepted for stream server
    /// `index`; `None` when no member can be tried (close the client).
    pub fn stream(
        c: &mut Client,
        snapshot: &Arc<Snapshot>,
        index: usize,
        owner: Token,
        ctx: &mut Ctx,
    ) -> Option<Box<Proxy>> {
        let st = &snapshot.streams[index];
        let at = (0, LocationMatch::NoLocation);
        let mut p = Proxy::boxed(snapshot, at, st.upstream, owner, ctx);
        p.raw = true;
        p.connect_timeout = st.proxy_connect_timeout;
        p.read_timeout = st.proxy_timeout;
        p.send_timeout = st.proxy_timeout;
        if !p.connect_next(c, ctx) {
            crate::log::warn(&format!(
                "stream upstream {}: no member is up; closing the client",
                snapshot.upstreams[st.upstream].name
            ));
            return None;
        }
        c.close_after = true;
        Some(p)
    }
}

/// What a proxied request brings to its leg.
pub struct Start<'a> {
    /// The request's head, parsed.
    pub head: &'a RequestHead,
    /// The head as the client sent it.
    pub raw_head: Vec<u8>,
    /// The server and location it was routed to.
    pub at: (ServerId, LocationMatch),
    /// The upstream group.
    pub group: UpstreamId,
    /// The client connection's token.
    pub owner: Token,
    /// The client's `client_body_timeout` and `client_min_rate`.
    pub body_timeout: Duration,
    pub min_rate: Option<MinRate>,
    /// The request's variables, when the route's values name any.
    pub kept: Option<Box<KeptVars>>,
}

impl Proxy {
    /// Runs the leg as far as it can go. Unless it waits, the leg is over:
    /// the caller ends it with [`Proxy::finish`].
    pub fn run(&mut self, c: &mut Client, ctx: &mut Ctx) -> Step {
        loop {
            match self.proxy_step(c, ctx) {
                Ok(true) => continue,
                Ok(false) => return Step::Wait,
                Err(End::Close) => return Step::Close,
                Err(End::Done) => return Step::Done,
                Err(End::Failed(kind)) => match self.proxy_failed(c, kind, ctx) {
                    Some(step) => return step,
                    None => continue,
                },
            }
        }
    }

    /// Ends the leg: its buffer goes back to the pool, and its upstream
    /// connection to the pool or closed (see `finish_leg`). The status
    /// the client got, when the exchange got that far.
    pub fn finish(&mut self, ctx: &mut Ctx) -> Option<u16> {
        ctx.give_relay_buffer(std::mem::take(&mut self.from_up.buf));
        self.finish_leg(ctx);
        self.relay.as_ref().map(|r| r.head.status)
    }

    /// An attempt failed: the next member, or an error answer. `Some` ends
    /// the leg.
    fn proxy_failed(&mut self, c: &mut Client, kind: Failure, ctx: &mut Ctx) -> Option<Step> {
        let snapshot = self.snapshot.clone();
        let group = &snapshot.upstreams[self.group];
        let stale = self.reused && kind == Failure::Error;
        if let Some(s) = self.take_upstream(ctx) {
            ctx.sockets.close(s);
        }
        if !stale {
            let m = &group.members[self.member];
            if let Some(s) = m.stats.get() {
                s.failed(ctx.worker);
            }
            ctx.shared.health.failed(
                &group.name,
                &self.addr,
                Limits {
                    max_fails: m.max_fails,
                    fail_timeout: m.fail_timeout,
                },
                ctx.now,
            );
            crate::log::warn(&format!(
                "upstream {} member {}: {}",
                group.name,
                self.addr,
                if kind == Failure::Timeout {
                    "connect timed out"
                } else {
                    "failed before answering"
                }
            ));
        }
        if self.started {
            return Some(Step::Close);
        }
        if self.raw {
            return (!self.connect_next(c, ctx)).then_some(Step::Close);
        }
        if self.body_consumed || (self.wrote && !self.idempotent) {
            // The body cannot be sent again; and a request that may have
            // reached the member and is not idempotent (POST, PATCH, LOCK…)
            // is never sent twice: the member may have acted on it.
            self.leg_error(c, 502, ctx);
            return None;
        }
        if stale {
            // An idle connection the upstream had closed: try the same member afresh.
            self.tried.remove(self.member);
        }
        self.last_failure = kind;
        if self.connect_next(c, ctx) {
            return None;
        }
        let status = if self.last_failure == Failure::Timeout {
            504
        } else {
            502
        };
        crate::log::warn(&format!(
            "upstream {}: no member left to try; answering {status}",
            group.name
        ));
        self.leg_error(c, status, ctx);
        None
    }

    /// Answers the client with an error page instead of the upstream's
    /// response; the leg is then done (it closes when the page is out).
    fn leg_error(&mut self, c: &mut Client, status: u16, ctx: &mut Ctx) {
        if let Some(s) = self.take_upstream(ctx) {
            ctx.sockets.close(s);
        }
        c.close_after |= !self.req_done;
        let snapshot = self.snapshot.clone();
        let route = self.route();
        let reply = self.error_reply(status, ctx);
        let len = reply.body.len();
        let vars = self.kept_vars(c.peer);
        c.write_reply(
            reply,
            Some((route, &vars)),
            self.client_version,
            self.head_request,
            &snapshot,
            ctx.date.get(),
        );
        // The page goes out through the leg's end: the body is in `out`.
        match std::mem::replace(&mut c.out.body, Body::Empty) {
            Body::Shared { bytes, start, end } if c.out.send_body => {
                c.out.head.extend_from_slice(&bytes[start..end]);
            }
            Body::Owned(bytes) if c.out.send_body => c.out.head.extend_from_slice(&bytes),
            _ => {}
        }
        c.out.send_body = false;
        // The page's own clock starts now.
        self.progress = ctx.now;
        c.progress = ctx.now;
        self.sent = if self.head_request { 0 } else { len };
        self.started = true;
        self.req_done = true;
        self.state = State::Exchanging;
        self.to_up.clear();
        self.to_up_pos = 0;
        self.from_up.clear();
        self.up_readable = false;
        self.up_writable = false;
        self.relay = Some(Relay {
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
            gzip: None,
        });
    }

    /// The answer to an error xps makes itself (502, 504, 400, 413): the
    /// route's `error_page` for it when it has one (read into memory, up
    /// to [`ERROR_PAGE_MAX`]), gzipped by the route's rules, else the
    /// built-in page.
    fn error_reply(&self, status: u16, ctx: &mut Ctx) -> Reply {
        let built_in = canned::error(status);
        let Some(head) = self.error_head.as_deref() else {
            return built_in;
        };
        let route = self.route();
        let reply = crate::handler::with_error_page(built_in, head, route, &mut ctx.files, ctx.now);
        let mut reply = crate::handler::gzip::finish(reply, head, route);
        if let Some(note) = reply.note.take() {
            ctx.note_once(note);
        }
        let body = match std::mem::replace(&mut reply.body, Body::Empty) {
            Body::File { file, start, end } if end - start <= ERROR_PAGE_MAX => {
                let mut bytes = vec![0; (end - start) as usize];
                match std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, start) {
                    Ok(()) => Body::Owned(bytes),
                    Err(_) => return canned::error(status),
                }
            }
            Body::File { .. } | Body::Gzip { .. } => return canned::error(status),
            body => body,
        };
        reply.body = body;
        reply
    }

    /// Releases the upstream side: back to the pool after a complete,
    /// well-framed exchange, else closed.
    fn finish_leg(&mut self, ctx: &mut Ctx) {
        let snapshot = self.snapshot.clone();
        let group = &snapshot.upstreams[self.group];
        let Some(s) = self.take_upstream(ctx) else {
            return;
        };
        let framed = self.req_done
            && self.to_up_pos == self.to_up.len()
            && !self.up_eof
            && self.from_up.is_empty()
            && self.state == State::Exchanging
            && self
                .relay
                .as_ref()
                .is_some_and(|r| r.done && r.head.keep_alive);
        // Nothing may wait on the socket either (see [`quiet`]). When the
        // read that ended the response found the socket empty, bytes that
        // came after it raise an edge that evicts the pooled connection, and
        // `Pool::take` looks again: the peek is needed only when no read
        // said so (a spliced body stops at its length and never knows).
        let clean = framed && (self.up_drained || quiet(&s.stream));
        if framed && !clean && matches!(s.stream.peek(&mut [0u8; 1]), Ok(n) if n > 0) {
            // More than the response: the upstream's framing cannot be
            // trusted, and whatever it sent must reach no one.
            crate::log::warn(&format!(
                "upstream member {}: bytes after a complete response; closing its connection",
                self.addr
            ));
        }
        if clean {
            ctx.shared.health.succeeded(&group.name, &self.addr);
            ctx.upstream_pool.give(
                self.addr.clone(),
                s,
                group.keepalive,
                ctx.now,
                &mut ctx.sockets,
            );
        } else {
            ctx.sockets.close(s);
        }
    }
}

/// `client_max_body_size` of the route a request is proxied from.
fn p_limit(snapshot: &Snapshot, (server, at): (ServerId, LocationMatch)) -> u64 {
    snapshot.servers[server].route_of(at).client_max_body_size
}
