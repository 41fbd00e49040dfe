//! Whose clock runs while a leg waits (the client's send or body clocks,
//! or the upstream's), and what a passed deadline does.

use super::{Failure, Proxy, State, Step};
use crate::server::client::{Client, earliest};
use crate::server::ctx::Ctx;
use std::time::Instant;

/// Whose clock runs while a leg waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Clock {
    /// The client is not taking the response: `send_timeout`.
    ClientSend,
    /// xps waits on the client's request body: `client_body_timeout` and
    /// `client_min_rate`.
    ClientBody,
    /// xps waits on the upstream: the leg's own timeouts.
    Upstream,
}

impl Proxy {
    /// Bytes for the client are waiting on its socket (in the output, the
    /// relay buffer or the body pipe): then only its `send_timeout` runs,
    /// since the upstream side is held back by it. A raw TCP (stream)
    /// tunnel keeps its one `proxy_timeout` for both directions.
    pub(super) fn waiting_on_client(&self, c: &Client) -> bool {
        !self.raw
            && !c.writable
            && (c.out_pending()
                || (self.started && !self.from_up.is_empty())
                || self.body_pipe.as_ref().is_some_and(|b| b.pending > 0))
    }

    /// xps waits on the client's request body: nothing of it is left to
    /// send up, and the exchange is not a tunnel.
    pub(super) fn waiting_on_client_body(&self) -> bool {
        !self.raw
            && (self.state == State::Gathering
                || (self.state == State::Exchanging
                    && !self.req_done
                    && !self.up_write_failed
                    && self.stream.is_some()
                    && self.to_up_pos == self.to_up.len()))
    }

    /// While xps waits on the client's request body: since when it has
    /// been measured, and the bytes sent since.
    pub fn body_rate_since(&self, c: &Client) -> Option<(Instant, u64)> {
        (!self.waiting_on_client(c) && self.waiting_on_client_body())
            .then_some((self.body_clock.since, self.body_clock.bytes))
    }

    /// Whose clock runs now, and when it runs out.
    pub(super) fn leg_clock(&self, c: &Client) -> (Clock, Instant) {
        if self.waiting_on_client(c) {
            (Clock::ClientSend, c.progress + c.send_timeout)
        } else if self.waiting_on_client_body() {
            let rate = self.body_clock.deadline(self.client_min_rate);
            (
                Clock::ClientBody,
                earliest(self.body_progress + self.client_body_timeout, rate),
            )
        } else {
            (Clock::Upstream, self.deadline())
        }
    }

    /// The deadline of the current leg.
    pub fn leg_deadline(&self, c: &Client) -> Instant {
        self.leg_clock(c).1
    }

    /// Handles a deadline that may have passed while proxying: `Some`
    /// step for the leg (a [`Step::Close`] ends it), or `None` when it
    /// made an answer (504, 408) or a next attempt to run.
    pub fn timeout(&mut self, c: &mut Client, ctx: &mut Ctx) -> Option<Step> {
        let (clock, deadline) = self.leg_clock(c);
        if ctx.now < deadline {
            return Some(Step::Wait);
        }
        match clock {
            // The client took nothing for send_timeout.
            Clock::ClientSend => return Some(Step::Close),
            Clock::ClientBody if self.started => return Some(Step::Close),
            Clock::ClientBody => {
                // The upstream connection closes without the rest of the
                // body (it never gets a whole request, and is never pooled);
                // the client gets 408 and its connection closes.
                self.leg_error(c, 408, ctx);
                return None;
            }
            Clock::Upstream => {}
        }
        match self.state {
            State::Gathering | State::Tunnel => Some(Step::Close),
            State::Connecting => self.proxy_failed(c, Failure::Timeout, ctx),
            State::Exchanging if self.started => Some(Step::Close),
            State::Exchanging => {
                crate::log::warn(&format!(
                    "upstream member {} timed out; answering 504",
                    self.addr
                ));
                self.leg_error(c, 504, ctx);
                None
            }
        }
    }
}
