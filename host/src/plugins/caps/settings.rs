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

    /// Stores checked changes in one transaction, and logs each.
    fn store_settings(&mut self, changes: &[(&str, Option<&str>)]) -> Result<(), Error> {
        self.store(changes, &[])
    }

    /// Commits settings and the plugin's own store entries together.
    fn store(
        &mut self,
        changes: &[(&str, Option<&str>)],
        kv: &[(&str, Option<&[u8]>)],
    ) -> Result<(), Error> {
        self.caps
            .shared
            .state
            .set_settings_and_kv(changes, &self.caps.name, kv)
            .map_err(from_state)?;
        for (key, value) in changes {
            info!(plugin = %self.caps.name, key = %key.escape_debug(), value = ?value, "setting changed");
        }
        Ok(())
    }

    /// Checks a new value by the rules the default plugins use.
    fn check_value(&self, key: &str, value: &str) -> Result<(), Error> {
        let inputs = self.caps.shared.board.input_count();
        larm_rules::settings::validate(key, value, inputs).map_err(Error::Invalid)
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        self.check_settings_grant("settings.get", SettingsAccess::Read)?;
        self.caps.shared.state.setting(&key).map_err(from_state)
    }

    fn set(&mut self, key: String, value: String) -> Result<(), Error> {
        self.check_settings_grant("settings.set", SettingsAccess::Write)?;
        self.check_value(&key, &value)?;
        self.store_settings(&[(&key, Some(&value))])
    }

    fn set_all(
        &mut self,
        changes: Vec<(String, Option<String>)>,
        store: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<(), Error> {
        self.check_settings_grant("settings.set-all", SettingsAccess::Write)?;
        for (key, value) in &changes {
            if let Some(value) = value {
                self.check_value(key, value)?;
            }
        }
        let changes: Vec<(&str, Option<&str>)> = changes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let store: Vec<(&str, Option<&[u8]>)> = store
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        self.store(&changes, &store)
    }

    fn delete(&mut self, key: String) -> Result<(), Error> {
        self.check_settings_grant("settings.delete", SettingsAccess::Write)?;
        self.store_settings(&[(&key, None)])
    }

    fn entries(&mut self, prefix: String) -> Result<Vec<(String, String)>, Error> {
        self.check_settings_grant("settings.entries", SettingsAccess::Read)?;
        self.caps.shared.state.settings(&prefix).map_err(from_state)
    }
}
