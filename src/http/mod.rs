//! HTTP/1.1 bytes ⇄ typed heads. No I/O, no config.

pub mod body;
pub mod date;
pub mod encoding;
pub mod parse;
pub mod proxy_protocol;
pub mod response;
pub mod scan;
pub mod target;

pub use parse::{Framing, Method, ParseError, RequestHead, Version};

/// `tchar` (RFC 9110 §5.6.2): the characters of a token.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A token (a field name, for one): one or more `tchar`s.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}
