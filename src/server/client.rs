//! The client side of a connection: its socket, the bytes read and not
//! yet used, the response being written, unused readiness, the progress
//! clock and whether it closes after the response. Both the static path
//! (`conn.rs`) and the proxy leg (`proxy/`) take it as an argument; it
//! knows nothing of either.

use super::ctx::Ctx;
use super::gz_file::GzFile;
use crate::handler::{Body, Reply, canned};
use crate::http::parse::Version;
use crate::http::response;
use crate::net::sys;
use crate::routing::template::Vars;
use crate::routing::{MinRate, Peer, Route, Snapshot};
use std::io::{self, IoSlice, Read, Write};
use std::time::{Duration, Instant};

/// Bytes per `sendfile` call: enough to fill a socket buffer.
const SENDFILE_CHUNK: usize = 1 << 20;

/// The client side of a connection.
pub struct Client {
    pub(super) stream: sys::Stream,
    /// The client as requests see it: the connection's peer, or the
    /// address a trusted balancer gave (`set_real_ip_from`).
    pub(super) peer: Peer,
    pub(super) input: Option<Input>,
    pub(super) out: Output,
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
    /// When the connection last made progress in its current phase.
    pub(super) progress: Instant,
    /// `send_timeout` of the current route.
    pub(super) send_timeout: Duration,
    /// The largest request head (`client_header_max_size`): the read
    /// buffer grows up to it.
    pub(super) max_head: usize,
    /// Bytes written to the client, and read from it, so far (for the
    /// traffic counters).
    pub(super) written: u64,
    pub(super) received: u64,
}

impl Client {
    /// The client side of a connection accepted now.
    pub(super) fn new(stream: sys::Stream, peer: Peer, max_head: usize, now: Instant) -> Client {
        Client {
            stream,
            peer,
            input: None,
            out: Output {
                head: Vec::new(),
                head_pos: 0,
                body: Body::Empty,
                gz: None,
                body_sent: 0,
                send_body: false,
            },
            readable: false,
            writable: true,
            close_after: false,
            peer_closed: false,
            hangup: false,
            progress: now,
            send_timeout: Duration::from_secs(30),
            max_head,
            written: 0,
            received: 0,
        }
    }

    /// Bytes read and not yet used (during a head: the head so far).
    pub(super) fn buffered(&self) -> u64 {
        self.input.as_ref().map_or(0, |i| i.data().len()) as u64
    }

    /// The first `len` bytes of the read buffer: the head of the request
    /// being answered, as the client sent it (it stays in the buffer
    /// until the request is answered).
    pub(super) fn head_bytes(&self, len: usize) -> &[u8] {
        self.input
            .as_ref()
            .map_or(&[][..], |i| &i.data()[..len.min(i.data().len())])
    }

    /// Nothing read is left unused.
    pub(super) fn input_empty(&self) -> bool {
        self.input.as_ref().is_none_or(|i| i.start == i.end)
    }

    /// Gives the read buffer back to the worker's pool.
    pub(super) fn give_back_input(&mut self, ctx: &mut Ctx) {
        if let Some(input) = self.input.take() {
            ctx.give_buffer(input.buf);
        }
    }

    /// Writes the pending head bytes (not the body) if the socket takes
    /// them, forgetting them once all are out. `Err` when the client is
    /// gone; `Ok(true)` when bytes were written or the socket filled.
    pub(super) fn flush_head(&mut self) -> io::Result<bool> {
        let mut moved = false;
        if self.out.head_pos < self.out.head.len() && self.writable {
            let before = self.out.head_pos;
            self.flush()?;
            moved = self.out.head_pos != before || !self.writable;
        }
        if self.out.head_pos == self.out.head.len() {
            self.out.head.clear();
            self.out.head_pos = 0;
        }
        Ok(moved)
    }

    pub(super) fn out_pending(&self) -> bool {
        self.out.head_pos < self.out.head.len()
            || (self.out.send_body && self.out.body_sent < self.out.body.len())
            || self.out.gz.is_some()
    }

