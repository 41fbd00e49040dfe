//! `set_real_ip_from`, `real_ip_header`, `real_ip_recursive`: the client's
//! address as a trusted load balancer reports it, for everything that
//! looks at the client's address (allow/deny, ip_hash, limits, logs,
//! `$remote_addr`, `X-Forwarded-For` upstream).

use super::Peer;
use super::access::{AccessTarget, unmapped};
use std::net::{IpAddr, SocketAddr};

/// Where the address is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RealIpSource {
    /// The PROXY protocol header of the connection.
    ProxyProtocol,
    /// A request header (its name in lower case).
    Header(String),
}

/// A route's real-address settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RealIp {
    /// `set_real_ip_from`: the balancers whose word is taken.
    pub from: Vec<AccessTarget>,
    /// `real_ip_header`.
    pub source: RealIpSource,
    /// `real_ip_recursive`: skip trusted addresses from the right of
    /// `X-Forwarded-For`.
    pub recursive: bool,
}

impl RealIp {
    /// Whether `ip` is a balancer listed in `set_real_ip_from` (`None`: a
    /// Unix socket peer, trusted with `set_real_ip_from unix:`).
    pub fn trusted(&self, ip: Option<IpAddr>) -> bool {
        let ip = ip.map(unmapped);
        self.from.iter().any(|t| t.contains(ip))
    }

    /// The client's address for a request that came from `peer` over a
    /// connection whose PROXY header said `proxied`; `values` are the
    /// configured header's fields, in the order they came (a balancer may
    /// add a field of its own after the client's; they are read from the
    /// last, and not at all for an untrusted peer). An untrusted peer, a
    /// missing source or a value that is not an address leave `peer`.
    pub fn resolve<V>(&self, peer: Peer, proxied: Option<SocketAddr>, values: V) -> Peer
    where
        V: IntoIterator<Item: AsRef<[u8]>, IntoIter: DoubleEndedIterator>,
    {
        if !self.trusted(peer.ip()) {
            return peer;
        }
        match &self.source {
            RealIpSource::ProxyProtocol => proxied.map_or(peer, Peer::Inet),
            RealIpSource::Header(_) => self.pick_from_list(values).map_or(peer, |ip| {
                Peer::Inet(SocketAddr::new(ip, peer.port().unwrap_or(0)))
            }),
        }
    }

    /// nginx's reading of `X-Forwarded-For` (and of a one-address header):
    /// the rightmost address of the last field; with `recursive`, the
    /// rightmost one that is not a trusted balancer, across the fields (or
    /// the leftmost when all are).
    fn pick_from_list<V>(&self, values: V) -> Option<IpAddr>
    where
        V: IntoIterator<Item: AsRef<[u8]>, IntoIter: DoubleEndedIterator>,
    {
        let mut found = None;
        for value in values.into_iter().rev() {
            let value = std::str::from_utf8(value.as_ref()).ok()?;
            for part in value.rsplit(',') {
                let ip = parse_ip(part.trim())?;
                found = Some(ip);
                if !self.recursive || !self.trusted(Some(ip)) {
                    return found;
                }
            }
        }
        found
    }
}

/// An address as headers carry it: `192.0.2.7`, `2001:db8::7`,
/// `[2001:db8::7]`, or either with a port.
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_ip(recursive: bool) -> RealIp {
        RealIp {
            from: vec![
                AccessTarget::Net("10.0.0.0/8".parse().unwrap()),
                AccessTarget::Net("192.168.1.1/32".parse().unwrap()),
            ],
            source: RealIpSource::Header("x-forwarded-for".into()),
            recursive,
        }
    }

    /// No header field.
    const NONE: &[&[u8]] = &[];

    fn inet(text: &str) -> Peer {
        Peer::Inet(text.parse().unwrap())
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let peer = inet("10.1.2.3:5000");
        let other = inet("198.51.100.1:5000");
        let r = real_ip(false);
        let xff: &[&[u8]] = &[b"203.0.113.9"];
        let client = inet("203.0.113.9:5000");
        assert_eq!(r.resolve(peer, None, xff), client);
        assert_eq!(r.resolve(other, None, xff), other);
        assert_eq!(r.resolve(peer, None, NONE), peer);
        assert_eq!(r.resolve(peer, None, &[b"not-an-ip"]), peer);
    }

    fn ip(r: &RealIp, values: &[&[u8]]) -> String {
        let peer = inet("10.1.2.3:5000");
        r.resolve(peer, None, values).to_string()
    }

    #[test]
    fn forwarded_for_is_read_from_the_right() {
        let list: &[&[u8]] = &[b"203.0.113.9, 192.168.1.1, 10.9.9.9"];
        assert_eq!(ip(&real_ip(false), list), "10.9.9.9");
        assert_eq!(ip(&real_ip(true), list), "203.0.113.9");
        assert_eq!(ip(&real_ip(true), &[b"10.0.0.1, 10.0.0.2"]), "10.0.0.1");
        assert_eq!(ip(&real_ip(false), &[b"[2001:db8::7]:443"]), "2001:db8::7");
        // A balancer that adds a field of its own after the client's: the
        // client's field cannot pick the address.
        assert_eq!(
            ip(&real_ip(false), &[b"10.9.9.9", b"203.0.113.9"]),
            "203.0.113.9"
        );
        assert_eq!(
            ip(&real_ip(true), &[b"198.51.100.1", b"10.0.0.5"]),
            "198.51.100.1"
        );
    }

    #[test]
    fn the_proxy_protocol_source() {
        let mut r = real_ip(false);
        r.source = RealIpSource::ProxyProtocol;
        let peer = inet("10.1.2.3:5000");
        let client: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        assert_eq!(r.resolve(peer, Some(client), NONE), Peer::Inet(client));
        assert_eq!(r.resolve(peer, None, NONE), peer);
        let mapped = inet("[::ffff:10.1.2.3]:5000");
        assert_eq!(r.resolve(mapped, Some(client), NONE), Peer::Inet(client));
    }

    #[test]
    fn a_unix_socket_peer_is_believed_with_set_real_ip_from_unix() {
        let xff: &[&[u8]] = &[b"203.0.113.9"];
        let mut r = real_ip(false);
        assert_eq!(r.resolve(Peer::Unix, None, xff), Peer::Unix);
        r.from.push(AccessTarget::Unix);
        assert_eq!(r.resolve(Peer::Unix, None, xff), inet("203.0.113.9:0"));
        assert_eq!(r.resolve(Peer::Unix, None, NONE), Peer::Unix);
    }
}
