//! larm's hardware layer: the only crate that touches the unit's hardware.
//!
//! - [`board`]: inputs, outputs, LEDs and the extended card behind the
//!   [`board::Board`] trait, input debouncing, and the simulated board.
//! - [`gpio`]: the board on Linux (GPIO character device, I2C).
//! - [`expander`]: the extended I/O card's expander chip.
//! - [`leds`]: the status LEDs' blink codes.
//! - [`modem`]: the modem: AT commands, SMS in PDU mode, and its simulator.

pub mod board;
pub mod expander;
pub mod gpio;
pub mod leds;
pub mod modem;
