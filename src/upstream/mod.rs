//! Upstream groups at run time: the balancing policies and, in later
//! stages, health state and idle connections that outlive a config reload.
//! Uses nothing else in the crate.

pub mod balance;

pub use balance::Balance;
