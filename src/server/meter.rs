//! What a connection tells the counters: the request being answered (its
//! kind, location, status and time), the bytes that moved, and how the
//! connection ended. Counted where a response ends, once each.

use super::client::Client;
use super::ctx::Ctx;
use crate::metrics::{Ending, Kind, RouteStats};
use std::sync::Arc;

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
    /// When its head was read, microseconds ([`Ctx::now_us`]).
    started: u64,
    /// Its status once known (0: none yet).
    status: u16,
    /// Its location's counters, by number ([`Ctx::route_stats`]).
    route: Option<usize>,
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
        route: Option<&Arc<RouteStats>>,
        client: &Client,
        ctx: &mut Ctx,
    ) {
        if self.request.is_some() {
            self.done(client, ctx);
        }
        ctx.stats().request_started(kind);
        self.request = Some(Request {
            started: ctx.now_us,
            status: 0,
            route: route.map(|r| ctx.keep_route_stats(r)),
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
        let stats = ctx.stats();
        stats.traffic(written - self.counted.0, received - self.counted.1);
        self.counted = (written, received);
        if let Some(r) = self.request.take() {
            let us = ctx.now_us.saturating_sub(r.started);
            let done = crate::metrics::Done::new(r.status, us);
            stats.request_done(&done);
            if let Some(route) = r.route.and_then(|id| ctx.route_stats(id)) {
                route.record(ctx.worker, &done);
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
