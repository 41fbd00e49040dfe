//! `splice`: a stream tunnel moving bulk data, and a long download to a
//! client that keeps up, go socket → pipe → socket, never through user
//! space.

use super::{End, Proxy};
use crate::net::sys;
use crate::server::client::Client;
use crate::server::ctx::Ctx;
use std::io;
use std::net::TcpStream;
use std::os::fd::OwnedFd;

/// Bytes asked of one `splice` (what a pipe holds by default).
pub(super) const PIPE_CHUNK: usize = 64 << 10;

/// A stream tunnel's pipes: bytes go socket → pipe → socket with
/// `splice`, never through user space.
pub(super) struct Pipes {
    /// Client → upstream.
    pub(super) up: Pipe,
    /// Upstream → client.
    pub(super) down: Pipe,
}

/// One direction of a spliced tunnel.
pub(super) struct Pipe {
    pub(super) r: OwnedFd,
    pub(super) w: OwnedFd,
    /// Bytes in the pipe.
    pub(super) pending: usize,
    /// The source ended.
    pub(super) eof: bool,
}

impl Pipes {
    pub(super) fn new() -> io::Result<Pipes> {
        Ok(Pipes {
            up: Pipe::new()?,
            down: Pipe::new()?,
        })
    }

    /// A side ended and everything it sent is out: the tunnel closes.
    pub(super) fn finished(&self) -> bool {
        (self.up.eof || self.down.eof) && self.up.pending == 0 && self.down.pending == 0
    }
}

impl Pipe {
    pub(super) fn new() -> io::Result<Pipe> {
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
    pub(super) fn pump(
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

impl Proxy {
    /// A stream tunnel moving bulk data switches from copying to `splice`
    /// once nothing is left in its buffers (then they go back to the
    /// pools). Small exchanges keep copying: for them the pipe's extra
    /// descriptors and calls cost more than the copies.
    pub(super) fn start_splicing(&mut self, c: &mut Client, ctx: &mut Ctx) {
        // A tunnel whose side already ended finishes on the copy path.
        let idle = !self.draining
            && self.to_up_pos == self.to_up.len()
            && self.from_up.is_empty()
            && c.out.head_pos == c.out.head.len()
            && c.input_empty();
        if !idle {
            return;
        }
        self.bulk = false;
        let Ok(pipes) = Pipes::new() else {
            // Out of descriptors: it keeps copying.
            return;
        };
        self.pipes = Some(Box::new(pipes));
        self.to_up = Vec::new();
        self.to_up_pos = 0;
        ctx.give_relay_buffer(std::mem::take(&mut self.from_up.buf));
        self.from_up.clear();
        c.give_back_input(ctx);
        c.out.head = Vec::new();
        c.out.head_pos = 0;
    }

    /// Switches a long identity download to `splice` once its buffers are
    /// empty; if a pipe cannot be made (out of descriptors) it keeps
    /// copying.
    pub(super) fn start_body_splice(&mut self, c: &mut Client, ctx: &mut Ctx) {
        // Nothing may be left to send either way: the pipe carries only the
        // download, and bytes of the request still in `to_up` would never go.
        let empty = self.from_up.is_empty()
            && c.out.head_pos == c.out.head.len()
            && self.to_up_pos == self.to_up.len();
        if !empty || self.draining || self.up_eof {
            return;
        }
        self.splice_body = false;
        self.up_drained = false;
        let Ok(pipe) = Pipe::new() else {
            self.from_up.grow();
            return;
        };
        self.body_pipe = Some(Box::new(pipe));
        ctx.give_relay_buffer(std::mem::take(&mut self.from_up.buf));
        self.from_up.clear();
        c.out.head = Vec::new();
        c.out.head_pos = 0;
    }

    /// One round of a spliced download: upstream → pipe → client, never
    /// more than the body's remaining length from the upstream, so the
    /// connection stays reusable.
    pub(super) fn body_splice_step(&mut self, c: &mut Client, ctx: &mut Ctx) -> Result<bool, End> {
        let (Some(pipe), Some(up), Some(r)) = (
            self.body_pipe.as_mut(),
            self.stream.as_ref(),
            self.relay.as_mut(),
        ) else {
            return Err(End::Close);
        };
        let was_writable = c.writable;
        let limit = (r.left - pipe.pending as u64).min(PIPE_CHUNK as u64) as usize;
        let (moved, delivered) = pipe
            .pump(
                &up.stream,
                &mut self.up_readable,
                &c.stream,
                &mut c.writable,
                limit,
            )
            .map_err(|_| End::Close)?;
        r.left -= delivered as u64;
        self.sent += delivered as u64;
        if moved {
            self.progress = ctx.now;
        }
        if delivered > 0 || (was_writable && !c.writable) {
            // The client took bytes, or its socket just filled.
            c.progress = ctx.now;
        }
        if r.left == 0 {
            r.done = true;
            return Err(End::Done);
        }
        if pipe.eof && pipe.pending == 0 {
            // The upstream left in the middle: the client's connection
            // closes short of its Content-Length, so the gap shows.
            self.up_eof = true;
            return Err(End::Close);
        }
        Ok(moved)
    }

    /// One round of a spliced stream tunnel, both directions.
    pub(super) fn splice_step(&mut self, c: &mut Client, ctx: &mut Ctx) -> Result<bool, End> {
        let (Some(pipes), Some(up)) = (self.pipes.as_mut(), self.stream.as_ref()) else {
            return Err(End::Close);
        };
        let (sent_up, _) = pipes
            .up
            .pump(
                &c.stream,
                &mut c.readable,
                &up.stream,
                &mut self.up_writable,
                usize::MAX,
            )
            .map_err(|_| End::Close)?;
        let (sent_down, delivered) = pipes
            .down
            .pump(
                &up.stream,
                &mut self.up_readable,
                &c.stream,
                &mut c.writable,
                usize::MAX,
            )
            .map_err(|_| End::Close)?;
        self.sent += delivered as u64;
        if pipes.finished() {
            return Err(End::Close);
        }
        let progress = sent_up || sent_down;
        if progress {
            self.progress = ctx.now;
        }
        Ok(progress)
    }
}
