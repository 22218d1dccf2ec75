//! `system`: each action needs its name in the `system` grant.

use super::{HostState, from_state};
use crate::config::SystemAction;
use crate::plugins::bindings::larm::plugin::system::{Host, RestartTarget};
use crate::plugins::bindings::larm::plugin::types::Error;
use crate::unit::Action;

impl HostState {
    fn check_system_grant(&self, action: SystemAction, name: &str) -> Result<(), Error> {
        let granted = self.caps.grants.system.contains(&action);
        self.caps
            .require(granted, name, &format!("system = [\"{name}\"]"))
    }
}

impl Host for HostState {
    fn restart(&mut self, target: RestartTarget) -> Result<(), Error> {
        match target {
            RestartTarget::Modem => {
                self.check_system_grant(SystemAction::RestartModem, "restart-modem")?
            }
            RestartTarget::Unit => {
                self.check_system_grant(SystemAction::RestartUnit, "restart-unit")?
            }
        }
        self.caps.emit(Action::Restart {
            by: self.caps.name.to_string(),
            target,
        });
        Ok(())
    }

    fn factory_reset(&mut self) -> Result<(), Error> {
        self.check_system_grant(SystemAction::FactoryReset, "factory-reset")?;
        self.caps.shared.state.factory_reset().map_err(from_state)?;
        // The plugins forget what they switched on (an alarm they
        // remembered): their latched holds would bind nobody's hand.
        self.caps.shared.outputs.release_latched();
        self.caps.emit(Action::FactoryReset {
            by: self.caps.name.to_string(),
        });
        Ok(())
    }
}
