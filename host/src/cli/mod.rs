//! Parts of the `larmd` command line: the modem tools, the plugin tools
//! (signing, installs), the integrator's kit (new projects, scenario tests,
//! reloads), the console of `larmd run` on the simulated board and the
//! log's formats.

pub mod console;
pub mod dev;
pub mod log;
pub mod modem;
pub mod new;
pub mod plugin;
pub mod test;
