//! Upstream members (`server ADDR key=value…`) and `health_check`.

#![allow(clippy::result_large_err)]

use super::net::backend;
use super::scalar::duration;
use super::{Parsed, bad};
use crate::config::ast::Arg;
use crate::config::diagnostic::suggestion;
use crate::routing::{HealthCheck, Member};
use std::time::Duration;

/// Splits `key=value` options; `Err` is the unknown or malformed argument.
pub(super) fn options<'a>(
    args: &'a [Arg],
    keys: &[&'static str],
) -> Parsed<Vec<(&'static str, &'a Arg, &'a str)>> {
    let mut found: Vec<(&'static str, &Arg, &str)> = Vec::new();
    for arg in args {
        let (k, v) = arg
            .value
            .split_once('=')
            .unwrap_or((arg.value.as_str(), ""));
        let Some(key) = keys.iter().find(|key| key.trim_end_matches('=') == k) else {
            return Err(bad(arg, format!("unknown option `{k}`"), "unknown option")
                .maybe_help(suggestion(k, keys.iter().map(|k| k.trim_end_matches('='))))
                .note(format!(
                    "the options are {}",
                    keys.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
        };
        if found.iter().any(|(f, _, _)| f == key) {
            return Err(bad(arg, format!("option `{k}` given twice"), "repeated"));
        }
        if key.ends_with('=') != arg.value.contains('=') || (key.ends_with('=') && v.is_empty()) {
            let expected = if key.ends_with('=') {
                format!("`{key}VALUE`")
            } else {
                format!("`{key}` alone")
            };
            return Err(bad(
                arg,
                format!("malformed option `{}`", arg.value),
                "malformed",
            )
            .help(format!("write {expected}")));
        }
        found.push((key, arg, v));
    }
    Ok(found)
}

pub(super) fn option_number(arg: &Arg, v: &str, min: u32, max: u32) -> Parsed<u32> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            arg,
            format!("`{}` is out of range", arg.value),
            &format!("expected {min} to {max}"),
        )),
    }
}

pub(super) fn option_duration(arg: &Arg, v: &str) -> Parsed<Duration> {
    match duration(v) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(bad(
            arg,
            format!("invalid duration in `{}`", arg.value),
            "not a duration",
        )
        .help("a duration is a number and a unit: 250ms, 10s, 5m, 1h, 1d")),
    }
}

pub(super) fn member(args: &[Arg]) -> Parsed<Member> {
    let first = &args[0];
    let unix = super::net::strip_unix(&first.value);
    if first.value.starts_with("http://") {
        return Err(bad(
            first,
            "upstream members are HOST:PORT, without `http://`",
            "scheme given",
        )
        .help(format!("write `server {};`", &first.value[7..])));
    }
    if !first.value.contains(':') {
        return Err(bad(
            first,
            format!("upstream member `{}` needs a port", first.value),
            "expected HOST:PORT",
        )
        .help(format!("write `server {}:80;`", first.value)));
    }
    let addr = match unix {
        Some(path) => super::net::unix_path(first, path)?,
        None => backend(first, &first.value)?.into(),
    };
    let mut m = Member::new(first.value.clone(), addr);
    for (key, arg, v) in options(
        &args[1..],
        &["weight=", "max_fails=", "fail_timeout=", "backup"],
    )? {
        match key {
            "weight=" => m.weight = option_number(arg, v, 1, 1000)?,
            "max_fails=" => m.max_fails = option_number(arg, v, 0, 1000)?,
            "fail_timeout=" => m.fail_timeout = option_duration(arg, v)?,
            _ => m.backup = true,
        }
    }
    Ok(m)
}

pub(super) fn health_check(args: &[Arg]) -> Parsed<HealthCheck> {
    let path = &args[0];
    if !path.value.starts_with('/') || path.value.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad(
            path,
            format!("health check path `{}` is not a path", path.value),
            "expected /…",
        ));
    }
    let mut h = HealthCheck {
        path: path.value.clone(),
        interval: Duration::from_secs(5),
        fails: 2,
        passes: 1,
    };
    for (key, arg, v) in options(&args[1..], &["interval=", "fails=", "passes="])? {
        match key {
            "interval=" => h.interval = option_duration(arg, v)?,
            "fails=" => h.fails = option_number(arg, v, 1, 100)?,
            _ => h.passes = option_number(arg, v, 1, 100)?,
        }
    }
    Ok(h)
}
