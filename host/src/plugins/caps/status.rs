//! `status`: always allowed.

use super::HostState;
use crate::plugins::bindings::larm::plugin::status::Host;
use crate::plugins::bindings::larm::plugin::types::{DeviceStatus, PluginHealth};

impl Host for HostState {
    fn device(&mut self) -> DeviceStatus {
        self.caps.shared.device_status()
    }

    fn plugins(&mut self) -> Vec<PluginHealth> {
        self.caps.shared.plugin_health()
    }
}
