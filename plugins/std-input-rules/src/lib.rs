//! The standard input rules (world `input-rule`), as docs/unit.md describes:
//! per input NO/NC and a time delay (the input must stay in its alarm state
//! for the delay; a shorter blip does nothing). On alarm: SMS to the alarm
//! numbers with the input's alarm text, a voice call to the call numbers, a
//! server report, and the ALARM output on. On restore: the restore SMS (if
//! its text is not empty), a report, and the ALARM output off once no input
//! is in alarm.
//!
//! Everything is a device setting, read at each event so a change takes
//! effect at once: `input.N.name`, `input.N.mode` (`NO`/`NC`),
//! `input.N.delay-s`, `input.N.alarm-text`, `input.N.restore-text`,
//! `alarm.sms` and `alarm.call` (comma-separated numbers), `alarm.ring-s`,
//! `alarm.flap-changes` and `alarm.flap-hold-off-s` (see [`flap`]: an input
//! that keeps changing gets one summary SMS per hold-off, not an SMS and a
//! call per change).
//! The plugin config gives the unit's defaults for settings not set yet:
//!
//! ```toml
//! [plugins.config]
//! alarm.sms = "+46701234567"
//! input.2.mode = "NC"
//! input.2.delay-s = 10
//! ```
//!
//! Each default is checked like a setting sent by SMS; a bad one keeps the
//! plugin from starting, naming it.
//!
//! Which inputs are in alarm is kept in `kv`, so a restore after a restart
//! of the plugin or of the unit still switches ALARM off and reports it,
//! and an alarm still on at a restart switches ALARM on again.
//! Grants it needs: `outputs = "any"` (the ALARM output), `sms = "any"`,
//! `calls = "any"`, `server = true`, `settings = "read"`.

mod flap;

use std::collections::BTreeMap;
use std::sync::Mutex;

wit_bindgen::generate!({
    world: "input-rule",
    path: "../../wit",
});

use exports::larm::plugin::{lifecycle, rule};
use larm::plugin::log::{Level, log};
use larm::plugin::types::{Alarm, Contact, InputEvent, Report, TimerEvent};
use larm::plugin::{clock, io, kv, server, settings, sms, timers, voice};
use larm_rules::settings::{self as rules, InputSettings, flap_limit, input_settings, numbers};

use flap::{Flaps, HoldEnd, Verdict};

struct StdInputRules;

/// The plugin config's defaults for device settings.
static DEFAULTS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
/// Delay timers running, by input.
static PENDING: Mutex<BTreeMap<u8, u64>> = Mutex::new(BTreeMap::new());
/// Which inputs are flapping.
static FLAPS: Mutex<Flaps> = Mutex::new(Flaps::new());
/// The timer that ends each held input's hold-off (one per input, even if
/// the limit is changed meanwhile).
static HOLD_TIMERS: Mutex<BTreeMap<u8, u64>> = Mutex::new(BTreeMap::new());
/// Tag prefix of the timer that ends a flapping input's hold-off.
const FLAP_TAG: &str = "flap:";

/// A device setting, else the config's default.
fn setting(key: &str) -> Option<String> {
    match settings::get(key) {
        Ok(Some(v)) => Some(v),
        Ok(None) => DEFAULTS.lock().unwrap().get(key).cloned(),
        Err(e) => {
            log(Level::Error, &format!("settings.get {key}: {e:?}"));
            DEFAULTS.lock().unwrap().get(key).cloned()
        }
    }
}

fn settings_of(input: u8) -> InputSettings {
    let (s, problems) = input_settings(input, setting);
    for p in problems {
        log(Level::Warn, &p);
    }
    s
}

/// The kv key that marks an input in alarm.
fn in_alarm_key(input: u8) -> String {
    format!("{IN_ALARM}{input}")
}

/// Prefix of the kv keys that mark inputs in alarm.
const IN_ALARM: &str = "alarm.";

fn in_alarm(input: u8) -> bool {
    matches!(kv::get(&in_alarm_key(input)), Ok(Some(_)))
}

