//! `[outputs.N]` and `[quotas]`: the rules that plugins on one unit share.
//!
//! ```toml
//! [outputs.5]                              # the ALARM output
//! owners = ["input-rules"]                 # who may switch it, highest priority first
//! [outputs.3]
//! owners = ["input-rules", "http", "sms-commands"]
//!
//! [quotas.unit]                            # every plugin together
//! sms_per_day = 100
//! [quotas.ceiling]                         # plugins with bypass_quotas (alarms)
//! sms_per_day = 500
//!
//! [[plugins]]
//! name = "sms-commands"
//! quota = { sms_per_hour = 20 }            # this plugin's own
//! ```
//!
//! `owners` names plugins, or `http` for the local API (the panel and
//! scripts). See [`crate::outputs`] for the rule and [`crate::quota`] for
//! which limit wins.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// `[outputs.N]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Who may switch the output, highest priority first: plugin names, or
    /// `http`.
    pub owners: Spanned<Vec<String>>,
}

/// The source name of the local HTTP API among an output's owners.
pub const HTTP_SOURCE: &str = "http";

/// Names the host gives its own parts and sources (an output's owner, a
/// quota's scope, a health event): no plugin may take them.
pub const RESERVED_NAMES: &[&str] = &[
    HTTP_SOURCE,
    "host",
    "unit",
    "ceiling",
    "quota",
    "server",
    "state",
    "password",
];

/// Limits on what costs money, per window. None: no limit.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// SMS in any hour.
    pub sms_per_hour: Option<u32>,
    /// SMS in any 24 hours.
    pub sms_per_day: Option<u32>,
    /// Calls dialled in any hour.
    pub calls_per_hour: Option<u32>,
    /// Server reports in any minute.
    pub reports_per_minute: Option<u32>,
}

/// The largest limit a quota may set: a counter keeps one time per send up
/// to its limit, and is written whole after each send.
pub const MAX_LIMIT: u32 = 10_000;

impl Quota {
    fn limits(&self) -> [(&'static str, Option<u32>); 4] {
        [
            ("sms_per_hour", self.sms_per_hour),
            ("sms_per_day", self.sms_per_day),
            ("calls_per_hour", self.calls_per_hour),
            ("reports_per_minute", self.reports_per_minute),
        ]
    }

    /// The first limit over [`MAX_LIMIT`], by its key.
    pub fn too_large(&self) -> Option<&'static str> {
        self.limits()
            .into_iter()
            .find(|(_, l)| l.is_some_and(|l| l > MAX_LIMIT))
            .map(|(k, _)| k)
    }
}

/// `[quotas]`. A limit left out keeps its default, so the ceiling cannot
/// be turned off, only set higher.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuotasConfig {
    /// Every plugin together, except those that bypass quotas. Default: 100
    /// SMS a day.
    #[serde(default)]
    pub unit: Quota,
    /// The hard limit of plugins with `bypass_quotas`. Default: 500 SMS a
    /// day and 60 calls an hour.
    #[serde(default)]
    pub ceiling: Quota,
}

impl QuotasConfig {
    /// The unit's quota, defaults filled in.
    pub fn unit(&self) -> Quota {
        self.unit.or(unit_default())
    }

    /// The ceiling, defaults filled in.
    pub fn ceiling(&self) -> Quota {
        self.ceiling.or(ceiling_default())
    }
}

impl Quota {
    /// These limits, with `other`'s where these have none.
    fn or(self, other: Quota) -> Quota {
        Quota {
            sms_per_hour: self.sms_per_hour.or(other.sms_per_hour),
            sms_per_day: self.sms_per_day.or(other.sms_per_day),
            calls_per_hour: self.calls_per_hour.or(other.calls_per_hour),
            reports_per_minute: self.reports_per_minute.or(other.reports_per_minute),
        }
    }
}

fn unit_default() -> Quota {
    Quota {
        sms_per_day: Some(100),
        ..Quota::default()
    }
}

fn ceiling_default() -> Quota {
    Quota {
        sms_per_day: Some(500),
        calls_per_hour: Some(60),
        ..Quota::default()
    }
}

/// Checks `[outputs.N]` against the board's `outputs` and the plugins'
/// `names`; the owners by output.
pub fn output_owners(
    outputs: &BTreeMap<String, OutputConfig>,
    count: u8,
    names: &[&str],
    http: bool,
) -> Result<BTreeMap<u8, Vec<String>>, super::Invalid> {
    let mut owners = BTreeMap::new();
    for (n, output) in outputs {
        let key = format!("outputs.{n}");
        let id = n
            .parse::<u8>()
            .ok()
            .filter(|id| (1..=count).contains(id) && id.to_string() == *n)
            .ok_or_else(|| {
                (
                    Some(output.owners.span()),
                    key.clone(),
                    format!("output {n:?} does not exist (the board has outputs 1 to {count})"),
                )
            })?;
        let list = output.owners.get_ref();
        for (i, owner) in list.iter().enumerate() {
            if owner == HTTP_SOURCE && !http {
                return Err((
                    Some(output.owners.span()),
                    format!("{key}.owners"),
                    format!("`{HTTP_SOURCE}` is an owner, but the config has no [http]"),
                ));
            }
            if owner != HTTP_SOURCE && !names.contains(&owner.as_str()) {
                return Err((
                    Some(output.owners.span()),
                    format!("{key}.owners"),
                    format!(
                        "`{}` is neither a plugin of this config nor `{HTTP_SOURCE}`",
                        owner.escape_debug()
                    ),
                ));
            }
            if list[..i].contains(owner) {
                return Err((
                    Some(output.owners.span()),
                    format!("{key}.owners"),
                    format!("`{}` is listed twice", owner.escape_debug()),
                ));
            }
        }
        if list.is_empty() {
            return Err((
                Some(output.owners.span()),
                format!("{key}.owners"),
                "an empty list would let nobody switch the output; leave `[outputs.N]` out to let anyone"
                    .into(),
            ));
        }
        owners.insert(id, list.clone());
    }
    Ok(owners)
}
