//! Argument text → typed values, one parser per [`Kind`].
//!
//! Each parser reports its own mistakes at the argument that is wrong, with
//! the forms it accepts. Resolving paths against a file's folder and names
//! against upstream groups is left to [`super::compile`].

// A parse error is a whole Diagnostic; they happen at config load only, so
// their size does not matter.
#![allow(clippy::result_large_err)]

use super::ast::{Arg, Directive};
use super::diagnostic::{Diagnostic, suggestion};
use super::directives::{Key, Kind, LOG_LEVELS, Spec};
use crate::http::target;
use crate::routing::{
    AccessTarget, ErrorPage, Header, HealthCheck, LogLevel, Match, Member, MinRate, Return,
    ServerName, Workers,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A directive's arguments, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// The arguments were wrong (already reported). The node is kept so
    /// that later checks know the directive was written and do not report
    /// its absence.
    Invalid,
    /// No arguments.
    Nothing,
    /// `on`/`off`.
    Flag(bool),
    /// A duration.
    Duration(Duration),
    /// A size in bytes.
    Size(u64),
    /// A whole number.
    Number(u64),
    /// `workers`.
    Workers(Workers),
    /// Text, or `None` for `off`.
    TextOrOff(Option<String>),
    /// One of a fixed set of words.
    Choice(&'static str),
    /// A path, glob or name as written.
    Text(String),
    /// `server_name` entries.
    ServerNames(Vec<ServerName>),
    /// File names or MIME types.
    Words(Vec<String>),
    /// A listen address and whether it is `default_server`.
    Listen(SocketAddr, bool),
    /// A location matcher.
    Location(Match),
    /// An `allow`/`deny` target.
    Access(AccessTarget),
    /// `return`.
    Return(Return),
    /// `error_page`.
    ErrorPage(ErrorPage),
    /// `add_header`/`proxy_set_header`.
    Header(Header),
    /// `proxy_pass`.
    ProxyPass(ProxyTarget),
    /// An upstream member.
    Member(Member),
    /// `health_check`.
    HealthCheck(HealthCheck),
    /// `error_log`.
    ErrorLog(LogSpec, LogLevel),
    /// `access_log`; `None` for off.
    AccessLog(Option<LogSpec>),
    /// `client_min_rate`; `None` for off.
    MinRate(Option<MinRate>),
}

/// A log destination as written; a path is resolved by compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogSpec {
    /// `stdout`.
    Stdout,
    /// `stderr`.
    Stderr,
    /// A file path as written.
    Path(String),
}

/// Where `proxy_pass` goes, before upstream names are resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum ProxyTarget {
    /// An upstream group name.
    Name(String),
    /// One backend: `HOST:PORT` as written and its address.
    Address(String, SocketAddr),
}

/// Parses the arguments of `d` (arity already checked) by the kind of
/// `spec`; problems go to `out`, and `None` means the value is unusable.
pub fn parse(spec: &Spec, d: &Directive, out: &mut Vec<Diagnostic>) -> Option<Value> {
    let args = &d.args;
    let first = args.first();
    let one = || first.map(|a| a.value.as_str()).unwrap_or("");
    let result = match spec.kind {
        Kind::Nothing => Ok(Value::Nothing),
        Kind::Flag => flag(spec, first?).map(Value::Flag),
        Kind::Duration => duration_arg(spec, first?).map(Value::Duration),
        Kind::Size => size(one()).map(Value::Size).ok_or_else(|| bad_size(first)),
        Kind::Number { min, max } => number(spec, first?, min, max).map(Value::Number),
        Kind::Workers => workers(first?).map(Value::Workers),
        Kind::TextOrOff => text_or_off(spec, first?).map(Value::TextOrOff),
        Kind::Choice(choices) => choice(spec, first?, choices).map(Value::Choice),
        Kind::Path | Kind::Glob => non_empty(spec, first?).map(|s| Value::Text(s.to_string())),
        Kind::Name => name(first?).map(|s| Value::Text(s.to_string())),
        Kind::ServerNames => Ok(Value::ServerNames(server_names(args, out))),
        Kind::Files => files(args).map(Value::Words),
        Kind::MimeTypes => mime_types(args).map(Value::Words),
        Kind::Listen { default_server } => {
            listen(args, default_server).map(|(a, def)| Value::Listen(a, def))
        }
        Kind::Location => location(args, out).map(Value::Location),
        Kind::Access => access(first?, out).map(Value::Access),
        Kind::Return => return_(args).map(Value::Return),
        Kind::ErrorPage => error_page(args).map(Value::ErrorPage),
        Kind::Header => header(spec, args).map(Value::Header),
        Kind::ProxyPass { http } => proxy_pass(first?, http).map(Value::ProxyPass),
        Kind::Member => member(args).map(Value::Member),
        Kind::HealthCheck => health_check(args).map(Value::HealthCheck),
        Kind::ErrorLog => error_log(args).map(|(t, l)| Value::ErrorLog(t, l)),
        Kind::AccessLog => Ok(Value::AccessLog(access_log(one()))),
        Kind::MinRate => min_rate(args).map(Value::MinRate),
    };
    match result {
        Ok(v) => Some(v),
        Err(d) => {
            out.push(d);
            None
        }
    }
}

