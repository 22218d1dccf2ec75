//! `clock`: always allowed.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::HostState;
use crate::plugins::bindings::larm::plugin::clock::Host;

impl Host for HostState {
    fn monotonic_now(&mut self) -> u64 {
        self.caps.shared.monotonic_ms(Instant::now())
    }

    fn wall_now(&mut self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}
