//! The only module that talks to the kernel: sockets, epoll, sendfile,
//! signals, timers. Everything above it sees `std` types and plain enums.
//! The few system calls std does not offer go through `nix`, so the crate
//! itself has no `unsafe` code at all (`#![forbid(unsafe_code)]`).

pub mod poller;
pub mod sys;
pub mod timer;
pub mod token;

pub use poller::{Event, Events, Poller};
pub use timer::TimerWheel;
pub use token::{Token, next_generation};
