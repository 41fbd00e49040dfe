//! One client connection: read request heads, answer them in order, keep
//! the connection alive or close it, and keep its deadline up to date.
//!
//! The socket is registered edge-triggered for both directions once, so
//! the connection remembers unused readiness (`readable`, `writable`) and
//! [`Conn::drive`] loops until it can make no more progress: output
//! flushed or blocked, input drained to `WouldBlock`. Responses go out in
//! request order: a pipelined request is not parsed while an earlier
//! response is still being written.

use super::Ctx;
use crate::handler::{Body, Reply, canned, static_file};
use crate::http::body::ChunkedDecoder;
use crate::http::parse::{self, Framing, Method, ParseError, RequestHead, Version};
use crate::http::response;
use crate::log::LogTarget;
use crate::net::{Token, sys};
use crate::routing::{Action, ConnectionLimits, MinRate, Route, Snapshot};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Read buffer size (grows up to the head limit when a head needs it).
pub const READ_BUF: usize = 16 << 10;
/// Request bodies up to this size are read and discarded to keep the
/// connection; larger ones close it after the response.
const DRAIN_LIMIT: u64 = 1 << 20;
/// How long a closing connection keeps reading what the client still sends,
/// so that the kernel does not reset the connection under the response.
const LINGER: Duration = Duration::from_secs(2);
/// Bytes per `sendfile` call: enough to fill a socket buffer.
const SENDFILE_CHUNK: usize = 1 << 20;

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
}

/// The unread input: `buf[start..end]`.
pub(super) struct Input {
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Input {
    pub(super) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

/// Bytes a client sent since a moment, for `client_min_rate`.
#[derive(Clone, Copy, Debug)]
pub(super) struct RateClock {
    pub(super) since: Instant,
    pub(super) bytes: u64,
}

impl RateClock {
    pub(super) fn start(now: Instant) -> RateClock {
        RateClock {
            since: now,
            bytes: 0,
        }
    }

    /// When the client falls below `rate` (never when it is off).
    pub(super) fn deadline(&self, rate: Option<MinRate>) -> Option<Instant> {
        rate.map(|r| r.deadline(self.since, self.bytes))
    }
}

/// What is known of a head still arriving, so that each new byte is looked
/// at once: how many bytes were looked at, and whether the request line
/// has ended among them.
#[derive(Clone, Copy, Debug, Default)]
struct HeadScan {
    seen: usize,
    line_ended: bool,
}

impl HeadScan {
    /// Whether `data` (the buffered head: what was seen before, then new
    /// bytes) is worth parsing: it is new, the request line just ended (a
    /// malformed one is answered as soon as it is whole), a blank line may
    /// have arrived, or the size limit is reached. Nothing else can change
    /// the answer, so a head trickled a byte at a time is not parsed again
    /// from its start on every read, which would cost CPU quadratic in its
    /// size. Looks only at the new bytes (and the two before them).
    fn worth_parsing(&mut self, data: &[u8], max_head: usize) -> bool {
        let seen = self.seen.min(data.len());
        self.seen = data.len();
        if seen == 0 || data.len() >= max_head {
            self.line_ended |= data.contains(&b'\n');
            return true;
        }
        let new = &data[seen..];
        if !self.line_ended && new.contains(&b'\n') {
            self.line_ended = true;
            return true;
        }
        // `\n\n` or `\n\r\n` ending in the new bytes.
        let tail = &data[seen.saturating_sub(2)..];
        tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
    }
}

/// The earlier of a deadline and an optional one.
pub(super) fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    b.map_or(a, |b| a.min(b))
}

/// A request body being discarded.
pub(super) enum Drain {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// An access-log line waiting for its byte count and duration.
pub(super) struct PendingLog {
    pub(super) target: LogTarget,
    /// `addr - - [time] "request"` (up to the status).
    pub(super) prefix: String,
    /// `"referer" "user agent"`.
    pub(super) suffix: String,
    pub(super) status: u16,
    pub(super) started: Instant,
}

/// The response being written.
pub(super) struct Output {
    pub(super) head: Vec<u8>,
    pub(super) head_pos: usize,
    pub(super) body: Body,
    pub(super) body_sent: u64,
    pub(super) send_body: bool,
}

/// A client connection.
pub struct Conn {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) input: Option<Input>,
    pub(super) out: Output,
    pub(super) phase: Phase,
    /// Readiness not used up yet (edge-triggered: no new edge will say so).
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// Close once the current response is out.
    pub(super) close_after: bool,
    /// The peer closed its side.
    pub(super) peer_closed: bool,
    /// epoll reported a hang-up: read until end of file, whatever a read
    /// returns.
    pub(super) hangup: bool,
    pub(super) drain: Option<Drain>,
    pub(super) requests: u64,
    pub(super) limits: ConnectionLimits,
    /// `send_timeout` and `client_body_timeout` of the current route.
    pub(super) send_timeout: Duration,
    pub(super) body_timeout: Duration,
    /// When the connection last made progress in its current phase.
    pub(super) progress: Instant,
    /// When the connection must be looked at again.
    pub deadline: Option<Instant>,
    /// When a timer entry is scheduled for it (at most one that matters).
    pub timer_at: Option<Instant>,
    pub(super) log: Option<PendingLog>,
    /// Its epoll token (its upstream socket's owner).
    pub(super) token: Token,
    /// The proxy leg of the current request.
    pub(super) proxy: Option<Box<super::proxy::Proxy>>,
    /// What is known of the head being received.
    scan: HeadScan,
    /// The body being discarded, for `client_min_rate`.
    body_clock: RateClock,
}

impl Conn {
    /// A new connection accepted on a listener whose default server sets
    /// `limits`.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        limits: ConnectionLimits,
        token: Token,
        now: Instant,
    ) -> Conn {
        let mut c = Conn {
            stream,
            peer,
            local,
            input: None,
            out: Output {
                head: Vec::new(),
                head_pos: 0,
                body: Body::Empty,
                body_sent: 0,
                send_body: false,
            },
            phase: Phase::Idle,
            readable: false,
            writable: true,
            close_after: false,
            peer_closed: false,
            hangup: false,
            drain: None,
            requests: 0,
            send_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            limits,
            progress: now,
            deadline: None,
            timer_at: None,
            log: None,
            token,
            proxy: None,
            scan: HeadScan::default(),
            body_clock: RateClock::start(now),
        };
        // A fresh connection gets the head timeout to send its first byte.
        c.deadline = Some(now + c.limits.client_header_timeout);
        c
    }

