//! Answering a request: its server and location, the access rules, the
//! handler (or the proxy leg), `error_page`, gzip, the log and the
//! counters, then the head and body out. `try_files`' fallback routes the
//! request again from here.

use super::access;
use super::auth::Verdict;
use super::conn::{Conn, Phase};
use super::ctx::Ctx;
use super::drain::Drain;
use super::limits::Outcome;
use super::vars;
use crate::handler::{self, canned};
use crate::http::parse::{Framing, Method, RequestHead};
use crate::metrics::Kind;
use crate::routing::{Action, LocationMatch, Snapshot};
use std::sync::Arc;

/// Why a limit or `auth_basic` did not let a request in: the answer.
struct Refusal {
    status: u16,
    /// `Retry-After`, seconds.
    retry_after: Option<u32>,
    /// `WWW-Authenticate` (401).
    challenge: Option<Arc<str>>,
}

impl Refusal {
    fn reply(self) -> handler::Reply {
        let mut r = canned::error(self.status);
        r.retry_after = self.retry_after;
        r.www_authenticate = self.challenge;
        r
    }

    fn retry(status: u16, after: u32) -> Refusal {
        Refusal {
            status,
            retry_after: Some(after),
            challenge: None,
        }
    }
}

/// Internal redirects (`try_files`) one request may take.
const MAX_REDIRECTS: u8 = 10;

impl Conn {
    /// Routes a request and writes its response. `resumed`: the request
    /// waited its `limit_req` turn and comes back (it was counted already).
    pub(super) fn respond(&mut self, head: RequestHead, resumed: bool, ctx: &mut Ctx) {
        // The snapshot of this loop turn, taken out of the context for the
        // request (no reference count traffic) and put back after.
        let snapshot = ctx.take_snapshot();
        self.respond_with(&head, &snapshot, ctx, 0, resumed);
        ctx.snapshot = Some(snapshot);
    }

