//! Parts of the `larmd` command line: the modem tools and the console of
//! `larmd run` on the simulated board.

pub mod console;
pub mod modem;
