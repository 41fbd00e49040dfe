//! The pieces of a leg's state that have behaviour of their own: the
//! members tried, the relay buffer and the response being relayed, the
//! pipes of a spliced transfer. They know nothing of the leg.

use crate::handler::gzip;
use crate::handler::proxy::{ClientBody, UpstreamHead};
use crate::http::body::ChunkedDecoder;
use crate::net::sys;
use std::io;

use std::os::fd::{AsFd, OwnedFd};

/// The members one request has tried: a bit each for the first 64 (no
/// allocation per request), a list beyond.
#[derive(Default)]
pub(super) struct Tried {
    pub(super) low: u64,
    pub(super) high: Vec<usize>,
}

impl Tried {
    pub(super) fn contains(&self, i: usize) -> bool {
        if i < 64 {
            self.low >> i & 1 == 1
        } else {
            self.high.contains(&i)
        }
    }

    pub(super) fn insert(&mut self, i: usize) {
        if i < 64 {
            self.low |= 1 << i;
        } else if !self.high.contains(&i) {
            self.high.push(i);
        }
    }

    pub(super) fn remove(&mut self, i: usize) {
        if i < 64 {
            self.low &= !(1 << i);
        } else {
            self.high.retain(|&j| j != i);
        }
    }
}

/// The relay buffer of a fast client on a big body.
pub(super) const BIG_RELAY: usize = 128 << 10;

/// Bytes read from the upstream and not yet passed on: `buf[start..end]`.
/// Allocated once (16 KiB) on first use, never zeroed again.
#[derive(Default)]
pub(super) struct RelayBuf {
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl RelayBuf {
    pub(super) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(super) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.clear();
        }
    }

    /// Room to read into (empty when full).
    pub(super) fn spare(&mut self) -> &mut [u8] {
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

    pub(super) fn filled(&mut self, n: usize) {
        self.end += n;
    }

    pub(super) fn has_room(&self) -> bool {
        self.buf.is_empty() || self.end < self.buf.len() || self.start > 0
    }

    /// Grows to [`BIG_RELAY`] for a client that keeps up with a big body:
    /// it then moves more per system call. Only while empty, so nothing
    /// moves.
    pub(super) fn grow(&mut self) {
        if self.buf.len() < BIG_RELAY && self.is_empty() {
            self.buf = vec![0; BIG_RELAY];
            self.clear();
        }
    }
}

/// The response being relayed.
pub(super) struct Relay {
    pub(super) head: UpstreamHead,
    pub(super) to_client: ClientBody,
    /// Bytes of a `Content-Length` body still to come.
    pub(super) left: u64,
    pub(super) decoder: Option<ChunkedDecoder>,
    pub(super) done: bool,
    /// The body is gzipped on its way (none for a tunnel or no body).
    pub(super) gzip: Option<Box<gzip::Stream>>,
}

impl Relay {
    /// The body is whole: the gzip stream's end, then (for a chunked
    /// client) the last chunk. The compressed bytes appended.
    pub(super) fn end_body(&mut self, out: &mut Vec<u8>) -> u64 {
        let chunked = self.to_client == ClientBody::Chunked;
        let made = self
            .gzip
            .as_deref_mut()
            .map_or(0, |g| g.finish_into(out, chunked));
        if chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        made as u64
    }
}

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
        src: impl AsFd,
        src_readable: &mut bool,
        dst: impl AsFd,
        dst_writable: &mut bool,
        limit: usize,
    ) -> io::Result<(bool, usize)> {
        let mut moved = false;
        let want = (PIPE_CHUNK - self.pending.min(PIPE_CHUNK)).min(limit);
        if *src_readable && !self.eof && want > 0 {
            match sys::splice(src.as_fd(), &self.w, want) {
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
            match sys::splice(&self.r, dst.as_fd(), self.pending) {
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
