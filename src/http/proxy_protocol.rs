//! The PROXY protocol header a load balancer (HAProxy, AWS NLB, …) sends
//! before the client's bytes: version 1 (text) and version 2 (binary).
//! <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest version 1 line, `\r\n` included.
const V1_MAX: usize = 107;
/// The version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A header read from the start of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Its length in bytes.
    pub len: usize,
    /// The client's address, when the header carries one (`UNKNOWN`, a
    /// v2 `LOCAL` command and non-IP families do not).
    pub source: Option<SocketAddr>,
}

/// Why the bytes are not a PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// Reads a header from the start of `buf`: `Ok(None)` while more bytes
/// are needed.
pub fn parse(buf: &[u8]) -> Result<Option<ProxyHeader>, Invalid> {
    if buf.is_empty() {
        return Ok(None);
    }
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if buf.len() < 16 { Ok(None) } else { v2(buf) };
    }
    let n = buf.len().min(6);
    if buf[..n] != b"PROXY "[..n] {
        return Err(Invalid("no PROXY protocol header"));
    }
    v1(buf)
}

fn v1(buf: &[u8]) -> Result<Option<ProxyHeader>, Invalid> {
    let Some(end) = buf.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(Invalid("PROXY v1 line too long"))
        } else {
            Ok(None)
        };
    };
    let line =
        std::str::from_utf8(&buf[..end]).map_err(|_| Invalid("PROXY v1 line is not text"))?;
    let len = end + 2;
    let parts: Vec<&str> = line.split(' ').collect();
    match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(Some(ProxyHeader { len, source: None })),
        [
            "PROXY",
            family @ ("TCP4" | "TCP6"),
            src,
            _dst,
            sport,
            _dport,
        ] => {
            let ip: IpAddr = src
                .parse()
                .map_err(|_| Invalid("PROXY v1 source address"))?;
            if ip.is_ipv4() != (*family == "TCP4") {
                return Err(Invalid("PROXY v1 address family"));
            }
            let port: u16 = sport.parse().map_err(|_| Invalid("PROXY v1 source port"))?;
            Ok(Some(ProxyHeader {
                len,
                source: Some(SocketAddr::new(ip, port)),
            }))
        }
        _ => Err(Invalid("malformed PROXY v1 line")),
    }
}

fn v2(buf: &[u8]) -> Result<Option<ProxyHeader>, Invalid> {
    let version_command = buf[12];
    if version_command >> 4 != 2 {
        return Err(Invalid("PROXY v2 version"));
    }
    let family = buf[13];
    let body = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let len = 16 + body;
    if buf.len() < len {
        return Ok(None);
    }
    let addr = &buf[16..len];
    if family & 0x0f > 1 {
        return Err(Invalid("PROXY v2 transport is not a stream"));
    }
    let source = match (version_command & 0x0f, family >> 4) {
        // LOCAL: the balancer's own connection (a health check).
        (0, _) => None,
        (1, 1) if addr.len() >= 12 => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([addr[8], addr[9]]),
            ))
        }
        (1, 2) if addr.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addr[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([addr[32], addr[33]]),
            ))
        }
        (1, 0 | 3) => None,
        (1, _) => return Err(Invalid("PROXY v2 address block too short")),
        _ => return Err(Invalid("PROXY v2 command")),
    };
    Ok(Some(ProxyHeader { len, source }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_lines() {
        let h = parse(b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 80\r\nGET /")
            .unwrap()
            .unwrap();
        assert_eq!(h.len, 40);
        assert_eq!(h.source, Some("192.0.2.7:51234".parse().unwrap()));
        let h = parse(b"PROXY TCP6 2001:db8::7 ::1 4000 80\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some("[2001:db8::7]:4000".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().source, None);
        assert_eq!(parse(b"PROXY TCP4 192.0.2.7 10.0.0.1 5").unwrap(), None);
        assert_eq!(parse(b"PRO").unwrap(), None);
        assert!(parse(b"GET / HTTP/1.1\r\n").is_err());
        assert!(parse(b"PROXY TCP4 2001:db8::7 ::1 4000 80\r\n").is_err());
        assert!(parse(b"PROXY TCP4 192.0.2.7 10.0.0.1 99999 80\r\n").is_err());
        assert!(parse(&[b'P', b'R', b'O', b'X', b'Y', b' '].repeat(30)).is_err());
    }

    #[test]
    fn version_2_headers() {
        let mut v4 = V2_SIGNATURE.to_vec();
        v4.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1, 0xc8, 0x22, 0, 80,
        ]);
        v4.extend_from_slice(b"GET");
        let h = parse(&v4).unwrap().unwrap();
        assert_eq!(h.len, 28);
        assert_eq!(h.source, Some("192.0.2.7:51234".parse().unwrap()));
        assert_eq!(parse(&v4[..20]).unwrap(), None);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local).unwrap().unwrap(),
            ProxyHeader {
                len: 16,
                source: None
            }
        );
        let mut v6 = V2_SIGNATURE.to_vec();
        v6.extend_from_slice(&[0x21, 0x21, 0, 36]);
        let mut src = [0u8; 16];
        src[0] = 0x20;
        src[1] = 0x01;
        src[15] = 7;
        v6.extend_from_slice(&src);
        v6.extend_from_slice(&[0u8; 16]);
        v6.extend_from_slice(&[0x0f, 0xa0, 0, 80]);
        assert_eq!(
            parse(&v6).unwrap().unwrap().source,
            Some("[2001::7]:4000".parse().unwrap())
        );
        let mut bad = V2_SIGNATURE.to_vec();
        bad.extend_from_slice(&[0x11, 0x11, 0, 0]);
        assert!(parse(&bad).is_err());
        let mut udp = V2_SIGNATURE.to_vec();
        udp.extend_from_slice(&[0x21, 0x12, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1, 0, 1, 0, 80]);
        assert!(parse(&udp).is_err());
    }
}
