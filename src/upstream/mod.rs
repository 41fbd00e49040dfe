//! Upstream groups at run time: the balancing policies, and the health
//! state that outlives a config reload. Uses nothing else in the crate.

pub mod balance;
pub mod health;

pub use balance::{Balance, Candidate, Picker, client_hash};
pub use health::{Health, Limits};
