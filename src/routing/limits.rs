//! `limit_req_zone`/`limit_req` and `limit_conn_zone`/`limit_conn` in the
//! routing table: the zones as configured (their state is attached by the
//! server when it installs the table) and what each route applies.

use super::template::Template;
use crate::limit::{ConnZone, Rate, ReqZone};
use crate::metrics::Attach;
use std::sync::Arc;

/// A zone as the config declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneDef {
    /// `zone=NAME`.
    pub name: String,
    /// What is limited: the key's value per request (an empty value is
    /// not limited).
    pub key: Template,
    /// `zone=NAME:SIZE`, bytes.
    pub size: u64,
    /// What it limits, with its state (attached on install).
    pub kind: ZoneKind,
}

/// A request zone or a connection zone.
#[derive(Clone, Debug, PartialEq)]
pub enum ZoneKind {
    /// `limit_req_zone … rate=RATE`.
    Req {
        /// `rate=`.
        rate: Rate,
        /// The buckets.
        state: Attach<ReqZone>,
    },
    /// `limit_conn_zone`.
    Conn {
        /// The counts of requests in progress.
        state: Attach<ConnZone>,
    },
}

impl ZoneDef {
    /// A `limit_req_zone` (else a `limit_conn_zone`).
    pub fn is_req(&self) -> bool {
        matches!(self.kind, ZoneKind::Req { .. })
    }

    /// The rate of a `limit_req_zone`.
    pub fn rate(&self) -> Option<&Rate> {
        match &self.kind {
            ZoneKind::Req { rate, .. } => Some(rate),
            ZoneKind::Conn { .. } => None,
        }
    }

    /// What must stay the same for a reload to keep the zone's state.
    pub fn signature(&self) -> String {
        format!("{}\u{0}{}", self.key.source(), self.size)
    }
}

/// `limit_req zone=NAME [burst=N] [nodelay]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitReq {
    /// The zone.
    pub zone: Arc<ZoneDef>,
    /// Requests over the rate that wait (or, with `nodelay`, pass).
    pub burst: u64,
    /// Serve the burst at once.
    pub nodelay: bool,
}

impl LimitReq {
    /// The directive as `--dump` shows it.
    pub fn text(&self) -> String {
        let mut s = format!("limit_req zone={}", self.zone.name);
        if self.burst > 0 {
            s.push_str(&format!(" burst={}", self.burst));
        }
        if self.nodelay {
            s.push_str(" nodelay");
        }
        s
    }
}

/// `limit_conn NAME N`.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitConn {
    /// The zone.
    pub zone: Arc<ZoneDef>,
    /// Requests of one key in progress at once.
    pub max: u32,
}

/// The limits of a route.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// `limit_req`.
    pub req: Vec<LimitReq>,
    /// `limit_req_status`.
    pub req_status: u16,
    /// `limit_conn`.
    pub conn: Vec<LimitConn>,
    /// `limit_conn_status`.
    pub conn_status: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            req: Vec::new(),
            req_status: 503,
            conn: Vec::new(),
            conn_status: 503,
        }
    }
}

impl Limits {
    /// Whether the route has any.
    pub fn any(&self) -> bool {
        !self.req.is_empty() || !self.conn.is_empty()
    }
}
