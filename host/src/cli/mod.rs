//! Parts of the `larmd` command line: the modem tools, the plugin tools
//! (signing, installs) and the console of `larmd run` on the simulated board.

pub mod console;
pub mod modem;
pub mod plugin;
