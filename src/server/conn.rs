//! One client connection: read request heads, answer them in order, keep
//! the connection alive or close it, and keep its deadline up to date.
//!
//! The socket is registered edge-triggered for both directions once, so
//! the connection remembers unused readiness (`readable`, `writable`) and
//! [`Conn::drive`] loops until it can make no more progress: output
//! flushed or blocked, input drained to `WouldBlock`. Responses go out in
//! request order: a pipelined request is not parsed while an earlier
//! response is still being written.

use super::access;
use super::client::{Client, RateClock, earliest};
use super::ctx::Ctx;
use super::drain::{Drain, Drained};
use super::meter::Meter;
use super::proxy::{Proxy, Step};
use crate::handler::{Body, canned};
use crate::http::parse::{self, ParseError, Version};
use crate::http::scan::HeadScan;
use crate::metrics::{Ending, Kind};
use crate::net::{Token, sys};
use crate::routing::{ConnectionLimits, Peer};
use crate::upstream::Endpoint;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// How long a closing connection keeps reading what the client still sends,
/// so that the kernel does not reset the connection under the response.
const LINGER: Duration = Duration::from_secs(2);

/// Whether the worker keeps the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep it; wait for events or its deadline.
    Keep,
    /// Close it now.
    Close,
}

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Between requests (or before the first), no byte of a head yet.
    Idle,
    /// Part of a request head has arrived (at `since`).
    Head { since: Instant },
    /// A response is being written.
    Writing,
    /// Discarding a request body before the next request.
    Draining,
    /// Response sent, write side shut; reading until the client closes.
    Lingering { until: Instant },
    /// A request waits its `limit_req` turn until then.
    Delayed { until: Instant },
}

/// Where a connection is with its PROXY protocol header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProxyHeader {
    /// Its listener was not looked at yet.
    Unchecked,
    /// The listener takes one: the first bytes must be it.
    Expected,
    /// Read, or not wanted.
    Done,
}

/// A client connection.
pub struct Conn {
    /// The client side: socket, buffers, readiness, progress clock.
    pub(super) client: Client,
    /// The address the connection came in on: the TCP address it was
    /// accepted on, or the listener's Unix socket.
    pub(super) local: Endpoint,
    pub(super) phase: Phase,
    pub(super) drain: Option<Drain>,
    pub(super) requests: u64,
    pub(super) limits: ConnectionLimits,
    /// `client_body_timeout` of the current route.
    pub(super) body_timeout: Duration,
    /// When the connection must be looked at again.
    pub deadline: Option<Instant>,
    /// When a timer entry is scheduled for it (at most one that matters).
    pub timer_at: Option<Instant>,
    /// The `auth_basic` user of the current request (for the log).
    pub(super) user: Option<std::sync::Arc<str>>,
    /// The request waiting in [`Phase::Delayed`] (its head stays in the
    /// read buffer until it is answered).
    pub(super) delayed: Option<Box<crate::http::RequestHead>>,
    /// The current request's limits were applied.
    pub(super) limits_checked: bool,
    /// `limit_conn` slots the current request holds.
    pub(super) slots: Vec<crate::limit::Slot>,
    /// The address the connection came from (`client.peer` is the
    /// client's address for the current request: `set_real_ip_from` may
    /// make it another).
    pub(super) socket_peer: Peer,
    /// The client's address a PROXY protocol header gave.
    pub(super) proxied: Option<SocketAddr>,
    /// Whether the PROXY header was looked for yet.
    proxy_header: ProxyHeader,
    pub(super) log: Option<access::PendingLog>,
    /// Its epoll token (its upstream socket's owner).
    pub(super) token: Token,
    /// The proxy leg of the current request.
    pub(super) proxy: Option<Box<Proxy>>,
    /// What is known of the head being received.
    scan: HeadScan,
    /// The body being discarded, for `client_min_rate`.
    body_clock: RateClock,
    /// The connection's part of the counters.
    pub(super) meter: Meter,
}

