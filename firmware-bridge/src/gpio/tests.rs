//! The board logic behind embedded-hal mocks: polarity from config, line
//! traffic, and the extended card's register traffic as it comes and goes.

use embedded_hal_mock::eh1::digital::{Mock as Pin, State, Transaction as PinOp};
use embedded_hal_mock::eh1::i2c::{Mock as Bus, Transaction as BusOp};

use super::*;
use crate::expander::CardChip;

fn pin(ops: &[PinOp]) -> Pin {
    Pin::new(ops)
}

/// Four LED pins, active high, switched off at start.
fn leds() -> ([Output<Pin>; 4], Vec<Pin>) {
    leds_with_red(pin(&[PinOp::set(State::Low)]), false)
}

/// LED pins with the given red pin.
fn leds_with_red(red: Pin, red_active_low: bool) -> ([Output<Pin>; 4], Vec<Pin>) {
    let mut pins: Vec<Pin> = (0..3).map(|_| pin(&[PinOp::set(State::Low)])).collect();
    pins.push(red);
    let outputs = [
        (pins[0].clone(), false),
        (pins[1].clone(), false),
        (pins[2].clone(), false),
        (pins[3].clone(), red_active_low),
    ];
    (outputs, pins)
}

fn done(pins: impl IntoIterator<Item = Pin>) {
    for mut p in pins {
        p.done();
    }
}

#[tokio::test]
async fn output_polarity_comes_from_the_config() {
    let high_on = pin(&[
        PinOp::set(State::Low),
        PinOp::set(State::High),
        PinOp::set(State::Low),
    ]);
    let low_on = pin(&[PinOp::set(State::High), PinOp::set(State::Low)]);
    let (led_pins, led_mocks) = leds();
    let board = GpioBoard::<Pin, Bus>::new(
        vec![],
        vec![(high_on.clone(), false), (low_on.clone(), true)],
        led_pins,
        None,
        Duration::ZERO,
    )
    .unwrap();
    board.set_output(OutputId(1), true).unwrap();
    board.set_output(OutputId(1), false).unwrap();
    board.set_output(OutputId(2), true).unwrap();
    assert_eq!(board.read_output(OutputId(2)), Ok(true));
    assert_eq!(board.alarm_output(), OutputId(2));
    assert_eq!(
        board.set_output(OutputId(3), true),
        Err(BoardError::NoSuchOutput(OutputId(3), 2))
    );
    assert_eq!(*board.card().borrow(), CardState::NotFitted);
    done([high_on, low_on]);
    done(led_mocks);
}

#[tokio::test]
async fn leds_are_lines_too() {
    let red = pin(&[
        PinOp::set(State::High),
        PinOp::set(State::Low),
        PinOp::set(State::High),
    ]);
    let (led_pins, led_mocks) = leds_with_red(red, true);
    let board = GpioBoard::<Pin, Bus>::new(vec![], vec![], led_pins, None, Duration::ZERO).unwrap();
    board.set_led(Led::Red, true).unwrap();
    board.set_led(Led::Red, false).unwrap();
    done(led_mocks);
}

