//! The SMS password: what a new password may be, and the factory one.

/// The password of a new or reset unit.
pub const FACTORY: &str = "0000";

/// The longest password.
pub const MAX_LEN: usize = 8;

/// The rule, in words, for replies and errors.
pub const RULE: &str = "a password is 1-8 characters of 0-9, a-z and A-Z";

/// Whether `password` may be set: 1-8 characters of 0-9, a-z, A-Z.
pub fn valid(password: &str) -> bool {
    (1..=MAX_LEN).contains(&password.len()) && password.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        assert!(valid(FACTORY) && valid("abcD1234") && valid("x"));
        assert!(!valid("") && !valid("123456789") && !valid("12 4") && !valid("åäö"));
    }
}
