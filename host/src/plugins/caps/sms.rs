//! `sms`: needs the recipient in the `sms` grant.

use larm_rules::settings::MAX_VALUE;

use super::{HostState, phone_number};
use crate::plugins::bindings::larm::plugin::sms::Host;
use crate::plugins::bindings::larm::plugin::types::Error;
use crate::unit::Action;

impl Host for HostState {
    fn send(&mut self, to: String, text: String) -> Result<(), Error> {
        let caps = &self.caps;
        if !caps.grants.sms.allows_number(&to) {
            return Err(caps.refuse(&format!("sms to {}", to.escape_debug()), "sms"));
        }
        let to = phone_number(&to)?;
        // The longest text is the longest setting value: an alarm text.
        if text.chars().count() > MAX_VALUE {
            return Err(Error::Invalid(format!(
                "text longer than {MAX_VALUE} characters"
            )));
        }
        caps.emit(Action::Sms {
            by: caps.name.to_string(),
            to: to.to_string(),
            text,
        });
        Ok(())
    }
}