#[tokio::test]
async fn input_polarity_comes_from_the_config() {
    let (led_pins, led_mocks) = leds();
    // (physical level high, active low)
    let board = GpioBoard::<Pin, Bus>::new(
        vec![(true, true), (false, true), (true, false)],
        vec![],
        led_pins,
        None,
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(board.read_input(InputId(1)), Ok(Contact::Open));
    assert_eq!(
        board.read_input(InputId(2)),
        Ok(Contact::Closed),
        "low on an active-low line"
    );
    assert_eq!(board.read_input(InputId(3)), Ok(Contact::Closed));
    let mut edges = board.subscribe();
    board.raw_edge(InputId(1), false).unwrap();
    let edge = edges.recv().await.unwrap();
    assert_eq!((edge.input, edge.contact), (InputId(1), Contact::Closed));
    assert_eq!(
        board.raw_edge(InputId(4), true),
        Err(BoardError::NoSuchInput(InputId(4), 3))
    );
    done(led_mocks);
}

fn card_config() -> CardConfig {
    CardConfig {
        chip: CardChip::Pcf8574,
        bus: "/dev/i2c-1".into(),
        address: 0x20,
        inputs: vec![0, 1],
        outputs: vec![2, 3],
    }
}

#[tokio::test]
async fn the_card_is_detected_lost_and_recovered() {
    let nack = embedded_hal::i2c::ErrorKind::NoAcknowledge(
        embedded_hal::i2c::NoAcknowledgeSource::Address,
    );
    let mut bus = Bus::new(&[
        // Start: outputs written off, inputs read (input 4 closed).
        BusOp::write(0x20, vec![0xff]),
        BusOp::write(0x20, vec![0xff]),
        BusOp::read(0x20, vec![0b1111_1101]),
        // Card output 1 (terminal 2) on: pin 2 sinks.
        BusOp::write(0x20, vec![0b1111_1011]),
        // The card stops answering.
        BusOp::write(0x20, vec![0b1111_1011]).with_error(nack),
        // It comes back powered up blank: its outputs are written again.
        BusOp::write(0x20, vec![0b1111_1011]),
        BusOp::write(0x20, vec![0b1111_1011]),
        BusOp::read(0x20, vec![0b1111_1111]),
    ]);
    let card = ExtendedCard::new(bus.clone(), &card_config()).unwrap();
    let base_output = pin(&[PinOp::set(State::Low)]);
    let (led_pins, led_mocks) = leds();
    let board = GpioBoard::new(
        vec![(true, true), (true, true)],
        vec![(base_output.clone(), false)],
        led_pins,
        Some(card),
        Duration::ZERO,
    )
    .unwrap();
    let state = board.card();
    assert_eq!(*state.borrow(), CardState::Present);
    assert_eq!((board.input_count(), board.output_count()), (4, 3));
    assert_eq!(
        board.alarm_output(),
        OutputId(1),
        "ALARM is on the base board"
    );
    assert_eq!(board.read_input(InputId(4)), Ok(Contact::Closed));
    assert_eq!(board.read_input(InputId(3)), Ok(Contact::Open));

    board.set_output(OutputId(2), true).unwrap();

    board.poll_card();
    assert_eq!(*state.borrow(), CardState::Missing);
    assert_eq!(
        board.set_output(OutputId(3), true),
        Err(BoardError::CardMissing)
    );
    assert_eq!(board.read_input(InputId(3)), Err(BoardError::CardMissing));
    assert_eq!(
        board.read_input(InputId(1)),
        Ok(Contact::Open),
        "base inputs still work"
    );

    board.poll_card();
    assert_eq!(*state.borrow(), CardState::Present);
    assert_eq!(board.read_output(OutputId(2)), Ok(true));
    assert_eq!(board.read_input(InputId(4)), Ok(Contact::Open));
    bus.done();
    done([base_output]);
    done(led_mocks);
}

#[test]
fn a_board_config_reads_from_toml() {
    let config: GpioConfig = toml::from_str(
        r#"
        inputs = [{ chip = "/dev/gpiochip0", line = 5 }]
        outputs = [{ chip = "/dev/gpiochip0", line = 17, active_low = true }]
        [leds]
        blue = { chip = "/dev/gpiochip0", line = 20 }
        green = { chip = "/dev/gpiochip0", line = 21 }
        yellow = { chip = "/dev/gpiochip0", line = 22 }
        red = { chip = "/dev/gpiochip0", line = 23 }
        [card]
        chip = "pcf8574"
        bus = "/dev/i2c-1"
        address = 0x21
        inputs = [0, 1, 2, 3]
        outputs = [4, 5, 6, 7]
        "#,
    )
    .unwrap();
    assert_eq!(config.inputs[0].active_low, None);
    assert_eq!(config.outputs[0].active_low, Some(true));
    assert_eq!(config.card.unwrap().address, 0x21);
}

#[tokio::test]
async fn opening_a_missing_chip_names_it() {
    let config: GpioConfig = toml::from_str(
        r#"
        inputs = [{ chip = "/dev/no-such-gpiochip", line = 5 }]
        outputs = []
        [leds]
        blue = { chip = "/dev/no-such-gpiochip", line = 20 }
        green = { chip = "/dev/no-such-gpiochip", line = 21 }
        yellow = { chip = "/dev/no-such-gpiochip", line = 22 }
        red = { chip = "/dev/no-such-gpiochip", line = 23 }
        "#,
    )
    .unwrap();
    match open(&config, Duration::ZERO) {
        Err(BoardError::Hardware(msg)) => {
            assert!(msg.contains("/dev/no-such-gpiochip line 5"), "{msg}")
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened a chip that does not exist"),
    }
}

#[tokio::test]
async fn a_card_missing_at_start_is_reported() {
    let mut bus =
        Bus::new(&[BusOp::write(0x20, vec![0xff]).with_error(embedded_hal::i2c::ErrorKind::Bus)]);
    let card = ExtendedCard::new(bus.clone(), &card_config()).unwrap();
    let (led_pins, led_mocks) = leds();
    let output = pin(&[PinOp::set(State::Low)]);
    let board = GpioBoard::new(
        vec![(true, true)],
        vec![(output.clone(), false)],
        led_pins,
        Some(card),
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(*board.card().borrow(), CardState::Missing);
    assert_eq!(board.read_input(InputId(2)), Err(BoardError::CardMissing));
    assert_eq!(board.read_input(InputId(1)), Ok(Contact::Open));
    bus.done();
    done([output]);
    done(led_mocks);
}
