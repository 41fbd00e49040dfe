//! What a connection tells the counters: the request being answered (its
//! kind, location, status and time), the bytes that moved, and how the
//! connection ended. Counted where a response ends, once each.

use super::client::Client;
use super::ctx::Ctx;
use crate::metrics::{Ending, Kind, RouteStats};
use std::sync::Arc;
use std::time::Instant;

/// A connection's part of the counters.
pub(super) struct Meter {
    /// The request being answered.
    request: Option<Request>,
    /// How the connection ends.
    pub(super) ending: Ending,
    /// Bytes written to and read from the client already counted.
    counted: (u64, u64),
}

struct Request {
    started: Instant,
    /// Its status once known (0: none yet).
    status: u16,
    route: Option<Arc<RouteStats>>,
}

impl Meter {
    pub(super) fn new() -> Meter {
        Meter {
            request: None,
            ending: Ending::Normal,
            counted: (0, 0),
        }
    }

    /// Whether a request is being answered.
    pub(super) fn in_request(&self) -> bool {
        self.request.is_some()
    }

    /// A request starts being answered by `kind` (a location's counters
    /// in `route`).
    pub(super) fn start(
        &mut self,
        kind: Kind,
        route: Option<Arc<RouteStats>>,
        client: &Client,
        ctx: &mut Ctx,
    ) {
        self.done(client, ctx);
        ctx.stats().request_started(kind);
        self.request = Some(Request {
            started: ctx.now,
            status: 0,
            route,
        });
    }

    /// The status of the request being answered.
    pub(super) fn status(&mut self, status: u16) {
        if let Some(r) = self.request.as_mut() {
            r.status = status;
        }
    }

    /// The request being answered is done (or cut short: no status): its
    /// status, its time and the bytes that moved go to the counters.
    pub(super) fn done(&mut self, client: &Client, ctx: &mut Ctx) {
        let (written, received) = (client.written, client.received);
        ctx.stats()
            .traffic(written - self.counted.0, received - self.counted.1);
        self.counted = (written, received);
        if let Some(r) = self.request.take() {
            let us = ctx.now.saturating_duration_since(r.started).as_micros() as u64;
            ctx.stats().request_done(r.status, us);
            if let Some(route) = r.route {
                route.record(ctx.worker, r.status, us);
            }
        }
    }

    /// The connection closes: a request cut short counts as done with no
    /// status, and its connection as one that ended in an error.
    pub(super) fn close(&mut self, client: &Client, ctx: &mut Ctx) {
        if self.request.is_some() && self.ending == Ending::Normal {
            self.ending = Ending::Error;
        }
        self.done(client, ctx);
        ctx.stats().closed(self.ending);
    }
}
