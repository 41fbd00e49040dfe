//! Network values: listen addresses, access rules, proxy targets, and
//! host names resolved (bounded in time).

#![allow(clippy::result_large_err)]

use super::{Parsed, ProxyTarget, bad};
use crate::config::ast::Arg;
use crate::config::diagnostic::{Diagnostic, suggestion};
use crate::routing::AccessTarget;
use crate::upstream::Endpoint;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

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
pub(super) fn split_host_port(text: &str) -> Option<(&str, &str)> {
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

pub(super) fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!("`{text}` is not a port; ports are 1-65535")),
    }
}

pub(super) fn listen(args: &[Arg], default_allowed: bool) -> Parsed<(Endpoint, bool, bool)> {
    let first = &args[0];
    let addr = match strip_unix(&first.value) {
        Some(path) => unix_path(first, path)?,
        None => Endpoint::Inet(listen_addr(&first.value).map_err(|why| {
            bad(
                first,
                format!("invalid listen address `{}`", first.value),
                "not an address",
            )
            .help(why)
        })?),
    };
    let mut default_server = false;
    let mut proxy_protocol = false;
    for arg in &args[1..] {
        match arg.value.as_str() {
            "default_server" if default_allowed => default_server = true,
            "proxy_protocol" if default_allowed => proxy_protocol = true,
            "proxy_protocol" => {
                return Err(bad(
                    arg,
                    "`proxy_protocol` applies to HTTP servers only",
                    "not here",
                ));
            }
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
                .maybe_help(suggestion(other, ["default_server", "proxy_protocol"]))
                .note("xps sets the backlog and SO_REUSEPORT itself"));
            }
        }
    }
    Ok((addr, default_server, proxy_protocol))
}

