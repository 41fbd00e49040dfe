//! The body of a request xps answers itself (a static file, an error, a
//! `return`): read and discarded after the response, up to
//! [`DRAIN_LIMIT`], so the connection can carry the next request; longer
//! ones (or ones the client waits to send) close the connection instead.

use super::client::{Client, RateClock};
use super::ctx::Ctx;
use crate::http::body::ChunkedDecoder;
use crate::http::parse::{Framing, RequestHead};
use std::io;

/// Request bodies up to this size are read and discarded to keep the
/// connection; larger ones close it after the response.
pub const DRAIN_LIMIT: u64 = 1 << 20;
/// A request body being discarded.
pub enum Drain {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Where discarding a body got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// All of it is read.
    Done,
    /// Waiting for more of it.
    Wait,
    /// The client left or sent a bad chunk: close.
    Close,
}

impl Drain {
    /// What happens to the body of `head` answered by xps itself: `Some`
    /// to discard it after the response; `None` when there is none, or
    /// when the connection closes after the response instead (a body over
    /// [`DRAIN_LIMIT`] or `max_body`, or one the client waits to send for
    /// `100 Continue`: `close_after` is then set).
    pub fn plan(head: &RequestHead, max_body: u64, close_after: &mut bool) -> Option<Drain> {
        let drain = match head.framing {
            Framing::None => None,
            Framing::Length(n) if n <= DRAIN_LIMIT && n <= max_body => Some(Drain::Length(n)),
            Framing::Chunked => Some(Drain::Chunked(ChunkedDecoder::new(
                max_body.min(DRAIN_LIMIT),
            ))),
            Framing::Length(_) => {
                *close_after = true;
                None
            }
        };
        if head.expect_continue && head.framing != Framing::None {
            // The client waits for `100 Continue` before sending the body;
            // the answer comes without reading it, so the body may never come.
            *close_after = true;
        }
        // A closing connection discards the rest while it lingers.
        drain.filter(|_| !*close_after)
    }

    /// Discards body bytes from the client's input and socket; `clock`
    /// counts them for `client_min_rate`.
    pub(super) fn run(&mut self, c: &mut Client, clock: &mut RateClock, ctx: &mut Ctx) -> Drained {
        loop {
            if let Some(input) = c.input.as_mut() {
                let data = input.data();
                let used = match self {
                    Drain::Length(left) => {
                        let n = (*left).min(data.len() as u64);
                        *left -= n;
                        n as usize
                    }
                    Drain::Chunked(d) => match d.decode(data, |_| {}) {
                        Ok(n) => n,
                        Err(_) => return Drained::Close,
                    },
                };
                input.consume(used);
                if used > 0 {
                    c.progress = ctx.now;
                    clock.bytes += used as u64;
                }
            }
            let done = match self {
                Drain::Length(left) => *left == 0,
                Drain::Chunked(d) => d.is_done(),
            };
            if done {
                return Drained::Done;
            }
            if c.peer_closed {
                return Drained::Close;
            }
            if !c.readable {
                return Drained::Wait;
            }
            match c.read(ctx) {
                Ok(0) => return Drained::Close,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return Drained::Wait;
                }
                Err(_) => return Drained::Close,
            }
        }
    }
}
