//! xps — the Rust eXpServer: an HTTP/1.1 server and reverse proxy driven
//! by `xps.conf`, a small nginx-like language.
//!
//! Data flows one way:
//!
//! ```text
//! config text ──config──▶ Snapshot (routing) ──▶ workers
//! request bytes ──http──▶ head ──Snapshot lookup──▶ Route ──handler──▶ response
//! ```
//!
//! - [`config`]: text (or an eXpServer `xps_config.json`) → [`routing::Snapshot`],
//!   with rustc-style diagnostics. Reads files, never opens sockets.
//! - [`routing`]: the compiled, immutable routing table and its lookups.
//! - [`http`]: HTTP/1.1 bytes ⇄ typed heads; no I/O, no config.
//! - [`upstream`]: upstream policies and run-time state.
//! - [`handler`]: (request, route) → reply: static files, listings,
//!   `return`, error pages. No sockets.
//! - [`net`]: the kernel: sockets, epoll, sendfile, signals, timers.
//! - [`server`]: workers, connections, signals; orchestrates the rest.
//! - [`log`]: the error log and the access log, written off the event loop.
//! - [`cli`]: the command line (`--check`, `--dump`, `--explain`, `--fmt`, run).

#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
// Unit tests may unwrap, expect and panic (Cargo.toml denies them elsewhere).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cli;
pub mod config;
pub mod handler;
pub mod http;
pub mod limit;
pub mod log;
pub mod metrics;
pub mod net;
pub mod routing;
pub mod server;
pub mod upstream;
