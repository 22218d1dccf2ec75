//! `settings`: reading needs `settings = "read"` or `"write"`, changing
//! `"write"`. Every change is checked by the rules the default plugins
//! use (`larm-rules`), so no plugin can store a value another cannot read.

use tracing::info;

use super::{HostState, from_state};
use crate::config::SettingsAccess;
use crate::plugins::bindings::larm::plugin::settings::Host;
use crate::plugins::bindings::larm::plugin::types::Error;

impl HostState {
    fn check_settings_grant(&self, call: &str, need: SettingsAccess) -> Result<(), Error> {
        let grant = match need {
            SettingsAccess::Write => "settings = \"write\"",
            _ => "settings = \"read\"",
        };
        self.caps
            .require(self.caps.grants.settings >= need, call, grant)
    }

    fn store_setting(&mut self, key: &str, value: Option<&str>) -> Result<(), Error> {
        let shared = &self.caps.shared;
        shared.state.set_setting(key, value).map_err(from_state)?;
        info!(plugin = %self.caps.name, key = %key.escape_debug(), value = ?value, "setting changed");
        Ok(())
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        self.check_settings_grant("settings.get", SettingsAccess::Read)?;
        self.caps.shared.state.setting(&key).map_err(from_state)
    }

    fn set(&mut self, key: String, value: String) -> Result<(), Error> {
        self.check_settings_grant("settings.set", SettingsAccess::Write)?;
        let inputs = self.caps.shared.board.input_count();
        larm_rules::settings::validate(&key, &value, inputs).map_err(Error::Invalid)?;
        self.store_setting(&key, Some(&value))
    }

    fn delete(&mut self, key: String) -> Result<(), Error> {
        self.check_settings_grant("settings.delete", SettingsAccess::Write)?;
        self.store_setting(&key, None)
    }

    fn entries(&mut self, prefix: String) -> Result<Vec<(String, String)>, Error> {
        self.check_settings_grant("settings.entries", SettingsAccess::Read)?;
        self.caps.shared.state.settings(&prefix).map_err(from_state)
    }
}
