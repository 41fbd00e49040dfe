//! How a member of an upstream group is picked for a request.

use std::fmt;

/// A balancing policy (`balance` directive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Balance {
    /// Smooth weighted round robin: over any window, each member gets its
    /// weight's share, interleaved rather than in bursts.
    #[default]
    RoundRobin,
    /// The member with the fewest active requests (weighted).
    LeastConn,
    /// A hash of the client address, so a client keeps its member.
    IpHash,
    /// Two members at random; the less loaded one wins.
    Random,
}

impl Balance {
    /// The names `balance` accepts, in the order the docs list them.
    pub const NAMES: &'static [&'static str] = &["round_robin", "least_conn", "ip_hash", "random"];

    /// The policy for a name of [`Balance::NAMES`].
    pub fn from_name(name: &str) -> Option<Balance> {
        match name {
            "round_robin" => Some(Balance::RoundRobin),
            "least_conn" => Some(Balance::LeastConn),
            "ip_hash" => Some(Balance::IpHash),
            "random" => Some(Balance::Random),
            _ => None,
        }
    }

    /// The name as written in xps.conf.
    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
            Balance::IpHash => "ip_hash",
            Balance::Random => "random",
        }
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in Balance::NAMES {
            assert_eq!(Balance::from_name(name).map(Balance::name), Some(*name));
        }
        assert_eq!(Balance::from_name("fastest"), None);
    }
}
