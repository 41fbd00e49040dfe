//! `limit_req` and `limit_conn` for one request: its key in each zone,
//! the decision, and the slots it holds while it is answered.

use super::vars::RequestVars;
use crate::limit::{ConnZone, Decision, Slot};
use crate::routing::Route;
use std::time::{Duration, Instant};

/// What the limits make of a request.
pub enum Outcome {
    /// Answer it now, holding these `limit_conn` slots until it is done.
    Pass(Vec<Slot>),
    /// Answer it after this long (`limit_req` without `nodelay`).
    Delay(Duration),
    /// Refuse it with this status and `Retry-After` (seconds).
    Reject(u16, u32),
}

/// Applies the route's limits. `delayed`: the request already waited its
/// `limit_req` turn (only `limit_conn` is left).
pub fn check(route: &Route, vars: &RequestVars<'_>, delayed: bool, now: Instant) -> Outcome {
    let limits = &route.limits;
    if !delayed {
        let mut wait = Duration::ZERO;
        for l in &limits.req {
            let (Some(zone), Some(rate)) = (l.zone.req.get(), l.zone.rate) else {
                continue;
            };
            let key = l.zone.key.render(vars);
            if key.is_empty() {
                continue;
            }
            match zone.take(&key, now, rate, l.burst, l.nodelay) {
                Decision::Pass => {}
                Decision::Delay(d) => wait = wait.max(d),
                Decision::Reject(after) => {
                    return Outcome::Reject(limits.req_status, seconds(after));
                }
            }
        }
        if !wait.is_zero() {
            return Outcome::Delay(wait);
        }
    }
    let mut slots = Vec::new();
    for l in &limits.conn {
        let Some(zone) = l.zone.conn.get() else {
            continue;
        };
        let key = l.zone.key.render(vars);
        if key.is_empty() {
            continue;
        }
        match ConnZone::acquire(zone, &key, l.max, now) {
            Some(slot) => slots.push(slot),
            // The slots taken so far are given back as `slots` drops.
            None => return Outcome::Reject(limits.conn_status, 1),
        }
    }
    Outcome::Pass(slots)
}

/// A wait as whole seconds for `Retry-After`: rounded up, at least 1.
fn seconds(d: Duration) -> u32 {
    (d.as_millis().div_ceil(1000) as u32).max(1)
}
