//! `password`: needs `password = true`. A plugin can check a candidate or
//! set a new one, never read the stored one.

use tracing::info;

use super::{HostState, from_state};
use crate::plugins::bindings::larm::plugin::password::Host;
use crate::plugins::bindings::larm::plugin::types::Error;

impl HostState {
    fn check_password_grant(&self, call: &str) -> Result<(), Error> {
        self.caps
            .require(self.caps.grants.password, call, "password")
    }
}

impl Host for HostState {
    /// Throttled per sender; a locked-out sender is told `false` whatever
    /// it sends.
    fn verify(&mut self, sender: String, candidate: String) -> Result<bool, Error> {
        self.check_password_grant("password.verify")?;
        let shared = &self.caps.shared;
        let sender = sender.escape_debug().to_string();
        shared
            .password
            .verify(&sender, || shared.state.password_matches(&candidate))
            .map_err(from_state)
    }

    fn change(&mut self, new_password: String) -> Result<(), Error> {
        self.check_password_grant("password.change")?;
        if !larm_rules::password::valid(&new_password) {
            return Err(Error::Invalid(larm_rules::password::RULE.into()));
        }
        self.caps
            .shared
            .state
            .set_password(&new_password)
            .map_err(from_state)?;
        info!(plugin = %self.caps.name, "SMS password changed");
        Ok(())
    }

    fn is_factory_default(&mut self) -> Result<bool, Error> {
        self.check_password_grant("password.is-factory-default")?;
        self.caps
            .shared
            .state
            .password_matches(larm_rules::password::FACTORY)
            .map_err(from_state)
    }
}
