//! The conformance suite: black-box tests of the real `xps` binary.

// Tests may unwrap, expect and panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod server;
mod smuggling;
mod support;
mod unix_sockets;
mod upstream;
mod variables;

mod architecture;
mod auth;
mod bad_input;
mod cli;
mod config_golden;
mod docs;
mod examples;
mod expires;
mod gzip;
mod hostile;
mod http_behaviour;
mod http_golden;
mod limits;
mod log_format;
mod metrics;
mod proxy;
mod proxy_edges;
mod real_ip;
mod reload;
