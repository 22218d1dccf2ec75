//! `[updates]`: who may sign the components a unit runs, and how a field
//! update is tried out.
//!
//! ```toml
//! [updates]
//! trusted_keys = ["keys/fleet.pub"]   # minisign public keys (larmd plugin keygen)
//! probation_s = 300                   # a fault this soon after an install rolls it back
//! max_mqtt_bytes = 2097152            # the largest component taken from the server
//! # allow_precompiled = true          # updates may carry precompiled plugins (signed)
//! # allow_unsigned = true             # development only
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::updates::signature::TrustedKey;

/// `[updates]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdatesConfig {
    /// Public keys whose signatures the unit accepts (relative to the
    /// config file). With keys set, every component from a file or the
    /// field must be signed by one of them for its plugin's name.
    #[serde(default)]
    pub trusted_keys: Vec<Spanned<PathBuf>>,
    /// Accept unsigned components (development only: warned at every
    /// start and shown in the status).
    #[serde(default)]
    pub allow_unsigned: bool,
    /// Accept field updates that carry a plugin precompiled for this board
    /// (`larmd plugin compile`), signed by a trusted key. Off by default:
    /// precompiled code is machine code, which no sandbox checks, and a
    /// key then vouches for components only.
    #[serde(default)]
    pub allow_precompiled: bool,
    /// How long a new component is on probation, in seconds.
    #[serde(default = "default_probation")]
    pub probation_s: u64,
    /// The largest component taken from the server (`update/<name>`).
    #[serde(default = "default_max_mqtt")]
    pub max_mqtt_bytes: usize,
    /// The keys, read from `trusted_keys`.
    #[serde(skip)]
    pub keys: Vec<TrustedKey>,
}

fn default_probation() -> u64 {
    300
}

fn default_max_mqtt() -> usize {
    2 * 1024 * 1024
}

impl UpdatesConfig {
    /// Reads the trusted keys, resolving their paths against `base`.
    pub(super) fn validate(&mut self, base: &Path) -> Result<(), super::Invalid> {
        for (i, file) in self.trusted_keys.iter_mut().enumerate() {
            let resolved = base.join(file.get_ref());
            let key = TrustedKey::read(&resolved).map_err(|e| {
                (
                    Some(file.span()),
                    format!("updates.trusted_keys[{i}]"),
                    e.to_string(),
                )
            })?;
            *file.get_mut() = resolved;
            self.keys.push(key);
        }
        if self.max_mqtt_bytes as u64 > crate::state::MAX_COMPONENT_BYTES {
            return Err((
                None,
                "updates.max_mqtt_bytes".into(),
                format!(
                    "at most {} (the largest component larmd reads)",
                    crate::state::MAX_COMPONENT_BYTES
                ),
            ));
        }
        Ok(())
    }

    /// Whether field updates can be taken at all: with trusted keys, or
    /// unsigned ones allowed.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty() || self.allow_unsigned
    }
}
