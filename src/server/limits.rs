//! `limit_req` and `limit_conn` for one request: its key in each zone,
//! the decision, and the slots it holds while it is answered.

use super::vars::RequestVars;
use crate::limit::{ConnZone, Decision, Slot};
use crate::routing::Route;
use crate::routing::limits::ZoneKind;
use std::time::{Duration, Instant};

/// What the limits make of a request.
pub enum Outcome {
    /// Answer it now (holding the `limit_conn` slots put in `slots` until
    /// it is done).
    Pass,
    /// Answer it after this long (`limit_req` without `nodelay`).
    Delay(Duration),
    /// Refuse it with this status and `Retry-After` (seconds).
    Reject(u16, u32),
}

/// Applies the route's limits. `delayed`: the request already waited its
/// `limit_req` turn (only `limit_conn` is left).
pub fn check(
    route: &Route,
    vars: &RequestVars<'_>,
    delayed: bool,
    now: Instant,
    slots: &mut Vec<Slot>,
) -> Outcome {
    let limits = &route.limits;
    if !delayed {
        // With several limits, none counts the request unless all let it
        // through (a first look at each, then the counting).
        let several = limits.req.len() > 1;
        for commit in [!several, true] {
            let mut wait = Duration::ZERO;
            for l in &limits.req {
                let ZoneKind::Req { rate, state } = &l.zone.kind else {
                    continue;
                };
                let (Some(zone), Some(key)) = (state.get(), KeyBuf::of(&l.zone.key, vars)) else {
                    continue;
                };
                match zone.take(key.bytes(), now, *rate, (l.burst, l.nodelay), commit) {
                    Decision::Pass => {}
                    Decision::Delay(d) => wait = wait.max(d),
                    Decision::Reject(after) => {
                        return Outcome::Reject(limits.req_status, seconds(after));
                    }
                }
            }
            if commit {
                if !wait.is_zero() {
                    return Outcome::Delay(wait);
                }
                break;
            }
        }
    }
    for l in &limits.conn {
        let ZoneKind::Conn { state } = &l.zone.kind else {
            continue;
        };
        let (Some(zone), Some(key)) = (state.get(), KeyBuf::of(&l.zone.key, vars)) else {
            continue;
        };
        match ConnZone::acquire(zone, key.bytes(), l.max, now) {
            Some(slot) => slots.push(slot),
            None => {
                // The slots taken so far are given back.
                slots.clear();
                return Outcome::Reject(limits.conn_status, 1);
            }
        }
    }
    Outcome::Pass
}

/// A request's key in a zone: the client's address as its bytes (the
/// usual key, without formatting it), or the key's text.
enum KeyBuf<'a> {
    Addr([u8; 16], usize),
    Text(std::borrow::Cow<'a, str>),
}

impl<'a> KeyBuf<'a> {
    /// The key of a request; `None` when it is empty (not limited).
    fn of(
        key: &'a crate::routing::template::Template,
        vars: &RequestVars<'_>,
    ) -> Option<KeyBuf<'a>> {
        use crate::routing::template::Var;
        match key.single_var() {
            Some(Var::RemoteAddr | Var::BinaryRemoteAddr) => {
                let mut b = [0u8; 16];
                match vars.peer.ip() {
                    Some(std::net::IpAddr::V4(v4)) => {
                        b[..4].copy_from_slice(&v4.octets());
                        Some(KeyBuf::Addr(b, 4))
                    }
                    Some(std::net::IpAddr::V6(v6)) => {
                        b.copy_from_slice(&v6.octets());
                        Some(KeyBuf::Addr(b, 16))
                    }
                    // Unix socket clients share one key, as in nginx
                    // (`unix:`, five bytes: never an address's four or 16).
                    None => {
                        b[..5].copy_from_slice(b"unix:");
                        Some(KeyBuf::Addr(b, 5))
                    }
                }
            }
            _ => Some(KeyBuf::Text(key.render(vars))).filter(|k| !k.bytes().is_empty()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            KeyBuf::Addr(b, n) => &b[..*n],
            KeyBuf::Text(t) => t.as_bytes(),
        }
    }
}

/// A wait as whole seconds for `Retry-After`: rounded up, at least 1.
fn seconds(d: Duration) -> u32 {
    (d.as_millis().div_ceil(1000) as u32).max(1)
}
