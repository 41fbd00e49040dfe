//! `auth_basic` on a worker: each worker remembers the credentials it
//! checked, so a bcrypt hash (tens of milliseconds of CPU) is computed
//! once per client and password, not once per request; and it bounds the
//! hashing a client, and all clients together, can make it do, so trying
//! passwords at speed cannot take the worker from everyone else.

use crate::routing::auth::BasicAuth;
use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Credentials remembered per worker; the map starts again when full.
const MAX_REMEMBERED: usize = 1024;
/// Longer `Authorization` values are checked but not remembered (real
/// ones are tens of bytes), so the memory stays under 1,024 × 512 bytes.
const MAX_REMEMBERED_LEN: usize = 512;
/// New credentials one address may have checked per second, and in a
/// burst.
const PER_ADDRESS_RATE: f64 = 5.0;
const PER_ADDRESS_BURST: f64 = 10.0;
/// Addresses tracked for that; the table starts again when full.
const MAX_ADDRESSES: usize = 4096;
/// Of every second, at most this much of a worker goes to hashing.
const HASHING_PER_SECOND: Duration = Duration::from_millis(500);

/// What a checked `Authorization` value proved: the user file load it
/// was checked against, and the user. Only credentials that passed are
/// remembered, so wrong ones sent at speed cannot push them out.
type Checked = (u64, std::sync::Arc<str>);

/// The checked `Authorization` values of one worker, and its hashing
/// budget.
#[derive(Default)]
pub struct AuthCache {
    /// Header value → what it proved.
    checked: HashMap<Box<[u8]>, Checked>,
    /// Address → (tokens, when they were counted).
    addresses: HashMap<Option<IpAddr>, (f64, Instant)>,
    /// The start of the current second and the hashing time spent in it.
    window: Option<(Instant, Duration)>,
}

/// What a request's credentials prove.
pub enum Verdict {
    /// A user of the file, with the right password.
    User(std::sync::Arc<str>),
    /// Missing or wrong: 401.
    Refused,
    /// This address had too many new credentials checked: 429.
    TooMany,
    /// The worker's hashing time for this second is spent: 503.
    Busy,
}

impl AuthCache {
    /// Checks the `Authorization` header value of a request from `peer`
    /// (if any; `None` is a Unix socket client) against `auth`.
    pub fn check(
        &mut self,
        auth: &BasicAuth,
        header: Option<&[u8]>,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Verdict {
        let Some(value) = header else {
            return Verdict::Refused;
        };
        let id = auth.users.id;
        if let Some((checked_with, user)) = self.checked.get(value) {
            if *checked_with == id {
                return Verdict::User(user.clone());
            }
        }
        if !self.take_token(peer, now) {
            return Verdict::TooMany;
        }
        let (start, spent) = match self.window {
            Some((start, spent)) if now.duration_since(start) < Duration::from_secs(1) => {
                (start, spent)
            }
            _ => (now, Duration::ZERO),
        };
        if spent >= HASHING_PER_SECOND {
            return Verdict::Busy;
        }
        let began = Instant::now();
        let user: Option<std::sync::Arc<str>> = auth.users.check(value).map(std::sync::Arc::from);
        self.window = Some((start, spent + began.elapsed()));
        match user {
            Some(u) => {
                if value.len() <= MAX_REMEMBERED_LEN {
                    if self.checked.len() >= MAX_REMEMBERED {
                        self.checked.clear();
                    }
                    self.checked.insert(Box::from(value), (id, u.clone()));
                }
                Verdict::User(u)
            }
            None => Verdict::Refused,
        }
    }

    /// Takes one of `peer`'s tokens for a new credential (an IPv6 client
    /// is its /64: one machine usually holds the whole block; Unix socket
    /// clients, `None`, share one allowance).
    fn take_token(&mut self, peer: Option<IpAddr>, now: Instant) -> bool {
        let peer = peer.map(|ip| match ip {
            IpAddr::V6(v6) => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
            v4 => v4,
        });
        if self.addresses.len() >= MAX_ADDRESSES && !self.addresses.contains_key(&peer) {
            self.addresses.clear();
        }
        let (tokens, at) = self
            .addresses
            .entry(peer)
            .or_insert((PER_ADDRESS_BURST, now));
        let refill = now.duration_since(*at).as_secs_f64() * PER_ADDRESS_RATE;
        *tokens = (*tokens + refill).min(PER_ADDRESS_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
