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
use super::directives::{Kind, LOG_LEVELS, Spec};
use crate::log::LogLevel;
use crate::routing::{
    AccessTarget, ErrorPage, Header, HealthCheck, Match, Member, MinRate, Return, ServerName,
    Workers,
};

mod http;
mod limit;
mod net;
mod scalar;
mod upstream;

use http::{error_page, files, header, location, mime_types, return_, server_names, try_files};
pub use limit::ZoneSpec;
use net::{access, listen, proxy_pass};
pub use net::{listen_addr, resolve};
use scalar::{
    bad_size, choice, duration_arg, expires, flag, min_rate, name, non_empty, number, text_or_off,
    workers,
};
pub use scalar::{duration, duration_text, size, size_text};
use std::time::Duration;
use upstream::{health_check, member};

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
    /// `expires`.
    Expires(crate::routing::Expires),
    /// `try_files`.
    TryFiles(crate::routing::TryFiles),
    /// One of a fixed set of words.
    Choice(&'static str),
    /// A path, glob or name as written.
    Text(String),
    /// `server_name` entries.
    ServerNames(Vec<ServerName>),
    /// File names or MIME types.
    Words(Vec<String>),
    /// A listen address, whether it is `default_server`, and whether it
    /// takes the PROXY protocol.
    Listen(crate::upstream::Endpoint, bool, bool),
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
    ProxyPass(ProxyTarget, Option<String>),
    /// An upstream member.
    Member(Member),
    /// `health_check`.
    HealthCheck(HealthCheck),
    /// `error_log`.
    ErrorLog(LogSpec, LogLevel),
    /// `access_log`; `None` for off; with the name of its `log_format`.
    AccessLog(Option<LogSpec>, Option<String>),
    /// `log_format`: name and the compiled line.
    LogFormat(crate::routing::log_format::LogFormat),
    /// `client_min_rate`; `None` for off.
    MinRate(Option<MinRate>),
    /// `limit_req_zone`, `limit_conn_zone`.
    Zone(ZoneSpec),
    /// `limit_req`: zone, burst, nodelay.
    LimitReq(String, u64, bool),
    /// `limit_conn`: zone, limit.
    LimitConn(String, u32),
}

/// `real_ip_header`: a header name, or `proxy_protocol`.
fn real_ip_header(arg: &Arg) -> Parsed<String> {
    if crate::http::is_token(&arg.value) {
        Ok(arg.value.clone())
    } else {
        Err(bad(
            arg,
            format!("invalid header name `{}`", arg.value),
            "not a header name",
        )
        .help("write a header name (`X-Forwarded-For`, `X-Real-IP`) or `proxy_protocol`"))
    }
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
    /// One backend: `HOST:PORT` (or `unix:/path`) as written and where it
    /// is.
    Address(String, crate::upstream::Endpoint),
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
        Kind::Expires => expires(first?).map(Value::Expires),
        Kind::Choice(choices) => choice(spec, first?, choices).map(Value::Choice),
        Kind::Path | Kind::Glob => non_empty(spec, first?).map(|s| Value::Text(s.to_string())),
        Kind::Name => name(first?).map(|s| Value::Text(s.to_string())),
        Kind::ServerNames => Ok(Value::ServerNames(server_names(args, out))),
        Kind::Files => files(args).map(Value::Words),
        Kind::MimeTypes => mime_types(args).map(Value::Words),
        Kind::Listen { default_server } => {
            listen(args, default_server).map(|(a, def, pp)| Value::Listen(a, def, pp))
        }
        Kind::Location => location(args, out).map(Value::Location),
        Kind::Access => access(first?, out).map(Value::Access),
        Kind::Return => return_(args, out).map(Value::Return),
        Kind::TryFiles => try_files(args).map(Value::TryFiles),
        Kind::ErrorPage => error_page(args).map(Value::ErrorPage),
        Kind::Header => header(spec, args).map(Value::Header),
        Kind::ProxyPass { http } => {
            proxy_pass(first?, http).map(|(target, uri)| Value::ProxyPass(target, uri))
        }
        Kind::Member => member(args).map(Value::Member),
        Kind::HealthCheck => health_check(args).map(Value::HealthCheck),
        Kind::ErrorLog => error_log(args).map(|(t, l)| Value::ErrorLog(t, l)),
        Kind::AccessLog => access_log(args).map(|(l, f)| Value::AccessLog(l, f)),
        Kind::LogFormat => log_format(args).map(Value::LogFormat),
        Kind::MinRate => min_rate(args).map(Value::MinRate),
        Kind::Zone { req } => limit::zone(args, req).map(Value::Zone),
        Kind::LimitReq => limit::limit_req(args).map(|(z, b, n)| Value::LimitReq(z, b, n)),
        Kind::LimitConn => limit::limit_conn(args).map(|(z, n)| Value::LimitConn(z, n)),
        Kind::RealIpHeader => real_ip_header(first?).map(Value::Text),
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

fn access_log(args: &[Arg]) -> Parsed<(Option<LogSpec>, Option<String>)> {
    let text = args[0].value.as_str();
    let format = args.get(1).map(|a| a.value.clone());
    if text == "off" {
        if let Some(extra) = args.get(1) {
            return Err(bad(
                extra,
                "`access_log off` takes nothing more",
                "extra argument",
            ));
        }
        return Ok((None, None));
    }
    Ok((Some(log_spec(text)), format))
}

/// `log_format NAME [escape=default|json|none] STRING…`.
fn log_format(args: &[Arg]) -> Parsed<crate::routing::log_format::LogFormat> {
    use crate::routing::log_format::{Escape, LogFormat};
    let name = &args[0];
    if name.value == "combined" {
        return Err(bad(name, "`combined` is the built-in format", "taken")
            .help("give your format another name"));
    }
    if name.value.is_empty()
        || !name
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(bad(
            name,
            format!("invalid format name `{}`", name.value),
            "not a name",
        ));
    }
    let mut rest = &args[1..];
    let mut escape = Escape::Default;
    if let Some(e) = rest.first().and_then(|a| a.value.strip_prefix("escape=")) {
        escape = match e {
            "default" => Escape::Default,
            "json" => Escape::Json,
            "none" => Escape::None,
            _ => {
                return Err(
                    bad(&rest[0], format!("unknown escape `{e}`"), "not an escape")
                        .help("`escape=` takes `default`, `json` or `none`"),
                );
            }
        };
        rest = &rest[1..];
    }
    if rest.is_empty() {
        return Err(bad(name, "`log_format` needs the line", "no line")
            .help("write the line after the name: `log_format main '$remote_addr $status';`"));
    }
    for piece in rest {
        http::log_template(piece)?;
    }
    let joined: String = rest.iter().map(|a| a.value.as_str()).collect();
    let template = crate::routing::template::Template::parse_log(&joined).map_err(|_| {
        bad(
            &rest[0],
            "a variable is split across the pieces of the line",
            "split",
        )
    })?;
    Ok(LogFormat {
        name: name.value.clone(),
        template,
        escape,
    })
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

    #[test]
    fn durations_and_sizes_round_trip_through_their_text() {
        for text in ["1d", "2h", "5m", "10s", "250ms", "90s", "0"] {
            let d = duration(text).expect("valid");
            assert_eq!(duration(&duration_text(d)), Some(d), "{text}");
        }
        assert_eq!(duration_text(Duration::from_secs(90)), "90s");
        for n in [0, 1, 300, 1024, 16 << 10, 1 << 20, 3 << 30, 1500] {
            assert_eq!(size(&size_text(n)), Some(n));
        }
        assert_eq!(size_text(16 << 10), "16k");
    }
}
