//! larm's hardware layer: the only crate that touches the unit's hardware.
//!
//! - [`board`]: inputs and outputs behind the [`board::Board`] trait, with a
//!   simulated board that tests and `larmd` on a PC use.

pub mod board;
