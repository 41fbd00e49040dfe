//! `limit_req_zone`, `limit_conn_zone`, `limit_req` and `limit_conn`.

use super::http::template;
use super::scalar::size;
use super::{Parsed, bad};
use crate::config::ast::Arg;
use crate::limit::Rate;
use crate::routing::template::Template;

/// A zone as written: `KEY zone=NAME:SIZE [rate=RATE]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneSpec {
    /// The key.
    pub key: Template,
    /// `zone=NAME`.
    pub name: String,
    /// `:SIZE`, bytes.
    pub size: u64,
    /// `rate=` (request zones).
    pub rate: Option<Rate>,
}

/// Smallest zone: a few hundred keys.
const MIN_ZONE: u64 = 32 << 10;

/// `limit_req_zone KEY zone=NAME:SIZE rate=RATE` (`req`) or
/// `limit_conn_zone KEY zone=NAME:SIZE`.
pub(super) fn zone(args: &[Arg], req: bool) -> Parsed<ZoneSpec> {
    let key = template(&args[0])?;
    if !key.has_vars() {
        return Err(bad(
            &args[0],
            format!(
                "the key `{}` names no variable: every request would share one limit",
                args[0].value
            ),
            "a fixed key",
        )
        .help("limit per client with `$binary_remote_addr`"));
    }
    let mut name_size = None;
    let mut rate = None;
    for arg in &args[1..] {
        if let Some(z) = arg.value.strip_prefix("zone=") {
            let Some((name, sz)) = z.split_once(':') else {
                return Err(bad(arg, "`zone=` needs a name and a size", "no size")
                    .help("write `zone=NAME:10m`"));
            };
            if name.is_empty() {
                return Err(bad(arg, "the zone has no name", "no name"));
            }
            let bytes = size(sz).ok_or_else(|| {
                bad(arg, format!("invalid zone size `{sz}`"), "not a size")
                    .help("sizes are like `64k` or `10m`")
            })?;
            if bytes < MIN_ZONE {
                return Err(bad(
                    arg,
                    format!("a zone needs at least 32k, not `{sz}`"),
                    "too small",
                ));
            }
            name_size = Some((name.to_string(), bytes));
        } else if let Some(r) = arg.value.strip_prefix("rate=").filter(|_| req) {
            rate = Some(parse_rate(r).ok_or_else(|| {
                bad(arg, format!("invalid rate `{r}`"), "not a rate")
                    .help("a rate is requests per second or minute: `10r/s`, `30r/m`")
            })?);
        } else {
            let forms = if req {
                "`zone=NAME:SIZE` and `rate=RATE`"
            } else {
                "`zone=NAME:SIZE`"
            };
            return Err(bad(
                arg,
                format!("unknown parameter `{}`", arg.value),
                "not a parameter",
            )
            .help(format!("this directive takes the key, then {forms}")));
        }
    }
    let Some((name, size)) = name_size else {
        return Err(bad(&args[0], "the zone has no `zone=NAME:SIZE`", "no zone")
            .help("add `zone=NAME:10m`"));
    };
    if req && rate.is_none() {
        return Err(
            bad(&args[0], "`limit_req_zone` needs a `rate=`", "no rate").help("add `rate=10r/s`")
        );
    }
    Ok(ZoneSpec {
        key,
        name,
        size,
        rate,
    })
}

/// `10r/s`, `30r/m`.
fn parse_rate(text: &str) -> Option<Rate> {
    let (n, per_minute) = match (text.strip_suffix("r/s"), text.strip_suffix("r/m")) {
        (Some(n), _) => (n, false),
        (_, Some(n)) => (n, true),
        _ => return None,
    };
    let n: u64 = n.parse().ok().filter(|&n| n > 0 && n <= 1_000_000)?;
    let micro_per_sec = if per_minute {
        (n * 1_000_000).div_ceil(60)
    } else {
        n * 1_000_000
    };
    Some(Rate {
        micro_per_sec,
        per_minute,
    })
}

/// `limit_req zone=NAME [burst=N] [nodelay]`: `(zone, burst, nodelay)`.
pub(super) fn limit_req(args: &[Arg]) -> Parsed<(String, u64, bool)> {
    let mut zone = None;
    let mut burst = 0;
    let mut nodelay = false;
    for arg in args {
        if let Some(z) = arg.value.strip_prefix("zone=") {
            if z.is_empty() {
                return Err(bad(arg, "`zone=` needs a name", "no name"));
            }
            zone = Some(z.to_string());
        } else if let Some(b) = arg.value.strip_prefix("burst=") {
            burst = b.parse().ok().filter(|&b| b <= 100_000).ok_or_else(|| {
                bad(
                    arg,
                    format!("invalid burst `{b}`"),
                    "not a number from 0 to 100000",
                )
            })?;
        } else if arg.value == "nodelay" {
            nodelay = true;
        } else {
            return Err(bad(
                arg,
                format!("unknown parameter `{}`", arg.value),
                "not a parameter",
            )
            .help("`limit_req` takes `zone=NAME`, `burst=N` and `nodelay`"));
        }
    }
    let Some(zone) = zone else {
        return Err(bad(&args[0], "`limit_req` needs `zone=NAME`", "no zone"));
    };
    Ok((zone, burst, nodelay))
}

/// `limit_conn NAME N`.
pub(super) fn limit_conn(args: &[Arg]) -> Parsed<(String, u32)> {
    let max = args[1]
        .value
        .parse()
        .ok()
        .filter(|&n| (1..=1_000_000).contains(&n))
        .ok_or_else(|| {
            bad(
                &args[1],
                format!("invalid limit `{}`", args[1].value),
                "not a number from 1 to 1000000",
            )
        })?;
    Ok((args[0].value.clone(), max))
}
