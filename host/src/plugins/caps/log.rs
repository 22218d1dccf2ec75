//! `log`: always allowed. The plugin's text is escaped, so it cannot forge
//! lines in the unit's log.

use tracing::{debug, error, info, trace, warn};

use super::HostState;
use crate::plugins::bindings::larm::plugin::log::{Host, Level};

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = &*self.caps.name;
        let message = message.escape_debug();
        match level {
            Level::Trace => trace!(plugin, "{message}"),
            Level::Debug => debug!(plugin, "{message}"),
            Level::Info => info!(plugin, "{message}"),
            Level::Warn => warn!(plugin, "{message}"),
            Level::Error => error!(plugin, "{message}"),
        }
    }
}
