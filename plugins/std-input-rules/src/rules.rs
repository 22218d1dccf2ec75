//! The rules themselves, pure so they are tested natively: which contact is
//! an alarm, and the settings that say how each input behaves.

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
