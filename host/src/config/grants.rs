//! What a plugin may do: the `grants` table of a `[[plugins]]` entry.
//!
//! ```toml
//! [plugins.grants]
//! outputs = [1, 2]            # or "any"; default: none
//! sms = ["+46701234567"]      # recipients, or "any"; default: none
//! calls = "any"               # numbers to dial, or "any"; default: none
//! server = true               # reports and connection requests
//! settings = "write"          # "none" (default), "read" or "write"
//! password = true             # verify / change the SMS password
//! system = ["restart-modem"]  # restart-modem, restart-unit, factory-reset
//! ```

use std::fmt;
use std::marker::PhantomData;

use larm_rules::PhoneNumber;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// A plugin's grants. Everything not granted is refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Outputs the plugin may switch.
    #[serde(default)]
    pub outputs: Scope<u8>,
    /// Numbers the plugin may send SMS to.
    #[serde(default)]
    pub sms: Scope<PhoneNumber>,
    /// Numbers the plugin may dial.
    #[serde(default)]
    pub calls: Scope<PhoneNumber>,
    /// Whether the plugin may report to the server and request connections.
    #[serde(default)]
    pub server: bool,
    /// Access to device settings.
    #[serde(default)]
    pub settings: SettingsAccess,
    /// Whether the plugin may verify and change the SMS password.
    #[serde(default)]
    pub password: bool,
    /// System actions the plugin may take.
    #[serde(default)]
    pub system: Vec<SystemAction>,
}

impl Grants {
    /// What a component importing the larm `interfaces` would need that
    /// these grants do not give: one line per missing grant, naming the
    /// interface that needs it. (`io` is not checked: reading inputs needs
    /// no grant, and which outputs it switches shows only when it runs.)
    pub fn missing_for(&self, interfaces: &[String]) -> Vec<String> {
        let imports = |iface: &str| interfaces.iter().any(|i| i == iface);
        let mut missing = Vec::new();
        let mut need = |iface: &str, lacking: bool, grant: &str| {
            if imports(iface) && lacking {
                missing.push(format!(
                    "it imports larm:plugin/{iface}, but its config grants no `{grant}`"
                ));
            }
        };
        need("sms", self.sms == Scope::None, "sms");
        need("voice", self.calls == Scope::None, "calls");
        need("server", !self.server, "server");
        need("password", !self.password, "password");
        need("system", self.system.is_empty(), "system");
        need(
            "settings",
            self.settings == SettingsAccess::None,
            "settings",
        );
        missing
    }
}

/// Access to device settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingsAccess {
    /// No access.
    #[default]
    None,
    /// Read only.
    Read,
    /// Read and change.
    Write,
}

/// A system action a plugin may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SystemAction {
    /// `RESTART GSM`.
    RestartModem,
    /// `RESTART ALL`.
    RestartUnit,
    /// `FACRESET`.
    FactoryReset,
}

/// A set of things a grant covers: none, a list, or any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope<T> {
    /// Nothing (the default).
    #[default]
    None,
    /// Exactly these.
    Only(Vec<T>),
    /// Anything.
    Any,
}

impl Scope<u8> {
    /// Whether `id` is covered.
    pub fn allows(&self, id: u8) -> bool {
        match self {
            Scope::None => false,
            Scope::Only(ids) => ids.contains(&id),
            Scope::Any => true,
        }
    }
}

impl Scope<PhoneNumber> {
    /// Whether the phone number is covered, however it is written: `+46
    /// 70-123 45 67` matches `+46701234567`.
    pub fn allows_number(&self, number: &str) -> bool {
        match self {
            Scope::None => false,
            Scope::Only(numbers) => numbers.iter().any(|n| n.matches(number)),
            Scope::Any => true,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Scope<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScopeVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ScopeVisitor<T> {
            type Value = Scope<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""any", "none" or a list"#)
            }

            fn visit_str<E: de::Error>(self, word: &str) -> Result<Self::Value, E> {
                match word {
                    "any" => Ok(Scope::Any),
                    "none" => Ok(Scope::None),
                    _ => Err(E::invalid_value(de::Unexpected::Str(word), &self)),
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Scope::Only(items))
            }
        }

        deserializer.deserialize_any(ScopeVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(text: &str) -> Result<Grants, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let g = grants("").unwrap();
        assert!(!g.outputs.allows(1));
        assert!(!g.sms.allows_number("+46701234567"));
        assert!(!g.server && !g.password && g.system.is_empty());
        assert_eq!(g.settings, SettingsAccess::None);
    }

    #[test]
    fn lists_and_any() {
        let g = grants(
            r#"outputs = [1, 3]
               sms = ["+46 70-123 45 67"]
               calls = "any"
               settings = "write"
               system = ["restart-modem"]"#,
        )
        .unwrap();
        assert!(g.outputs.allows(3) && !g.outputs.allows(2));
        assert!(g.sms.allows_number("+46701234567"));
        assert!(!g.sms.allows_number("+46701234568"));
        assert!(g.calls.allows_number("112"));
        assert_eq!(g.system, vec![SystemAction::RestartModem]);
    }

    #[test]
    fn bad_words_are_named() {
        let err = grants(r#"outputs = "all""#).unwrap_err().to_string();
        assert!(err.contains(r#""any", "none" or a list"#), "{err}");
        let err = grants(r#"sms = ["+46 70 abc"]"#).unwrap_err().to_string();
        assert!(err.contains("is not a digit"), "{err}");
    }
}
