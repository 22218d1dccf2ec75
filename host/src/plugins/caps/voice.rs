//! `voice`: needs the number in the `calls` grant.

use larm_rules::settings::clamp_ring_s;

use super::HostState;
use crate::config::Scope;
use crate::plugins::bindings::larm::plugin::types::Error;
use crate::plugins::bindings::larm::plugin::voice::Host;
use crate::quota::Cost;
use crate::unit::Action;

impl Host for HostState {
    fn dial(&mut self, number: String, ring_s: u32) -> Result<(), Error> {
        let caps = &self.caps;
        let number = caps.reachable(&caps.grants.calls, &number, "call to", "calls")?;
        caps.spend(Cost::Call, 1)?;
        caps.emit(Action::Call {
            by: caps.name.to_string(),
            number: number.to_string(),
            ring_s: clamp_ring_s(ring_s),
        });
        Ok(())
    }

    fn reject_call(&mut self) -> Result<(), Error> {
        let caps = &self.caps;
        if caps.grants.calls == Scope::None {
            return Err(caps.refuse("voice.reject-call", "calls"));
        }
        caps.emit(Action::RejectCall {
            by: caps.name.to_string(),
        });
        Ok(())
    }
}
