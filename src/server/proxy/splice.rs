//! `splice`: a stream tunnel moving bulk data, and a long download to a
//! client that keeps up, go socket → pipe → socket, never through user
//! space.

use super::parts::{PIPE_CHUNK, Pipe, Pipes};
use super::{End, Proxy};
use crate::server::client::Client;
use crate::server::ctx::Ctx;

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
        c.written += delivered as u64;
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
        let (sent_up, taken) = pipes
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
        c.written += delivered as u64;
        c.received += taken as u64;
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
