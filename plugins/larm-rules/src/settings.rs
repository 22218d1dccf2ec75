//! The device settings: the unit-wide, persisted configuration that SMS
//! commands, the server and the config change. The host validates every
//! change with [`validate`]; the default plugins read them with the same
//! functions, so a value one side accepts the other understands.
//!
//! | key | value |
//! |---|---|
//! | `input.N.name` | the input's name |
//! | `input.N.mode` | `NO` or `NC` |
//! | `input.N.delay-s` | seconds the input must stay in alarm (0-86400) |
//! | `input.N.alarm-text`, `input.N.restore-text` | SMS texts (empty restore text: no restore SMS) |
//! | `alarm.sms`, `alarm.call` | comma-separated phone numbers |
//! | `alarm.ring-s` | seconds an alarm call rings (1-300) |
//! | `alarm.flap-changes` | changes of one input within the hold-off that make it flapping (0 = no limit; default 10) |
//! | `alarm.flap-hold-off-s` | how long a flapping input's alarms are held, summed up in one SMS (10-86400; default 300) |
//! | `server.interval-min` | connection interval (`CONINTVL`), 0 = never, at most a week |
//! | `gate.caller.NUMBER` | a caller whose call opens the gate (call to open), by its number in `+` form; the value is a name, may be empty. At most [`MAX_CALLERS`] |

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::phone::{self, PhoneNumber};

/// The setting that keeps the connection interval in minutes (`CONINTVL`).
pub const INTERVAL_KEY: &str = "server.interval-min";
/// The longest connection interval: a week, in minutes.
pub const MAX_INTERVAL_MIN: u32 = 7 * 24 * 60;
/// The setting that keeps how long an alarm call rings.
pub const RING_KEY: &str = "alarm.ring-s";
/// How long an alarm call rings when nothing is set.
pub const DEFAULT_RING_S: u32 = 30;
/// The longest an alarm call may ring.
pub const MAX_RING_S: u32 = 300;
/// The setting that says how many changes of one input within the hold-off
/// make it flapping.
pub const FLAP_CHANGES_KEY: &str = "alarm.flap-changes";
/// The setting that says how long a flapping input's alarms are held.
pub const FLAP_HOLD_OFF_KEY: &str = "alarm.flap-hold-off-s";
/// Changes within the hold-off that make an input flapping, when nothing is set.
pub const DEFAULT_FLAP_CHANGES: u32 = 10;
/// The most changes `alarm.flap-changes` may allow.
pub const MAX_FLAP_CHANGES: u32 = 1000;
/// The hold-off of a flapping input when nothing is set: five minutes.
pub const DEFAULT_FLAP_HOLD_OFF_S: u32 = 300;
/// The shortest hold-off: shorter would let a flapping input send an SMS
/// every few seconds.
pub const MIN_FLAP_HOLD_OFF_S: u32 = 10;
/// The longest input delay: a day.
pub const MAX_DELAY_S: u32 = 24 * 3600;
/// The keys of the callers allowed to open the gate, followed by the
/// number (`gate.caller.+46701234567`).
pub const CALLER_PREFIX: &str = "gate.caller.";
/// The most gate callers a unit keeps.
pub const MAX_CALLERS: usize = 500;
/// The longest name of a gate caller.
pub const MAX_CALLER_NAME: usize = 40;
/// Families of keys that are bounded in number: prefix and most keys.
pub const FAMILIES: &[(&str, usize)] = &[(CALLER_PREFIX, MAX_CALLERS)];

/// The key of gate caller `number`.
pub fn caller_key(number: &PhoneNumber) -> String {
    format!("{CALLER_PREFIX}{number}")
}

/// The longest setting key.
pub const MAX_KEY: usize = 128;
/// The longest setting value, and the longest SMS text a plugin may send:
/// ten concatenated parts of 153 GSM characters.
pub const MAX_VALUE: usize = 1530;

/// How an input is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Normally open: closing to COM is the alarm.
    No,
    /// Normally closed: opening is the alarm.
    Nc,
}

