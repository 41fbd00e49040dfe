//! Host → server on one listen address: exact `server_name`, then the
//! longest `*.suffix`, then the `default_server`, then the first server
//! without a `server_name` (it "matches any Host"), then the first server.

use super::ServerId;
use rustc_hash::FxHashMap as HashMap;
use std::fmt;

/// One `server_name` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerName {
    /// `example.test` (stored lower case).
    Exact(String),
    /// `*.example.test`, stored as the suffix `.example.test`.
    Wildcard(String),
}

impl ServerName {
    /// Parses one `server_name` argument; `Err` says why it is not one.
    pub fn parse(text: &str) -> Result<ServerName, &'static str> {
        let lower = text.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        if let Some(suffix) = name.strip_prefix('*') {
            if !suffix.starts_with('.') || suffix.len() < 2 {
                return Err("a wildcard name is `*.` followed by a domain, like `*.example.test`");
            }
            check_host_chars(&suffix[1..])?;
            return Ok(ServerName::Wildcard(suffix.to_string()));
        }
        if name.contains('*') {
            return Err("only leading wildcards are supported, like `*.example.test`");
        }
        if name.starts_with('~') {
            return Err("regular expression server names are not supported");
        }
        check_host_chars(name)?;
        Ok(ServerName::Exact(name.to_string()))
    }

    /// Whether a normalised host matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            ServerName::Exact(name) => name == host,
            ServerName::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

fn check_host_chars(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a server name cannot be empty");
    }
    let ok = name.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || b == b'-'
            || b == b'.'
            || b == b'_'
            || b == b':'
            || b == b'['
            || b == b']'
    });
    if ok {
        Ok(())
    } else {
        Err("a server name has letters, digits, `-`, `_` and `.` only")
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerName::Exact(name) => f.write_str(name),
            ServerName::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// Why a server was picked for a Host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch<'a> {
    /// An exact `server_name`.
    Exact(&'a str),
    /// The longest matching `*.suffix` (the suffix).
    Wildcard(&'a str),
    /// No name matched; the `default_server` of the address.
    Default,
    /// No name matched and there is no `default_server`; the first server
    /// without `server_name`.
    CatchAll,
    /// No name matched, no default, no catch-all: the first server.
    First,
}

/// The lookup structure of one listen address.
#[derive(Debug, Default)]
pub struct HostIndex {
    exact: HashMap<String, ServerId>,
    /// `(suffix, server)`, longest suffix first.
    wildcards: Vec<(String, ServerId)>,
    default: Option<ServerId>,
    catch_all: Option<ServerId>,
    first: ServerId,
}

impl HostIndex {
    /// Builds the index from the servers of one address in declaration
    /// order: `(id, names, is_default)`. The first server to claim a name
    /// keeps it.
    pub fn new<'a>(
        servers: impl IntoIterator<Item = (ServerId, &'a [ServerName], bool)>,
    ) -> HostIndex {
        let mut index = HostIndex::default();
        let mut first = None;
        for (id, names, is_default) in servers {
            first.get_or_insert(id);
            if is_default && index.default.is_none() {
                index.default = Some(id);
            }
            if names.is_empty() && index.catch_all.is_none() {
                index.catch_all = Some(id);
            }
            for name in names {
                match name {
                    ServerName::Exact(n) => {
                        index.exact.entry(n.clone()).or_insert(id);
                    }
                    ServerName::Wildcard(s) => {
                        if !index.wildcards.iter().any(|(w, _)| w == s) {
                            index.wildcards.push((s.clone(), id));
                        }
                    }
                }
            }
        }
        // Stable: equal lengths keep declaration order.
        index
            .wildcards
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        index.first = first.unwrap_or(0);
        index
    }

    /// The server marked `default_server` on this address, if any.
    pub fn default_server(&self) -> Option<ServerId> {
        self.default
    }

    /// The server for a `Host` header value (port and trailing dot ignored,
    /// case-insensitive), and why.
    pub fn lookup(&self, host: Option<&str>) -> (ServerId, HostMatch<'_>) {
        if let Some(host) = host.map(normalise_host) {
            if let Some((name, &id)) = self.exact.get_key_value(host.as_ref()) {
                return (id, HostMatch::Exact(name));
            }
            for (suffix, id) in &self.wildcards {
                if host.len() > suffix.len() && host.ends_with(suffix.as_str()) {
                    return (*id, HostMatch::Wildcard(suffix));
                }
            }
        }
        if let Some(id) = self.default {
            return (id, HostMatch::Default);
        }
        if let Some(id) = self.catch_all {
            return (id, HostMatch::CatchAll);
        }
        (self.first, HostMatch::First)
    }
}

/// A Host header value without its port or trailing dot, lower case.
pub fn normalise_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        // [v6]:port
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    let name = without_port.trim_end_matches('.');
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        // The usual case: already lower case, nothing to allocate.
        std::borrow::Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<ServerName> {
        list.iter()
            .map(|n| ServerName::parse(n).expect("valid"))
            .collect()
    }

    #[test]
    fn exact_then_longest_wildcard_then_default_then_first() {
        let a = names(&["example.test"]);
        let b = names(&["*.example.test"]);
        let c = names(&["*.api.example.test"]);
        let d = names(&["other.test"]);
        let index = HostIndex::new([
            (0, &a[..], false),
            (1, &b[..], false),
            (2, &c[..], false),
            (3, &d[..], true),
        ]);
        assert_eq!(
            index.lookup(Some("Example.TEST:8001")),
            (0, HostMatch::Exact("example.test"))
        );
        assert_eq!(
            index.lookup(Some("www.example.test")),
            (1, HostMatch::Wildcard(".example.test"))
        );
        assert_eq!(
            index.lookup(Some("v1.api.example.test")),
            (2, HostMatch::Wildcard(".api.example.test"))
        );
        assert_eq!(
            index.lookup(Some("example.test.")),
            (0, HostMatch::Exact("example.test"))
        );
        assert_eq!(index.lookup(Some("nobody.test")), (3, HostMatch::Default));
        assert_eq!(index.lookup(None), (3, HostMatch::Default));
        let index = HostIndex::new([(0, &a[..], false), (1, &d[..], false)]);
        assert_eq!(index.lookup(Some("x")), (0, HostMatch::First));
    }

    #[test]
    fn a_server_without_names_catches_other_hosts() {
        let a = names(&["api.test"]);
        let index = HostIndex::new([(0, &a[..], false), (1, &[][..], false)]);
        assert_eq!(index.lookup(Some("api.test")).0, 0);
        assert_eq!(index.lookup(Some("www.test")), (1, HostMatch::CatchAll));
    }

    #[test]
    fn wildcard_does_not_match_the_bare_domain() {
        let b = names(&["*.example.test"]);
        let index = HostIndex::new([(7, &b[..], false)]);
        assert_eq!(index.lookup(Some("example.test")), (7, HostMatch::First));
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(normalise_host("[::1]:8080"), "[::1]");
        assert_eq!(normalise_host("A.b:1"), "a.b");
        assert_eq!(normalise_host("a.b."), "a.b");
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(ServerName::parse("www.*").is_err());
        assert!(ServerName::parse("~^a").is_err());
        assert!(ServerName::parse("*").is_err());
        assert!(ServerName::parse("a b").is_err());
    }
}