    /// Reads once into the input buffer.
    pub(super) fn read(&mut self, ctx: &mut Ctx) -> io::Result<usize> {
        let max_head = self.max_head;
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
        self.received += n as u64;
        if n > 0 && n < space && !self.hangup {
            // A short read emptied the socket; bytes arriving later raise a
            // new edge. This saves the read that would only say WouldBlock.
            self.readable = false;
        }
        Ok(n)
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
                let Some(gz) = self.out.gz.as_mut() else {
                    return Ok(true);
                };
                let before = self.out.body_sent;
                let result = gz.send(&self.stream, &mut self.out.body_sent);
                self.written += self.out.body_sent - before;
                return match result {
                    Ok(done) => {
                        if done {
                            self.out.gz = None;
                        }
                        Ok(done)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.writable = false;
                        Ok(false)
                    }
                    Err(e) => Err(e),
                };
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
                    self.written += n as u64;
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

    /// Writes the head (and queues the body) of a reply.
    pub(super) fn write_reply(
        &mut self,
        reply: Reply,
        route: Option<(&Route, &dyn Vars)>,
        version: Version,
        head_only: bool,
        snapshot: &Snapshot,
        date: &str,
    ) {
        let b = &mut self.out.head;
        b.clear();
        response::status_line(b, reply.status);
        response::header(b, "Date", date);
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
        let streamed = matches!(reply.body, Body::Gzip { .. });
        if streamed && version == Version::Http10 {
            // Its end is the end of the connection.
            self.close_after = true;
        }
        if !no_body && !streamed {
            response::header_u64(b, "Content-Length", reply.body.len());
        } else if !no_body && version != Version::Http10 {
            response::header(b, "Transfer-Encoding", "chunked");
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
        if let Some(a) = &reply.www_authenticate {
            response::header(b, "WWW-Authenticate", a);
        }
        if let Some(s) = reply.retry_after {
            response::header_u64(b, "Retry-After", u64::from(s));
        }
        if let Some(r) = &reply.content_range {
            response::header(b, "Content-Range", r);
        }
        if reply.accept_ranges {
            response::header(b, "Accept-Ranges", "bytes");
        }
        if let Some(e) = reply.content_encoding {
            response::header(b, "Content-Encoding", e);
        }
        if reply.vary {
            response::header(b, "Vary", "Accept-Encoding");
        }
        if reply.no_store {
            response::header(b, "Cache-Control", "no-store");
        }
        if let Some(csp) = reply.csp {
            response::header(b, "Content-Security-Policy", csp);
        }
        let mut has_cors = false;
        if let Some((route, vars)) = route {
            for h in &route.add_header {
                has_cors |= h.name.eq_ignore_ascii_case("access-control-allow-origin");
                response::header(b, &h.name, &h.value.render(vars));
            }
            if route.expires != crate::routing::Expires::Off {
                if let Some((control, at)) = route
                    .expires
                    .headers(reply.status, std::time::SystemTime::now())
                {
                    response::header(b, "Cache-Control", &control);
                    response::header(b, "Expires", &at);
                }
            }
        }
        if (snapshot.main.expserver || reply.cors) && !has_cors {
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
        self.out.body_sent = 0;
        self.out.gz = None;
        self.out.body = match reply.body {
            _ if !self.out.send_body => Body::Empty,
            Body::Gzip { file, size, level } => {
                let chunked = version != Version::Http10;
                self.out.gz = Some(Box::new(GzFile::new(file, size, level, chunked)));
                Body::Empty
            }
            body => body,
        };
    }
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

/// The earlier of a deadline and an optional one.
pub(super) fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    b.map_or(a, |b| a.min(b))
}

/// The response being written.
pub(super) struct Output {
    pub(super) head: Vec<u8>,
    pub(super) head_pos: usize,
    pub(super) body: Body,
    pub(super) body_sent: u64,
    pub(super) send_body: bool,
    /// A file being compressed as it is sent (its bytes are not in `body`).
    pub(super) gz: Option<Box<GzFile>>,
}
