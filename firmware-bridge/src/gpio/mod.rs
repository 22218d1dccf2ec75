//! The unit's own board on Linux: GPIO lines through the character-device
//! API, and the extended card over I2C.
//!
//! Outputs and LEDs are linux-embedded-hal `CdevPin`s, and the board logic
//! ([`GpioBoard`]) is written against the embedded-hal 1.0 traits so it is
//! unit-tested with embedded-hal-mock. Inputs are requested for kernel edge
//! events (gpio-cdev, uAPI v1, which every kernel since 4.8 has), not polled;
//! the extended card has no interrupt line in our wiring, so its inputs are
//! read every [`CARD_POLL`], which also notices a card that goes missing.
//!
//! Polarity is configuration, not code: each line says whether it is
//! active low, and the board applies that to the physical level. Lines are
//! requested without the kernel's ACTIVE_LOW flag so the level is never
//! inverted twice.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_hal::digital::OutputPin;
use embedded_hal::i2c::I2c;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use crate::board::{
    Board, BoardError, CardState, Contact, InputBank, InputEdge, InputId, Led, OutputId, slot,
};
use crate::expander::{CardConfig, ExtendedCard};

/// How often the extended card's inputs (and its presence) are read.
pub const CARD_POLL: Duration = Duration::from_millis(50);

/// One GPIO line.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// The GPIO chip device, e.g. `/dev/gpiochip0`.
    pub chip: PathBuf,
    /// The line's offset on that chip.
    pub line: u32,
    /// Whether the line is active low. Inputs default to true (docs/unit.md's
    /// inputs close to COM), outputs and LEDs to false.
    pub active_low: Option<bool>,
}

/// The status LEDs' lines.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LedLines {
    /// Blue LED.
    pub blue: LineConfig,
    /// Green LED.
    pub green: LineConfig,
    /// Yellow LED.
    pub yellow: LineConfig,
    /// Red LED.
    pub red: LineConfig,
}

/// `[board.gpio]`: the board's wiring.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    /// Input lines, in terminal order.
    pub inputs: Vec<LineConfig>,
    /// Output lines, in terminal order; the last is ALARM.
    pub outputs: Vec<LineConfig>,
    /// Status LED lines.
    pub leds: LedLines,
    /// The extended I/O card, if the unit has one.
    pub card: Option<CardConfig>,
}

/// An output line and its state.
struct OutputLine<P> {
    pin: P,
    active_low: bool,
    on: bool,
}

impl<P: OutputPin> OutputLine<P> {
    fn set(&mut self, on: bool) -> Result<(), BoardError> {
        let high = on != self.active_low;
        if high {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        }
        .map_err(|e| BoardError::Hardware(format!("{e:?}")))?;
        self.on = on;
        Ok(())
    }
}

/// A GPIO output and whether it is active low.
pub type Output<P> = (P, bool);

/// The board, over any embedded-hal output pins `P` and I2C bus `I`.
pub struct GpioBoard<P, I> {
    inputs: Arc<InputBank>,
    input_active_low: Vec<bool>,
    base_inputs: u8,
    outputs: Mutex<Vec<OutputLine<P>>>,
    leds: Mutex<Vec<OutputLine<P>>>,
    card: Option<Mutex<ExtendedCard<I>>>,
    card_state: watch::Sender<CardState>,
}

impl<P: OutputPin + Send, I: I2c + Send> GpioBoard<P, I> {
    /// A board whose base inputs start as `inputs` (physical level high?,
    /// active low?), with outputs and LEDs (blue, green, yellow, red) all
    /// switched off first, and an optional card.
    pub fn new(
        inputs: Vec<(bool, bool)>,
        outputs: Vec<Output<P>>,
        leds: [Output<P>; 4],
        card: Option<ExtendedCard<I>>,
        debounce: Duration,
    ) -> Result<Arc<Self>, BoardError> {
        let lines = |pins: Vec<Output<P>>| -> Result<Vec<OutputLine<P>>, BoardError> {
            pins.into_iter()
                .map(|(pin, active_low)| {
                    let mut line = OutputLine {
                        pin,
                        active_low,
                        on: true,
                    };
                    line.set(false)?;
                    Ok(line)
                })
                .collect()
        };
        let base_inputs = inputs.len() as u8;
        let card_inputs = card.as_ref().map_or(0, ExtendedCard::input_count);
        let mut initial: Vec<(Contact, Duration)> = inputs
            .iter()
            .map(|&(high, active_low)| (contact(high, active_low), debounce))
            .collect();
        initial.extend(std::iter::repeat_n((Contact::Open, debounce), card_inputs));
        let card_state = match &card {
            None => CardState::NotFitted,
            Some(_) => CardState::Missing,
        };
        let board = Arc::new(Self {
            inputs: InputBank::new(initial),
            input_active_low: inputs.iter().map(|&(_, active_low)| active_low).collect(),
            base_inputs,
            outputs: Mutex::new(lines(outputs)?),
            leds: Mutex::new(lines(leds.into())?),
            card: card.map(Mutex::new),
            card_state: watch::channel(card_state).0,
        });
        board.poll_card();
        Ok(board)
    }

