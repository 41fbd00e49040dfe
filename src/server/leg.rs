//! The connection's side of a proxy leg: starting it (HTTP or a TCP
//! stream), running it, its deadlines, and ending it (the status and bytes
//! it leaves for the log and the counters).

use super::access;
use super::conn::Conn;
use super::ctx::Ctx;
use super::proxy::{self, Proxy, Step};
use super::vars;
use crate::http::parse::RequestHead;
use crate::routing::{LocationMatch, ServerId, Snapshot, UpstreamId};
use std::sync::Arc;

impl Conn {
    /// Starts relaying a stream (TCP) connection accepted for stream server
    /// `index`; `false` when no member can be tried (close the client).
    pub(crate) fn start_stream(
        &mut self,
        snapshot: &Arc<Snapshot>,
        index: usize,
        ctx: &mut Ctx,
    ) -> bool {
        self.proxy = Proxy::stream(&mut self.client, snapshot, index, self.token, ctx);
        self.proxy.is_some()
    }

    /// Runs the proxy leg as far as it can go, and ends it unless it waits.
    pub(super) fn proxy_run(&mut self, ctx: &mut Ctx) -> Step {
        let Some(p) = self.proxy.as_mut() else {
            return Step::Done;
        };
        let step = p.run(&mut self.client, ctx);
        if step != Step::Wait {
            self.end_leg(step, ctx);
        }
        step
    }

    /// Handles a deadline of the proxy leg.
    pub(super) fn proxy_timeout(&mut self, ctx: &mut Ctx) -> Step {
        let Some(p) = self.proxy.as_mut() else {
            return Step::Close;
        };
        match p.timeout(&mut self.client, ctx) {
            Some(Step::Wait) => Step::Wait,
            Some(step) => {
                self.end_leg(step, ctx);
                step
            }
            None => self.proxy_run(ctx),
        }
    }

    /// Ends the proxy leg (if any): its upstream connection is pooled or
    /// closed, and a completed exchange's status and bytes go to the log.
    pub(super) fn end_leg(&mut self, step: Step, ctx: &mut Ctx) {
        let Some(mut p) = self.proxy.take() else {
            return;
        };
        let status = p.finish(ctx);
        if let (Step::Done, Some(status)) = (step, status) {
            self.meter.status(status);
            if let Some(log) = self.log.as_mut() {
                log.status = status;
            }
        }
        self.client.out.body_sent = p.sent;
        self.client.out.send_body = true;
    }

    /// Starts the proxy leg of a request routed to upstream group `id`;
    /// `false` when no member can be tried.
    pub(super) fn start_proxying(
        &mut self,
        head: &RequestHead,
        snapshot: &Arc<Snapshot>,
        at: (ServerId, LocationMatch),
        id: UpstreamId,
        request_id: &str,
        ctx: &mut Ctx,
    ) -> bool {
        let route = snapshot.servers[at.0].route_of(at.1);
        // The request's variables outlive its head when the route's values
        // name any: the response head and error pages come later.
        let kept = route.vars.any.then(|| {
            Box::new(vars::KeptVars {
                head: head.clone(),
                server_port: vars::server_port(&self.local),
                names: snapshot.servers[at.0].server_name.clone(),
                request_id: request_id.to_string(),
                user: self.user.clone(),
            })
        });
        let mut raw = self.client.head_bytes(head.head_len).to_vec();
        if route.access_log.is_some() {
            let vars = vars::RequestVars {
                head,
                raw: &raw,
                peer: self.client.peer,
                server_port: vars::server_port(&self.local),
                names: &snapshot.servers[at.0].server_name,
                request_id,
                user: self.user.as_deref(),
            };
            // 502 until the upstream's status is known.
            self.log = access::pending(head, route, &vars, 502, ctx.now);
        }
        if let Some(target) = &head.rerouted {
            // Routed again (`try_files`): the upstream gets the new target.
            raw = reroute(&raw, target);
        }
        self.client.out.head.clear();
        self.client.out.head_pos = 0;
        let start = proxy::Start {
            head,
            raw_head: raw,
            at,
            group: id,
            owner: self.token,
            body_timeout: self.body_timeout,
            min_rate: self.limits.client_min_rate,
            kept,
        };
        self.proxy = Proxy::http(start, &mut self.client, snapshot, ctx);
        self.proxy.is_some()
    }
}

/// `raw` (a request head as sent) with `target` in its request line.
fn reroute(raw: &[u8], target: &str) -> Vec<u8> {
    let line_end = raw.iter().position(|&b| b == b'\n').unwrap_or(raw.len());
    let line = &raw[..line_end];
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(_), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return raw.to_vec();
    };
    let mut out = Vec::with_capacity(raw.len() + target.len());
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.push(b' ');
    out.extend_from_slice(version);
    out.extend_from_slice(&raw[line_end..]);
    out
}
