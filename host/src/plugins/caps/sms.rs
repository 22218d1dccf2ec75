//! `sms`: needs the recipient in the `sms` grant.

use larm_rules::settings::MAX_VALUE;

use super::HostState;
use crate::plugins::bindings::larm::plugin::sms::Host;
use crate::plugins::bindings::larm::plugin::types::Error;
use crate::quota::Cost;
use crate::unit::Action;

impl Host for HostState {
    fn send(&mut self, to: String, text: String) -> Result<(), Error> {
        let caps = &self.caps;
        let to = caps.reachable(&caps.grants.sms, &to, "sms to", "sms")?;
        // The longest text is the longest setting value: an alarm text.
        if text.chars().count() > MAX_VALUE {
            return Err(Error::Invalid(format!(
                "text longer than {MAX_VALUE} characters"
            )));
        }
        // Billed per part, as the network bills it.
        let parts = firmware_bridge::modem::pdu::split(&text).len();
        caps.spend(Cost::Sms, parts as u32)?;
        caps.emit(Action::Sms {
            by: caps.name.to_string(),
            to: to.to_string(),
            text,
        });
        Ok(())
    }
}