impl Mode {
    /// As a setting value: `NO` or `NC`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::No => "NO",
            Mode::Nc => "NC",
        }
    }

    /// From a setting value (`NO` / `NC`, any case).
    pub fn parse(value: &str) -> Option<Mode> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("NO") {
            Some(Mode::No)
        } else if value.eq_ignore_ascii_case("NC") {
            Some(Mode::Nc)
        } else {
            None
        }
    }

    /// Whether a contact that is `closed` is in alarm.
    pub fn alarm(self, closed: bool) -> bool {
        match self {
            Mode::No => closed,
            Mode::Nc => !closed,
        }
    }
}

/// The device settings of one input, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSettings {
    /// People's name for it.
    pub name: String,
    /// NO or NC.
    pub mode: Mode,
    /// How long the input must stay in alarm before the alarm fires.
    pub delay_s: u32,
    /// Alarm SMS text.
    pub alarm_text: String,
    /// Restore SMS text; empty: no restore SMS.
    pub restore_text: String,
}

/// Setting key `what` of input `n`, e.g. `input.3.delay-s`.
pub fn key(n: u8, what: &str) -> String {
    format!("input.{n}.{what}")
}

/// Input `n`'s wiring from a lookup, as [`input_settings`] has it (NO when
/// unset or bad): all an input edge needs to say whether it is an alarm.
pub fn input_mode(n: u8, get: impl Fn(&str) -> Option<String>) -> Mode {
    mode_of(n, &get).0
}

/// Input `n`'s wiring, and what was wrong with its value if anything.
fn mode_of(n: u8, get: &impl Fn(&str) -> Option<String>) -> (Mode, Option<String>) {
    match get(&key(n, "mode")) {
        None => (Mode::No, None),
        Some(v) => match Mode::parse(&v) {
            Some(mode) => (mode, None),
            None => (
                Mode::No,
                Some(format!("{} = {v:?} is not NO or NC", key(n, "mode"))),
            ),
        },
    }
}

/// Builds an input's settings from a lookup (device setting, else the
/// plugin config's default). Bad values fall back to the defaults, with the
/// problems returned for the log.
pub fn input_settings(n: u8, get: impl Fn(&str) -> Option<String>) -> (InputSettings, Vec<String>) {
    let mut problems = Vec::new();
    let name = get(&key(n, "name")).unwrap_or_else(|| format!("Input {n}"));
    let (mode, problem) = mode_of(n, &get);
    problems.extend(problem);
    let delay_s = match get(&key(n, "delay-s")) {
        None => 0,
        Some(v) => bounded(&v, MAX_DELAY_S).unwrap_or_else(|| {
            problems.push(format!(
                "{} = {v:?} is not a number of seconds from 0 to {MAX_DELAY_S}",
                key(n, "delay-s")
            ));
            0
        }),
    };
    let alarm_text = get(&key(n, "alarm-text")).unwrap_or_else(|| format!("Alarm: {name}"));
    let restore_text = get(&key(n, "restore-text")).unwrap_or_else(|| format!("Restored: {name}"));
    (
        InputSettings {
            name,
            mode,
            delay_s,
            alarm_text,
            restore_text,
        },
        problems,
    )
}

/// When an input counts as flapping: more than `changes` changes within
/// `hold_off_s` seconds. Its alarms are then held for `hold_off_s` at a
/// time and summed up, instead of an SMS and a call per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapLimit {
    /// Changes allowed within the hold-off; 0: no limit.
    pub changes: u32,
    /// The hold-off, in seconds.
    pub hold_off_s: u32,
}

