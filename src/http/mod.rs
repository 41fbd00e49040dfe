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
