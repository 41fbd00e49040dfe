//! One pass of an HTTP exchange (or a copied tunnel): the request body
//! gathered, then sent up re-framed; the response read and relayed; the
//! client's output flushed.

use super::pool::UpSock;
use super::{End, Failure, Proxy, State};
use crate::handler::proxy::{ClientBody, RequestBody};
use crate::http::body::BodyError;
use crate::net::sys;
use crate::server::client::Client;
use crate::server::ctx::{Ctx, READ_BUF};
use std::io::{self, Read, Write};

/// Bytes buffered per direction at most before reads from the producer
/// stop.
pub(super) const WINDOW: usize = 16 << 10;

/// Body bytes gathered before the upstream connection is opened, at most
/// (less than the client's read buffer, which then never has to grow).
pub(super) const GATHER: usize = 8 << 10;

impl Proxy {
    /// One pass over everything the leg can do now. `Ok(true)`: progress
    /// was made, run again.
    pub(super) fn proxy_step(&mut self, c: &mut Client, ctx: &mut Ctx) -> Result<bool, End> {
        if self.state == State::Gathering {
            return self.gather_body(c, ctx);
        }
        let mut progress = false;
        if self.state == State::Connecting {
            if !self.connected(ctx)? {
                return Ok(false);
            }
            progress = true;
        }
        if self.bulk && self.pipes.is_none() {
            self.start_splicing(c, ctx);
        }
        if self.pipes.is_some() {
            return self.splice_step(c, ctx);
        }
        if self.splice_body && self.body_pipe.is_none() {
            self.start_body_splice(c, ctx);
        }
        if self.body_pipe.is_some() {
            return self.body_splice_step(c, ctx);
        }
        // A request fully sent leaves the client's read buffer empty: it
        // goes back to the pool for as long as the response takes.
        if self.req_done && self.state != State::Tunnel && c.input_empty() {
            c.give_back_input(ctx);
        }
        progress |= self.send_up(c, ctx)?;
        if self.client_gone(c) {
            // No one is left to answer: the exchange ends now, not when the
            // member answers or times out.
            return Err(End::Close);
        }
        if let Some(step) = self.read_up(c, ctx, &mut progress)? {
            return Ok(step);
        }
        if !self.from_up.is_empty() {
            progress |= self.relay_response(c, ctx)?;
        }
        // The client's output.
        if c.flush_head().map_err(|_| End::Close)? {
            // The client took bytes, or its socket just filled: its
            // send_timeout starts now (as nginx's does).
            c.progress = ctx.now;
            self.progress = ctx.now;
            progress = true;
        }
        self.check_end(c)?;
        Ok(progress)
    }

    /// The TCP handshake ended: `Ok(false)` while it has not,
    /// `Failed` when it did not succeed.
    fn connected(&mut self, ctx: &mut Ctx) -> Result<bool, End> {
        if !self.up_writable {
            return Ok(false);
        }
        let err = self
            .stream
            .as_ref()
            .and_then(|s| s.stream.take_error().ok().flatten());
        if err.is_some() {
            return Err(End::Failed(Failure::Error));
        }
        self.state = if self.raw {
            State::Tunnel
        } else {
            State::Exchanging
        };
        self.progress = ctx.now;
        // xps read nothing of the body while it connected.
        self.restart_body_clocks(ctx.now);
        Ok(true)
    }

