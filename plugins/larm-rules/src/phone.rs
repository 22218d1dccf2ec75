//! Phone numbers as people write them (`+46 70-123 45 67`) and as the unit
//! stores, grants, dials and compares them (`+46701234567`).

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

/// The most digits a number may have (E.164 allows 15; operators' short
/// and service numbers stay well under 20).
pub const MAX_DIGITS: usize = 20;

/// A phone number: an optional leading `+` and 1-20 digits. Spaces and
/// dashes people write in a number are dropped when it is parsed, so two
/// ways of writing one number are equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(try_from = "String", into = "String")
)]
pub struct PhoneNumber(String);

/// Why a text is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberError {
    /// No digits at all.
    Empty,
    /// More than [`MAX_DIGITS`] digits.
    TooLong,
    /// A character that is not a digit (after an optional leading `+`).
    BadChar(char),
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberError::Empty => f.write_str("no digits"),
            NumberError::TooLong => write!(f, "more than {MAX_DIGITS} digits"),
            NumberError::BadChar(c) => write!(f, "{c:?} is not a digit"),
        }
    }
}

impl core::error::Error for NumberError {}

impl PhoneNumber {
    /// Parses a number as people write it.
    pub fn parse(text: &str) -> Result<Self, NumberError> {
        let compact: String = text
            .trim()
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .collect();
        let digits = compact.strip_prefix('+').unwrap_or(&compact);
        if let Some(bad) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(NumberError::BadChar(bad));
        }
        match digits.len() {
            0 => Err(NumberError::Empty),
            n if n > MAX_DIGITS => Err(NumberError::TooLong),
            _ => Ok(Self(compact)),
        }
    }

    /// The number in its compact form, e.g. `+46701234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is written in international form (leading `+`).
    pub fn is_international(&self) -> bool {
        self.0.starts_with('+')
    }

    /// The digits, without the `+`.
    pub fn digits(&self) -> &str {
        self.0.strip_prefix('+').unwrap_or(&self.0)
    }

    /// Whether `text` is this number, however it is written. A text that is
    /// not a number at all (an alphanumeric sender) never is.
    pub fn matches(&self, text: &str) -> bool {
        PhoneNumber::parse(text).is_ok_and(|other| other == *self)
    }
}

impl FromStr for PhoneNumber {
    type Err = NumberError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = NumberError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<PhoneNumber> for String {
    fn from(number: PhoneNumber) -> String {
        number.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The numbers of a comma-separated list (a device setting such as
/// `alarm.sms`). Empty items are skipped; the first bad one is the error,
/// with the text it came from.
pub fn parse_list(list: &str) -> Result<alloc::vec::Vec<PhoneNumber>, (String, NumberError)> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| PhoneNumber::parse(n).map_err(|e| (String::from(n), e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_write_numbers_many_ways() {
        let n = PhoneNumber::parse(" +46 70-123 45 67 ").unwrap();
        assert_eq!(n.as_str(), "+46701234567");
        assert!(n.is_international());
        assert_eq!(n.digits(), "46701234567");
        assert!(n.matches("+46701234567"));
        assert!(!n.matches("0701234567"));
        assert!(!n.matches("Telfort"));
        assert_eq!(PhoneNumber::parse("112").unwrap().as_str(), "112");
    }

    #[test]
    fn what_is_not_a_number() {
        assert_eq!(PhoneNumber::parse(""), Err(NumberError::Empty));
        assert_eq!(PhoneNumber::parse("+"), Err(NumberError::Empty));
        assert_eq!(
            PhoneNumber::parse("+46 70 abc"),
            Err(NumberError::BadChar('a'))
        );
        assert_eq!(PhoneNumber::parse("++46"), Err(NumberError::BadChar('+')));
        assert_eq!(PhoneNumber::parse("*100#"), Err(NumberError::BadChar('*')));
        assert_eq!(
            PhoneNumber::parse("123456789012345678901"),
            Err(NumberError::TooLong)
        );
        assert!(PhoneNumber::parse("12345678901234567890").is_ok());
        assert_eq!(
            PhoneNumber::parse("+4670\r\nAT+CFUN=0"),
            Err(NumberError::BadChar('\r'))
        );
    }

    #[test]
    fn lists() {
        let l = parse_list(" +4670, ,112 ").unwrap();
        assert_eq!(
            l,
            [
                PhoneNumber::parse("+4670").unwrap(),
                PhoneNumber::parse("112").unwrap()
            ]
        );
        assert!(parse_list("").unwrap().is_empty());
        assert_eq!(
            parse_list("+4670, x1").unwrap_err(),
            (String::from("x1"), NumberError::BadChar('x'))
        );
    }
}
