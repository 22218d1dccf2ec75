//! The unit-wide actions: effects that plugins, the HTTP API and the
//! server link ask of the unit, carried out by its event loop.

use crate::plugins::bindings::larm::plugin::system::RestartTarget;
use crate::plugins::bindings::larm::plugin::types::Report;

/// An effect that leaves the unit or changes it as a whole.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// An output was switched (already applied to the board).
    Output {
        /// Who switched it.
        by: String,
        /// Which output.
        output: u8,
        /// New state.
        on: bool,
    },
    /// Send an SMS.
    Sms {
        /// The plugin that sent it.
        by: String,
        /// Recipient.
        to: String,
        /// Text.
        text: String,
    },
    /// Dial a voice-call alarm.
    Call {
        /// The plugin that asked.
        by: String,
        /// Number to dial.
        number: String,
        /// Seconds to let it ring.
        ring_s: u32,
    },
    /// Report to the server.
    Report {
        /// The plugin that reported.
        by: String,
        /// What.
        report: Report,
    },
    /// Connect to the server now.
    Connect {
        /// The plugin that asked.
        by: String,
    },
    /// Change the connection interval.
    SetInterval {
        /// The plugin that asked.
        by: String,
        /// Minutes; 0 = never.
        minutes: u32,
    },
    /// Reject the call ringing in, without answering it.
    RejectCall {
        /// The plugin that asked.
        by: String,
    },
    /// Restart the modem or the unit.
    Restart {
        /// The plugin that asked.
        by: String,
        /// What to restart.
        target: RestartTarget,
    },
    /// Factory settings were restored.
    FactoryReset {
        /// The plugin that asked.
        by: String,
    },
}

impl Action {
    /// Who asked for it (for an output, who switched it).
    pub fn by(&self) -> &str {
        match self {
            Action::Output { by, .. }
            | Action::Sms { by, .. }
            | Action::Call { by, .. }
            | Action::Report { by, .. }
            | Action::Connect { by }
            | Action::SetInterval { by, .. }
            | Action::RejectCall { by }
            | Action::Restart { by, .. }
            | Action::FactoryReset { by } => by,
        }
    }
}