type Parsed<T> = Result<T, Diagnostic>;

fn bad(arg: &Arg, message: impl Into<String>, label: &str) -> Diagnostic {
    Diagnostic::error(message).at(arg.span, label)
}

fn flag(spec: &Spec, arg: &Arg) -> Parsed<bool> {
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
const MAX_SECONDS: u64 = 365 * 86_400;

fn duration_arg(spec: &Spec, arg: &Arg) -> Parsed<Duration> {
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
fn min_rate(args: &[Arg]) -> Parsed<Option<MinRate>> {
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

fn bad_size(arg: Option<&Arg>) -> Diagnostic {
    let text = arg.map_or("", |a| a.value.as_str());
    let d = Diagnostic::error(format!("invalid size `{text}`"))
        .help("a size is a number of bytes, optionally with k, m or g: 512, 4k, 1m, 1g");
    match arg {
        Some(a) => d.at(a.span, "not a size"),
        None => d,
    }
}

fn number(spec: &Spec, arg: &Arg, min: u64, max: u64) -> Parsed<u64> {
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

fn workers(arg: &Arg) -> Parsed<Workers> {
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

fn text_or_off(spec: &Spec, arg: &Arg) -> Parsed<Option<String>> {
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

fn choice(spec: &Spec, arg: &Arg, choices: &'static [&'static str]) -> Parsed<&'static str> {
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

fn non_empty<'a>(spec: &Spec, arg: &'a Arg) -> Parsed<&'a str> {
    if arg.value.is_empty() || arg.value.contains('\0') {
        Err(bad(arg, format!("`{}` needs a path", spec.name), "empty"))
    } else {
        Ok(&arg.value)
    }
}

fn name(arg: &Arg) -> Parsed<&str> {
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

fn server_names(args: &[Arg], out: &mut Vec<Diagnostic>) -> Vec<ServerName> {
    let mut names: Vec<ServerName> = Vec::new();
    for arg in args {
        if arg.value == "_" {
            out.push(
                Diagnostic::warning("`_` is not special in xps")
                    .at(arg.span, "ignored")
                    .note("a server without `server_name` already matches any Host; mark it `default_server` on its `listen` to make it the fallback"),
            );
            continue;
        }
        match ServerName::parse(&arg.value) {
            Ok(n) if names.contains(&n) => {}
            Ok(n) => names.push(n),
            Err(why) => out.push(
                bad(
                    arg,
                    format!("invalid server name `{}`", arg.value),
                    "not a server name",
                )
                .help(why),
            ),
        }
    }
    names
}

fn files(args: &[Arg]) -> Parsed<Vec<String>> {
    for arg in args {
        if arg.value.is_empty() || arg.value.contains('\0') {
            return Err(bad(arg, "an index file name cannot be empty", "empty"));
        }
    }
    Ok(args.iter().map(|a| a.value.clone()).collect())
}

fn mime_types(args: &[Arg]) -> Parsed<Vec<String>> {
    let mut types = Vec::new();
    for arg in args {
        let t = arg.value.to_ascii_lowercase();
        let valid = t == "*"
            || t.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && t.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"/+-.*_".contains(&c))
            });
        if !valid {
            return Err(bad(
                arg,
                format!("invalid MIME type `{}`", arg.value),
                "expected TYPE/SUBTYPE",
            )
            .help("write types like `text/html` or `application/json`, or `*` for all"));
        }
        if !types.contains(&t) {
            types.push(t);
        }
    }
    Ok(types)
}

/// Parses `PORT`, `ADDR:PORT`, `[V6]:PORT`, `localhost:PORT`, `*:PORT`.
pub fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port(text)?));
    }
    let (host, port_text) = split_host_port(text).ok_or("expected [ADDRESS:]PORT")?;
    let port = port(port_text)?;
    let ip: IpAddr = match host {
        "*" => Ipv4Addr::UNSPECIFIED.into(),
        "localhost" => Ipv4Addr::LOCALHOST.into(),
        h => h.parse().map_err(|_| {
            format!("`{h}` is not an IP address; listen takes an address, `localhost` or `*`")
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Splits `HOST:PORT` and `[V6]:PORT` (brackets removed).
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = text.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!("`{text}` is not a port; ports are 1-65535")),
    }
}

