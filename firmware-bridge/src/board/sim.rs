//! A simulated board: what `larmd` runs on without hardware, and what tests
//! and the simulator console drive. It keeps a timeline of LED changes so a
//! test can check a blink code.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use super::{
    Board, BoardError, CardState, Contact, InputBank, InputEdge, InputId, Led, OutputId, slot,
};

/// One LED change on the simulated board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedChange {
    /// When.
    pub at: Instant,
    /// Which LED.
    pub led: Led,
    /// Lit or not.
    pub on: bool,
}

/// The shape of a simulated board.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Inputs on the base board.
    pub inputs: u8,
    /// Outputs on the base board (the last is ALARM).
    pub outputs: u8,
    /// Debounce time of every input.
    pub debounce: Duration,
    /// The extended card's (inputs, outputs), if one is fitted.
    pub card: Option<(u8, u8)>,
    /// Inputs closed to COM at start (an NC loop that is wired); the rest are open.
    pub closed: Vec<u8>,
}

/// The LED changes a simulated board remembers (hours of blinking).
pub const LED_TIMELINE: usize = 16 * 1024;

/// A board held in memory. Inputs start open, outputs and LEDs off.
pub struct SimBoard {
    shape: SimConfig,
    inputs: Arc<InputBank>,
    state: Mutex<State>,
    card: watch::Sender<CardState>,
    outputs: watch::Sender<Vec<bool>>,
}

struct State {
    leds: [bool; 4],
    timeline: std::collections::VecDeque<LedChange>,
}

impl SimBoard {
    /// A board with `inputs` inputs and `outputs` outputs, no debounce and
    /// no extended card.
    pub fn new(inputs: u8, outputs: u8) -> Self {
        Self::with(SimConfig {
            inputs,
            outputs,
            debounce: Duration::ZERO,
            card: None,
            closed: Vec::new(),
        })
    }

    /// A board of the given shape.
    pub fn with(shape: SimConfig) -> Self {
        let (card_inputs, card_outputs) = shape.card.unwrap_or((0, 0));
        let inputs = shape.inputs + card_inputs;
        let outputs = shape.outputs + card_outputs;
        let card = match shape.card {
            Some(_) => CardState::Present,
            None => CardState::NotFitted,
        };
        Self {
            inputs: InputBank::new(
                (1..=inputs)
                    .map(|i| {
                        let contact = if shape.closed.contains(&i) {
                            Contact::Closed
                        } else {
                            Contact::Open
                        };
                        (contact, shape.debounce)
                    })
                    .collect(),
            ),
            state: Mutex::new(State {
                leds: [false; 4],
                timeline: std::collections::VecDeque::new(),
            }),
            card: watch::channel(card).0,
            outputs: watch::channel(vec![false; usize::from(outputs)]).0,
            shape,
        }
    }

    fn card_present(&self) -> bool {
        *self.card.borrow() != CardState::Missing
    }

    /// Whether input `id` is on the extended card.
    fn on_card_input(&self, id: u8) -> bool {
        id > self.shape.inputs
    }

    /// Closes or opens an input as a wire to COM would (a raw edge: it is
    /// debounced like a real one).
    pub fn set_input(&self, input: InputId, contact: Contact) -> Result<(), BoardError> {
        if self.on_card_input(input.0) && !self.card_present() {
            return Err(BoardError::CardMissing);
        }
        self.inputs.raw(input, contact)
    }

    /// Every output's state, output 1 first.
    pub fn outputs(&self) -> Vec<bool> {
        self.outputs.borrow().clone()
    }

    /// Every output's state, and its changes (a write that changes
    /// nothing is not one).
    pub fn watch_outputs(&self) -> watch::Receiver<Vec<bool>> {
        self.outputs.subscribe()
    }

    /// Which LEDs are lit (blue, green, yellow, red).
    pub fn leds(&self) -> [bool; 4] {
        self.state.lock().unwrap().leds
    }

    /// The LED changes so far, oldest first (the last [`LED_TIMELINE`]).
    pub fn led_timeline(&self) -> Vec<LedChange> {
        self.state
            .lock()
            .unwrap()
            .timeline
            .iter()
            .copied()
            .collect()
    }

    /// Puts back or pulls out the extended card; false if the board is
    /// configured without one.
    pub fn set_card_present(&self, present: bool) -> bool {
        if self.shape.card.is_none() {
            return false;
        }
        self.card.send_replace(if present {
            CardState::Present
        } else {
            CardState::Missing
        });
        true
    }
}

impl Board for SimBoard {
    fn input_count(&self) -> u8 {
        self.inputs.len() as u8
    }

    fn output_count(&self) -> u8 {
        self.outputs.borrow().len() as u8
    }

    fn alarm_output(&self) -> OutputId {
        OutputId(self.shape.outputs)
    }

    fn read_input(&self, input: InputId) -> Result<Contact, BoardError> {
        if self.on_card_input(input.0) && self.inputs.read(input).is_ok() && !self.card_present() {
            return Err(BoardError::CardMissing);
        }
        self.inputs.read(input)
    }

