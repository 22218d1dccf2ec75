//! `settings`: reading needs `settings = "read"` or `"write"`, changing
//! `"write"`. Every change is checked by the rules the default plugins
//! use (`larm-rules`), so no plugin can store a value another cannot read.

use super::{HostState, from_state};
use crate::config::SettingsAccess;
use crate::plugins::bindings::larm::plugin::settings::Host;
use crate::plugins::bindings::larm::plugin::types::Error;
use crate::unit::shared::SettingsError;

impl HostState {
    fn check_settings_grant(&self, call: &str, need: SettingsAccess) -> Result<(), Error> {
        let grant = match need {
            SettingsAccess::Write => "settings = \"write\"",
            _ => "settings = \"read\"",
        };
        self.caps
            .require(self.caps.grants.settings >= need, call, grant)
    }

    /// Checks changes by the rules the default plugins use, and commits
    /// them with the plugin's own store entries, together.
    fn store(
        &mut self,
        changes: &[(&str, Option<&str>)],
        kv: &[(&str, Option<&[u8]>)],
    ) -> Result<(), Error> {
        self.caps
            .shared
            .change_settings(&self.caps.name, changes, kv)
            .map_err(|e| match e {
                SettingsError::Invalid(why) => Error::Invalid(why),
                SettingsError::State(e) => from_state(e),
            })
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        self.check_settings_grant("settings.get", SettingsAccess::Read)?;
        self.caps.shared.state.setting(&key).map_err(from_state)
    }

    fn set(&mut self, key: String, value: String) -> Result<(), Error> {
        self.check_settings_grant("settings.set", SettingsAccess::Write)?;
        self.store(&[(&key, Some(&value))], &[])
    }

    fn set_all(
        &mut self,
        changes: Vec<(String, Option<String>)>,
        store: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<(), Error> {
        self.check_settings_grant("settings.set-all", SettingsAccess::Write)?;
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
        self.store(&[(&key, None)], &[])
    }

    fn entries(&mut self, prefix: String) -> Result<Vec<(String, String)>, Error> {
        self.check_settings_grant("settings.entries", SettingsAccess::Read)?;
        self.caps.shared.state.settings(&prefix).map_err(from_state)
    }
}
