//! HTTP values: server names, locations, `return`, `error_page`,
//! header fields, index files and MIME types.

#![allow(clippy::result_large_err)]

use super::{Parsed, bad};
use crate::config::ast::Arg;
use crate::config::diagnostic::{Diagnostic, suggestion};
use crate::config::directives::{Key, Spec};
use crate::config::source::Span;
use crate::http::target;
use crate::routing::template::{self, Template};
use crate::routing::{ErrorPage, Header, Match, Return, ServerName};

pub(super) fn server_names(args: &[Arg], out: &mut Vec<Diagnostic>) -> Vec<ServerName> {
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

pub(super) fn files(args: &[Arg]) -> Parsed<Vec<String>> {
    for arg in args {
        if arg.value.is_empty() || arg.value.contains('\0') {
            return Err(bad(arg, "an index file name cannot be empty", "empty"));
        }
    }
    Ok(args.iter().map(|a| a.value.clone()).collect())
}

pub(super) fn mime_types(args: &[Arg]) -> Parsed<Vec<String>> {
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

pub(super) fn location(args: &[Arg], out: &mut Vec<Diagnostic>) -> Parsed<Match> {
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

/// Parses a status code in `range`.
pub(super) fn status(arg: &Arg, range: std::ops::RangeInclusive<u16>) -> Parsed<u16> {
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

pub(super) fn return_(args: &[Arg], out: &mut Vec<Diagnostic>) -> Parsed<Return> {
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
    if let (Some(arg), 204 | 304 | 444) = (args.get(1), code) {
        let why = if code == 444 {
            "`return 444` closes the connection without an answer"
        } else {
            "a 204 or 304 answer has no body"
        };
        out.push(
            Diagnostic::warning(format!("the text of `return {code}` is never sent"))
                .at(arg.span, "dropped")
                .note(why)
                .help(format!("write `return {code};`")),
        );
    }
    let text = match args.get(1) {
        Some(arg) => Some(template(arg)?),
        None => None,
    };
    Ok(Return { code, text })
}

pub(super) fn error_page(args: &[Arg]) -> Parsed<ErrorPage> {
    let (path, codes) = args
        .split_last()
        .ok_or_else(|| Diagnostic::error("`error_page` takes CODE… [=CODE] PATH"))?;
    // `=CODE` before the path: the status the page is sent with.
    let (answer, codes) = match codes.split_last() {
        Some((last, rest)) if last.value.starts_with('=') => {
            let code = last.value[1..]
                .parse::<u16>()
                .ok()
                .filter(|c| (200..=599).contains(c));
            let Some(code) = code else {
                return Err(bad(
                    last,
                    format!("invalid status `{}`", last.value),
                    "expected =200…=599",
                ));
            };
            (Some(code), rest)
        }
        _ => (None, codes),
    };
    if codes.is_empty() {
        return Err(
            bad(path, "`error_page` needs a status to replace", "no status")
                .help("write `error_page 404 =200 /index.html;`"),
        );
    }
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
        status: answer,
    })
}

/// `try_files FILE… URI|=CODE`.
pub(super) fn try_files(args: &[Arg]) -> Parsed<crate::routing::TryFiles> {
    use crate::routing::{TryFallback, TryFiles};
    let (last, files) = args
        .split_last()
        .ok_or_else(|| Diagnostic::error("`try_files` takes FILE… URI"))?;
    let files = files.iter().map(template).collect::<Result<Vec<_>, _>>()?;
    let fallback = match last.value.strip_prefix('=') {
        Some(code) => match code.parse::<u16>().ok().filter(|c| (200..=599).contains(c)) {
            Some(c) => TryFallback::Code(c),
            None => {
                return Err(bad(
                    last,
                    format!("invalid status `{}`", last.value),
                    "expected =200…=599",
                ));
            }
        },
        None if last.value.starts_with('/') || last.value.starts_with('$') => {
            TryFallback::Uri(template(last)?)
        }
        None => {
            return Err(bad(
                last,
                format!(
                    "the last argument of `try_files` must be a path or =CODE, not `{}`",
                    last.value
                ),
                "expected /… or =CODE",
            )
            .help("write `try_files $uri $uri/ /index.html;` or `try_files $uri =404;`"));
        }
    };
    Ok(TryFiles { files, fallback })
}

/// Headers xps frames or manages itself: setting them would break framing.
pub(super) const MANAGED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// A value with variables, compiled; an unknown variable is an error
/// at its place, with the nearest name.
pub(super) fn template(arg: &Arg) -> Result<Template, Diagnostic> {
    template_with(arg, false)
}

/// A `log_format` piece: the log's own variables are known too.
pub(super) fn log_template(arg: &Arg) -> Result<Template, Diagnostic> {
    template_with(arg, true)
}

fn template_with(arg: &Arg, log: bool) -> Result<Template, Diagnostic> {
    let parsed = if log {
        Template::parse_log(&arg.value)
    } else {
        Template::parse(&arg.value)
    };
    parsed.map_err(|e| {
        // Point at the variable itself when the value reads as written
        // (bare, or quoted without escapes).
        let inner = arg.span.end - arg.span.start;
        let offset = if !arg.quoted && inner == arg.value.len() {
            Some(0)
        } else if arg.quoted && inner == arg.value.len() + 2 {
            Some(1)
        } else {
            None
        };
        let span = offset.map_or(arg.span, |o| {
            let start = arg.span.start + o + e.at;
            Span::new(arg.span.file, start, start + e.len)
        });
        if e.unclosed {
            return Diagnostic::error(format!("`${{{}` has no closing `}}`", e.name))
                .at(span, "not closed")
                .help(format!("write `${{{}}}`", e.name));
        }
        let log_only = template::LOG_NAMES.contains(&e.name.as_str());
        let names = template::NAMES
            .iter()
            .chain(template::LOG_NAMES.iter().filter(|_| log))
            .copied()
            .filter(|n| *n != "http_NAME");
        let d = Diagnostic::error(format!("unknown variable `${}`", e.name))
            .at(span, "not a variable")
            .maybe_help(suggestion(&e.name, names));
        if log_only && !log {
            return d.note(format!(
                "`${}` is known in `log_format` only: a value here is made before the response",
                e.name
            ));
        }
        d.note(format!(
            "the variables are {}; `$$` is a `$`",
            template::NAMES
                .iter()
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

pub(super) fn header(spec: &Spec, args: &[Arg]) -> Parsed<Header> {
    let (name, value) = (&args[0], &args[1]);
    if !crate::http::is_token(&name.value) {
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
    let compiled = template(value)?;
    if value.value.is_empty() && spec.key == Key::AddHeader {
        return Err(bad(value, "`add_header` needs a value", "empty"));
    }
    Ok(Header {
        name: name.value.clone(),
        value: compiled,
    })
}
