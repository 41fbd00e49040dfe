//! Live figures on the server side: counters attached to a routing table
//! when it is installed (found again by their config names, so a reload
//! keeps them), and the view the metrics handler renders.

use super::ctx::Shared;
use crate::handler::metrics::{View, ZoneFigures};
use crate::metrics::Registry;
use crate::routing::limits::ZoneKind;
use crate::routing::{LocationMatch, Snapshot};
use std::time::Instant;

/// The label of a server: its first `server_name`, else its first listen
/// address.
fn server_label(snapshot: &Snapshot, id: usize) -> String {
    let server = &snapshot.servers[id];
    match (server.server_name.first(), server.listen.first()) {
        (Some(name), _) => name.to_string(),
        (None, Some(addr)) => addr.to_string(),
        (None, None) => server.label(id),
    }
}

/// The label of a location: its match as written (`= /x`, `/x/`), or
/// `(server)` for requests no location took.
fn location_label(snapshot: &Snapshot, id: usize, at: LocationMatch) -> String {
    match at {
        LocationMatch::Location(i) => snapshot.servers[id].locations.list()[i].matcher.to_string(),
        LocationMatch::NoLocation | LocationMatch::ServerReturn => "(server)".to_string(),
    }
}

/// Every route and member of `snapshot` with its place, in order.
fn routes(snapshot: &Snapshot) -> Vec<(usize, LocationMatch)> {
    let mut out = Vec::new();
    for (id, server) in snapshot.servers.iter().enumerate() {
        for i in 0..server.locations.len() {
            out.push((id, LocationMatch::Location(i)));
        }
        out.push((id, LocationMatch::NoLocation));
    }
    out
}

fn route_key(server: &str, location: &str) -> String {
    format!("{server}\u{0}{location}")
}

fn member_key(group: &str, member: &str) -> String {
    format!("{group}\u{0}{member}")
}

/// Attaches counters to every location and upstream member of
/// `snapshot`: the ones of the same names before, or new ones.
pub fn attach(snapshot: &Snapshot, registry: &Registry) {
    for (id, at) in routes(snapshot) {
        let key = route_key(
            &server_label(snapshot, id),
            &location_label(snapshot, id, at),
        );
        snapshot.servers[id]
            .route_of(at)
            .stats
            .set(registry.route(&key));
    }
    for group in &snapshot.upstreams {
        for m in &group.members {
            m.stats
                .set(registry.member(&member_key(&group.name, &m.name)));
        }
    }
}

/// Gives every zone of `snapshot` its state: the running one when the
/// zone is unchanged, else a new one; zones no longer named are dropped.
pub fn attach_zones(snapshot: &Snapshot, zones: &crate::limit::Registry) {
    let mut req = Vec::new();
    let mut conn = Vec::new();
    for z in &snapshot.zones {
        let signature = z.signature();
        match &z.kind {
            ZoneKind::Req { state, .. } => {
                state.set(zones.req(&z.name, &signature, z.size));
                req.push(z.name.as_str());
            }
            ZoneKind::Conn { state } => {
                state.set(zones.conn(&z.name, &signature, z.size));
                conn.push(z.name.as_str());
            }
        }
    }
    zones.keep_only(&req, &conn);
}

/// What the metrics show now.
pub fn view(shared: &Shared, snapshot: &Snapshot, now: Instant) -> View {
    let registry = &shared.metrics;
    let mut view = View {
        server_name: snapshot
            .main
            .server_header
            .clone()
            .unwrap_or_else(|| "xps".to_string()),
        pid: std::process::id(),
        workers: registry.workers(),
        uptime_ms: now.saturating_duration_since(registry.started).as_millis() as u64,
        totals: registry.totals(),
        usage: registry.sample(),
        generation: snapshot.generation,
        loaded_at_ms: registry.loaded_at_ms(),
        reload_failures: registry.reload_failures(),
        routes: Vec::new(),
        members: Vec::new(),
        zones: Vec::new(),
    };
    for (id, at) in routes(snapshot) {
        if let Some(stats) = snapshot.servers[id].route_of(at).stats.get() {
            view.routes.push((
                server_label(snapshot, id),
                location_label(snapshot, id, at),
                stats.totals(),
            ));
        }
    }
    for group in &snapshot.upstreams {
        for m in &group.members {
            if let Some(stats) = m.stats.get() {
                view.members.push((
                    group.name.clone(),
                    m.name.clone(),
                    shared.health.is_up(&group.name, &m.addr, now),
                    stats.totals(),
                ));
            }
        }
    }
    for z in &snapshot.zones {
        use std::sync::atomic::Ordering::Relaxed;
        let figures = |kind, c: &crate::limit::Counters, keys: usize| ZoneFigures {
            name: z.name.clone(),
            kind,
            passed: c.passed.load(Relaxed),
            delayed: c.delayed.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            keys: keys as u64,
        };
        match &z.kind {
            ZoneKind::Req { state, .. } => {
                if let Some(zone) = state.get() {
                    view.zones.push(figures("req", &zone.counters, zone.len()));
                }
            }
            ZoneKind::Conn { state } => {
                if let Some(zone) = state.get() {
                    view.zones.push(figures("conn", &zone.counters, zone.len()));
                }
            }
        }
    }
    view
}
