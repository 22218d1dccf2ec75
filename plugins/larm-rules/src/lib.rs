//! The rules that both `larmd` and its plugins check, in one place so the
//! two sides cannot disagree: what a phone number is, what a password may
//! be, which device settings exist and what values they take, the limits on
//! them, and the names the HTTP API, the console and the server adapter use
//! for the unit's states.
//!
//! `no_std` with `alloc`: a plugin links it into its component and pays
//! only for what it calls.
//!
//! - [`phone`]: [`PhoneNumber`], parsed and compared one way.
//! - [`password`]: the SMS password rule.
//! - [`settings`]: the device settings' keys, defaults and validation.
//! - [`outputs`]: how long a timed output may run.
//! - [`names`]: the words for SIM, network and plugin states.

#![no_std]

extern crate alloc;

pub mod names;
pub mod outputs;
pub mod password;
pub mod phone;
pub mod settings;

pub use phone::PhoneNumber;