fn listen(args: &[Arg], default_allowed: bool) -> Parsed<(SocketAddr, bool)> {
    let first = &args[0];
    let addr = listen_addr(&first.value).map_err(|why| {
        bad(
            first,
            format!("invalid listen address `{}`", first.value),
            "not an address",
        )
        .help(why)
    })?;
    let mut default_server = false;
    for arg in &args[1..] {
        match arg.value.as_str() {
            "default_server" if default_allowed => default_server = true,
            "default_server" | "default" => {
                return Err(bad(
                    arg,
                    "`default_server` applies to HTTP servers only",
                    "not here",
                ));
            }
            "ssl" | "quic" => return Err(bad(arg, "TLS is not supported by xps", "unsupported")),
            "http2" => return Err(bad(arg, "HTTP/2 is not supported by xps", "unsupported")),
            other => {
                return Err(bad(
                    arg,
                    format!("unknown listen option `{other}`"),
                    "unknown option",
                )
                .maybe_help(suggestion(other, ["default_server"]))
                .note("xps sets the backlog and SO_REUSEPORT itself"));
            }
        }
    }
    Ok((addr, default_server))
}

fn location(args: &[Arg], out: &mut Vec<Diagnostic>) -> Parsed<Match> {
    let (modifier, path) = match args {
        [path] => (None, path),
        [m, path] => (Some(m), path),
        _ => return Err(Diagnostic::error("`location` takes [=] PATH")),
    };
    let exact = match modifier.map(|m| m.value.as_str()) {
        None => false,
        Some("=") => true,
        Some("^~") => {
            out.push(
                Diagnostic::warning("`^~` makes no difference in xps")
                    .at(modifier.map_or(path.span, |m| m.span), "ignored")
                    .note("xps has no regular-expression locations; every prefix location already ends the search"),
            );
            false
        }
        Some("~" | "~*") => {
            return Err(bad(
                modifier.unwrap_or(path),
                "regular-expression locations are not supported",
                "unsupported",
            )
            .help("use a prefix location (`location /p`) or an exact one (`location = /p`)"));
        }
        Some(other) => {
            let m = modifier.unwrap_or(path);
            return Err(bad(
                m,
                format!("unknown location modifier `{other}`"),
                "expected `=` or a path",
            )
            .help("write `location /path { … }` or `location = /path { … }`"));
        }
    };
    if !path.value.starts_with('/') {
        return Err(bad(
            path,
            format!("location path `{}` does not start with `/`", path.value),
            "expected /…",
        ));
    }
    let normal = target::normalise(&path.value)
        .map_err(|e| bad(path, format!("invalid location path: {e}"), "invalid"))?;
    if normal != path.value && !path.value.contains('%') {
        return Err(bad(
            path,
            format!("location path `{}` is not normalised", path.value),
            "never matches",
        )
        .help(format!(
            "requests are matched after resolving `.`, `..` and `//`; write `{normal}`"
        )));
    }
    Ok(if exact {
        Match::Exact(normal)
    } else {
        Match::Prefix(normal)
    })
}

fn access(arg: &Arg, out: &mut Vec<Diagnostic>) -> Parsed<AccessTarget> {
    let text = arg.value.as_str();
    if text == "all" {
        return Ok(AccessTarget::All);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(AccessTarget::Net(ip.into()));
    }
    match text.parse::<ipnet::IpNet>() {
        Ok(net) => {
            if net.trunc() != net {
                out.push(
                    Diagnostic::warning(format!("`{text}` has host bits set"))
                        .at(arg.span, format!("same as {}", net.trunc()))
                        .help(format!("write `{}`", net.trunc())),
                );
            }
            Ok(AccessTarget::Net(net.trunc()))
        }
        Err(_) => Err(bad(
            arg,
            format!("invalid address `{text}`"),
            "not an address or CIDR block",
        )
        .help("write an IPv4 or IPv6 address, a CIDR block like 10.0.0.0/8, or `all`")
        .maybe_help(suggestion(text, ["all"]))),
    }
}