    /// A raw level change on base input `input` (from a kernel edge event).
    pub fn raw_edge(self: &Arc<Self>, input: InputId, high: bool) -> Result<(), BoardError> {
        let i = slot(input.0, usize::from(self.base_inputs))
            .ok_or(BoardError::NoSuchInput(input, self.base_inputs))?;
        self.inputs
            .raw(input, contact(high, self.input_active_low[i]))
    }

    /// Reads the card: its inputs (as raw edges) and whether it answers. A
    /// card that comes back gets its outputs written again, since it lost
    /// them with its power.
    pub fn poll_card(self: &Arc<Self>) {
        let Some(card) = &self.card else {
            return;
        };
        let mut card = card.lock().unwrap();
        let was = *self.card_state.borrow();
        let read = if was == CardState::Missing {
            card.write_outputs().and_then(|()| card.read_inputs())
        } else {
            card.read_inputs()
        };
        match read {
            Ok(contacts) => {
                if was != CardState::Present {
                    info!("extended I/O card present");
                    self.card_state.send_replace(CardState::Present);
                }
                for (n, contact) in contacts.into_iter().enumerate() {
                    let input = InputId(self.base_inputs + n as u8 + 1);
                    if self.inputs.read(input) != Ok(contact) {
                        let _ = self.inputs.raw(input, contact);
                    }
                }
            }
            Err(e) => {
                if was != CardState::Missing {
                    warn!("{e}");
                    self.card_state.send_replace(CardState::Missing);
                }
            }
        }
    }

    fn card_present(&self) -> Result<(), BoardError> {
        match *self.card_state.borrow() {
            CardState::Missing => Err(BoardError::CardMissing),
            _ => Ok(()),
        }
    }
}

/// The contact a physical level means on a line of the given polarity.
fn contact(high: bool, active_low: bool) -> Contact {
    if high != active_low {
        Contact::Closed
    } else {
        Contact::Open
    }
}

impl<P: OutputPin + Send, I: I2c + Send> Board for GpioBoard<P, I> {
    fn input_count(&self) -> u8 {
        self.inputs.len() as u8
    }

    fn output_count(&self) -> u8 {
        let card = self
            .card
            .as_ref()
            .map_or(0, |c| c.lock().unwrap().output_count());
        (self.outputs.lock().unwrap().len() + card) as u8
    }

    fn alarm_output(&self) -> OutputId {
        OutputId(self.outputs.lock().unwrap().len() as u8)
    }

    fn read_input(&self, input: InputId) -> Result<Contact, BoardError> {
        if input.0 > self.base_inputs && usize::from(input.0) <= self.inputs.len() {
            self.card_present()?;
        }
        self.inputs.read(input)
    }

    fn read_output(&self, output: OutputId) -> Result<bool, BoardError> {
        let count = self.output_count();
        let i =
            slot(output.0, usize::from(count)).ok_or(BoardError::NoSuchOutput(output, count))?;
        let outputs = self.outputs.lock().unwrap();
        match outputs.get(i) {
            Some(line) => Ok(line.on),
            None => {
                self.card_present()?;
                let card = self.card.as_ref().expect("counted above");
                Ok(card.lock().unwrap().output(i - outputs.len()))
            }
        }
    }

