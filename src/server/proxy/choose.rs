//! Member choice and retries: the next member a request has not tried,
//! by the group's balancer among those up, connected afresh or taken from
//! the pool.

use super::pool::UpSock;
use super::{Proxy, State};
use crate::handler::proxy;
use crate::server::client::{Client, RateClock};
use crate::server::ctx::Ctx;
use crate::server::vars::RequestVars;
use crate::upstream::{Candidate, Endpoint, Limits, Picker, client_hash};

impl Proxy {
    /// The request's variables, when the route's values name any.
    pub(super) fn kept_vars(&self, peer: crate::routing::Peer) -> Option<RequestVars<'_>> {
        self.kept.as_deref().map(|k| k.vars(&self.raw_head, peer))
    }

    /// Picks the next member and connects (or reuses an idle connection).
    pub(super) fn connect_next(&mut self, c: &mut Client, ctx: &mut Ctx) -> bool {
        let group = &self.snapshot.upstreams[self.group];
        loop {
            let Some(i) = self.pick(c, ctx) else {
                return false;
            };
            self.tried.insert(i);
            let addr = group.members[i].addr.clone();
            self.member = i;
            self.addr = addr.clone();
            if !self.raw {
                let vars = self.kept_vars(c.peer);
                let (head, websocket) = proxy::request_head(
                    &self.raw_head,
                    self.route(),
                    c.peer,
                    // A Unix socket has no host name: `localhost`, as nginx
                    // sends.
                    match &addr {
                        Endpoint::Inet(_) => &group.members[i].name,
                        Endpoint::Unix(_) => "localhost",
                    },
                    self.body,
                    &vars,
                );
                self.to_up = head;
                self.websocket = websocket;
            }
            self.to_up_pos = 0;
            self.wrote = false;
            self.up_drained = false;
            self.from_up.clear();
            self.progress = ctx.now;
            if let Some(s) = (!self.raw)
                .then(|| ctx.upstream_pool.take(&addr, ctx.now, &mut ctx.sockets))
                .flatten()
            {
                ctx.sockets.set_owner(s.id, Some(self.owner));
                self.stream = Some(s);
                self.reused = true;
                // xps waited on a connection, not on the client.
                self.body_clock = RateClock::start(ctx.now);
                self.body_progress = ctx.now;
                self.state = State::Exchanging;
                self.up_writable = true;
                self.up_readable = false;
                self.started(ctx);
                return true;
            }
            match crate::server::connect(&addr)
                .and_then(|s| ctx.sockets.add(s, self.owner, &ctx.poller))
            {
                Ok(s) => {
                    self.stream = Some(s);
                    self.reused = false;
                    self.state = State::Connecting;
                    self.connect_started = ctx.now;
                    self.up_writable = false;
                    self.up_readable = false;
                    self.started(ctx);
                    return true;
                }
                // A Unix socket whose listen queue is full refuses at once
                // (where TCP would wait for the queue): the member is
                // busy, not down, so this counts as no failure of it.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    crate::log::warn(&format!(
                        "upstream {} member {addr}: listen queue full; trying the next member",
                        group.name
                    ));
                }
                Err(e) => {
                    crate::log::warn(&format!("upstream {} member {addr}: {e}", group.name));
                    let m = &group.members[i];
                    if let Some(s) = m.stats.get() {
                        s.failed(ctx.worker);
                    }
                    ctx.shared.health.failed(
                        &group.name,
                        &addr,
                        Limits {
                            max_fails: m.max_fails,
                            fail_timeout: m.fail_timeout,
                        },
                        ctx.now,
                    );
                }
            }
        }
    }

    /// The member the group's balancer picks among those up that this
    /// request has not tried.
    fn pick(&self, c: &Client, ctx: &mut Ctx) -> Option<usize> {
        let group = &self.snapshot.upstreams[self.group];
        let health = &ctx.shared.health;
        // Reused from request to request: no allocation per pick.
        let mut candidates = std::mem::take(&mut ctx.candidates);
        candidates.clear();
        candidates.extend(group.members.iter().enumerate().map(|(i, m)| Candidate {
            weight: m.weight,
            backup: m.backup,
            usable: !self.tried.contains(i) && health.is_up(&group.name, &m.addr, ctx.now),
        }));
        let addrs = group.members.iter().map(|m| &m.addr);
        let picker = match ctx.pickers.get_mut(&group.name) {
            Some(picker) => {
                picker.follow(addrs);
                picker
            }
            None => {
                let seed = ctx.seed();
                let addrs: Vec<Endpoint> = addrs.cloned().collect();
                ctx.pickers
                    .entry(group.name.clone())
                    .or_insert_with(|| Picker::new(&addrs, seed))
            }
        };
        // Unix socket clients hash as 0.0.0.0, all to one member (nginx
        // hashes them as a pseudo-address of zeros).
        let ip = c
            .peer
            .ip()
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        let picked = picker.pick(group.balance, &candidates, client_hash(ip));
        ctx.candidates = candidates;
        picked
    }

    /// The picked member has one more request in flight (for `least_conn`
    /// and `random`); [`Proxy::take_upstream`] ends it.
    fn started(&mut self, ctx: &mut Ctx) {
        let group = &self.snapshot.upstreams[self.group];
        if let Some(picker) = ctx.pickers.get_mut(&group.name) {
            picker.started(self.member);
        }
        if let Some(s) = group.members.get(self.member).and_then(|m| m.stats.get()) {
            s.started(ctx.worker);
        }
        self.attempt_at = ctx.now_us;
    }

    /// Takes the upstream socket off the leg; its member has one request less
    /// in flight (for `least_conn` and `random`). Every socket the leg drops
    /// goes through here, so the count stays exact.
    pub(super) fn take_upstream(&mut self, ctx: &mut Ctx) -> Option<UpSock> {
        let s = self.stream.take()?;
        let group = &self.snapshot.upstreams[self.group];
        if let Some(picker) = ctx.pickers.get_mut(&group.name) {
            picker.finished(&self.addr);
        }
        if let Some(stats) = group.members.get(self.member).and_then(|m| m.stats.get()) {
            let us = ctx.now_us.saturating_sub(self.attempt_at);
            stats.ended(ctx.worker, us);
        }
        Some(s)
    }

    /// Logs that a request finds no member of its group up (it gets 502).
    pub(super) fn no_member_up(&self) {
        crate::log::warn(&format!(
            "upstream {}: no member is up; answering 502",
            self.snapshot.upstreams[self.group].name
        ));
    }
}
