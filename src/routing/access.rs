//! Ordered `allow`/`deny` rules over addresses and CIDR blocks: the first
//! rule that matches the client decides; no match means allowed.

use super::Origin;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// What a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessTarget {
    /// `all`.
    All,
    /// An address (as a /32 or /128) or a CIDR block.
    Net(IpNet),
    /// `unix:`: clients of a `listen unix:` socket.
    Unix,
}

impl AccessTarget {
    /// Whether the client address falls under this target (`None`: a
    /// client of a Unix socket).
    pub fn contains(&self, ip: Option<IpAddr>) -> bool {
        match (self, ip) {
            (AccessTarget::All, _) => true,
            (AccessTarget::Net(net), Some(ip)) => net.contains(&ip),
            (AccessTarget::Unix, None) => true,
            _ => false,
        }
    }
}

impl fmt::Display for AccessTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessTarget::All => f.write_str("all"),
            AccessTarget::Unix => f.write_str("unix:"),
            AccessTarget::Net(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            AccessTarget::Net(net) => write!(f, "{net}"),
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as the IPv4 address it
/// stands for, which rules name.
#[inline]
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One `allow` or `deny`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRule {
    /// `allow` (true) or `deny` (false).
    pub allow: bool,
    /// What it matches.
    pub target: AccessTarget,
    /// Where it was written.
    pub origin: Origin,
}

impl fmt::Display for AccessRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.allow { "allow" } else { "deny" };
        write!(f, "{verb} {}", self.target)
    }
}

/// The rules of one block, in order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AccessList {
    /// First match wins.
    pub rules: Vec<AccessRule>,
}

impl AccessList {
    /// Whether the client may pass, and the index of the rule that decided
    /// (`None`: no rule matched, allowed). `ip` is `None` for a client of
    /// a Unix socket, which only `all` and `unix:` match.
    #[inline]
    pub fn check(&self, ip: Option<IpAddr>) -> (bool, Option<usize>) {
        if self.rules.is_empty() {
            return (true, None);
        }
        let ip = ip.map(unmapped);
        match self.rules.iter().position(|r| r.target.contains(ip)) {
            Some(i) => (self.rules[i].allow, Some(i)),
            None => (true, None),
        }
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, t: &str) -> AccessRule {
        let target = if t == "all" {
            AccessTarget::All
        } else {
            AccessTarget::Net(t.parse().expect("cidr"))
        };
        AccessRule {
            allow,
            target,
            origin: Origin::default(),
        }
    }

    #[test]
    fn first_match_wins_and_no_match_allows() {
        let list = AccessList {
            rules: vec![
                rule(false, "127.0.0.2/32"),
                rule(true, "127.0.0.0/8"),
                rule(false, "all"),
            ],
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert_eq!(list.check(ip("127.0.0.2")), (false, Some(0)));
        assert_eq!(list.check(ip("127.9.9.9")), (true, Some(1)));
        assert_eq!(list.check(ip("10.0.0.1")), (false, Some(2)));
        assert_eq!(list.check(ip("::ffff:127.0.0.5")), (true, Some(1)));
        assert_eq!(AccessList::default().check(ip("::1")), (true, None));
        // A Unix socket client matches `all` and `unix:` only.
        assert_eq!(list.check(None), (false, Some(2)));
        let unix = AccessList {
            rules: vec![
                AccessRule {
                    allow: true,
                    target: AccessTarget::Unix,
                    origin: Origin::default(),
                },
                rule(false, "0.0.0.0/0"),
            ],
        };
        assert_eq!(unix.check(None), (true, Some(0)));
        assert_eq!(unix.check(ip("10.0.0.1")), (false, Some(1)));
    }
}