fn warn_on<T>(what: &str, result: Result<T, larm::plugin::types::Error>) {
    if let Err(e) = result {
        log(Level::Warn, &format!("{what}: {e:?}"));
    }
}

impl lifecycle::Guest for StdInputRules {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let inputs = io::input_count();
        for (key, value) in &config {
            rules::validate(key, value, inputs).map_err(|e| format!("config: {e}"))?;
        }
        *DEFAULTS.lock().unwrap() = config.into_iter().collect();
        // An input already in alarm at start (an NC loop cut while the unit
        // was off), or restored meanwhile, counts as an edge now.
        for input in 1..=io::input_count() {
            if let Ok(contact) = io::read_input(input) {
                let alarm_state = settings_of(input).mode.alarm(contact == Contact::Closed);
                if alarm_state != in_alarm(input) {
                    handle(input, contact);
                }
            }
        }
        // An alarm still on from before the restart keeps the siren on: the
        // unit's outputs start off.
        if kv::entries(IN_ALARM).is_ok_and(|all| !all.is_empty()) {
            warn_on("ALARM output", io::set_output(io::alarm_output(), true));
        }
        Ok(())
    }

    fn on_timer(event: TimerEvent) {
        if let Some(input) = event
            .tag
            .strip_prefix(FLAP_TAG)
            .and_then(|n| n.parse().ok())
        {
            return hold_over(input);
        }
        let Some(input) = event
            .tag
            .strip_prefix("delay:")
            .and_then(|n| n.parse().ok())
        else {
            return;
        };
        PENDING.lock().unwrap().remove(&input);
        // Still in alarm after the whole delay (also after a restart of the plugin)?
        let s = settings_of(input);
        let closed = matches!(io::read_input(input), Ok(Contact::Closed));
        if s.mode.alarm(closed) && !in_alarm(input) {
            fire(input, &s);
        }
    }
}

impl rule::Guest for StdInputRules {
    fn on_input(event: InputEvent) {
        let limit = flap_limit(setting);
        let verdict = FLAPS
            .lock()
            .unwrap()
            .change(event.input, event.at_ms, limit);
        match verdict {
            Verdict::Handle => handle(event.input, event.contact),
            Verdict::Held => {}
            Verdict::StartHold { changes } => {
                if let Some(timer) = PENDING.lock().unwrap().remove(&event.input) {
                    timers::cancel(timer);
                }
                let s = settings_of(event.input);
                let span = flap::span(limit.hold_off_s);
                summary(
                    event.input,
                    &s,
                    &format!(
                        "{} changed {changes} times in {span}: alarms held for {span}",
                        s.name
                    ),
                );
                hold(event.input, limit.hold_off_s);
            }
        }
    }
}

/// Times the end of `input`'s hold-off.
fn hold(input: u8, hold_off_s: u32) {
    if let Some(old) = HOLD_TIMERS.lock().unwrap().remove(&input) {
        timers::cancel(old);
    }
    let timed = timers::set(u64::from(hold_off_s) * 1000, &format!("{FLAP_TAG}{input}"));
    match timed {
        Ok(id) => {
            HOLD_TIMERS.lock().unwrap().insert(input, id);
        }
        Err(e) => {
            // Without its end timed, the input would stay held: handle it now.
            log(Level::Error, &format!("cannot time a hold-off ({e:?})"));
            FLAPS.lock().unwrap().release(input);
            handle_now(input);
        }
    }
}

/// A flapping input's hold-off ended: sum it up and hold it again, or, if
/// it kept still, handle its state as usual (an alarm or restore that
/// happened meanwhile goes out now).
fn hold_over(input: u8) {
    HOLD_TIMERS.lock().unwrap().remove(&input);
    let end = FLAPS.lock().unwrap().hold_over(input);
    match end {
        HoldEnd::Still { changes } => {
            let limit = flap_limit(setting);
            let s = settings_of(input);
            summary(
                input,
                &s,
                &format!(
                    "{} changed {changes} times in {}: alarms still held",
                    s.name,
                    flap::span(limit.hold_off_s)
                ),
            );
            hold(input, limit.hold_off_s);
        }
        HoldEnd::Steady => handle_now(input),
    }
}

