//! `clock`: always allowed. Both clocks are the unit's (see
//! [`crate::unit::now`]), so a scenario's virtual clock moves them too.

use super::HostState;
use crate::plugins::bindings::larm::plugin::clock::Host;

impl Host for HostState {
    fn monotonic_now(&mut self) -> u64 {
        self.caps.shared.monotonic_ms(crate::unit::now())
    }

    fn wall_now(&mut self) -> i64 {
        self.caps.shared.wall_now()
    }
}
