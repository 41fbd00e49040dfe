//! The heads of a proxied exchange, without sockets: the request head sent
//! upstream (client's method, target and Host; `X-Forwarded-*`,
//! `X-Real-IP`, `proxy_set_header`; hop-by-hop fields removed; framing
//! rewritten), the upstream's response head parsed strictly, and the head
//! sent back to the client (upstream's status and fields, its own `Server`
//! and `Date`, hop-by-hop fields removed, framing rewritten).

mod request;
mod response;
#[cfg(test)]
mod tests;

pub use request::*;
pub use response::*;

/// Fields that concern one connection, never forwarded either way.
pub(super) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

pub(super) fn is_hop(name: &str, connection_tokens: &[&[u8]]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection_tokens
            .iter()
            .any(|t| name.as_bytes().eq_ignore_ascii_case(t))
}

/// The names listed in `Connection` fields (they are hop-by-hop too).
/// `close` and `keep-alive` name no field to drop (`Keep-Alive` is
/// hop-by-hop anyway), so the usual `Connection: keep-alive` allocates
/// nothing.
pub(super) fn connection_tokens<'a>(headers: &[httparse::Header<'a>]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            out.extend(
                h.value
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .filter(|t| {
                        !t.is_empty()
                            && !t.eq_ignore_ascii_case(b"close")
                            && !t.eq_ignore_ascii_case(b"keep-alive")
                    }),
            );
        }
    }
    out
}

/// `haystack` contains `needle` (ASCII letters in any case).
pub(super) fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Appends `Name: value\r\n` with a value that is bytes.
pub(super) fn header_bytes(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
