//! Scalar values: flags, durations, sizes, numbers, words; and the
//! inverse of durations and sizes, written back in xps.conf syntax.

#![allow(clippy::result_large_err)]

use super::{Parsed, bad};
use crate::config::ast::Arg;
use crate::config::diagnostic::{Diagnostic, suggestion};
use crate::config::directives::{Key, Spec};
use crate::routing::{MinRate, Workers};
use std::time::Duration;

pub(super) fn flag(spec: &Spec, arg: &Arg) -> Parsed<bool> {
    match arg.value.as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        v => {
            let help = match v.to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" | "enable" | "enabled" => {
                    Some("did you mean `on`?".to_string())
                }
                "no" | "false" | "0" | "disable" | "disabled" => {
                    Some("did you mean `off`?".to_string())
                }
                _ => suggestion(v, ["on", "off"]),
            };
            Err(bad(
                arg,
                format!("`{}` is `on` or `off`, not `{v}`", spec.name),
                "expected `on` or `off`",
            )
            .maybe_help(help))
        }
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h`, `1d` and runs of them (`1m30s`); a
/// bare number is seconds.
pub fn duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .filter(|&s| s <= MAX_SECONDS)
            .map(Duration::from_secs);
    }
    let mut total: u64 = 0; // milliseconds
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(unit_ms)?)?;
    }
    (total <= MAX_SECONDS * 1000).then(|| Duration::from_millis(total))
}

/// Longest duration accepted: a year.
pub(super) const MAX_SECONDS: u64 = 365 * 86_400;

pub(super) fn duration_arg(spec: &Spec, arg: &Arg) -> Parsed<Duration> {
    match duration(&arg.value) {
        Some(d) if d.is_zero() && spec.key != Key::KeepaliveTimeout => Err(bad(
            arg,
            format!("`{}` must be longer than 0", spec.name),
            "zero",
        )),
        Some(d) => Ok(d),
        None => Err(bad(
            arg,
            format!("invalid duration `{}`", arg.value),
            "not a duration",
        )
        .help("a duration is a number and a unit: 250ms, 10s, 5m, 1h, 1d (at most 365d)")),
    }
}

/// `client_min_rate RATE [GRACE]` or `off`.
pub(super) fn min_rate(args: &[Arg]) -> Parsed<Option<MinRate>> {
    let Some(first) = args.first() else {
        return Err(Diagnostic::error("`client_min_rate` needs a rate or `off`"));
    };
    if first.value == "off" {
        if let Some(extra) = args.get(1) {
            return Err(bad(
                extra,
                "`client_min_rate off` takes nothing more",
                "not expected",
            ));
        }
        return Ok(None);
    }
    let bytes_per_second = match size(&first.value) {
        Some(0) | None => {
            return Err(bad(
                first,
                format!("invalid rate `{}`", first.value),
                "not a rate",
            )
            .help("a rate is bytes per second, optionally with k or m (240, 1k), or `off`"));
        }
        Some(n) => n,
    };
    let grace = match args.get(1) {
        None => MinRate::DEFAULT.grace,
        Some(a) => match duration(&a.value) {
            Some(d) => d,
            None => {
                return Err(bad(
                    a,
                    format!("invalid duration `{}`", a.value),
                    "not a duration",
                )
                .help("the grace period is a duration: 5s, 500ms, 1m"));
            }
        },
    };
    Ok(Some(MinRate {
        bytes_per_second,
        grace,
    }))
}

/// Parses `512`, `4k`, `1m`, `1g` (powers of 1024, either case).
pub fn size(text: &str) -> Option<u64> {
    let (digits, mult) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&text[..text.len() - 1], 1 << 20),
        b'g' | b'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(mult)
        .filter(|&n| n <= 1 << 50)
}

pub(super) fn bad_size(arg: Option<&Arg>) -> Diagnostic {
    let text = arg.map_or("", |a| a.value.as_str());
    let d = Diagnostic::error(format!("invalid size `{text}`"))
        .help("a size is a number of bytes, optionally with k, m or g: 512, 4k, 1m, 1g");
    match arg {
        Some(a) => d.at(a.span, "not a size"),
        None => d,
    }
}

pub(super) fn number(spec: &Spec, arg: &Arg, min: u64, max: u64) -> Parsed<u64> {
    match arg.value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            arg,
            format!(
                "`{}` is a whole number from {min} to {max}, not `{}`",
                spec.name, arg.value
            ),
            "out of range",
        )),
    }
}

pub(super) fn workers(arg: &Arg) -> Parsed<Workers> {
    if arg.value == "auto" {
        return Ok(Workers::Auto);
    }
    match arg.value.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(Workers::Count(n)),
        _ => Err(bad(
            arg,
            format!(
                "`workers` is `auto` or a number from 1 to 1024, not `{}`",
                arg.value
            ),
            "not a worker count",
        )),
    }
}

pub(super) fn text_or_off(spec: &Spec, arg: &Arg) -> Parsed<Option<String>> {
    if arg.value == "off" {
        return Ok(None);
    }
    let ok = match spec.key {
        Key::Charset => {
            !arg.value.is_empty()
                && arg
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        }
        _ => !arg.value.is_empty() && !arg.value.chars().any(|c| c.is_control()),
    };
    if ok {
        Ok(Some(arg.value.clone()))
    } else {
        Err(bad(
            arg,
            format!("invalid value for `{}`", spec.name),
            "not allowed here",
        )
        .help("use letters, digits and punctuation, or `off`"))
    }
}

pub(super) fn choice(
    spec: &Spec,
    arg: &Arg,
    choices: &'static [&'static str],
) -> Parsed<&'static str> {
    if let Some(c) = choices.iter().find(|c| **c == arg.value) {
        return Ok(c);
    }
    let list: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
    Err(bad(
        arg,
        format!(
            "`{}` is one of {}, not `{}`",
            spec.name,
            list.join(", "),
            arg.value
        ),
        "unknown value",
    )
    .maybe_help(suggestion(&arg.value, choices.iter().copied())))
}

pub(super) fn non_empty<'a>(spec: &Spec, arg: &'a Arg) -> Parsed<&'a str> {
    if arg.value.is_empty() || arg.value.contains('\0') {
        Err(bad(arg, format!("`{}` needs a path", spec.name), "empty"))
    } else {
        Ok(&arg.value)
    }
}

pub(super) fn name(arg: &Arg) -> Parsed<&str> {
    let ok = !arg.value.is_empty()
        && arg
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(&arg.value)
    } else {
        Err(bad(
            arg,
            format!("invalid upstream name `{}`", arg.value),
            "not a name",
        )
        .help("upstream names have letters, digits, `_`, `-` and `.` only"))
    }
}

/// The shortest exact form: `1d`, `2h`, `5m`, `10s`, `250ms`.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0".to_string();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// The shortest exact form: `1g`, `1m`, `16k`, `300`.
pub fn size_text(n: u64) -> String {
    for (unit, shift) in [("g", 30), ("m", 20), ("k", 10)] {
        if n != 0 && n % (1u64 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// `expires`: `off`, `epoch`, `max` or a duration.
pub(super) fn expires(arg: &Arg) -> Parsed<crate::routing::Expires> {
    use crate::routing::Expires;
    match arg.value.as_str() {
        "off" => Ok(Expires::Off),
        "epoch" => Ok(Expires::Epoch),
        "max" => Ok(Expires::Max),
        text => match duration(text) {
            Some(d) => Ok(Expires::After(d)),
            None => Err(bad(
                arg,
                format!("invalid `expires` value `{text}`"),
                "not a duration",
            )
            .help("write a duration (`1h`, `30d`), `max`, `epoch` or `off`")),
        },
    }
}