/// Tells the alarm numbers and the server what a flapping input did.
fn summary(input: u8, s: &InputSettings, text: &str) {
    log(Level::Warn, text);
    for number in numbers(setting("alarm.sms").as_deref()) {
        warn_on(
            &format!("flap SMS to {number}"),
            sms::send(number.as_str(), text),
        );
    }
    warn_on(
        "flap report",
        server::send(&Report::Alarm(alarm(input, s, text))),
    );
}

/// Handles the state `input` is in now.
fn handle_now(input: u8) {
    match io::read_input(input) {
        Ok(contact) => handle(input, contact),
        Err(e) => log(Level::Error, &format!("reading input {input}: {e:?}")),
    }
}

/// An input is now `contact`.
fn handle(input: u8, contact: Contact) {
    let s = settings_of(input);
    let alarm_state = s.mode.alarm(contact == Contact::Closed);
    let pending = PENDING.lock().unwrap().remove(&input);
    if let Some(timer) = pending {
        // A change before the delay ran out: the blip does nothing.
        timers::cancel(timer);
    }
    match (alarm_state, in_alarm(input)) {
        (true, false) if s.delay_s == 0 => fire(input, &s),
        (true, false) => {
            let tag = format!("delay:{input}");
            match timers::set(u64::from(s.delay_s) * 1000, &tag) {
                Ok(id) => {
                    PENDING.lock().unwrap().insert(input, id);
                }
                Err(e) => {
                    log(
                        Level::Error,
                        &format!("cannot time the delay ({e:?}); alarming now"),
                    );
                    fire(input, &s);
                }
            }
        }
        (false, true) => restore(input, &s),
        _ => {}
    }
}

fn alarm(input: u8, s: &InputSettings, text: &str) -> Alarm {
    Alarm {
        input,
        name: s.name.clone(),
        text: text.to_string(),
        at: clock::wall_now(),
    }
}

fn fire(input: u8, s: &InputSettings) {
    log(Level::Info, &format!("alarm on input {input} ({})", s.name));
    // The siren first: remembering the alarm writes to flash.
    warn_on("ALARM output", io::set_output(io::alarm_output(), true));
    warn_on("remembering the alarm", kv::set(&in_alarm_key(input), b"1"));
    for number in numbers(setting("alarm.sms").as_deref()) {
        warn_on(
            &format!("alarm SMS to {number}"),
            sms::send(number.as_str(), &s.alarm_text),
        );
    }
    let ring_s = rules::ring_s(setting(rules::RING_KEY).as_deref());
    for number in numbers(setting("alarm.call").as_deref()) {
        warn_on(
            &format!("alarm call to {number}"),
            voice::dial(number.as_str(), ring_s),
        );
    }
    warn_on(
        "alarm report",
        server::send(&Report::Alarm(alarm(input, s, &s.alarm_text))),
    );
}

fn restore(input: u8, s: &InputSettings) {
    log(Level::Info, &format!("input {input} ({}) restored", s.name));
    // ALARM off first, once no other input is in alarm: forgetting this
    // one writes to flash. If the store cannot be read, keep ALARM on: a
    // missed "off" is safer than a missed alarm.
    let key = in_alarm_key(input);
    let others = kv::entries(IN_ALARM).map_or(true, |all| all.iter().any(|(k, _)| *k != key));
    if !others {
        warn_on("ALARM output", io::set_output(io::alarm_output(), false));
    }
    if let Err(e) = kv::delete(&key) {
        // Still remembered as in alarm: so is the ALARM output.
        log(Level::Warn, &format!("forgetting the alarm failed: {e:?}"));
        if !others {
            warn_on("ALARM output", io::set_output(io::alarm_output(), true));
        }
    }
    if !s.restore_text.is_empty() {
        for number in numbers(setting("alarm.sms").as_deref()) {
            warn_on(
                &format!("restore SMS to {number}"),
                sms::send(number.as_str(), &s.restore_text),
            );
        }
    }
    warn_on(
        "restore report",
        server::send(&Report::Restore(alarm(input, s, &s.restore_text))),
    );
}

export!(StdInputRules);