    fn read_output(&self, output: OutputId) -> Result<bool, BoardError> {
        let outputs = self.outputs.borrow();
        let i = slot(output.0, outputs.len())
            .ok_or(BoardError::NoSuchOutput(output, outputs.len() as u8))?;
        if output.0 > self.shape.outputs && !self.card_present() {
            return Err(BoardError::CardMissing);
        }
        Ok(outputs[i])
    }

    fn set_output(&self, output: OutputId, on: bool) -> Result<(), BoardError> {
        let count = self.outputs.borrow().len();
        let i = slot(output.0, count).ok_or(BoardError::NoSuchOutput(output, count as u8))?;
        if output.0 > self.shape.outputs && !self.card_present() {
            return Err(BoardError::CardMissing);
        }
        self.outputs
            .send_if_modified(|outputs| std::mem::replace(&mut outputs[i], on) != on);
        Ok(())
    }

    fn set_led(&self, led: Led, on: bool) -> Result<(), BoardError> {
        let mut state = self.state.lock().unwrap();
        if state.leds[led as usize] != on {
            state.leds[led as usize] = on;
            // A unit left running blinks for ever: keep the latest only.
            if state.timeline.len() == LED_TIMELINE {
                state.timeline.pop_front();
            }
            state.timeline.push_back(LedChange {
                at: tokio::time::Instant::now().into_std(),
                led,
                on,
            });
        }
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<InputEdge> {
        self.inputs.subscribe()
    }

    fn card(&self) -> watch::Receiver<CardState> {
        self.card.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn edges_only_on_change() {
        let board = SimBoard::new(2, 2);
        let mut edges = board.subscribe();
        board.set_input(InputId(1), Contact::Closed).unwrap();
        board.set_input(InputId(1), Contact::Closed).unwrap();
        let first = edges.recv().await.unwrap();
        assert_eq!((first.input, first.contact), (InputId(1), Contact::Closed));
        board.set_input(InputId(1), Contact::Open).unwrap();
        let second = edges.recv().await.unwrap();
        assert_eq!(second.contact, Contact::Open);
        assert!(second.at >= first.at);
        assert!(edges.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn inputs_are_debounced() {
        let board = SimBoard::with(SimConfig {
            inputs: 1,
            outputs: 1,
            debounce: Duration::from_millis(20),
            card: None,
            closed: vec![],
        });
        let mut edges = board.subscribe();
        board.set_input(InputId(1), Contact::Closed).unwrap();
        tokio::time::advance(Duration::from_millis(5)).await;
        board.set_input(InputId(1), Contact::Open).unwrap();
        tokio::time::advance(Duration::from_millis(50)).await;
        tokio::task::yield_now().await;
        assert!(edges.try_recv().is_err(), "a 5 ms blip is not an edge");
        board.set_input(InputId(1), Contact::Closed).unwrap();
        tokio::time::advance(Duration::from_millis(25)).await;
        assert_eq!(edges.recv().await.unwrap().contact, Contact::Closed);
    }

    #[test]
    fn outputs_are_numbered_from_one() {
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
        assert_eq!(board.alarm_output(), OutputId(3));
    }

    #[test]
    fn the_extended_card_comes_and_goes() {
        let board = SimBoard::with(SimConfig {
            inputs: 2,
            outputs: 2,
            debounce: Duration::ZERO,
            card: Some((4, 4)),
            closed: vec![6],
        });
        assert_eq!((board.input_count(), board.output_count()), (6, 6));
        assert_eq!(
            board.alarm_output(),
            OutputId(2),
            "ALARM stays on the base board"
        );
        let card = board.card();
        assert_eq!(*card.borrow(), CardState::Present);
        assert_eq!(
            board.read_input(InputId(6)),
            Ok(Contact::Closed),
            "closed at start"
        );
        board.set_output(OutputId(5), true).unwrap();
        board.set_card_present(false);
        assert_eq!(*card.borrow(), CardState::Missing);
        assert_eq!(
            board.set_output(OutputId(5), false),
            Err(BoardError::CardMissing)
        );
        assert_eq!(board.read_input(InputId(3)), Err(BoardError::CardMissing));
        assert_eq!(
            board.set_input(InputId(3), Contact::Closed),
            Err(BoardError::CardMissing)
        );
        board
            .set_output(OutputId(1), true)
            .expect("the base board still works");
        board.set_card_present(true);
        assert_eq!(board.read_output(OutputId(5)), Ok(true));
        assert_eq!(
            SimBoard::new(1, 1).card().borrow().clone(),
            CardState::NotFitted
        );
    }

    #[test]
    fn led_changes_are_recorded() {
        let board = SimBoard::new(1, 1);
        board.set_led(Led::Red, true).unwrap();
        board.set_led(Led::Red, true).unwrap();
        board.set_led(Led::Red, false).unwrap();
        let timeline = board.led_timeline();
        assert_eq!(timeline.len(), 2);
        assert!(timeline[0].on && !timeline[1].on);
        assert_eq!(board.leds(), [false; 4]);
    }
}