impl Conn {
    /// A new connection accepted on a listener whose default server sets
    /// `limits`.
    pub fn new(
        stream: sys::Stream,
        peer: Peer,
        local: Endpoint,
        limits: ConnectionLimits,
        token: Token,
        now: Instant,
    ) -> Conn {
        let mut c = Conn {
            client: Client::new(stream, peer, limits.client_header_max_size as usize, now),
            local,
            phase: Phase::Idle,
            drain: None,
            requests: 0,
            body_timeout: Duration::from_secs(10),
            limits,
            deadline: None,
            timer_at: None,
            log: None,
            user: None,
            delayed: None,
            limits_checked: false,
            slots: Vec::new(),
            socket_peer: peer,
            proxied: None,
            proxy_header: ProxyHeader::Unchecked,
            token,
            proxy: None,
            scan: HeadScan::default(),
            body_clock: RateClock::start(now),
            meter: Meter::new(),
        };
        // A fresh connection gets the head timeout to send its first byte.
        c.deadline = Some(now + c.limits.client_header_timeout);
        c
    }

    /// The socket (for registration).
    pub fn stream(&self) -> &sys::Stream {
        &self.client.stream
    }

    /// Whether the connection is between requests with nothing in flight
    /// (it may be closed at once on shutdown).
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle && self.client.input_empty()
    }

    /// How readily the connection gives way when the server is out of
    /// connections, lowest first: `None` when it must not (a request in
    /// progress on xps's side). Closing ones first, then idle ones (the
    /// longest idle first), then clients sending a head or a body, the
    /// slowest first. A connection is judged only after its first second
    /// (unless it is idle after a request).
    pub fn shed_rank(&self, now: Instant) -> Option<(u8, u64)> {
        let rate = |since: Instant, bytes: u64| {
            let elapsed = now.saturating_duration_since(since);
            (elapsed >= Duration::from_secs(1)).then(|| {
                (
                    2,
                    bytes.saturating_mul(1000) / elapsed.as_millis().max(1) as u64,
                )
            })
        };
        if let Some(p) = &self.proxy {
            return p
                .body_rate_since(&self.client)
                .and_then(|(since, bytes)| rate(since, bytes));
        }
        match self.phase {
            Phase::Lingering { .. } => Some((0, 0)),
            Phase::Idle if self.is_idle() => {
                let idle = now.saturating_duration_since(self.client.progress);
                // A new connection may have sent its head already, unread
                // yet: it gets its first second too.
                (self.requests > 0 || idle >= Duration::from_secs(1))
                    .then(|| (1, u64::MAX - idle.as_micros() as u64))
            }
            Phase::Head { since } if !self.client.out_pending() => {
                rate(since, self.client.buffered())
            }
            Phase::Draining if !self.client.out_pending() => {
                rate(self.body_clock.since, self.body_clock.bytes)
            }
            // Waiting its `limit_req` turn: a client over its rate goes
            // first when connections run out.
            Phase::Delayed { .. } => Some((1, 0)),
            _ => None,
        }
    }

    /// Handles readiness from epoll.
    pub fn on_event(
        &mut self,
        readable: bool,
        writable: bool,
        closed: bool,
        ctx: &mut Ctx,
    ) -> Next {
        // A writable edge while writing was possible already says nothing
        // new: a Unix socket signals one each time its client reads, which
        // would drive the connection twice per request.
        if writable && !readable && !closed && self.client.writable {
            return Next::Keep;
        }
        self.client.readable |= readable || closed;
        self.client.hangup |= closed;
        self.client.writable |= writable;
        self.drive(ctx)
    }

    /// Handles readiness of the upstream socket of a proxied request.
    pub fn on_upstream_event(
        &mut self,
        readable: bool,
        writable: bool,
        closed: bool,
        ctx: &mut Ctx,
    ) -> Next {
        if let Some(p) = self.proxy.as_mut() {
            p.ready(readable, writable, closed);
        }
        self.drive(ctx)
    }

    /// Handles the deadline passing.
    pub fn on_timeout(&mut self, ctx: &mut Ctx) -> Next {
        if self.proxy.is_some() {
            return match self.proxy_timeout(ctx) {
                Step::Close => {
                    self.meter.ending = Ending::Timeout;
                    Next::Close
                }
                Step::Done => {
                    // An error page written for the timeout went out at
                    // once: the response is done here, as in `run`.
                    self.client.progress = ctx.now;
                    self.response_done(ctx);
                    self.drive(ctx)
                }
                Step::Wait => self.drive(ctx),
            };
        }
        match self.phase {
            // No whole PROXY header in time: closed without an answer,
            // as a connection that starts with something else is.
            Phase::Head { .. } if self.proxy_header == ProxyHeader::Expected => {
                self.meter.ending = Ending::Timeout;
                Next::Close
            }
            Phase::Head { .. } => {
                // Some of a head arrived but not all of it in time.
                self.meter.ending = Ending::Timeout;
                self.reply_error(408, ctx);
                self.drive(ctx)
            }
            // Idle too long between requests, or done lingering: normal.
            Phase::Idle | Phase::Lingering { .. } => Next::Close,
            // Its turn came.
            Phase::Delayed { .. } => self.drive(ctx),
            _ => {
                self.meter.ending = Ending::Timeout;
                Next::Close
            }
        }
    }

    /// Lets go of what the connection holds besides its socket before it
    /// is dropped: a proxy leg (its upstream socket closed, its member's
    /// in-flight count ended) and the read buffer. Every close goes
    /// through here, including a connection closed to make room.
    pub fn release(mut self, ctx: &mut Ctx) {
        self.end_leg(Step::Close, ctx);
        self.client.give_back_input(ctx);
        self.meter.close(&self.client, ctx);
    }

    /// Asks the connection to finish its current response and close.
    pub fn finish_and_close(&mut self, ctx: &mut Ctx) -> Next {
        if self.is_idle() {
            return Next::Close;
        }
        self.client.close_after = true;
        self.drive(ctx)
    }

    /// Makes all the progress possible now.
    pub fn drive(&mut self, ctx: &mut Ctx) -> Next {
        let next = self.run(ctx);
        if next == Next::Keep {
            self.update_deadline(ctx.now);
            self.release_idle_buffer(ctx);
        }
        next
    }

    fn run(&mut self, ctx: &mut Ctx) -> Next {
        loop {
            if let Phase::Lingering { .. } = self.phase {
                return self.linger(ctx);
            }
            if let Phase::Delayed { until } = self.phase {
                if self.client.hangup {
                    // The client left while its request waited: nothing
                    // is done for it (nginx logs 499).
                    self.delayed = None;
                    self.meter.status(499);
                    self.meter.ending = Ending::Error;
                    return Next::Close;
                }
                if ctx.now < until {
                    return Next::Keep;
                }
                self.resume_delayed(ctx);
                continue;
            }
            if self.proxy.is_some() {
                match self.proxy_run(ctx) {
                    Step::Wait => return Next::Keep,
                    Step::Close => return Next::Close,
                    Step::Done => {
                        self.client.progress = ctx.now;
                        self.response_done(ctx);
                        if self.client.close_after {
                            return self.begin_close(ctx);
                        }
                        continue;
                    }
                }
            }
            if self.client.out_pending() {
                if !self.client.writable {
                    return Next::Keep;
                }
                let before = (self.client.out.head_pos, self.client.out.body_sent);
                match self.client.flush() {
                    Ok(true) => {
                        self.client.progress = ctx.now;
                        self.response_done(ctx);
                        if self.client.close_after && self.drain.is_none() {
                            return self.begin_close(ctx);
                        }
                    }
                    Ok(false) => {
                        // send_timeout is the longest gap between writes,
                        // not the time a whole body may take.
                        if (self.client.out.head_pos, self.client.out.body_sent) != before {
                            self.client.progress = ctx.now;
                        }
                        return Next::Keep;
                    }
                    Err(_) => {
                        self.meter.ending = Ending::Error;
                        return Next::Close;
                    }
                }
            }
            if self.drain.is_some() {
                match self.drain_body(ctx) {
                    Some(next) => return next,
                    None => continue,
                }
            }
            if self.client.close_after {
                return self.begin_close(ctx);
            }
            // (A PROXY v2 header starts with blank lines of its own.)
            if self.phase == Phase::Idle && self.proxy_header == ProxyHeader::Done {
                self.skip_blank_lines();
            }
            if self.parse_buffered(ctx) {
                continue;
            }
            if self.client.peer_closed {
                return Next::Close;
            }
            if !self.client.readable {
                return Next::Keep;
            }
            match self.client.read(ctx) {
                Ok(0) => {
                    self.client.peer_closed = true;
                    self.client.readable = false;
                    // A half-sent head is abandoned; between requests the
                    // client is simply gone.
                    return Next::Close;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.client.readable = false;
                    return Next::Keep;
                }
                Err(_) => {
                    self.meter.ending = Ending::Error;
                    return Next::Close;
                }
            }
        }
    }

    /// Empty lines before a request line are ignored (RFC 9112 §2.2),
    /// without starting a head's clock: a stray CRLF after a body leaves
    /// the connection idle.
    fn skip_blank_lines(&mut self) {
        if let Some(input) = self.client.input.as_mut() {
            loop {
                let data = input.data();
                if data.starts_with(b"\r\n") {
                    input.consume(2);
                } else if data.starts_with(b"\n") {
                    input.consume(1);
                } else {
                    break;
                }
            }
        }
    }

    /// Parses what is buffered, when it may have become a whole head:
    /// `true` when a request (or a malformed head) was answered.
    fn parse_buffered(&mut self, ctx: &mut Ctx) -> bool {
        if self.proxy_header != ProxyHeader::Done {
            if let Some(answered) = self.read_proxy_header(ctx) {
                return answered;
            }
        }
        let Some(input) = &self.client.input else {
            return false;
        };
        let max_head = self.limits.client_header_max_size as usize;
        if input.start == input.end || !self.scan.worth_parsing(input.data(), max_head) {
            return false;
        }
        match parse::parse(input.data(), max_head) {
            Ok(Some(head)) => {
                // The next head starts after this one.
                self.scan = HeadScan::default();
                // The head stays in the buffer while the request is routed
                // (a proxied request forwards it).
                let len = head.head_len;
                self.respond(head, false, ctx);
                if matches!(self.phase, Phase::Delayed { .. }) {
                    // Answered later, from the buffer as it is.
                    return true;
                }
                if let Some(i) = self.client.input.as_mut() {
                    i.consume(len);
                }
                true
            }
            Ok(None) => {
                if self.phase == Phase::Idle {
                    self.phase = Phase::Head { since: ctx.now };
                }
                false
            }
            Err(e) => {
                self.reply_parse_error(e, ctx);
                true
            }
        }
    }

    /// Reads the PROXY protocol header a `listen … proxy_protocol`
    /// connection starts with. `None` when HTTP may be parsed now;
    /// `Some(false)` while it is incomplete; `Some(true)` when the
    /// connection is to close (not a valid header: nothing is answered,
    /// as nginx does).
    fn read_proxy_header(&mut self, ctx: &mut Ctx) -> Option<bool> {
        if self.proxy_header == ProxyHeader::Unchecked {
            let wanted = ctx
                .shared
                .snapshot
                .load()
                .listener(&self.local)
                .is_some_and(|l| l.proxy_protocol);
            self.proxy_header = if wanted {
                ProxyHeader::Expected
            } else {
                ProxyHeader::Done
            };
            if !wanted {
                return None;
            }
        }
        let input = self.client.input.as_mut()?;
        if input.start == input.end {
            return Some(false);
        }
        match crate::http::proxy_protocol::parse(input.data()) {
            Ok(Some(h)) => {
                input.consume(h.len);
                self.proxied = h.source;
                self.proxy_header = ProxyHeader::Done;
                None
            }
            Ok(None) => {
                if self.phase == Phase::Idle {
                    self.phase = Phase::Head { since: ctx.now };
                }
                Some(false)
            }
            Err(e) => {
                if crate::log::enabled(crate::log::LogLevel::Debug) {
                    let from = match self.socket_peer {
                        Peer::Inet(a) => a.to_string(),
                        Peer::Unix => "unix:".to_string(),
                    };
                    let text = format!("{from}: {}; connection closed", e.0);
                    crate::log::write(crate::log::LogLevel::Debug, &text);
                }
                input.consume(input.end - input.start);
                self.meter.ending = Ending::Error;
                self.client.close_after = true;
                Some(true)
            }
        }
    }

    /// Answers the request that waited its `limit_req` turn.
    fn resume_delayed(&mut self, ctx: &mut Ctx) {
        self.phase = Phase::Writing;
        let Some(head) = self.delayed.take() else {
            return;
        };
        let len = head.head_len;
        self.respond(*head, true, ctx);
        if let Some(i) = self.client.input.as_mut() {
            i.consume(len);
        }
    }

    /// Gives the read buffer back to the worker while the connection idles.
    fn release_idle_buffer(&mut self, ctx: &mut Ctx) {
        if self.phase == Phase::Idle && self.client.input_empty() {
            self.client.give_back_input(ctx);
        }
    }

    /// The response is out: log it, and make ready for the next request.
    pub(super) fn response_done(&mut self, ctx: &mut Ctx) {
        self.meter.done(&self.client, ctx);
        if let Some(log) = self.log.take() {
            let sent = if self.client.out.send_body {
                self.client.out.body_sent
            } else {
                0
            };
            let (target, line) = log.line(sent);
            ctx.shared.access_log.write(&target, line);
        }
        self.client.out.head.clear();
        if self.client.out.head.capacity() > 4096 {
            // A proxied body passed through: an idle connection keeps no
            // large buffer.
            self.client.out.head = Vec::new();
        }
        self.client.out.head_pos = 0;
        self.client.out.body = Body::Empty;
        self.client.out.body_sent = 0;
        self.client.out.send_body = false;
        self.client.out.gz = None;
        self.slots.clear();
        if self.drain.is_none() {
            self.phase = Phase::Idle;
        }
    }

    /// Discards request body bytes. `Some` when the connection must wait or
    /// close; `None` when the body is done.
    fn drain_body(&mut self, ctx: &mut Ctx) -> Option<Next> {
        if self.phase != Phase::Draining {
            // The client's clock starts when xps starts reading the body.
            self.body_clock = RateClock::start(ctx.now);
        }
        self.phase = Phase::Draining;
        let drain = self.drain.as_mut()?;
        match drain.run(&mut self.client, &mut self.body_clock, ctx) {
            Drained::Done => {
                self.drain = None;
                self.phase = Phase::Idle;
                None
            }
            Drained::Wait => Some(Next::Keep),
            Drained::Close => Some(Next::Close),
        }
    }

    /// Shuts the write side and reads what the client still sends for a
    /// moment, so the response is not destroyed by a reset.
    fn begin_close(&mut self, ctx: &mut Ctx) -> Next {
        let _ = self.client.stream.shutdown(Shutdown::Write);
        self.phase = Phase::Lingering {
            until: ctx.now + LINGER,
        };
        self.linger(ctx)
    }

    fn linger(&mut self, ctx: &mut Ctx) -> Next {
        let mut scratch = [0u8; 4096];
        loop {
            match self.client.stream.read(&mut scratch) {
                Ok(0) => return Next::Close,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.client.readable = false;
                    let _ = ctx;
                    return Next::Keep;
                }
                Err(_) => return Next::Close,
            }
        }
    }

    fn update_deadline(&mut self, now: Instant) {
        if let Some(p) = &self.proxy {
            // The same choice as proxy_timeout makes.
            self.deadline = Some(p.leg_deadline(&self.client));
            return;
        }
        self.deadline = Some(match self.phase {
            Phase::Lingering { until } | Phase::Delayed { until } => until,
            _ if self.client.out_pending() => self.client.progress + self.client.send_timeout,
            Phase::Head { since } => {
                let rate = RateClock {
                    since,
                    bytes: self.client.buffered(),
                }
                .deadline(self.limits.client_min_rate);
                earliest(since + self.limits.client_header_timeout, rate)
            }
            Phase::Draining => earliest(
                self.client.progress + self.body_timeout,
                self.body_clock.deadline(self.limits.client_min_rate),
            ),
            Phase::Idle if self.requests == 0 => {
                self.client.progress + self.limits.client_header_timeout
            }
            Phase::Idle => self.client.progress + self.limits.keepalive_timeout,
            Phase::Writing => now + self.client.send_timeout,
        });
    }

    /// Answers a head that could not be parsed, then closes.
    fn reply_parse_error(&mut self, e: ParseError, ctx: &mut Ctx) {
        self.meter.ending = Ending::Error;
        if let Some(input) = self.client.input.as_mut() {
            let n = input.end - input.start;
            input.consume(n);
        }
        self.reply_error(e.status(), ctx);
    }

    /// Writes a built-in error page and closes after it.
    fn reply_error(&mut self, status: u16, ctx: &mut Ctx) {
        self.client.close_after = true;
        if !self.meter.in_request() {
            self.meter.start(Kind::Other, None, &self.client, ctx);
        }
        self.meter.status(status);
        let snapshot = ctx.shared.snapshot.load();
        let reply = canned::error(status);
        self.client.write_reply(
            reply,
            None,
            Version::Http11,
            false,
            &snapshot,
            ctx.date.get(),
        );
        self.phase = Phase::Writing;
    }
}