    /// The socket (for registration).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether the connection is between requests with nothing in flight
    /// (it may be closed at once on shutdown).
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle && self.input.as_ref().is_none_or(|i| i.start == i.end)
    }

    /// Bytes read and not yet used (during a head: the head so far).
    fn buffered(&self) -> u64 {
        self.input.as_ref().map_or(0, |i| i.data().len()) as u64
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
            return self
                .body_rate_since(p)
                .and_then(|(since, bytes)| rate(since, bytes));
        }
        match self.phase {
            Phase::Lingering { .. } => Some((0, 0)),
            Phase::Idle if self.is_idle() => {
                let idle = now.saturating_duration_since(self.progress);
                // A new connection may have sent its head already, unread
                // yet: it gets its first second too.
                (self.requests > 0 || idle >= Duration::from_secs(1))
                    .then(|| (1, u64::MAX - idle.as_micros() as u64))
            }
            Phase::Head { since } if !self.out_pending() => rate(since, self.buffered()),
            Phase::Draining if !self.out_pending() => {
                rate(self.body_clock.since, self.body_clock.bytes)
            }
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
        self.readable |= readable || closed;
        self.hangup |= closed;
        self.writable |= writable;
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
                super::proxy::Step::Close => Next::Close,
                super::proxy::Step::Done => {
                    // An error page written for the timeout went out at
                    // once: the response is done here, as in `run`.
                    self.progress = ctx.now;
                    self.response_done(ctx);
                    self.drive(ctx)
                }
                super::proxy::Step::Wait => self.drive(ctx),
            };
        }
        match self.phase {
            Phase::Head { .. } => {
                // Some of a head arrived but not all of it in time.
                self.reply_error(408, ctx);
                self.drive(ctx)
            }
            Phase::Draining if self.out_pending() => Next::Close,
            _ => Next::Close,
        }
    }

    /// Lets go of what the connection holds besides its socket before it
    /// is dropped: a proxy leg (its upstream socket closed, its member's
    /// in-flight count ended) and the read buffer. Every close goes
    /// through here, including a connection closed to make room.
    pub fn release(mut self, ctx: &mut Ctx) {
        self.drop_leg(ctx);
        if let Some(input) = self.input.take() {
            ctx.give_buffer(input.buf);
        }
    }

    /// Asks the connection to finish its current response and close.
    pub fn finish_and_close(&mut self, ctx: &mut Ctx) -> Next {
        if self.is_idle() {
            return Next::Close;
        }
        self.close_after = true;
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
            if self.proxy.is_some() {
                match self.proxy_run(ctx) {
                    super::proxy::Step::Wait => return Next::Keep,
                    super::proxy::Step::Close => return Next::Close,
                    super::proxy::Step::Done => {
                        self.progress = ctx.now;
                        self.response_done(ctx);
                        if self.close_after {
                            return self.begin_close(ctx);
                        }
                        continue;
                    }
                }
            }
            if self.out_pending() {
                if !self.writable {
                    return Next::Keep;
                }
                match self.flush() {
                    Ok(true) => {
                        self.progress = ctx.now;
                        self.response_done(ctx);
                        if self.close_after && self.drain.is_none() {
                            return self.begin_close(ctx);
                        }
                    }
                    Ok(false) => return Next::Keep,
                    Err(_) => return Next::Close,
                }
            }
            if self.drain.is_some() {
                match self.drain_body(ctx) {
                    Some(next) => return next,
                    None => continue,
                }
            }
            if self.close_after {
                return self.begin_close(ctx);
            }
            if self.phase == Phase::Idle {
                // Empty lines before a request line are ignored (RFC 9112
                // §2.2), without starting a head's clock: a stray CRLF
                // after a body leaves the connection idle.
                if let Some(input) = self.input.as_mut() {
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
            // Parse what is buffered.
            if let Some(input) = &self.input {
                let max_head = self.limits.client_header_max_size as usize;
                if input.start < input.end && self.scan.worth_parsing(input.data(), max_head) {
                    match parse::parse(input.data(), max_head) {
                        Ok(Some(head)) => {
                            // The next head starts after this one.
                            self.scan = HeadScan::default();
                            // The head stays in the buffer while the request
                            // is routed (a proxied request forwards it).
                            let len = head.head_len;
                            self.respond(head, ctx);
                            if let Some(i) = self.input.as_mut() {
                                i.consume(len);
                            }
                            continue;
                        }
                        Ok(None) => {
                            if self.phase == Phase::Idle {
                                self.phase = Phase::Head { since: ctx.now };
                            }
                        }
                        Err(e) => {
                            self.reply_parse_error(e, ctx);
                            continue;
                        }
                    }
                }
            }
            if self.peer_closed {
                return Next::Close;
            }
            if !self.readable {
                return Next::Keep;
            }
            match self.read(ctx) {
                Ok(0) => {
                    self.peer_closed = true;
                    self.readable = false;
                    // A half-sent head is abandoned; between requests the
                    // client is simply gone.
                    return Next::Close;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Next::Keep;
                }
                Err(_) => return Next::Close,
            }
        }
    }

    pub(super) fn out_pending(&self) -> bool {
        self.out.head_pos < self.out.head.len()
            || (self.out.send_body && self.out.body_sent < self.out.body.len())
    }

    /// Reads once into the input buffer.
    pub(super) fn read(&mut self, ctx: &mut Ctx) -> io::Result<usize> {
        let max_head = self.limits.client_header_max_size as usize;
        let input = self.input.get_or_insert_with(|| Input {
            buf: ctx.take_buffer(),
            start: 0,
            end: 0,
        });
        if input.end == input.buf.len() {
            if input.start > 0 {
                input.buf.copy_within(input.start..input.end, 0);
                input.end -= input.start;
                input.start = 0;
            } else {
                // A head bigger than the buffer but within its limit.
                let grow = (input.buf.len() * 2)
                    .min(max_head + 1)
                    .max(input.buf.len() + 1);
                input.buf.resize(grow, 0);
            }
        }
        let space = input.buf.len() - input.end;
        let n = self.stream.read(&mut input.buf[input.end..])?;
        input.end += n;
        if n > 0 && n < space && !self.hangup {
            // A short read emptied the socket; bytes arriving later raise a
            // new edge. This saves the read that would only say WouldBlock.
            self.readable = false;
        }
        Ok(n)
    }

    /// Gives the read buffer back to the worker while the connection idles.
    fn release_idle_buffer(&mut self, ctx: &mut Ctx) {
        if self.phase == Phase::Idle && self.input.as_ref().is_some_and(|i| i.start == i.end) {
            if let Some(input) = self.input.take() {
                ctx.give_buffer(input.buf);
            }
        }
    }

    /// Writes as much of the response as the socket takes. `Ok(true)`:
    /// all of it.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        loop {
            let head = &self.out.head[self.out.head_pos..];
            let body_left = if self.out.send_body {
                self.out.body.len() - self.out.body_sent
            } else {
                0
            };
            if head.is_empty() && body_left == 0 {
                return Ok(true);
            }
            let result = match &self.out.body {
                Body::File { file, start, .. } if body_left > 0 => {
                    if !head.is_empty() {
                        sys::send_more(&self.stream, head)
                    } else {
                        let mut offset = (*start + self.out.body_sent) as i64;
                        let count = (body_left as usize).min(SENDFILE_CHUNK);
                        sys::sendfile(&self.stream, file, &mut offset, count)
                    }
                }
                body => {
                    let rest: &[u8] = match body {
                        Body::Shared { bytes, start, end } if body_left > 0 => {
                            &bytes[start + self.out.body_sent as usize..*end]
                        }
                        Body::Owned(v) if body_left > 0 => &v[self.out.body_sent as usize..],
                        _ => &[],
                    };
                    if rest.is_empty() {
                        self.stream.write(head)
                    } else if head.is_empty() {
                        self.stream.write(rest)
                    } else {
                        self.stream
                            .write_vectored(&[IoSlice::new(head), IoSlice::new(rest)])
                    }
                }
            };
            match result {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    let from_head = n.min(head.len());
                    self.out.head_pos += from_head;
                    self.out.body_sent += (n - from_head) as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The response is out: log it, and make ready for the next request.
    fn response_done(&mut self, ctx: &mut Ctx) {
        if let Some(log) = self.log.take() {
            let elapsed = log.started.elapsed().as_secs_f64();
            let sent = if self.out.send_body {
                self.out.body_sent
            } else {
                0
            };
            let line = format!(
                "{} {} {} {} {:.3}",
                log.prefix, log.status, sent, log.suffix, elapsed
            );
            ctx.shared.access_log.write(&log.target, line);
        }
        self.out.head.clear();
        if self.out.head.capacity() > 4096 {
            // A proxied body passed through: an idle connection keeps no
            // large buffer.
            self.out.head = Vec::new();
        }
        self.out.head_pos = 0;
        self.out.body = Body::Empty;
        self.out.body_sent = 0;
        self.out.send_body = false;
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
        loop {
            let drain = self.drain.as_mut()?;
            if let Some(input) = self.input.as_mut() {
                let data = input.data();
                let used = match drain {
                    Drain::Length(left) => {
                        let n = (*left).min(data.len() as u64);
                        *left -= n;
                        n as usize
                    }
                    Drain::Chunked(d) => match d.decode(data, |_| {}) {
                        Ok(n) => n,
                        Err(_) => return Some(Next::Close),
                    },
                };
                input.consume(used);
                if used > 0 {
                    self.progress = ctx.now;
                    self.body_clock.bytes += used as u64;
                }
            }
            let done = match drain {
                Drain::Length(left) => *left == 0,
                Drain::Chunked(d) => d.is_done(),
            };
            if done {
                self.drain = None;
                self.phase = Phase::Idle;
                return None;
            }
            if self.peer_closed {
                return Some(Next::Close);
            }
            if !self.readable {
                return Some(Next::Keep);
            }
            match self.read(ctx) {
                Ok(0) => return Some(Next::Close),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Some(Next::Keep);
                }
                Err(_) => return Some(Next::Close),
            }
        }
    }

    /// Shuts the write side and reads what the client still sends for a
    /// moment, so the response is not destroyed by a reset.
    fn begin_close(&mut self, ctx: &mut Ctx) -> Next {
        let _ = self.stream.shutdown(Shutdown::Write);
        self.phase = Phase::Lingering {
            until: ctx.now + LINGER,
        };
        self.linger(ctx)
    }

    fn linger(&mut self, ctx: &mut Ctx) -> Next {
        let mut scratch = [0u8; 4096];
        loop {
            match self.stream.read(&mut scratch) {
                Ok(0) => return Next::Close,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
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
            self.deadline = Some(self.leg_deadline(p));
            return;
        }
        self.deadline = Some(match self.phase {
            Phase::Lingering { until } => until,
            _ if self.out_pending() => self.progress + self.send_timeout,
            Phase::Head { since } => {
                let rate = RateClock {
                    since,
                    bytes: self.buffered(),
                }
                .deadline(self.limits.client_min_rate);
                earliest(since + self.limits.client_header_timeout, rate)
            }
            Phase::Draining => earliest(
                self.progress + self.body_timeout,
                self.body_clock.deadline(self.limits.client_min_rate),
            ),
            Phase::Idle if self.requests == 0 => self.progress + self.limits.client_header_timeout,
            Phase::Idle => self.progress + self.limits.keepalive_timeout,
            Phase::Writing => now + self.send_timeout,
        });
    }

    /// Answers a head that could not be parsed, then closes.
    fn reply_parse_error(&mut self, e: ParseError, ctx: &mut Ctx) {
        if let Some(input) = self.input.as_mut() {
            let n = input.end - input.start;
            input.consume(n);
        }
        self.reply_error(e.status(), ctx);
    }

    /// Writes a built-in error page and closes after it.
    fn reply_error(&mut self, status: u16, ctx: &mut Ctx) {
        self.close_after = true;
        let snapshot = ctx.shared.snapshot.load();
        let reply = canned::error(status);
        self.write_reply(reply, None, Version::Http11, false, &snapshot, ctx);
        self.phase = Phase::Writing;
    }

    /// Routes a request and writes its response.
    fn respond(&mut self, head: RequestHead, ctx: &mut Ctx) {
        // The snapshot of this loop turn, taken out of the context for the
        // request (no reference count traffic) and put back after.
        let snapshot = ctx.take_snapshot();
        self.respond_with(head, &snapshot, ctx);
        ctx.snapshot = Some(snapshot);
    }

    fn respond_with(&mut self, head: RequestHead, snapshot: &Arc<Snapshot>, ctx: &mut Ctx) {
        self.requests += 1;
        self.phase = Phase::Writing;
        self.progress = ctx.now;
        let Some(listener) = snapshot.listener(self.local) else {
            // The address left the config in a reload.
            self.close_after = true;
            self.write_reply(
                canned::error(404),
                None,
                head.version,
                head.method == Method::Head,
                snapshot,
                ctx,
            );
            return;
        };
        let (sid, _) = listener.server(head.host.as_deref());
        let server = &snapshot.servers[sid];
        self.limits = server.connection.clone();
        let (route, which) = server.route(&head.uri.path);
        self.send_timeout = route.send_timeout;
        self.body_timeout = route.client_body_timeout;

        // The body: refused when too large, else discarded (or the
        // connection closed) after the response.
        let too_large = match head.framing {
            Framing::Length(n) => n > route.client_max_body_size,
            _ => false,
        };
        let allowed = route.access.check(self.peer.ip()).0;
        let mut unproxied = None;
        if let (Action::Proxy(id), false, true) = (&route.action, too_large, allowed) {
            if !head.keep_alive
                || ctx.stopping
                || self.requests >= self.limits.keepalive_requests
                || self.limits.keepalive_timeout.is_zero()
            {
                self.close_after = true;
            }
            if route.access_log.is_some() {
                self.log = Some(pending_log(&head, route, self.peer, 502, ctx.now));
            }
            let raw = self
                .input
                .as_ref()
                .map(|i| i.data()[..head.head_len.min(i.data().len())].to_vec())
                .unwrap_or_default();
            self.out.head.clear();
            self.out.head_pos = 0;
            match self.start_proxy(&head, raw, snapshot, (sid, which), *id, ctx) {
                None => return,
                Some(reply) => unproxied = Some(reply),
            }
        }
        match head.framing {
            Framing::None => {}
            Framing::Length(n) if n <= DRAIN_LIMIT && !too_large => {
                self.drain = Some(Drain::Length(n))
            }
            Framing::Chunked => {
                self.drain = Some(Drain::Chunked(ChunkedDecoder::new(
                    route.client_max_body_size.min(DRAIN_LIMIT),
                )))
            }
            Framing::Length(_) => self.close_after = true,
        }
        if head.expect_continue && head.framing != Framing::None {
            // The client waits for `100 Continue` before sending the body;
            // the answer comes without reading it, so the body may never come.
            self.close_after = true;
        }
        if !head.keep_alive
            || ctx.stopping
            || self.requests >= self.limits.keepalive_requests
            || self.limits.keepalive_timeout.is_zero()
        {
            self.close_after = true;
        }

        let reply = if let Some(reply) = unproxied {
            reply
        } else if too_large {
            self.close_after = true;
            self.drain = None;
            canned::error(413)
        } else if !allowed {
            canned::error(403)
        } else {
            handle(&head, route, ctx)
        };
        if self.close_after {
            // A closing connection discards the rest while it lingers.
            self.drain = None;
        }
        let reply = with_error_page(reply, &head, route, ctx);
        if route.access_log.is_some() {
            self.log = Some(pending_log(&head, route, self.peer, reply.status, ctx.now));
        }
        let head_only = head.method == Method::Head;
        self.write_reply(reply, Some(route), head.version, head_only, snapshot, ctx);
    }

    /// Writes the head (and queues the body) of a reply.
    pub(super) fn write_reply(
        &mut self,
        reply: Reply,
        route: Option<&Route>,
        version: Version,
        head_only: bool,
        snapshot: &Snapshot,
        ctx: &Ctx,
    ) {
        let b = &mut self.out.head;
        b.clear();
        response::status_line(b, reply.status);
        response::header(b, "Date", ctx.date.get());
        if let Some(server) = &snapshot.main.server_header {
            response::header(b, "Server", server);
        }
        if let Some(t) = &reply.content_type {
            let t = match t.as_str() {
                canned::GENERATED_HTML if snapshot.main.expserver => "text/html",
                t => t,
            };
            response::header(b, "Content-Type", t);
        }
        let no_body = reply.status == 304 || reply.status == 204 || reply.status < 200;
        if !no_body {
            response::header_u64(b, "Content-Length", reply.body.len());
        }
        if let Some(t) = &reply.last_modified {
            response::header(b, "Last-Modified", t.as_str());
        }
        if let Some(t) = &reply.etag {
            response::header(b, "ETag", t.as_str());
        }
        if let Some(l) = &reply.location {
            response::header(b, "Location", l);
        }
        if let Some(a) = reply.allow {
            response::header(b, "Allow", a);
        }
        if let Some(r) = &reply.content_range {
            response::header(b, "Content-Range", r);
        }
        if reply.accept_ranges {
            response::header(b, "Accept-Ranges", "bytes");
        }
        let mut has_cors = false;
        if let Some(route) = route {
            for h in &route.add_header {
                has_cors |= h.name.eq_ignore_ascii_case("access-control-allow-origin");
                response::header(b, &h.name, &h.value);
            }
        }
        if snapshot.main.expserver && !has_cors {
            response::header(b, "Access-Control-Allow-Origin", "*");
        }
        if self.close_after {
            response::header(b, "Connection", "close");
        } else if version == Version::Http10 {
            response::header(b, "Connection", "keep-alive");
        }
        response::end(b);
        self.out.head_pos = 0;
        self.out.send_body = !head_only && !no_body;
        self.out.body = if self.out.send_body {
            reply.body
        } else {
            Body::Empty
        };
        self.out.body_sent = 0;
    }
}

/// The handler of a route.
fn handle(head: &RequestHead, route: &Route, ctx: &mut Ctx) -> Reply {
    match &route.action {
        Action::Static => static_file::serve(head, route, &mut ctx.files, ctx.now),
        Action::Return(r) => canned::ret(r, route.charset.as_deref()),
        Action::NotFound => canned::error(404),
        // Proxied requests are started in `respond_with`; metrics come
        // with their own stage.
        Action::Proxy(_) | Action::Metrics => canned::error(501),
    }
}

/// Replaces the built-in page of an error status with the route's
/// `error_page`, when it has one for that status.
fn with_error_page(reply: Reply, head: &RequestHead, route: &Route, ctx: &mut Ctx) -> Reply {
    if reply.status < 400 {
        return reply;
    }
    let Some(page) = route.error_page_for(reply.status) else {
        return reply;
    };
    match static_file::error_page(route, &mut ctx.files, page, reply.status, head, ctx.now) {
        Some(mut r) => {
            r.allow = reply.allow;
            r.content_range = reply.content_range;
            r
        }
        None => reply,
    }
}

fn pending_log(
    head: &RequestHead,
    route: &Route,
    peer: SocketAddr,
    status: u16,
    now: Instant,
) -> PendingLog {
    let time = crate::log::clf_time(SystemTime::now());
    let prefix = format!(
        "{} - - [{time}] \"{} {} {}\"",
        peer.ip(),
        head.method,
        escape(&head.target),
        head.version.as_str()
    );
    let suffix = format!(
        "\"{}\" \"{}\"",
        escape(head.referer.as_deref().unwrap_or("-")),
        escape(head.user_agent.as_deref().unwrap_or("-"))
    );
    PendingLog {
        target: route.access_log.clone().unwrap_or(LogTarget::Stdout),
        prefix,
        suffix,
        status,
        started: now,
    }
}

/// Quotes and control characters escaped, as nginx does in its logs.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\x22"),
            '\\' => out.push_str("\\x5C"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::HeadScan;

    /// Feeds `head` a byte at a time and counts the parses the gate lets
    /// through, checking that the last byte always gets one.
    fn parses(head: &[u8], max: usize) -> usize {
        let mut scan = HeadScan::default();
        let mut count = 0;
        for end in 1..=head.len() {
            if scan.worth_parsing(&head[..end], max) {
                count += 1;
            } else {
                assert!(end < head.len(), "the complete head was not parsed");
            }
        }
        count
    }

    #[test]
    fn a_trickled_head_is_parsed_a_bounded_number_of_times() {
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..2000 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        // The first byte, the request line's end, the blank line: however
        // many fields.
        assert_eq!(parses(&head, 1 << 20), 3);
        let lf_only = b"GET / HTTP/1.1\nHost: x\nA: b\n\n";
        assert_eq!(parses(lf_only, 1 << 20), 3);
    }

    #[test]
    fn the_size_limit_and_a_bad_request_line_are_seen_at_once() {
        let fresh = |seen: usize, line_ended: bool| HeadScan { seen, line_ended };
        // At the limit: parsed (and refused) without waiting for a blank
        // line.
        assert!(fresh(63, true).worth_parsing(&[b'a'; 64], 64));
        // The request line just ended: parsed, so garbage gets its 400.
        assert!(fresh(7, false).worth_parsing(b"GARBAGE\r\n", 1024));
        // A field line ended, no blank line: nothing new to learn.
        assert!(!fresh(20, true).worth_parsing(b"GET / HTTP/1.1\r\nA: b\r\n", 1024));
        // The blank line split across reads.
        assert!(!fresh(22, true).worth_parsing(b"GET / HTTP/1.1\r\nA: b\r\n\r", 1024));
        assert!(fresh(23, true).worth_parsing(b"GET / HTTP/1.1\r\nA: b\r\n\r\n", 1024));
    }
}
