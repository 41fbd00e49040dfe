//! HTTP/1.1 bytes ⇄ typed heads. No I/O, no config.

pub mod target;