    fn set_output(&self, output: OutputId, on: bool) -> Result<(), BoardError> {
        let count = self.output_count();
        let i =
            slot(output.0, usize::from(count)).ok_or(BoardError::NoSuchOutput(output, count))?;
        let mut outputs = self.outputs.lock().unwrap();
        let base = outputs.len();
        match outputs.get_mut(i) {
            Some(line) => line.set(on),
            None => {
                self.card_present()?;
                let card = self.card.as_ref().expect("counted above");
                card.lock()
                    .unwrap()
                    .set_output(i - base, on)
                    .map_err(|_| BoardError::CardMissing)
            }
        }
    }

    fn set_led(&self, led: Led, on: bool) -> Result<(), BoardError> {
        self.leds.lock().unwrap()[led as usize].set(on)
    }

    fn subscribe(&self) -> broadcast::Receiver<InputEdge> {
        self.inputs.subscribe()
    }

    fn card(&self) -> watch::Receiver<CardState> {
        self.card_state.subscribe()
    }
}

/// The board on a Linux unit.
pub type LinuxBoard = GpioBoard<linux_embedded_hal::CdevPin, linux_embedded_hal::I2cdev>;

fn hw(what: &str, e: impl std::fmt::Display) -> BoardError {
    BoardError::Hardware(format!("{what}: {e}"))
}

/// Opens the board the config describes: requests every line, starts the
/// edge-event and card-poll tasks on the current tokio runtime.
pub fn open(config: &GpioConfig, debounce: Duration) -> Result<Arc<LinuxBoard>, BoardError> {
    use gpio_cdev::{Chip, EventRequestFlags, LineRequestFlags};

    let line = |cfg: &LineConfig| -> Result<gpio_cdev::Line, BoardError> {
        let what = format!("{} line {}", cfg.chip.display(), cfg.line);
        Chip::new(&cfg.chip)
            .and_then(|mut chip| chip.get_line(cfg.line))
            .map_err(|e| hw(&what, e))
    };
    let output = |cfg: &LineConfig| -> Result<Output<linux_embedded_hal::CdevPin>, BoardError> {
        let what = format!("{} line {}", cfg.chip.display(), cfg.line);
        let active_low = cfg.active_low.unwrap_or(false);
        let handle = line(cfg)?
            .request(LineRequestFlags::OUTPUT, u8::from(active_low), "larm")
            .map_err(|e| hw(&what, e))?;
        let pin = linux_embedded_hal::CdevPin::new(handle).map_err(|e| hw(&what, e))?;
        Ok((pin, active_low))
    };

    let mut events = Vec::new();
    let mut inputs = Vec::new();
    for cfg in &config.inputs {
        let what = format!("{} line {}", cfg.chip.display(), cfg.line);
        let handle = line(cfg)?
            .async_events(
                LineRequestFlags::INPUT,
                EventRequestFlags::BOTH_EDGES,
                "larm",
            )
            .map_err(|e| hw(&what, e))?;
        let high = handle.as_ref().get_value().map_err(|e| hw(&what, e))? == 1;
        inputs.push((high, cfg.active_low.unwrap_or(true)));
        events.push(handle);
    }
    let outputs = config
        .outputs
        .iter()
        .map(output)
        .collect::<Result<_, _>>()?;
    let l = &config.leds;
    let leds = [
        output(&l.blue)?,
        output(&l.green)?,
        output(&l.yellow)?,
        output(&l.red)?,
    ];
    let card = match &config.card {
        None => None,
        Some(cfg) => {
            let bus = linux_embedded_hal::I2cdev::new(&cfg.bus)
                .map_err(|e| hw(&cfg.bus.display().to_string(), e))?;
            Some(ExtendedCard::new(bus, cfg).map_err(|e| BoardError::Hardware(e.to_string()))?)
        }
    };
    let board = GpioBoard::new(inputs, outputs, leds, card, debounce)?;

    for (n, mut stream) in events.into_iter().enumerate() {
        let board = board.clone();
        let input = InputId(n as u8 + 1);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        let high = event.event_type() == gpio_cdev::EventType::RisingEdge;
                        let _ = board.raw_edge(input, high);
                    }
                    Err(e) => warn!("{input}: edge events failed: {e}"),
                }
            }
        });
    }
    if config.card.is_some() {
        let board = board.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CARD_POLL);
            loop {
                tick.tick().await;
                let board = board.clone();
                // I2C transfers block: keep them off the async workers.
                let _ = tokio::task::spawn_blocking(move || board.poll_card()).await;
            }
        });
    }
    Ok(board)
}

#[cfg(test)]
mod tests;
