//! `server`: needs `server = true`.

use super::HostState;
use crate::plugins::bindings::larm::plugin::server::Host;
use crate::plugins::bindings::larm::plugin::types::{Error, Report};
use crate::quota::Cost;
use crate::unit::Action;

impl HostState {
    fn check_server_grant(&self, call: &str) -> Result<(), Error> {
        self.caps
            .require(self.caps.grants.server, call, "server = true")
    }
}

impl Host for HostState {
    fn send(&mut self, report: Report) -> Result<(), Error> {
        self.check_server_grant("server.send")?;
        self.caps.spend(Cost::Report, 1)?;
        self.caps.emit(Action::Report {
            by: self.caps.name.to_string(),
            report,
        });
        Ok(())
    }

    fn request_connection(&mut self) -> Result<(), Error> {
        self.check_server_grant("server.request-connection")?;
        self.caps.emit(Action::Connect {
            by: self.caps.name.to_string(),
        });
        Ok(())
    }

    fn set_interval(&mut self, minutes: u32) -> Result<(), Error> {
        self.check_server_grant("server.set-interval")?;
        larm_rules::settings::check_interval(minutes).map_err(Error::Invalid)?;
        self.caps.emit(Action::SetInterval {
            by: self.caps.name.to_string(),
            minutes,
        });
        Ok(())
    }
}
