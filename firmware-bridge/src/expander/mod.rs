//! The extended I/O card: a PCF8574 8-bit I2C expander, the most common
//! part on such cards, driven through the `pcf857x` crate over any
//! embedded-hal 1.0 `I2c` (linux-embedded-hal's `I2cdev` on a unit).
//!
//! The PCF8574 is quasi-bidirectional: a pin written 1 is weakly pulled up
//! and can be read as an input; a pin written 0 sinks current. Input pins are
//! therefore always written 1, and an input reads 0 when its contact closes
//! to COM (active low). Outputs sink current when on, so "on" writes 0.

use embedded_hal::i2c::I2c;
use pcf857x::{Pcf8574, PinFlag, SlaveAddr};
use serde::Deserialize;

use crate::board::Contact;

/// `[board.gpio.card]`: which chip, where, and which of its pins are
/// inputs and outputs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CardConfig {
    /// The expander part. Only `"pcf8574"` for now.
    pub chip: CardChip,
    /// The I2C bus device, e.g. `/dev/i2c-1`.
    pub bus: std::path::PathBuf,
    /// The chip's 7-bit address (0x20-0x27 for a PCF8574).
    #[serde(default = "default_address")]
    pub address: u8,
    /// Expander pins (0-7) wired to the card's inputs, in terminal order.
    pub inputs: Vec<u8>,
    /// Expander pins (0-7) wired to the card's outputs, in terminal order.
    pub outputs: Vec<u8>,
}

fn default_address() -> u8 {
    0x20
}

/// Supported expander parts.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CardChip {
    /// NXP/TI PCF8574, 8 quasi-bidirectional pins.
    Pcf8574,
}

/// Errors of the card.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CardError {
    /// The config is impossible for the chip.
    #[error("extended card config: {0}")]
    Config(String),
    /// The card did not answer on the bus.
    #[error("the extended I/O card does not answer")]
    NoAnswer,
}

/// The extended I/O card.
pub struct ExtendedCard<I2C> {
    chip: Pcf8574<I2C>,
    inputs: Vec<u8>,
    outputs: Vec<u8>,
    on: Vec<bool>,
}

impl<I2C: I2c> ExtendedCard<I2C> {
    /// A card on `i2c` as `config` describes it; nothing is sent yet.
    pub fn new(i2c: I2C, config: &CardConfig) -> Result<Self, CardError> {
        if !(0x20..=0x27).contains(&config.address) {
            return Err(CardError::Config(format!(
                "a PCF8574 is at 0x20-0x27, not {:#04x}",
                config.address
            )));
        }
        let mut used = 0u8;
        for &pin in config.inputs.iter().chain(&config.outputs) {
            if pin > 7 || used & (1 << pin) != 0 {
                return Err(CardError::Config(format!(
                    "pin {pin} is out of range (0-7) or used twice"
                )));
            }
            used |= 1 << pin;
        }
        let a = config.address - 0x20;
        let address = SlaveAddr::Alternative(a & 4 != 0, a & 2 != 0, a & 1 != 0);
        Ok(Self {
            chip: Pcf8574::new(i2c, address),
            inputs: config.inputs.clone(),
            outputs: config.outputs.clone(),
            on: vec![false; config.outputs.len()],
        })
    }

    /// Number of inputs on the card.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Number of outputs on the card.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// The byte to write: inputs and outputs that are off high, outputs that are on low.
    fn port(&self) -> u8 {
        self.outputs.iter().zip(&self.on).fold(
            0xff,
            |bits, (&pin, &on)| if on { bits & !(1 << pin) } else { bits },
        )
    }

    /// Writes every output (also after the card comes back from a power loss).
    pub fn write_outputs(&mut self) -> Result<(), CardError> {
        let port = self.port();
        self.chip.set(port).map_err(|_| CardError::NoAnswer)
    }

    /// Switches card output `index` (0-based) and writes the port.
    pub fn set_output(&mut self, index: usize, on: bool) -> Result<(), CardError> {
        let was = std::mem::replace(&mut self.on[index], on);
        self.write_outputs().inspect_err(|_| self.on[index] = was)
    }

