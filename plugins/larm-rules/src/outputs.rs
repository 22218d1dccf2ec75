//! Timed outputs: how long an output may be switched on for, and how the
//! time is written (`OUTPUT 3 ON 30`, `"for_s": 0.5`).

use alloc::format;
use alloc::string::String;

/// The shortest timed switch, in milliseconds: shorter pulses are lost in
/// relay bounce.
pub const MIN_MS: u32 = 100;
/// The longest timed switch, in milliseconds: a day.
pub const MAX_MS: u32 = 24 * 3600 * 1000;

/// Checks a time in milliseconds.
pub fn check_ms(ms: u64) -> Result<u32, String> {
    match u32::try_from(ms) {
        Ok(ms) if (MIN_MS..=MAX_MS).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "a timed output runs for 0.1 to {} seconds",
            MAX_MS / 1000
        )),
    }
}

/// A time in seconds, as people write it (`30`, `0.5`, `1.25`), in
/// milliseconds.
pub fn parse_seconds(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a time in seconds (e.g. 30 or 0.5)");
    let (whole, fraction) = text.split_once(['.', ',']).unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 3
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut millis = 0u64;
    for (i, digit) in fraction.bytes().enumerate() {
        millis += u64::from(digit - b'0') * [100, 10, 1][i];
    }
    check_ms(whole.saturating_mul(1000).saturating_add(millis))
}

/// Seconds from a JSON number (`"for_s": 30`), in milliseconds.
pub fn from_seconds(seconds: f64) -> Result<u32, String> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return check_ms(0);
    }
    // `as` saturates; adding a half rounds (no `round` in `no_std`).
    check_ms((seconds * 1000.0 + 0.5) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_people_write_them() {
        assert_eq!(parse_seconds("30"), Ok(30_000));
        assert_eq!(parse_seconds("0.5"), Ok(500));
        assert_eq!(parse_seconds(",5"), Ok(500));
        assert_eq!(parse_seconds("1.25"), Ok(1250));
        assert_eq!(parse_seconds("86400"), Ok(MAX_MS));
        for bad in [
            "",
            ".",
            "0.05",
            "86401",
            "-1",
            "1e3",
            "0.1234",
            "99999999999999999999",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(from_seconds(0.5), Ok(500));
        assert!(from_seconds(f64::NAN).is_err() && from_seconds(-3.0).is_err());
        assert!(from_seconds(1e30).is_err());
    }
}