/// Parses a status code in `range`.
fn status(arg: &Arg, range: std::ops::RangeInclusive<u16>) -> Parsed<u16> {
    match arg.value.parse::<u16>() {
        Ok(c) if arg.value.len() == 3 && range.contains(&c) => Ok(c),
        _ => Err(bad(
            arg,
            format!("invalid status code `{}`", arg.value),
            &format!(
                "expected a status code from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn return_(args: &[Arg]) -> Parsed<Return> {
    let first = &args[0];
    if first.value.starts_with('/') || first.value.contains("://") {
        return Err(bad(
            first,
            "`return` needs a status code first",
            "expected a status code",
        )
        .help(format!("write `return 302 {};`", first.value)));
    }
    let code = status(first, 100..=599)?;
    if code < 200 {
        return Err(bad(
            first,
            "`return` cannot send an informational (1xx) status",
            "not allowed",
        ));
    }
    let text = args.get(1).map(|a| a.value.clone());
    if Return::is_redirect(code) && text.as_deref().is_none_or(str::is_empty) {
        return Err(bad(
            first,
            format!("`return {code}` needs a URL"),
            "redirect without a target",
        )
        .help(format!(
            "write `return {code} https://example.test/;` or `return {code} /path;`"
        )));
    }
    if let (Some(t), Some(arg)) = (&text, args.get(1)) {
        if Return::is_redirect(code) && t.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad(
                arg,
                "a redirect URL cannot contain blanks or control characters",
                "invalid URL",
            ));
        }
    }
    Ok(Return { code, text })
}

fn error_page(args: &[Arg]) -> Parsed<ErrorPage> {
    let (path, codes) = args
        .split_last()
        .ok_or_else(|| Diagnostic::error("`error_page` takes CODE… PATH"))?;
    let codes = codes
        .iter()
        .map(|a| status(a, 300..=599))
        .collect::<Parsed<Vec<u16>>>()?;
    if !path.value.starts_with('/') {
        return Err(bad(
            path,
            format!("error page `{}` is not a path", path.value),
            "expected /…",
        )
        .help("error pages are files under the root, written as a path like `/404.html`"));
    }
    Ok(ErrorPage {
        codes,
        path: path.value.clone(),
    })
}

/// Headers xps frames or manages itself: setting them would break framing.
const MANAGED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

fn header(spec: &Spec, args: &[Arg]) -> Parsed<Header> {
    let (name, value) = (&args[0], &args[1]);
    let token = !name.value.is_empty()
        && name
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(bad(
            name,
            format!("invalid header name `{}`", name.value),
            "not a header name",
        )
        .help("header names have letters, digits and `-` (no blanks or colons)"));
    }
    if MANAGED_HEADERS.contains(&name.value.to_ascii_lowercase().as_str()) {
        return Err(bad(
            name,
            format!("`{}` cannot set `{}`", spec.name, name.value),
            "managed by xps",
        )
        .note("xps sets framing and connection headers itself"));
    }
    if value.value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(bad(
            value,
            "a header value cannot contain line breaks or control characters",
            "invalid",
        ));
    }
    if value.value.is_empty() && spec.key == Key::AddHeader {
        return Err(bad(value, "`add_header` needs a value", "empty"));
    }
    Ok(Header {
        name: name.value.clone(),
        value: value.value.clone(),
    })
}

