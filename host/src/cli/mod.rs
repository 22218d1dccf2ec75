//! Subcommands of `larmd` beyond running the unit.

pub mod modem;