    /// Client → upstream: the head, then body bytes re-framed, while the
    /// upstream takes them.
    fn send_up(&mut self, c: &mut Client, ctx: &mut Ctx) -> Result<bool, End> {
        let mut progress = false;
        if (!self.req_done || self.state == State::Tunnel)
            && !self.up_write_failed
            && self.to_up.len() - self.to_up_pos < WINDOW
        {
            progress |= self.pull_request_body(c, ctx)?;
        }
        if self.to_up_pos < self.to_up.len() && self.up_writable && self.stream.is_some() {
            let Some(UpSock { stream: s, .. }) = self.stream.as_mut() else {
                return Err(End::Failed(Failure::Error));
            };
            match s.write(&self.to_up[self.to_up_pos..]) {
                Ok(n) => {
                    self.wrote |= n > 0;
                    self.to_up_pos += n;
                    self.progress = ctx.now;
                    progress = true;
                    if self.to_up_pos == self.to_up.len() {
                        self.to_up.clear();
                        self.to_up_pos = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.up_writable = false,
                Err(_) if self.state == State::Tunnel => return Err(End::Close),
                Err(_) if self.relay.is_none() && !self.body_consumed => {
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
                    self.up_write_failed = true;
                    self.to_up.clear();
                    self.to_up_pos = 0;
                    self.up_readable = true;
                    c.close_after = true;
                    progress = true;
                }
            }
        }
        if !self.req_done && self.to_up_pos < self.to_up.len() {
            // Waiting on the upstream to take the body.
            self.restart_body_clocks(ctx.now);
        }
        Ok(progress)
    }

    /// Upstream → client, while the client's window has room.
    /// `Ok(Some(step))`: the upstream closed its side, and this pass ends
    /// with `step`.
    fn read_up(
        &mut self,
        c: &mut Client,
        ctx: &mut Ctx,
        progress: &mut bool,
    ) -> Result<Option<bool>, End> {
        let out_pending = c.out.head.len() - c.out.head_pos;
        if self.up_readable
            && self.from_up.has_room()
            && self.stream.is_some()
            && out_pending < WINDOW
            && self.relay.as_ref().is_none_or(|r| !r.done)
        {
            let Some(UpSock { stream: s, .. }) = self.stream.as_mut() else {
                return Err(End::Failed(Failure::Error));
            };
            let spare = self.from_up.spare();
            debug_assert!(!spare.is_empty());
            let room = spare.len();
            match s.read(spare) {
                Ok(0) => {
                    self.up_readable = false;
                    return self.upstream_closed(c).map(Some);
                }
                Ok(n) => {
                    self.bulk |= self.raw && n >= READ_BUF;
                    // A short read emptied the socket (as far as the kernel
                    // knew then): bytes arriving later raise a new edge.
                    self.up_drained = n < room;
                    self.from_up.filled(n);
                    // Until the final response head is in, only writing
                    // the request counts as progress: the head must arrive
                    // within proxy_read_timeout, whatever interim answers
                    // or pieces of a head come meanwhile.
                    if self.relay.is_some() || self.state != State::Exchanging {
                        self.progress = ctx.now;
                    }
                    *progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.up_readable = false;
                }
                Err(_) => {
                    return if self.relay.is_none() && self.state != State::Tunnel {
                        Err(End::Failed(Failure::Error))
                    } else {
                        Err(End::Close)
                    };
                }
            }
        }
        Ok(None)
    }

    /// Ends the leg when nothing is left to do: `Done` after a complete
    /// response that is all out, `Close` after a tunnel or a response cut
    /// short.
    fn check_end(&mut self, c: &mut Client) -> Result<(), End> {
        let flushed = c.out.head_pos == c.out.head.len();
        if self.state == State::Tunnel
            && self.draining
            && flushed
            && self.to_up_pos == self.to_up.len()
        {
            return Err(End::Close);
        }
        // A body that completed is done even if the upstream closed right
        // behind it (Content-Length with Connection: close).
        let done = self.relay.as_ref().is_some_and(|r| r.done);
        if self.state == State::Exchanging
            && self.draining
            && !done
            && flushed
            && self.from_up.is_empty()
        {
            if self
                .relay
                .as_ref()
                .is_some_and(|r| r.to_client == ClientBody::Close)
            {
                // A close-delimited body cut short: a FIN would mark the
                // part as the whole body; a reset says it is not.
                let _ = sys::reset_on_close(&c.stream);
            }
            return Err(End::Close);
        }
        if done && flushed && self.state != State::Tunnel {
            if !self.req_done {
                // The response ended before the request body did: the rest
                // of the body cannot be told apart from a next request.
                c.close_after = true;
            }
            return Err(End::Done);
        }
        Ok(())
    }

    /// Moves what it can of `data` (request body bytes, or a tunnel's)
    /// into `to_up`, re-framed; the bytes of `data` it used.
    fn take_body(&mut self, data: &[u8]) -> Result<usize, BodyError> {
        if self.state == State::Tunnel {
            self.bulk |= self.raw && data.len() >= READ_BUF;
            self.to_up.extend_from_slice(data);
            return Ok(data.len());
        }
        let Some(d) = self.req_decoder.as_mut() else {
            let n = (self.req_left.min(data.len() as u64)) as usize;
            self.to_up.extend_from_slice(&data[..n]);
            self.req_left -= n as u64;
            if self.req_left == 0 {
                self.req_done = true;
            }
            return Ok(n);
        };
        let to_up = &mut self.to_up;
        let n = d.decode(data, |chunk| {
            to_up.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            to_up.extend_from_slice(chunk);
            to_up.extend_from_slice(b"\r\n");
        })?;
        if d.is_done() {
            self.to_up.extend_from_slice(b"0\r\n\r\n");
            self.req_done = true;
        }
        Ok(n)
    }

    /// Reads the request body into the client's buffer (consuming nothing)
    /// until it is whole or [`GATHER`] bytes of it are in, then connects.
    /// A bad chunk found meanwhile is answered (400, 413) without an
    /// upstream ever seeing the request.
    pub(super) fn gather_body(&mut self, c: &mut Client, ctx: &mut Ctx) -> Result<bool, End> {
        let mut progress = false;
        loop {
            // `100 Continue` goes out first: the client waits for it.
            progress |= c.flush_head().map_err(|_| End::Close)?;
            let data = c.input.as_ref().map_or(&[][..], |i| i.data());
            let enough = match (self.body, self.probe.as_mut()) {
                (RequestBody::Length(n), _) => data.len() as u64 >= n.min(GATHER as u64),
                (RequestBody::Chunked, Some((d, seen))) => {
                    match d.decode(&data[*seen..], |_| {}) {
                        Ok(n) => *seen += n,
                        Err(e) => {
                            self.leg_error(c, e.status(), ctx);
                            return Ok(true);
                        }
                    }
                    d.is_done() || data.len() >= GATHER
                }
                _ => true,
            };
            if enough {
                self.probe = None;
                if !self.connect_next(c, ctx) {
                    self.no_member_up();
                    self.leg_error(c, 502, ctx);
                }
                return Ok(true);
            }
            if c.peer_closed {
                return Err(End::Close);
            }
            if !c.readable {
                return Ok(progress);
            }
            match c.read(ctx) {
                Ok(0) => {
                    c.peer_closed = true;
                    return Err(End::Close);
                }
                Ok(n) => {
                    self.body_progress = ctx.now;
                    self.body_clock.bytes += n as u64;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return Ok(progress);
                }
                Err(_) => return Err(End::Close),
            }
        }
    }

    /// Moves request body bytes from the client's input into `to_up`.
    pub(super) fn pull_request_body(&mut self, c: &mut Client, ctx: &mut Ctx) -> Result<bool, End> {
        let mut progress = false;
        loop {
            let mut bad = None;
            if let Some(input) = c.input.as_mut() {
                let used = self.take_body(input.data()).unwrap_or_else(|e| {
                    bad = Some(e);
                    0
                });
                if used > 0 {
                    input.consume(used);
                    self.body_consumed = true;
                    self.progress = ctx.now;
                    self.body_progress = ctx.now;
                    self.body_clock.bytes += used as u64;
                    progress = true;
                }
            }
            if let Some(e) = bad {
                // A bad chunk or too big a body: the upstream connection
                // closes without the last chunk, so it never gets a whole
                // request, and the client gets 400 or 413 if no answer
                // has started, else the close.
                if self.started {
                    return Err(End::Close);
                }
                let status = e.status();
                self.leg_error(c, status, ctx);
                return Ok(true);
            }
            if (self.req_done && self.state != State::Tunnel)
                || self.to_up.len() - self.to_up_pos >= WINDOW
                || !c.readable
                || c.peer_closed
            {
                if c.peer_closed && !self.req_done {
                    return Err(End::Close);
                }
                return Ok(progress);
            }
            match c.read(ctx) {
                Ok(0) => {
                    c.peer_closed = true;
                    if self.state == State::Tunnel {
                        self.draining = true;
                        return Ok(true);
                    }
                    if !self.req_done {
                        return Err(End::Close);
                    }
                    return Ok(progress);
                }
                Ok(_) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return Ok(progress);
                }
                Err(_) => return Err(End::Close),
            }
        }
    }

    /// The client closed its side while its whole request waits for an
    /// answer that has not started (epoll said so, and nothing is left to
    /// read): as nginx does by default, the exchange is given up.
    fn client_gone(&self, c: &Client) -> bool {
        c.hangup
            && self.req_done
            && !self.started
            && self.state != State::Tunnel
            && matches!(c.stream.peek(&mut [0u8; 1]), Ok(0))
    }
}
