//! `voice`: needs the number in the `calls` grant.

use larm_rules::settings::clamp_ring_s;

use super::HostState;
use crate::plugins::bindings::larm::plugin::types::Error;
use crate::plugins::bindings::larm::plugin::voice::Host;
use crate::unit::Action;

impl Host for HostState {
    fn dial(&mut self, number: String, ring_s: u32) -> Result<(), Error> {
        let caps = &self.caps;
        let number = caps.reachable(&caps.grants.calls, &number, "call to", "calls")?;
        caps.emit(Action::Call {
            by: caps.name.to_string(),
            number: number.to_string(),
            ring_s: clamp_ring_s(ring_s),
        });
        Ok(())
    }
}
