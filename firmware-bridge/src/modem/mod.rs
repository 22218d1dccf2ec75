//! The modem: AT commands over a serial port, SMS in PDU mode, voice-call
//! alarms, and a simulator on a pseudo-terminal.
//!
//! - [`at`]: the AT engine (framing, final codes, URCs, prompts).
//! - [`pdu`]: the SMS PDU codec and reassembly of long messages.
//! - [`driver`]: the modem's lifecycle on a serial port.
//! - [`sim`]: the simulated modem.

pub mod at;
pub mod driver;
pub mod pdu;
pub mod sim;

pub use driver::{Modem, ModemError, ModemEvent, Network, SimState, Status, Wake};