/// Resolves `HOST` to an address: IP literals, `localhost` (127.0.0.1),
/// else the system resolver (IPv4 preferred).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if host == "localhost" {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    if !valid {
        return Err(format!("`{host}` is not a host name or address"));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{host}` has no address"))
}

/// Parses `HOST:PORT` and resolves it.
fn backend(arg: &Arg, text: &str) -> Parsed<SocketAddr> {
    let (host, port_text) = split_host_port(text).ok_or_else(|| {
        bad(
            arg,
            format!("invalid backend address `{text}`"),
            "expected HOST:PORT",
        )
    })?;
    let port = port(port_text)
        .map_err(|why| bad(arg, format!("invalid port in `{text}`"), "bad port").help(why))?;
    resolve(host, port).map_err(|why| {
        bad(
            arg,
            format!("invalid backend address `{text}`"),
            "cannot use this address",
        )
        .help(why)
    })
}

fn proxy_pass(arg: &Arg, http: bool) -> Parsed<ProxyTarget> {
    let text = arg.value.as_str();
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(bad(
            arg,
            "xps cannot proxy to https:// backends",
            "TLS is not supported",
        ));
    }
    let rest = match lower.strip_prefix("http://") {
        Some(_) if !http => {
            return Err(bad(
                arg,
                "a stream proxy relays raw TCP: no `http://`",
                "not HTTP here",
            )
            .help(format!("write `proxy_pass {};`", &text[7..])));
        }
        Some(_) => &text[7..],
        None if text.contains("://") => {
            return Err(bad(
                arg,
                format!("unsupported scheme in `{text}`"),
                "expected http://",
            ));
        }
        None => text,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !path.is_empty() {
        return Err(bad(arg, "`proxy_pass` takes no path", "path given")
            .help(format!(
                "write `proxy_pass {}{authority};`",
                &text[..text.len() - rest.len()]
            ))
            .note("xps sends each request's own path and query upstream unchanged"));
    }
    if authority.contains(':') {
        return backend(arg, authority)
            .map(|addr| ProxyTarget::Address(authority.to_string(), addr));
    }
    if authority.is_empty() {
        return Err(bad(
            arg,
            "`proxy_pass` needs an upstream name or HOST:PORT",
            "empty",
        ));
    }
    Ok(ProxyTarget::Name(authority.to_string()))
}

/// Splits `key=value` options; `Err` is the unknown or malformed argument.
fn options<'a>(
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

fn option_number(arg: &Arg, v: &str, min: u32, max: u32) -> Parsed<u32> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            arg,
            format!("`{}` is out of range", arg.value),
            &format!("expected {min} to {max}"),
        )),
    }
}

fn option_duration(arg: &Arg, v: &str) -> Parsed<Duration> {
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

fn member(args: &[Arg]) -> Parsed<Member> {
    let first = &args[0];
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
    let addr = backend(first, &first.value)?;
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

fn health_check(args: &[Arg]) -> Parsed<HealthCheck> {
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

fn log_spec(text: &str) -> LogSpec {
    match text {
        "stdout" => LogSpec::Stdout,
        "stderr" => LogSpec::Stderr,
        path => LogSpec::Path(path.to_string()),
    }
}

fn error_log(args: &[Arg]) -> Parsed<(LogSpec, LogLevel)> {
    let level = match args.get(1) {
        None => LogLevel::Info,
        Some(arg) => LogLevel::from_name(&arg.value).ok_or_else(|| {
            bad(
                arg,
                format!("unknown log level `{}`", arg.value),
                "expected debug, info, warn or error",
            )
            .maybe_help(suggestion(&arg.value, LOG_LEVELS.iter().copied()))
        })?,
    };
    if args[0].value.is_empty() {
        return Err(bad(&args[0], "`error_log` needs stderr or a path", "empty"));
    }
    Ok((log_spec(&args[0].value), level))
}

fn access_log(text: &str) -> Option<LogSpec> {
    (text != "off").then(|| log_spec(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(duration("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(duration("75"), Some(Duration::from_secs(75)));
        assert_eq!(duration("0"), Some(Duration::ZERO));
        for bad in [
            "",
            "10x",
            "s",
            "1.5s",
            "-1s",
            "99999999999999999999s",
            "400d",
            "10 s",
        ] {
            assert_eq!(duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(size("512"), Some(512));
        assert_eq!(size("4k"), Some(4096));
        assert_eq!(size("1M"), Some(1 << 20));
        assert_eq!(size("1g"), Some(1 << 30));
        for bad in ["", "k", "1kb", "1.5m", "-1", "99999999999999999999g"] {
            assert_eq!(size(bad), None, "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            listen_addr("8001"),
            Ok("0.0.0.0:8001".parse().expect("addr"))
        );
        assert_eq!(
            listen_addr("[::]:8001"),
            Ok("[::]:8001".parse().expect("addr"))
        );
        assert_eq!(
            listen_addr("localhost:80"),
            Ok("127.0.0.1:80".parse().expect("addr"))
        );
        assert_eq!(listen_addr("*:80"), Ok("0.0.0.0:80".parse().expect("addr")));
        assert!(listen_addr("0").is_err());
        assert!(listen_addr("70000").is_err());
        assert!(listen_addr("example.test:80").is_err());
        assert!(listen_addr("::1:80").is_err());
    }
}
