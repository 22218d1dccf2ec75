//! The unit's inputs and outputs.
//!
//! Inputs are active low: the board reports the raw physical state of each
//! contact (closed to COM or open). NO/NC is applied above this layer, as the
//! manual says the input LED shows the physical state regardless of NO/NC.

mod sim;

pub use sim::SimBoard;

use std::fmt;
use std::time::Instant;

use tokio::sync::broadcast;

/// An input terminal, numbered from 1 as printed on the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InputId(pub u8);

/// An output terminal, numbered from 1 (the top output LED).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutputId(pub u8);

impl fmt::Display for InputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input {}", self.0)
    }
}

impl fmt::Display for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "output {}", self.0)
    }
}

/// Physical state of an input contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Contact {
    /// Closed to COM.
    Closed,
    /// Open.
    Open,
}

/// A debounced edge on an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputEdge {
    /// The input that changed.
    pub input: InputId,
    /// Its new state.
    pub contact: Contact,
    /// When the edge was seen.
    pub at: Instant,
}

/// Errors from the board.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoardError {
    /// The unit has no such input.
    #[error("{0} does not exist (the unit has {1} inputs)")]
    NoSuchInput(InputId, u8),
    /// The unit has no such output.
    #[error("{0} does not exist (the unit has {1} outputs)")]
    NoSuchOutput(OutputId, u8),
    /// The hardware did not answer.
    #[error("hardware error: {0}")]
    Hardware(String),
}

/// The unit's inputs and outputs.
pub trait Board: Send + Sync {
    /// Number of inputs.
    fn input_count(&self) -> u8;
    /// Number of outputs; the last one is the manual's ALARM output.
    fn output_count(&self) -> u8;
    /// Current state of an input.
    fn read_input(&self, input: InputId) -> Result<Contact, BoardError>;
    /// Whether an output is on.
    fn read_output(&self, output: OutputId) -> Result<bool, BoardError>;
    /// Switches an output on (closed to COM) or off.
    fn set_output(&self, output: OutputId, on: bool) -> Result<(), BoardError>;
    /// A stream of input edges from now on.
    fn subscribe(&self) -> broadcast::Receiver<InputEdge>;
}