/// The flap limit from its settings (`alarm.flap-changes`,
/// `alarm.flap-hold-off-s`); a bad value falls back to its default.
pub fn flap_limit(get: impl Fn(&str) -> Option<String>) -> FlapLimit {
    let read = |key, min, max, default| {
        get(key)
            .and_then(|v| bounded(&v, max))
            .filter(|n| *n >= min)
            .unwrap_or(default)
    };
    FlapLimit {
        changes: read(FLAP_CHANGES_KEY, 0, MAX_FLAP_CHANGES, DEFAULT_FLAP_CHANGES),
        hold_off_s: read(
            FLAP_HOLD_OFF_KEY,
            MIN_FLAP_HOLD_OFF_S,
            MAX_DELAY_S,
            DEFAULT_FLAP_HOLD_OFF_S,
        ),
    }
}

/// The numbers of a number-list setting (`alarm.sms`, `alarm.call`); items
/// that are not numbers are left out (validation keeps them from being set).
pub fn numbers(value: Option<&str>) -> Vec<PhoneNumber> {
    value
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| PhoneNumber::parse(n).ok())
        .collect()
}

/// How long alarm calls ring, from the `alarm.ring-s` setting: brought
/// into 1 to [`MAX_RING_S`], as `voice.dial` does with any number.
pub fn ring_s(value: Option<&str>) -> u32 {
    value
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(DEFAULT_RING_S, clamp_ring_s)
}

/// A ring time brought into 1 to [`MAX_RING_S`].
pub fn clamp_ring_s(seconds: u32) -> u32 {
    seconds.clamp(1, MAX_RING_S)
}

/// A connection interval in minutes (`CONINTVL`, the interval setting, the
/// server's commands): 0 to [`MAX_INTERVAL_MIN`].
pub fn interval_min(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number of minutes"))
        .and_then(check_interval)
}

/// Checks a connection interval in minutes: 0 (never) to
/// [`MAX_INTERVAL_MIN`].
pub fn check_interval(minutes: u32) -> Result<u32, String> {
    if minutes <= MAX_INTERVAL_MIN {
        Ok(minutes)
    } else {
        Err(format!(
            "{minutes} minutes: the interval is 0 (never) to {MAX_INTERVAL_MIN} (a week)"
        ))
    }
}

/// `value` as a whole number from 0 to `max`.
fn bounded(value: &str, max: u32) -> Option<u32> {
    value.trim().parse().ok().filter(|n| *n <= max)
}

/// Checks one change of a setting from outside (a server command, the
/// web panel): a value by [`validate`]; a removal (`None`: back to the
/// default) of any key but the interval, which has no default to go back
/// to.
pub fn validate_change(key: &str, value: Option<&str>, inputs: u8) -> Result<(), String> {
    match value {
        Some(value) => validate(key, value, inputs),
        None if key == INTERVAL_KEY => Err(format!("{key} cannot be removed: set it (0 = never)")),
        None if key.len() > MAX_KEY => Err(format!("setting keys are at most {MAX_KEY} bytes")),
        None => Ok(()),
    }
}