    /// Whether card output `index` is on.
    pub fn output(&self, index: usize) -> bool {
        self.on[index]
    }

    /// Reads every card input; failing to means the card is missing.
    pub fn read_inputs(&mut self) -> Result<Vec<Contact>, CardError> {
        let Some((&first, rest)) = self.inputs.split_first() else {
            // Nothing to read: an acknowledged write still proves the card is there.
            return self.write_outputs().map(|()| Vec::new());
        };
        let mask = rest
            .iter()
            .fold(pin_flag(first), |mask, &pin| mask | pin_flag(pin));
        let bits = self.chip.get(mask).map_err(|_| CardError::NoAnswer)?;
        Ok(self
            .inputs
            .iter()
            .map(|&pin| {
                if bits & (1 << pin) == 0 {
                    Contact::Closed
                } else {
                    Contact::Open
                }
            })
            .collect())
    }
}

fn pin_flag(pin: u8) -> PinFlag {
    [
        PinFlag::P0,
        PinFlag::P1,
        PinFlag::P2,
        PinFlag::P3,
        PinFlag::P4,
        PinFlag::P5,
        PinFlag::P6,
        PinFlag::P7,
    ][usize::from(pin)]
}

#[cfg(test)]
mod tests {
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    use super::*;

    fn config() -> CardConfig {
        CardConfig {
            chip: CardChip::Pcf8574,
            bus: "/dev/i2c-1".into(),
            address: 0x21,
            inputs: vec![0, 1, 2, 3],
            outputs: vec![4, 5, 6, 7],
        }
    }

    #[test]
    fn outputs_sink_when_on_and_inputs_stay_high() {
        let mut i2c = Mock::new(&[
            Transaction::write(0x21, vec![0xff]),
            Transaction::write(0x21, vec![0b1110_1111]),
            Transaction::write(0x21, vec![0b0110_1111]),
        ]);
        let mut card = ExtendedCard::new(i2c.clone(), &config()).unwrap();
        card.write_outputs().unwrap();
        card.set_output(0, true).unwrap();
        card.set_output(3, true).unwrap();
        assert!(card.output(3) && !card.output(1));
        i2c.done();
    }

    #[test]
    fn inputs_are_active_low() {
        let mut i2c = Mock::new(&[
            // Reading writes the input pins high first, then reads the port.
            Transaction::write(0x21, vec![0x0f]),
            Transaction::read(0x21, vec![0b1111_0101]),
        ]);
        let mut card = ExtendedCard::new(i2c.clone(), &config()).unwrap();
        assert_eq!(
            card.read_inputs().unwrap(),
            [
                Contact::Open,
                Contact::Closed,
                Contact::Open,
                Contact::Closed
            ]
        );
        i2c.done();
    }

    #[test]
    fn a_silent_card_is_reported_and_keeps_its_state() {
        let mut i2c = Mock::new(&[
            Transaction::write(0x21, vec![0b1110_1111]).with_error(
                embedded_hal::i2c::ErrorKind::NoAcknowledge(
                    embedded_hal::i2c::NoAcknowledgeSource::Address,
                ),
            ),
            Transaction::write(0x21, vec![0x0f]).with_error(embedded_hal::i2c::ErrorKind::Bus),
        ]);
        let mut card = ExtendedCard::new(i2c.clone(), &config()).unwrap();
        assert_eq!(card.set_output(0, true), Err(CardError::NoAnswer));
        assert!(!card.output(0), "a failed write does not count as switched");
        assert_eq!(card.read_inputs(), Err(CardError::NoAnswer));
        i2c.done();
    }

    #[test]
    fn impossible_configs_are_refused() {
        let i2c = Mock::new(&[]);
        let mut bad = config();
        bad.address = 0x50;
        assert!(ExtendedCard::new(i2c.clone(), &bad).is_err());
        let mut bad = config();
        bad.outputs = vec![3, 8];
        assert!(ExtendedCard::new(i2c.clone(), &bad).is_err());
        i2c.clone().done();
    }
}
