//! `kv`: always allowed; each plugin's store is its own, with a quota.

use super::{HostState, from_state};
use crate::plugins::bindings::larm::plugin::kv::Host;
use crate::plugins::bindings::larm::plugin::types::Error;

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        let caps = &self.caps;
        caps.shared
            .state
            .kv_get(&caps.name, &key)
            .map_err(from_state)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), Error> {
        let caps = &self.caps;
        caps.shared
            .state
            .kv_set(&caps.name, &key, Some(&value))
            .map_err(from_state)
    }

    fn delete(&mut self, key: String) -> Result<(), Error> {
        let caps = &self.caps;
        caps.shared
            .state
            .kv_set(&caps.name, &key, None)
            .map_err(from_state)
    }

    fn entries(&mut self, prefix: String) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let caps = &self.caps;
        caps.shared
            .state
            .kv_entries(&caps.name, &prefix)
            .map_err(from_state)
    }
}
