//! Field updates: signed components installed into a running unit.
//!
//! - [`signature`]: signing and verifying components (minisign).

pub mod signature;