    /// `redirects`: how many times the request was routed again
    /// (`try_files`' fallback) before this.
    fn respond_with(
        &mut self,
        head: &RequestHead,
        snapshot: &Arc<Snapshot>,
        ctx: &mut Ctx,
        redirects: u8,
        resumed: bool,
    ) {
        let fresh = redirects == 0 && !resumed;
        if fresh {
            self.requests += 1;
            self.user = None;
            self.limits_checked = false;
        }
        self.phase = Phase::Writing;
        self.client.progress = ctx.now;
        let Some(listener) = snapshot.listener(&self.local) else {
            // The address left the config in a reload.
            self.meter.start(Kind::Other, None, &self.client, ctx);
            self.meter.status(404);
            self.client.close_after = true;
            self.client.write_reply(
                canned::error(404),
                None,
                head.version,
                head.method == Method::Head,
                snapshot,
                ctx.date.get(),
            );
            return;
        };
        let (sid, _) = listener.server(head.host.as_deref());
        let server = &snapshot.servers[sid];
        self.limits = server.connection.clone();
        self.client.max_head = self.limits.client_header_max_size as usize;
        let slash = server.slash_redirect(&head.uri.path);
        let (route, which) = match slash {
            Some(i) => (
                &server.locations.list()[i].route,
                LocationMatch::Location(i),
            ),
            None => server.route(&head.uri.path),
        };
        if fresh {
            // The client's address for this request: the connection's, or
            // what a trusted balancer says.
            self.client.peer = self.socket_peer;
            if let Some(real) = &route.real_ip {
                use crate::routing::real_ip::RealIpSource;
                let (peer, proxied) = (self.socket_peer, self.proxied);
                self.client.peer = match &real.source {
                    RealIpSource::Header(name) => {
                        let raw = self.client.head_bytes(head.head_len);
                        real.resolve(peer, proxied, vars::headers(raw, name))
                    }
                    RealIpSource::ProxyProtocol => {
                        real.resolve(peer, proxied, std::iter::empty::<&[u8]>())
                    }
                };
            }
        }
        let kind = match &route.action {
            Action::Static => Kind::File,
            Action::Proxy(_) => Kind::Proxy,
            Action::Return(r) if crate::routing::Return::is_redirect(r.code) => Kind::Redirect,
            _ => Kind::Other,
        };
        if fresh {
            self.meter.start(kind, route.stats.get(), &self.client, ctx);
        }
        self.client.send_timeout = route.send_timeout;
        self.body_timeout = route.client_body_timeout;
        if !head.keep_alive
            || ctx.stopping
            || self.requests >= self.limits.keepalive_requests
            || self.limits.keepalive_timeout.is_zero()
        {
            self.client.close_after = true;
        }
        let too_large = match head.framing {
            Framing::Length(n) => n > route.client_max_body_size,
            _ => false,
        };
        // The request's variables, for the route's values that name them
        // (the head as sent is copied only then).
        let (uses_vars, uses_id) = (route.vars.any, route.vars.request_id);
        let raw: Vec<u8> = if uses_vars {
            self.client.head_bytes(head.head_len).to_vec()
        } else {
            Vec::new()
        };
        let request_id = if uses_id {
            vars::request_id(ctx.seed())
        } else {
            String::new()
        };
        // Limits come first, as in nginx's preaccess phase: a client over
        // its rate is refused before its address or password is looked at.
        // The first route of the request that has limits applies them (a
        // `try_files` fallback's route too, as in nginx), once.
        let limited = if !self.limits_checked && route.limits.any() && !too_large {
            self.limits_checked = true;
            // Keys read the head where it is (never copied for them).
            let head_bytes = self.client.head_bytes(head.head_len);
            let key_vars = vars::RequestVars {
                head,
                raw: head_bytes,
                peer: self.client.peer,
                server_port: vars::server_port(&self.local),
                names: &server.server_name,
                request_id: &request_id,
                user: None,
            };
            match super::limits::check(route, &key_vars, resumed, ctx.now, &mut self.slots) {
                Outcome::Pass => None,
                Outcome::Delay(wait) => {
                    // Checked again when it resumes (for `limit_conn`).
                    self.limits_checked = false;
                    self.delayed = Some(Box::new(head.clone()));
                    self.phase = Phase::Delayed {
                        until: ctx.now + wait,
                    };
                    return;
                }
                Outcome::Reject(status, after) => Some(Refusal::retry(status, after)),
            }
        } else {
            None
        };
        let permitted = limited.is_none() && route.access.check(self.client.peer.ip()).0;
        // `auth_basic`: checked once the address is let in; its 401 comes
        // before everything but a 413 or 403.
        let challenge = match &route.auth {
            Some(auth) if permitted => {
                let raw = self.client.head_bytes(head.head_len);
                let peer = self.client.peer.ip();
                match ctx
                    .auth
                    .check(auth, vars::header(raw, "authorization"), peer, ctx.now)
                {
                    Verdict::User(user) => {
                        self.user = Some(user);
                        None
                    }
                    Verdict::Refused => Some(Refusal {
                        status: 401,
                        retry_after: None,
                        challenge: Some(auth.challenge.clone()),
                    }),
                    Verdict::TooMany => Some(Refusal::retry(429, 1)),
                    Verdict::Busy => Some(Refusal::retry(503, 1)),
                }
            }
            _ => None,
        };
        let allowed = permitted && challenge.is_none();
        let user = self.user.clone();
        let request_vars = vars::RequestVars {
            head,
            raw: &raw,
            peer: self.client.peer,
            server_port: vars::server_port(&self.local),
            names: &server.server_name,
            request_id: &request_id,
            user: user.as_deref(),
        };
        if matches!(&route.action, Action::Return(r) if r.code == 444) && allowed && !too_large {
            // nginx's 444: the connection closes without an answer (to
            // drop unwanted hosts and scanners).
            self.log = access::pending(head, route, &request_vars, 444, ctx.now);
            self.meter.status(444);
            self.client.close_after = true;
            self.response_done(ctx);
            return;
        }
        // A refused request is never `permitted` or `allowed`; a limit's
        // refusal comes before the 403 of a denied address (which leaves
        // `auth_basic` unasked).
        let refusal = limited.or(challenge);
        let reply = match (&route.action, refusal) {
            _ if slash.is_some() && allowed => {
                let mut r = canned::error(301);
                let mut location = crate::handler::autoindex::encode_path(&head.uri.path);
                location.push('/');
                if let Some(q) = &head.uri.query {
                    location.push('?');
                    location.push_str(q);
                }
                r.location = Some(location);
                r
            }
            (Action::Proxy(id), _) if allowed && !too_large => {
                if self.start_proxying(head, snapshot, (sid, which), *id, &request_id, ctx) {
                    return;
                }
                canned::error(502)
            }
            _ if too_large => canned::error(413),
            (_, Some(refusal)) => refusal.reply(),
            _ if !permitted => canned::error(403),
            (Action::Metrics, _) => {
                let view = super::stats::view(&ctx.shared, snapshot, ctx.now);
                handler::metrics::answer(head, &view)
            }
            _ => handler::handle(head, route, &mut ctx.files, ctx.now, &request_vars),
        };
        let reply = match reply.internal {
            // Routed again with the fallback's path (`$uri` and locations
            // see it; `$request_uri` and the log keep what was asked), as
            // nginx does; at most 10 times.
            Some(target) if redirects < MAX_REDIRECTS => {
                match crate::http::target::parse(&target) {
                    Ok(uri) => {
                        let mut next = head.clone();
                        next.uri = uri;
                        next.rerouted = Some(target);
                        return self.respond_with(&next, snapshot, ctx, redirects + 1, false);
                    }
                    Err(_) => canned::error(500),
                }
            }
            Some(_) => {
                crate::log::warn(&format!(
                    "try_files: more than {MAX_REDIRECTS} internal redirects for {}; answering 500",
                    head.target
                ));
                canned::error(500)
            }
            None => reply,
        };
        self.drain = Drain::plan(
            head,
            route.client_max_body_size,
            &mut self.client.close_after,
        );
        let reply = handler::with_error_page(reply, head, route, &mut ctx.files, ctx.now);
        let mut reply = handler::gzip::finish(reply, head, route);
        if let Some(note) = reply.note.take() {
            ctx.note_once(note);
        }
        self.meter.status(reply.status);
        self.log = access::pending(head, route, &request_vars, reply.status, ctx.now);
        let head_only = head.method == Method::Head;
        self.client.write_reply(
            reply,
            Some((route, &request_vars)),
            head.version,
            head_only,
            snapshot,
            ctx.date.get(),
        );
    }
}