pub(super) fn access(arg: &Arg, out: &mut Vec<Diagnostic>) -> Parsed<AccessTarget> {
    let text = arg.value.as_str();
    if text == "all" {
        return Ok(AccessTarget::All);
    }
    if text.eq_ignore_ascii_case("unix:") {
        return Ok(AccessTarget::Unix);
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
        Err(_) if prefix_too_long(text).is_some() => {
            let (max, family) = prefix_too_long(text).unwrap_or((32, "IPv4"));
            Err(bad(
                arg,
                format!("invalid CIDR block `{text}`: the prefix is longer than {max} bits"),
                "prefix too long",
            )
            .help(format!("an {family} prefix is 0 to {max} bits")))
        }
        Err(_) => Err(bad(
            arg,
            format!("invalid address `{text}`"),
            "not an address or CIDR block",
        )
        .help("write an IPv4 or IPv6 address, a CIDR block like 10.0.0.0/8, `unix:` or `all`")
        .maybe_help(suggestion(text, ["all", "unix:"]))),
    }
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
    let addrs = lookup(host, port)?;
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{host}` has no address"))
}

/// How long the system resolver may take for one name.
const RESOLVE_WITHIN: Duration = Duration::from_secs(5);

/// The system resolver's addresses for `host`, or why there are none. The
/// lookup runs on a thread of its own and is given [`RESOLVE_WITHIN`]: a
/// resolver that does not answer makes an error that names the host,
/// never a hang (the thread is left to finish on its own).
fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    lookup_with(host, RESOLVE_WITHIN, move |name| {
        (name, port).to_socket_addrs().map(|a| a.collect())
    })
}

/// [`lookup`] with its resolver and its time limit given.
fn lookup_with(
    host: &str,
    within: Duration,
    resolver: impl FnOnce(&str) -> std::io::Result<Vec<SocketAddr>> + Send + 'static,
) -> Result<Vec<SocketAddr>, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let name = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("xps-resolve".into())
        .spawn(move || {
            let _ = tx.send(resolver(&name));
        });
    if let Err(e) = spawned {
        return Err(format!("cannot resolve `{host}`: {e}"));
    }
    match rx.recv_timeout(within) {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(format!("cannot resolve `{host}`: {e}")),
        Err(_) => Err(format!(
            "cannot resolve `{host}`: the resolver gave no answer within {} ms",
            within.as_millis()
        )),
    }
}

/// Parses `HOST:PORT` and resolves it.
pub(super) fn backend(arg: &Arg, text: &str) -> Parsed<SocketAddr> {
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

/// For `ADDRESS/N` with a valid address and a prefix over its family's
/// bits: the most bits, and the family.
fn prefix_too_long(text: &str) -> Option<(u8, &'static str)> {
    let (addr, bits) = text.split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(_) if bits > 32 => Some((32, "IPv4")),
        IpAddr::V6(_) if bits > 128 => Some((128, "IPv6")),
        _ => None,
    }
}

/// The path of `unix:/path` (any case of `unix:`).
pub(super) fn strip_unix(text: &str) -> Option<&str> {
    let prefix = text.get(..5)?;
    prefix.eq_ignore_ascii_case("unix:").then(|| &text[5..])
}

/// A Unix socket address, a backend's or a listener's: `unix:/path`
/// (absolute, as the kernel allows).
pub(super) fn unix_path(arg: &Arg, path: &str) -> Parsed<Endpoint> {
    if !path.starts_with('/') {
        return Err(bad(
            arg,
            format!("the socket path `{path}` is not absolute"),
            "relative path",
        )
        .help("write the whole path: `unix:/run/app.sock`"));
    }
    // sockaddr_un holds 108 bytes, the last a NUL.
    if path.len() > 107 {
        return Err(bad(
            arg,
            format!(
                "the socket path is {} bytes; a Unix socket path is at most 107",
                path.len()
            ),
            "too long",
        ));
    }
    Ok(Endpoint::Unix(std::path::Path::new(path).into()))
}

pub(super) fn proxy_pass(arg: &Arg, http: bool) -> Parsed<(ProxyTarget, Option<String>)> {
    let text = arg.value.as_str();
    let lower = text.to_ascii_lowercase();
    // `unix:/path`, or nginx's `http://unix:/path:/uri`.
    let unix = match lower.starts_with("http://") {
        true if http => strip_unix(&text[7..]).map(|path| (path, true)),
        _ => strip_unix(text).map(|path| (path, false)),
    };
    if let Some((rest, scheme)) = unix {
        let (path, uri) = match rest.find(":/") {
            Some(i) if scheme => (&rest[..i], Some(rest[i + 1..].to_string())),
            Some(_) => {
                return Err(
                    bad(arg, "a URI part needs the `http://` form", "path given")
                        .help(format!("write `proxy_pass http://{text};`")),
                );
            }
            None => (rest, None),
        };
        if path.ends_with([':', '/']) {
            return Err(bad(
                arg,
                format!("`{path}` is not a socket path"),
                "ends in `:` or `/`",
            )
            .help("a URI goes after the path and a colon: `http://unix:/run/app.sock:/api/`"));
        }
        if uri
            .as_deref()
            .is_some_and(|u| u.contains('$') || u.contains(char::is_whitespace))
        {
            return Err(bad(
                arg,
                "the URI part of `proxy_pass` cannot hold variables or blanks",
                "invalid URI",
            ));
        }
        let endpoint = unix_path(arg, path)?;
        return Ok((ProxyTarget::Address(format!("unix:{path}"), endpoint), uri));
    }
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
    if !path.is_empty() && !text.to_ascii_lowercase().starts_with("http://") {
        return Err(
            bad(arg, "a URI part needs the `http://` form", "path given")
                .help(format!("write `proxy_pass http://{text};`")),
        );
    }
    if path.contains('$') || path.contains(char::is_whitespace) {
        return Err(bad(
            arg,
            "the URI part of `proxy_pass` cannot hold variables or blanks",
            "invalid URI",
        ));
    }
    let uri = (!path.is_empty()).then(|| path.to_string());
    if authority.contains(':') {
        return backend(arg, authority).map(|addr| {
            (
                ProxyTarget::Address(authority.to_string(), addr.into()),
                uri,
            )
        });
    }
    if authority.is_empty() {
        return Err(bad(
            arg,
            "`proxy_pass` needs an upstream name or HOST:PORT",
            "empty",
        ));
    }
    Ok((ProxyTarget::Name(authority.to_string()), uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolver_that_does_not_answer_is_an_error_naming_the_host() {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let r = lookup_with("slow.test", Duration::from_millis(100), move |_| {
            // Answers only when the test is over.
            let _ = wait.recv();
            Ok(Vec::new())
        });
        assert_eq!(
            r,
            Err("cannot resolve `slow.test`: the resolver gave no answer within 100 ms".into())
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(release);
        let fast = lookup_with("fast.test", Duration::from_secs(5), |_| {
            Ok(vec!["10.0.0.1:80".parse().expect("addr")])
        });
        assert_eq!(fast, Ok(vec!["10.0.0.1:80".parse().expect("addr")]));
    }
}
