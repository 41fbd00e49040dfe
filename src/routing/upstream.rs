//! Upstream groups as configured: members and policy. Run-time state
//! (health, idle connections) lives in `crate::upstream`, keyed by group
//! name and member address, so that it outlives a reload.

use super::Origin;
use crate::upstream::Balance;

use std::time::Duration;

/// An `upstream NAME { … }` group, or the implicit one-member group of a
/// `proxy_pass HOST:PORT`.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamGroup {
    /// The group name; for an implicit group, `HOST:PORT` as written.
    pub name: String,
    /// Members in declaration order.
    pub members: Vec<Member>,
    /// `balance`.
    pub balance: Balance,
    /// `keepalive`: idle connections kept per worker.
    pub keepalive: u64,
    /// `health_check`.
    pub health_check: Option<HealthCheck>,
    /// Made by a `proxy_pass HOST:PORT` rather than declared.
    pub implicit: bool,
    /// Where it was defined.
    pub origin: Origin,
}

/// One `server HOST:PORT …` of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// `HOST:PORT` as written (for logs and metrics labels).
    pub name: String,
    /// The resolved address, or a Unix socket.
    pub addr: crate::upstream::Endpoint,
    /// `weight=N`.
    pub weight: u32,
    /// `max_fails=N`; 0 never takes the member out.
    pub max_fails: u32,
    /// `fail_timeout=D`.
    pub fail_timeout: Duration,
    /// `backup`.
    pub backup: bool,
    /// This member's counters (attached when the table is installed).
    pub stats: crate::metrics::Attach<crate::metrics::MemberStats>,
}

impl Member {
    /// `fail_timeout` when none is given.
    pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

    /// A member with every option at its default (`weight=1 max_fails=1
    /// fail_timeout=10s`, not a backup).
    pub fn new(name: String, addr: crate::upstream::Endpoint) -> Member {
        Member {
            name,
            addr,
            weight: 1,
            max_fails: 1,
            fail_timeout: Member::DEFAULT_FAIL_TIMEOUT,
            backup: false,
            stats: Default::default(),
        }
    }

    /// The address with the options that differ from the defaults:
    /// `weight` and `backup`, and with `limits` also `max_fails` and
    /// `fail_timeout`.
    pub fn label(&self, limits: bool) -> String {
        let mut s = self.addr.to_string();
        if self.weight != 1 {
            s.push_str(&format!(" weight={}", self.weight));
        }
        if limits && self.max_fails != 1 {
            s.push_str(&format!(" max_fails={}", self.max_fails));
        }
        if limits && self.fail_timeout != Member::DEFAULT_FAIL_TIMEOUT {
            s.push_str(&format!(" fail_timeout={:?}", self.fail_timeout));
        }
        if self.backup {
            s.push_str(" backup");
        }
        s
    }
}

/// `health_check PATH [interval=D] [fails=N] [passes=N]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path probed with GET.
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
    /// Failed probes in a row that take a member out.
    pub fails: u32,
    /// Passed probes in a row that bring it back.
    pub passes: u32,
}
