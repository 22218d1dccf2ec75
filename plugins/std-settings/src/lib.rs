//! The standard unit's device settings, shared by the default plugins (a
//! library, not a component): the keys, what an input's settings mean, and
//! which values are valid, so a setting changed by SMS, by the server or in
//! the config is read and checked the same way. Pure, so it is tested
//! natively.
//!
//! | key | value |
//! |---|---|
//! | `input.N.name` | the input's name |
//! | `input.N.mode` | `NO` or `NC` |
//! | `input.N.delay-s` | seconds the input must stay in alarm |
//! | `input.N.alarm-text`, `input.N.restore-text` | SMS texts (empty restore text: no restore SMS) |
//! | `alarm.sms`, `alarm.call` | comma-separated phone numbers |
//! | `alarm.ring-s` | seconds an alarm call rings |
//! | `server.interval-min` | connection interval (`CONINTVL`), 0 = never |

/// The setting that keeps the connection interval in minutes (`CONINTVL`).
pub const INTERVAL_KEY: &str = "server.interval-min";

/// Longest text a setting may hold (an SMS text of ten parts).
const MAX_VALUE: usize = 1530;

/// How an input is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Normally open: closing to COM is the alarm.
    No,
    /// Normally closed: opening is the alarm.
    Nc,
}

impl Mode {
    /// From a setting value (`NO` / `NC`, any case).
    pub fn parse(value: &str) -> Option<Mode> {
        match value.trim().to_ascii_uppercase().as_str() {
            "NO" => Some(Mode::No),
            "NC" => Some(Mode::Nc),
            _ => None,
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

/// Setting keys of input `n`.
pub fn key(n: u8, what: &str) -> String {
    format!("input.{n}.{what}")
}

/// Builds an input's settings from a lookup (device setting, else the
/// plugin config's default). Bad values fall back to the defaults, with the
/// problems returned for the log.
pub fn input_settings(n: u8, get: impl Fn(&str) -> Option<String>) -> (InputSettings, Vec<String>) {
    let mut problems = Vec::new();
    let name = get(&key(n, "name")).unwrap_or_else(|| format!("Input {n}"));
    let mode = match get(&key(n, "mode")) {
        None => Mode::No,
        Some(v) => Mode::parse(&v).unwrap_or_else(|| {
            problems.push(format!("{} = {v:?} is not NO or NC", key(n, "mode")));
            Mode::No
        }),
    };
    let delay_s = match get(&key(n, "delay-s")) {
        None => 0,
        Some(v) => v.trim().parse().unwrap_or_else(|_| {
            problems.push(format!(
                "{} = {v:?} is not a number of seconds",
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

/// A comma-separated list of phone numbers.
pub fn numbers(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks that `value` is valid for setting `key` on a unit with
/// `inputs` inputs; the error says what is wrong, for the sender.
pub fn validate(key: &str, value: &str, inputs: u8) -> Result<(), String> {
    if value.len() > MAX_VALUE {
        return Err(format!("{key}: longer than {MAX_VALUE} bytes"));
    }
    let seconds = |max: u32| match value.trim().parse::<u32>() {
        Ok(n) if n <= max => Ok(()),
        _ => Err(format!("{key}: {value:?} is not a number from 0 to {max}")),
    };
    let phone_numbers = || {
        for n in numbers(Some(value.to_string())) {
            let digits = n.strip_prefix('+').unwrap_or(&n);
            if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(format!("{key}: {n:?} is not a phone number"));
            }
        }
        Ok(())
    };
    match key.split('.').collect::<Vec<_>>().as_slice() {
        ["input", n, what] => {
            match n.parse::<u8>() {
                Ok(n) if (1..=inputs).contains(&n) => {}
                _ => return Err(format!("{key}: the unit has inputs 1 to {inputs}")),
            }
            match *what {
                "name" | "alarm-text" | "restore-text" => Ok(()),
                "mode" => Mode::parse(value)
                    .map(drop)
                    .ok_or_else(|| format!("{key}: {value:?} is not NO or NC")),
                "delay-s" => seconds(24 * 3600),
                _ => Err(format!(
                    "{key}: no such input setting (name, mode, delay-s, alarm-text, restore-text)"
                )),
            }
        }
        ["alarm", "sms"] | ["alarm", "call"] => phone_numbers(),
        ["alarm", "ring-s"] => seconds(300),
        ["server", "interval-min"] => seconds(7 * 24 * 60),
        _ => Err(format!("{key}: no such setting")),
    }
}

/// Reads `"key" = "value"` lines of the plugin config (its defaults for
/// device settings). Keys are quoted dotted names, e.g. `"input.3.mode"`.
pub fn config_defaults(config: &str) -> Result<Vec<(String, String)>, String> {
    let mut defaults = Vec::new();
    for line in config.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!(
                "cannot read `{line}`: write defaults as \"input.1.mode\" = \"NC\""
            ));
        };
        let value = v.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        defaults.push((k.trim().trim_matches('"').to_string(), value.to_string()));
    }
    Ok(defaults)
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
    }

    #[test]
    fn validation_says_what_is_wrong() {
        assert_eq!(validate("input.2.mode", "nc", 8), Ok(()));
        assert_eq!(validate("input.2.delay-s", "30", 8), Ok(()));
        assert_eq!(validate("alarm.sms", "+46701234567, 112", 8), Ok(()));
        assert_eq!(validate(INTERVAL_KEY, "0", 8), Ok(()));
        for (key, value, why) in [
            ("input.9.mode", "NO", "inputs 1 to 8"),
            ("input.2.mode", "maybe", "not NO or NC"),
            ("input.2.delay-s", "-1", "not a number"),
            ("input.2.colour", "red", "no such input setting"),
            ("alarm.sms", "+46 70 abc", "not a phone number"),
            ("password", "1234", "no such setting"),
        ] {
            let e = validate(key, value, 8).unwrap_err();
            assert!(e.contains(why), "{key}={value}: {e}");
        }
    }

    #[test]
    fn number_lists_and_config_defaults() {
        assert_eq!(numbers(Some(" +4670, ,112 ".into())), ["+4670", "112"]);
        assert!(numbers(None).is_empty());
        let d =
            config_defaults("\"alarm.sms\" = \"+4670\"\n\"input.1.delay-s\" = \"5\"\n").unwrap();
        assert_eq!(d[0], ("alarm.sms".into(), "+4670".into()));
        assert_eq!(d[1], ("input.1.delay-s".into(), "5".into()));
        assert!(config_defaults("[input]").is_err());
    }
}
