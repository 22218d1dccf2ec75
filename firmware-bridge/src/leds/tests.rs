//! Every row of the LED table in docs/unit.md, and combinations, on a virtual clock.

use super::*;

/// Steps the engine from `t0` for `span`, change by change, and returns the
/// lit intervals of `led` as (start, length) offsets from `t0`.
fn lit(engine: &mut LedEngine, led: Led, t0: Instant, span: Duration) -> Vec<(Duration, Duration)> {
    let end = t0 + span;
    let mut now = t0;
    let mut intervals = Vec::new();
    let mut on_since: Option<Instant> = None;
    while now < end {
        let on = engine.levels(now)[led as usize];
        match (on, on_since) {
            (true, None) => on_since = Some(now),
            (false, Some(since)) => {
                intervals.push((since - t0, now - since));
                on_since = None;
            }
            _ => {}
        }
        now = match engine.next_change(now) {
            Some(next) => next.min(end),
            None => end,
        };
    }
    if let Some(since) = on_since {
        intervals.push((since - t0, end - since));
    }
    intervals
}

/// Number of blinks of `led` in `span` from `t0`.
fn blinks(engine: &mut LedEngine, led: Led, t0: Instant, span: Duration) -> usize {
    lit(engine, led, t0, span).len()
}

fn period(groups: &[u8]) -> Duration {
    Pattern::period(groups)
}

fn engine(state: UnitState) -> (LedEngine, Instant) {
    let t0 = Instant::now();
    (LedEngine::new(state, t0), t0)
}

#[test]
fn blue_steady_while_connected() {
    let (mut e, t0) = engine(UnitState {
        server_connected: true,
        signal_bars: 3,
        ..UnitState::default()
    });
    assert_eq!(
        lit(&mut e, Led::Blue, t0, Duration::from_secs(10)),
        [(Duration::ZERO, Duration::from_secs(10))]
    );
}

#[test]
fn blue_blinks_the_signal_bars() {
    for bars in 1..=5u8 {
        let (mut e, t0) = engine(UnitState {
            signal_bars: bars,
            ..UnitState::default()
        });
        let one = period(&[bars]);
        assert_eq!(
            blinks(&mut e, Led::Blue, t0, one),
            usize::from(bars),
            "{bars} bars"
        );
        assert_eq!(
            blinks(&mut e, Led::Blue, t0, one * 3),
            3 * usize::from(bars)
        );
        // A pause first, then each blink BLINK_ON long, BLINK_ON + BLINK_OFF apart.
        let intervals = lit(&mut e, Led::Blue, t0, one);
        for (i, (start, len)) in intervals.iter().enumerate() {
            assert_eq!(*len, BLINK_ON);
            assert_eq!(*start, PAUSE + (BLINK_ON + BLINK_OFF) * i as u32);
        }
    }
    let (mut e, t0) = engine(UnitState::default());
    assert_eq!(
        blinks(&mut e, Led::Blue, t0, Duration::from_secs(10)),
        0,
        "no signal: dark"
    );
}

#[test]
fn green_blinks_the_network_type() {
    let (mut e, t0) = engine(UnitState {
        network: Network::Lte,
        ..UnitState::default()
    });
    assert_eq!(blinks(&mut e, Led::Green, t0, period(&[1]) * 4), 4);
    let (mut e, t0) = engine(UnitState {
        network: Network::Gsm,
        ..UnitState::default()
    });
    assert_eq!(blinks(&mut e, Led::Green, t0, period(&[2]) * 4), 8);
    let (mut e, t0) = engine(UnitState::default());
    assert_eq!(blinks(&mut e, Led::Green, t0, Duration::from_secs(10)), 0);
}

#[test]
fn green_steady_for_five_seconds_after_an_sms() {
    let t0 = Instant::now();
    let mut e = LedEngine::new(
        UnitState {
            network: Network::Lte,
            ..UnitState::default()
        },
        t0,
    );
    let at = t0 + Duration::from_secs(1);
    e.update(
        UnitState {
            network: Network::Lte,
            sms_received: Some(at),
            ..UnitState::default()
        },
        at,
    );
    let intervals = lit(
        &mut e,
        Led::Green,
        at,
        Duration::from_secs(5) + period(&[1]),
    );
    assert_eq!(intervals[0], (Duration::ZERO, SMS_RECEIVED), "steady 5 s");
    // Then, after a pause, back to one LTE blink.
    assert_eq!(intervals[1], (SMS_RECEIVED + PAUSE, BLINK_ON));
    assert_eq!(intervals.len(), 2);
}

#[test]
fn yellow_while_sending_or_dialling() {
    let (mut e, t0) = engine(UnitState {
        busy: true,
        ..UnitState::default()
    });
    assert_eq!(
        lit(&mut e, Led::Yellow, t0, Duration::from_secs(3)),
        [(Duration::ZERO, Duration::from_secs(3))]
    );
    e.update(UnitState::default(), t0 + Duration::from_secs(3));
    assert_eq!(
        blinks(
            &mut e,
            Led::Yellow,
            t0 + Duration::from_secs(3),
            Duration::from_secs(3)
        ),
        0
    );
}

