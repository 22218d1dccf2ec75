//! `io`: reading is always allowed; switching an output needs it in the
//! `outputs` grant.

use std::time::Duration;

use super::{HostState, from_board, from_output};
use crate::outputs::Switch;
use crate::plugins::bindings::larm::plugin::io::Host;
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
        self.switch(output, Switch::new(on, None))
    }

    fn pulse_output(&mut self, output: Output, duration_ms: u32) -> Result<(), Error> {
        let time = Duration::from_millis(duration_ms.into());
        self.switch(output, Switch::OnFor(time))
    }
}

impl HostState {
    fn switch(&mut self, output: Output, switch: Switch) -> Result<(), Error> {
        let caps = &self.caps;
        if !caps.grants.outputs.allows(output) {
            return Err(caps.refuse(&format!("set-output {output}"), "outputs"));
        }
        let action = caps
            .shared
            .outputs
            .switch(&caps.name, output, switch)
            .map_err(from_output)?;
        caps.emit(action);
        Ok(())
    }
}
