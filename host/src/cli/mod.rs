//! Subcommands of `larmd` beyond running the unit.

pub mod console;
pub mod modem;