#[test]
fn red_steady_for_a_corrupt_configuration_over_any_code() {
    let (mut e, t0) = engine(UnitState {
        config_corrupt: true,
        errors: [ErrorCode::NoNetwork].into(),
        ..UnitState::default()
    });
    assert_eq!(
        lit(&mut e, Led::Red, t0, Duration::from_secs(10)),
        [(Duration::ZERO, Duration::from_secs(10))]
    );
    assert_eq!(e.describe(Led::Red), "red: steady (corrupt configuration)");
}

#[test]
fn red_blinks_each_error_code() {
    let codes = [
        (ErrorCode::LowSignal, 1),
        (ErrorCode::Sim, 2),
        (ErrorCode::NoNetwork, 3),
        (ErrorCode::Modem, 4),
        (ErrorCode::ExtendedIo, 5),
        (ErrorCode::Server, 6),
        (ErrorCode::Internal, 10),
    ];
    for (code, n) in codes {
        let (mut e, t0) = engine(UnitState {
            errors: [code].into(),
            ..UnitState::default()
        });
        assert_eq!(
            blinks(&mut e, Led::Red, t0, period(&[n])),
            usize::from(n),
            "{code:?}"
        );
        assert_eq!(
            blinks(&mut e, Led::Red, t0, period(&[n]) * 2),
            2 * usize::from(n)
        );
    }
    let (e, _) = engine(UnitState {
        errors: [ErrorCode::NoNetwork].into(),
        ..UnitState::default()
    });
    assert_eq!(e.describe(Led::Red), "red: 3 blinks (no network)");
}

#[test]
fn several_codes_take_turns_lowest_first_with_a_pause_between() {
    let (mut e, t0) = engine(UnitState {
        errors: [ErrorCode::ExtendedIo, ErrorCode::LowSignal].into(),
        ..UnitState::default()
    });
    let intervals = lit(&mut e, Led::Red, t0, period(&[1, 5]));
    assert_eq!(intervals.len(), 6);
    // Code 1: one blink, then a pause before the five blinks of code 5.
    let gap = intervals[1].0 - (intervals[0].0 + intervals[0].1);
    assert_eq!(gap, BLINK_OFF + PAUSE);
    for pair in intervals[1..].windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].0,
            BLINK_ON + BLINK_OFF,
            "blinks within a group"
        );
    }
    assert_eq!(
        e.describe(Led::Red),
        "red: 1 blink (low signal strength), then 5 blinks (extended I/O card missing)"
    );
    assert_eq!(e.codes(Led::Red), ["low-signal", "extended-io-missing"]);
}

#[test]
fn each_pattern_has_a_code_for_programs_and_a_start() {
    let (mut e, t0) = engine(UnitState {
        signal_bars: 3,
        network: Network::Gsm,
        busy: true,
        errors: [ErrorCode::Sim].into(),
        ..UnitState::default()
    });
    assert_eq!(e.codes(Led::Blue), ["signal"]);
    assert_eq!(e.codes(Led::Green), ["gsm"]);
    assert_eq!(e.codes(Led::Yellow), ["busy"]);
    assert_eq!(e.codes(Led::Red), ["sim-error"]);
    assert_eq!(e.words(Led::Red), "2 blinks (SIM card error or PIN)");
    assert_eq!(e.since(Led::Red), t0);
    let red = e.pattern(Led::Red);
    assert_eq!((red.name(), red.groups()), ("blink", &[2][..]));
    assert_eq!(
        (
            e.pattern(Led::Yellow).name(),
            e.pattern(Led::Yellow).groups()
        ),
        ("steady", &[][..])
    );
    // A changed pattern starts anew; an unchanged one keeps its start.
    let later = t0 + Duration::from_secs(7);
    e.update(
        UnitState {
            server_connected: true,
            signal_bars: 3,
            network: Network::Gsm,
            ..UnitState::default()
        },
        later,
    );
    assert_eq!(e.codes(Led::Blue), ["server-connected"]);
    assert_eq!((e.since(Led::Blue), e.since(Led::Green)), (later, t0));
    assert!(e.codes(Led::Red).is_empty() && e.codes(Led::Yellow).is_empty());
    assert_eq!(e.words(Led::Red), "off");
}

#[test]
fn all_leds_at_once() {
    let (mut e, t0) = engine(UnitState {
        server_connected: false,
        signal_bars: 2,
        network: Network::Gsm,
        busy: true,
        errors: [ErrorCode::Server].into(),
        ..UnitState::default()
    });
    let span = period(&[6]);
    assert_eq!(blinks(&mut e, Led::Blue, t0, period(&[2])), 2);
    assert_eq!(blinks(&mut e, Led::Green, t0, period(&[2])), 2);
    assert_eq!(lit(&mut e, Led::Yellow, t0, span).len(), 1);
    assert_eq!(blinks(&mut e, Led::Red, t0, span), 6);
}

#[test]
fn a_changed_code_starts_from_its_first_blink() {
    let t0 = Instant::now();
    let mut e = LedEngine::new(
        UnitState {
            errors: [ErrorCode::NoNetwork].into(),
            ..UnitState::default()
        },
        t0,
    );
    let later = t0 + Duration::from_millis(700);
    e.update(
        UnitState {
            errors: [ErrorCode::Sim].into(),
            ..UnitState::default()
        },
        later,
    );
    assert_eq!(
        lit(&mut e, Led::Red, later, period(&[2]))[0],
        (PAUSE, BLINK_ON)
    );
}
