//! Parts of the `larmd` command line: the modem tools, the plugin tools
//! (signing, installs), the integrator's kit (new projects, scenario tests,
//! reloads) and the console of `larmd run` on the simulated board.

pub mod console;
pub mod dev;
pub mod modem;
pub mod new;
pub mod plugin;
pub mod test;
