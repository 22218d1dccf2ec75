//! `io`: reading is always allowed; switching an output needs it in the
//! `outputs` grant.

use std::time::Duration;

use super::{HostState, from_board, from_output};
use crate::outputs::Switch;
use crate::plugins::bindings::larm::plugin::io::{Host, OutputSwitch};
use crate::plugins::bindings::larm::plugin::types::{
    Contact, Error, InputId as Input, OutputId as Output,
};
use firmware_bridge::board::{Contact as BoardContact, InputId, OutputId};

impl Host for HostState {
    fn input_count(&mut self) -> u8 {
        self.caps.shared.board.input_count()
    }

    fn output_count(&mut self) -> u8 {
        self.caps.shared.board.output_count()
    }

    fn alarm_output(&mut self) -> Output {
        self.caps.shared.board.alarm_output().0
    }

    fn read_input(&mut self, input: Input) -> Result<Contact, Error> {
        match self.caps.shared.board.read_input(InputId(input)) {
            Ok(BoardContact::Closed) => Ok(Contact::Closed),
            Ok(BoardContact::Open) => Ok(Contact::Open),
            Err(e) => Err(from_board(e)),
        }
    }

    fn read_output(&mut self, output: Output) -> Result<bool, Error> {
        self.caps
            .shared
            .board
            .read_output(OutputId(output))
            .map_err(from_board)
    }

    fn set_output(&mut self, output: Output, on: bool) -> Result<(), Error> {
        self.switch(&[(output, Switch::new(on, None))])
    }

    fn pulse_output(&mut self, output: Output, duration_ms: u32) -> Result<(), Error> {
        let time = Duration::from_millis(duration_ms.into());
        self.switch(&[(output, Switch::OnFor(time))])
    }

    fn switch_outputs(&mut self, switches: Vec<OutputSwitch>) -> Result<(), Error> {
        let mut all = Vec::with_capacity(switches.len());
        for s in switches {
            let switch = match (s.on, s.duration_ms) {
                (false, Some(_)) => {
                    return Err(Error::Invalid(format!(
                        "output {}: a duration goes with on",
                        s.output
                    )));
                }
                (on, ms) => Switch::new(on, ms.map(|ms| Duration::from_millis(ms.into()))),
            };
            all.push((s.output, switch));
        }
        self.switch(&all)
    }
}

impl HostState {
    /// Switches outputs as one, if the grants allow every one.
    fn switch(&mut self, switches: &[(Output, Switch)]) -> Result<(), Error> {
        let caps = &self.caps;
        if let Some((output, _)) = switches
            .iter()
            .find(|(o, _)| !caps.grants.outputs.allows(*o))
        {
            return Err(caps.refuse(&format!("set-output {output}"), "outputs"));
        }
        let actions = caps
            .shared
            .outputs
            .switch_all(&caps.name, switches)
            .map_err(from_output)?;
        for action in actions {
            caps.emit(action);
        }
        Ok(())
    }
}
