//! The unit's inputs, outputs, status LEDs and extended I/O card.
//!
//! Inputs are active low: the board reports the raw physical state of each
//! contact (closed to COM or open), debounced. NO/NC is applied above this
//! layer, as docs/unit.md says the input LED shows the physical state
//! regardless of NO/NC.
//!
//! Terminals are numbered from 1 as printed on the unit; the extended card's
//! inputs and outputs follow on after the base board's.

mod inputs;
mod sim;

pub use inputs::{Debouncer, InputBank};
pub use sim::{LedChange, SimBoard, SimConfig};

use std::fmt;
use std::time::Instant;

use tokio::sync::{broadcast, watch};

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
    /// When the contact reached this state (the first raw edge of the
    /// change that held for the debounce time).
    pub at: Instant,
}

/// The four status LEDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Led {
    /// Server link / signal strength.
    Blue = 0,
    /// SMS received / network type.
    Green = 1,
    /// Sending SMS / dialling.
    Yellow = 2,
    /// Corrupt configuration / error codes.
    Red = 3,
}

/// The extended I/O card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardState {
    /// The unit is not configured with one.
    NotFitted,
    /// Configured and answering.
    Present,
    /// Configured but missing or not answering (red LED, 5 blinks).
    Missing,
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
    /// The extended I/O card does not answer.
    #[error("the extended I/O card is missing or not answering")]
    CardMissing,
    /// The hardware did not answer.
    #[error("hardware error: {0}")]
    Hardware(String),
}

/// What kind of failure a [`BoardError`] is, in embedded-hal's style: what
/// a caller can do about it, whatever the board behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The id does not exist on this unit: asking again will not help.
    Invalid,
    /// The hardware is missing or not answering right now (the extended
    /// card pulled, a bus error): it may work later.
    Unavailable,
}

impl BoardError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BoardError::NoSuchInput(..) | BoardError::NoSuchOutput(..) => ErrorKind::Invalid,
            BoardError::CardMissing | BoardError::Hardware(_) => ErrorKind::Unavailable,
        }
    }
}

/// The unit's inputs, outputs and LEDs.
pub trait Board: Send + Sync {
    /// Number of inputs, extended card included.
    fn input_count(&self) -> u8;
    /// Number of outputs, extended card included; the last output of the
    /// base board is the ALARM output (docs/unit.md).
    fn output_count(&self) -> u8;
    /// The ALARM output.
    fn alarm_output(&self) -> OutputId;
    /// Current (debounced) state of an input.
    fn read_input(&self, input: InputId) -> Result<Contact, BoardError>;
    /// Whether an output is on.
    fn read_output(&self, output: OutputId) -> Result<bool, BoardError>;
    /// Switches an output on (closed to COM) or off.
    fn set_output(&self, output: OutputId, on: bool) -> Result<(), BoardError>;
    /// Lights or darkens a status LED.
    fn set_led(&self, led: Led, on: bool) -> Result<(), BoardError>;
    /// Debounced input edges from now on.
    fn subscribe(&self) -> broadcast::Receiver<InputEdge>;
    /// The extended card's state, and its changes.
    fn card(&self) -> watch::Receiver<CardState>;
}

/// The zero-based slot of a one-based terminal number.
pub(crate) fn slot(id: u8, count: usize) -> Option<usize> {
    (1..=count)
        .contains(&usize::from(id))
        .then(|| usize::from(id - 1))
}