/// Checks that `value` is valid for setting `key` on a unit with
/// `inputs` inputs; the error says what is wrong, for the sender.
pub fn validate(key: &str, value: &str, inputs: u8) -> Result<(), String> {
    if key.len() > MAX_KEY {
        return Err(format!("setting keys are at most {MAX_KEY} bytes"));
    }
    if value.chars().count() > MAX_VALUE {
        return Err(format!("{key}: longer than {MAX_VALUE} characters"));
    }
    let seconds = |min: u32, max: u32| match bounded(value, max) {
        Some(n) if n >= min => Ok(()),
        _ => Err(format!(
            "{key}: {value:?} is not a number from {min} to {max}"
        )),
    };
    let mut parts = key.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("input"), Some(n), Some(what), None) => {
            // One spelling per input (`input.1`, not `input.01` or
            // `input.+1`): any other would be a key nothing reads.
            match n.parse::<u8>() {
                Ok(i) if (1..=inputs).contains(&i) && format!("{i}") == n => {}
                _ => return Err(format!("{key}: the unit has inputs 1 to {inputs}")),
            }
            match what {
                "name" | "alarm-text" | "restore-text" => Ok(()),
                "mode" => Mode::parse(value)
                    .map(drop)
                    .ok_or_else(|| format!("{key}: {value:?} is not NO or NC")),
                "delay-s" => seconds(0, MAX_DELAY_S),
                _ => Err(format!(
                    "{key}: no such input setting (name, mode, delay-s, alarm-text, restore-text)"
                )),
            }
        }
        (Some("alarm"), Some("sms" | "call"), None, None) => phone::parse_list(value)
            .map(drop)
            .map_err(|(n, e)| format!("{key}: {n:?} is not a phone number ({e})")),
        (Some("alarm"), Some("ring-s"), None, None) => seconds(1, MAX_RING_S),
        (Some("alarm"), Some("flap-changes"), None, None) => seconds(0, MAX_FLAP_CHANGES),
        (Some("alarm"), Some("flap-hold-off-s"), None, None) => {
            seconds(MIN_FLAP_HOLD_OFF_S, MAX_DELAY_S)
        }
        (Some("gate"), Some("caller"), Some(number), None) => match PhoneNumber::parse(number) {
            Ok(n) if n.as_str() == number && n.is_international() => {
                if value.chars().count() > MAX_CALLER_NAME {
                    Err(format!(
                        "{key}: a name is at most {MAX_CALLER_NAME} characters"
                    ))
                } else {
                    Ok(())
                }
            }
            // Caller ids come in `+` form: a local number never matches.
            Ok(n) if !n.is_international() => Err(format!(
                "{key}: write the number in international form, with + and the country code"
            )),
            Ok(n) => Err(format!("{key}: write the number as {n}")),
            Err(e) => Err(format!("{key}: {number:?} is not a phone number ({e})")),
        },
        (Some("server"), Some("interval-min"), None, None) => interval_min(value)
            .map(drop)
            .map_err(|e| format!("{key}: {e}")),
        _ => Err(format!("{key}: no such setting")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_and_nc() {
        assert!(Mode::No.alarm(true) && !Mode::No.alarm(false));
        assert!(Mode::Nc.alarm(false) && !Mode::Nc.alarm(true));
        assert_eq!(Mode::parse(" nc "), Some(Mode::Nc));
        assert_eq!(Mode::parse("maybe"), None);
    }

    #[test]
    fn settings_with_defaults_and_bad_values() {
        let (s, problems) = input_settings(3, |_| None);
        assert_eq!(s.name, "Input 3");
        assert_eq!((s.mode, s.delay_s), (Mode::No, 0));
        assert_eq!(s.alarm_text, "Alarm: Input 3");
        assert!(problems.is_empty());
        let (s, problems) = input_settings(2, |k| match k {
            "input.2.name" => Some("Frysrum".into()),
            "input.2.mode" => Some("NC".into()),
            "input.2.delay-s" => Some("ten".into()),
            "input.2.alarm-text" => Some("Frysrummet är för varmt!".into()),
            _ => None,
        });
        assert_eq!(
            (s.name.as_str(), s.mode, s.delay_s),
            ("Frysrum", Mode::Nc, 0)
        );
        assert_eq!(s.alarm_text, "Frysrummet är för varmt!");
        assert_eq!(s.restore_text, "Restored: Frysrum");
        assert_eq!(problems.len(), 1);
        assert_eq!(input_mode(2, |_| Some("nc".into())), Mode::Nc);
        assert_eq!(input_mode(2, |_| Some("maybe".into())), Mode::No);
    }

    #[test]
    fn validation_says_what_is_wrong() {
        assert_eq!(validate("input.2.mode", "nc", 8), Ok(()));
        assert_eq!(validate("input.2.delay-s", "30", 8), Ok(()));
        assert_eq!(validate("alarm.sms", "+46701234567, 112", 8), Ok(()));
        assert_eq!(validate("alarm.sms", "", 8), Ok(()));
        assert_eq!(validate("gate.caller.+46701234567", "Anna", 8), Ok(()));
        assert!(
            validate("gate.caller.+46 70 123 45 67", "", 8).is_err(),
            "one form only"
        );
        assert!(validate("gate.caller.anna", "", 8).is_err());
        assert!(
            validate("gate.caller.0701234567", "", 8).is_err(),
            "no country code"
        );
        assert!(validate("gate.caller.+46701234567", &"x".repeat(41), 8).is_err());
        assert_eq!(validate(INTERVAL_KEY, "0", 8), Ok(()));
        assert_eq!(validate(INTERVAL_KEY, "10080", 8), Ok(()));
        let long = "x".repeat(MAX_VALUE + 1);
        for (key, value, why) in [
            ("input.9.mode", "NO", "inputs 1 to 8"),
            ("input.01.name", "Door", "inputs 1 to 8"),
            ("input.+1.name", "Door", "inputs 1 to 8"),
            ("input.2.mode", "maybe", "not NO or NC"),
            ("input.2.delay-s", "-1", "not a number"),
            ("input.2.delay-s", "86401", "not a number"),
            ("input.2.colour", "red", "no such input setting"),
            ("input.2.name.x", "red", "no such setting"),
            ("alarm.sms", "+46 70 abc", "not a phone number"),
            ("alarm.ring-s", "0", "from 1 to 300"),
            (FLAP_CHANGES_KEY, "1001", "from 0 to 1000"),
            (FLAP_HOLD_OFF_KEY, "5", "from 10 to 86400"),
            (INTERVAL_KEY, "4294967295", "0 (never) to 10080"),
            ("input.1.name", &long, "longer than 1530"),
            ("password", "1234", "no such setting"),
        ] {
            let e = validate(key, value, 8).unwrap_err();
            assert!(e.contains(why), "{key}={value}: {e}");
        }
    }

    #[test]
    fn a_removal_is_checked_too() {
        assert_eq!(validate_change("input.1.name", None, 8), Ok(()));
        assert_eq!(validate_change("input.1.name", Some("Door"), 8), Ok(()));
        assert!(
            validate_change(INTERVAL_KEY, None, 8)
                .unwrap_err()
                .contains("cannot be removed")
        );
        assert!(validate_change(&"k".repeat(MAX_KEY + 1), None, 8).is_err());
        assert!(validate_change("input.1.mode", Some("maybe"), 8).is_err());
    }

    #[test]
    fn flap_limit_with_defaults() {
        let default = FlapLimit {
            changes: DEFAULT_FLAP_CHANGES,
            hold_off_s: DEFAULT_FLAP_HOLD_OFF_S,
        };
        assert_eq!(flap_limit(|_| None), default);
        assert_eq!(flap_limit(|_| Some("soon".into())), default);
        let set = |k: &str| match k {
            FLAP_CHANGES_KEY => Some("0".into()),
            _ => Some("60".into()),
        };
        assert_eq!(
            flap_limit(set),
            FlapLimit {
                changes: 0,
                hold_off_s: 60
            }
        );
        assert_eq!(validate(FLAP_HOLD_OFF_KEY, "600", 8), Ok(()));
    }

    #[test]
    fn numbers_rings_and_intervals() {
        let n = numbers(Some(" +4670, ,112 "));
        assert_eq!(
            n.iter().map(PhoneNumber::as_str).collect::<Vec<_>>(),
            ["+4670", "112"]
        );
        assert!(numbers(None).is_empty());
        assert_eq!(ring_s(None), DEFAULT_RING_S);
        assert_eq!(ring_s(Some("45")), 45);
        assert_eq!(ring_s(Some("three")), DEFAULT_RING_S);
        assert_eq!(
            ring_s(Some("600")),
            MAX_RING_S,
            "clamped, as voice.dial does"
        );
        assert_eq!(ring_s(Some("0")), 1);
        assert_eq!(interval_min("60"), Ok(60));
        assert!(
            interval_min("10081")
                .unwrap_err()
                .contains("0 (never) to 10080")
        );
        assert!(interval_min("soon").is_err());
        let swedish = "ö".repeat(MAX_VALUE);
        assert_eq!(
            validate("input.1.alarm-text", &swedish, 8),
            Ok(()),
            "characters, not bytes"
        );
    }
}
