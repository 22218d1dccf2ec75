//! A simulated board: what `larmd` runs on without hardware, and what tests drive.

use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::broadcast;

use super::{Board, BoardError, Contact, InputEdge, InputId, OutputId};

/// Edges buffered for a slow subscriber before it starts losing them.
const EDGE_BUFFER: usize = 1024;

/// A board held in memory. Inputs start open, outputs off.
pub struct SimBoard {
    state: Mutex<State>,
    edges: broadcast::Sender<InputEdge>,
}

struct State {
    inputs: Vec<Contact>,
    outputs: Vec<bool>,
}

impl SimBoard {
    /// A board with `inputs` inputs and `outputs` outputs.
    pub fn new(inputs: u8, outputs: u8) -> Self {
        Self {
            state: Mutex::new(State {
                inputs: vec![Contact::Open; usize::from(inputs)],
                outputs: vec![false; usize::from(outputs)],
            }),
            edges: broadcast::channel(EDGE_BUFFER).0,
        }
    }

    /// Closes or opens an input, as a wire to COM would. An edge is sent to
    /// subscribers only if the state changes.
    pub fn set_input(&self, input: InputId, contact: Contact) -> Result<(), BoardError> {
        let mut state = self.state.lock().unwrap();
        let count = state.inputs.len() as u8;
        let slot = index(input.0, count)
            .and_then(|i| state.inputs.get_mut(i))
            .ok_or(BoardError::NoSuchInput(input, count))?;
        if *slot != contact {
            *slot = contact;
            // No subscriber is fine: nobody is listening yet.
            let _ = self.edges.send(InputEdge {
                input,
                contact,
                at: Instant::now(),
            });
        }
        Ok(())
    }

    /// Every output's state, output 1 first.
    pub fn outputs(&self) -> Vec<bool> {
        self.state.lock().unwrap().outputs.clone()
    }
}

/// The zero-based slot of a one-based terminal number.
fn index(id: u8, count: u8) -> Option<usize> {
    (1..=count).contains(&id).then(|| usize::from(id - 1))
}

impl Board for SimBoard {
    fn input_count(&self) -> u8 {
        self.state.lock().unwrap().inputs.len() as u8
    }

    fn output_count(&self) -> u8 {
        self.state.lock().unwrap().outputs.len() as u8
    }

    fn read_input(&self, input: InputId) -> Result<Contact, BoardError> {
        let state = self.state.lock().unwrap();
        let count = state.inputs.len() as u8;
        index(input.0, count)
            .map(|i| state.inputs[i])
            .ok_or(BoardError::NoSuchInput(input, count))
    }

    fn read_output(&self, output: OutputId) -> Result<bool, BoardError> {
        let state = self.state.lock().unwrap();
        let count = state.outputs.len() as u8;
        index(output.0, count)
            .map(|i| state.outputs[i])
            .ok_or(BoardError::NoSuchOutput(output, count))
    }

    fn set_output(&self, output: OutputId, on: bool) -> Result<(), BoardError> {
        let mut state = self.state.lock().unwrap();
        let count = state.outputs.len() as u8;
        let i = index(output.0, count).ok_or(BoardError::NoSuchOutput(output, count))?;
        state.outputs[i] = on;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<InputEdge> {
        self.edges.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_only_on_change() {
        let board = SimBoard::new(2, 2);
        let mut edges = board.subscribe();
        board.set_input(InputId(1), Contact::Closed).unwrap();
        board.set_input(InputId(1), Contact::Closed).unwrap();
        board.set_input(InputId(1), Contact::Open).unwrap();
        let first = edges.try_recv().unwrap();
        assert_eq!((first.input, first.contact), (InputId(1), Contact::Closed));
        let second = edges.try_recv().unwrap();
        assert_eq!(second.contact, Contact::Open);
        assert!(second.at >= first.at);
        assert!(edges.try_recv().is_err());
    }

    #[test]
    fn terminals_are_numbered_from_one() {
        let board = SimBoard::new(2, 3);
        assert_eq!(
            board.set_input(InputId(0), Contact::Closed),
            Err(BoardError::NoSuchInput(InputId(0), 2))
        );
        assert_eq!(
            board.set_output(OutputId(4), true),
            Err(BoardError::NoSuchOutput(OutputId(4), 3))
        );
        board.set_output(OutputId(3), true).unwrap();
        assert_eq!(board.outputs(), vec![false, false, true]);
        assert_eq!(board.read_output(OutputId(3)), Ok(true));
        assert_eq!(board.read_input(InputId(2)), Ok(Contact::Open));
    }
}
