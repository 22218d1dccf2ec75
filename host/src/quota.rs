//! Quotas on what costs money: SMS, calls and server reports.
//!
//! Each send is counted in sliding windows (an hour, a day, a minute) for
//! the plugin that sends and for the unit. Which limit wins:
//!
//! - A plugin is held by its own `quota` **and** by `[quotas.unit]`: the
//!   first that is spent refuses the send.
//! - A plugin with `bypass_quotas = true` (the alarm rules) is held only
//!   by `[quotas.ceiling]`, the hard limit no config turns off. Its sends
//!   still count toward the unit's quota, so other plugins see what is
//!   left.
//!
//! The counters are kept in the state store after each send, so a restart
//! does not hand out a fresh budget. A refusal is logged and told once per
//! spent quota on the health events (`quota`), and the status shows each
//! counter.
//!
//! No crate keeps persisted sliding-window counters over our state store;
//! rate limiters such as `governor` are in-memory token buckets that do not
//! survive a restart, so this is written here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::config::{Quota, QuotasConfig};
use crate::outbox::now_ms;
use crate::state::State;

/// The state store's record of the counters.
const RECORD: &str = "quota.counters";
/// The scope of `[quotas.unit]`.
const UNIT: &str = "unit";
/// The scope of `[quotas.ceiling]`.
const CEILING: &str = "ceiling";

/// What a send costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cost {
    /// An SMS.
    Sms,
    /// A call dialled.
    Call,
    /// A server report.
    Report,
}

/// One limit: so many sends of a cost within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit {
    cost: Cost,
    window: Duration,
    max: u32,
    /// As the config says it.
    name: &'static str,
}

fn limits(q: &Quota) -> Vec<Limit> {
    const HOUR: Duration = Duration::from_secs(3600);
    [
        (Cost::Sms, HOUR, q.sms_per_hour, "SMS per hour"),
        (Cost::Sms, HOUR * 24, q.sms_per_day, "SMS per day"),
        (Cost::Call, HOUR, q.calls_per_hour, "calls per hour"),
        (
            Cost::Report,
            Duration::from_secs(60),
            q.reports_per_minute,
            "reports per minute",
        ),
    ]
    .into_iter()
    .filter_map(|(cost, window, max, name)| {
        max.map(|max| Limit {
            cost,
            window,
            max,
            name,
        })
    })
    .collect()
}

/// A send refused by a spent quota.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{scope}'s quota of {max} {name} is spent")]
pub struct OverQuota {
    /// Whose quota: a plugin's name, `unit` or `ceiling`.
    pub scope: String,
    /// Which limit, as people say it ("SMS per hour").
    pub name: &'static str,
    /// The limit.
    pub max: u32,
}

/// One counter as the status shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Counter {
    /// A plugin's name, `unit` or `ceiling`.
    pub scope: String,
    /// The limit, as people say it.
    pub name: &'static str,
    /// Sends within the window now.
    pub used: u32,
    /// The limit.
    pub max: u32,
}

/// When each scope's recent sends were made (ms since the Unix epoch), by
/// cost; no older than the longest window, no more than the largest limit.
type Sends = BTreeMap<String, BTreeMap<Cost, VecDeque<u64>>>;

/// The unit's quotas and their counters.
pub struct Quotas {
    state: std::sync::Arc<State>,
    scopes: BTreeMap<String, Vec<Limit>>,
    bypass: Vec<String>,
    sends: Mutex<(Sends, Vec<String>)>,
}

impl Quotas {
    /// The quotas of the config: the unit's, the ceiling and each
    /// plugin's (`(name, quota, bypass)`), with the counters kept in
    /// `state`.
    pub fn new<'a>(
        state: std::sync::Arc<State>,
        unit: &QuotasConfig,
        plugins: impl IntoIterator<Item = (&'a str, &'a Quota, bool)>,
    ) -> Self {
        let mut scopes = BTreeMap::new();
        scopes.insert(UNIT.to_string(), limits(&unit.unit()));
        scopes.insert(CEILING.to_string(), limits(&unit.ceiling()));
        let mut bypass = Vec::new();
        for (name, quota, bypasses) in plugins {
            scopes.insert(name.to_string(), limits(quota));
            if bypasses {
                bypass.push(name.to_string());
            }
        }
        let mut sends: Sends = match state.record(RECORD) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!("the quota counters are unreadable; they start again: {e}");
                Sends::new()
            }),
            Ok(None) => Sends::new(),
            Err(e) => {
                warn!("reading the quota counters: {e}");
                Sends::new()
            }
        };
        // A send dated in the future (the clock was ahead when it was
        // kept) would never leave its window: it counts as made now.
        let now = now_ms();
        for log in sends.values_mut().flat_map(BTreeMap::values_mut) {
            for t in log.iter_mut() {
                *t = (*t).min(now);
            }
        }
        Self {
            state,
            scopes,
            bypass,
            sends: Mutex::new((sends, Vec::new())),
        }
    }

    /// Quotas without limits, for tests and benchmarks.
    pub fn unlimited(state: std::sync::Arc<State>) -> Self {
        Self {
            state,
            scopes: BTreeMap::new(),
            bypass: Vec::new(),
            sends: Mutex::default(),
        }
    }

    /// Counts a send of `units` of `cost` by `plugin` (an SMS costs one
    /// unit per part), or refuses it if a quota that holds the plugin
    /// cannot take them. The error comes with whether it is the first
    /// refusal since that quota was last open (to tell once).
    pub fn spend(&self, plugin: &str, cost: Cost, units: u32) -> Result<(), (OverQuota, bool)> {
        let now = now_ms();
        let mut guard = self.sends.lock().unwrap();
        let (sends, spent) = &mut *guard;
        let held_by: &[&str] = if self.bypass.iter().any(|b| b == plugin) {
            &[CEILING]
        } else {
            &[plugin, UNIT]
        };
        for &scope in held_by {
            for limit in self.limits_of(scope, cost) {
                if count(sends, scope, cost, now, limit.window).saturating_add(units) > limit.max {
                    let over = OverQuota {
                        scope: scope.to_string(),
                        name: limit.name,
                        max: limit.max,
                    };
                    let key = format!("{scope}/{}", limit.name);
                    let first = !spent.contains(&key);
                    if first {
                        spent.push(key);
                    }
                    return Err((over, first));
                }
            }
        }
        // Counted where it is limited: its own scope, the unit's (also for
        // a plugin that bypasses it) and the ceiling if it bypasses.
        let mut counted = vec![plugin, UNIT];
        if held_by == [CEILING] {
            counted.push(CEILING);
        }
        let mut pushed = false;
        for scope in counted {
            let kept = self.limits_of(scope, cost).map(|l| l.max).max();
            let longest = self.limits_of(scope, cost).map(|l| l.window).max();
            // A limit of 0 keeps nothing: no send of its scope gets past it
            // but a bypassing one, which need not be remembered there.
            let (Some(kept @ 1..), Some(longest)) = (kept, longest) else {
                continue;
            };
            let log = sends
                .entry(scope.to_string())
                .or_default()
                .entry(cost)
                .or_default();
            let oldest = now.saturating_sub(longest.as_millis() as u64);
            while log.front().is_some_and(|&t| t <= oldest) {
                log.pop_front();
            }
            for _ in 0..units.min(kept) {
                if log.len() >= kept as usize {
                    log.pop_front();
                }
                log.push_back(now);
            }
            pushed = true;
        }
        spent.retain(|key| {
            let scope = key.split('/').next().unwrap_or_default();
            !held_by.contains(&scope)
        });
        if pushed {
            let bytes = serde_json::to_vec(&*sends).expect("counters serialize");
            if let Err(e) = self.state.set_record(RECORD, &bytes) {
                warn!("keeping the quota counters: {e}");
            }
        }
        Ok(())
    }

    fn limits_of(&self, scope: &str, cost: Cost) -> impl Iterator<Item = &Limit> {
        self.scopes
            .get(scope)
            .into_iter()
            .flatten()
            .filter(move |l| l.cost == cost)
    }

    /// Every limited counter, as it stands now.
    pub fn counters(&self) -> Vec<Counter> {
        let now = now_ms();
        let guard = self.sends.lock().unwrap();
        self.scopes
            .iter()
            .flat_map(|(scope, limits)| {
                limits.iter().map(|l| Counter {
                    scope: scope.clone(),
                    name: l.name,
                    used: count(&guard.0, scope, l.cost, now, l.window),
                    max: l.max,
                })
            })
            .collect()
    }
}

/// Sends of `cost` by `scope` within `window` before `now`.
fn count(sends: &Sends, scope: &str, cost: Cost, now: u64, window: Duration) -> u32 {
    let since = now.saturating_sub(window.as_millis() as u64);
    sends
        .get(scope)
        .and_then(|by_cost| by_cost.get(&cost))
        .map_or(0, |log| log.iter().filter(|&&t| t > since).count() as u32)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn quotas(state: Arc<State>) -> Quotas {
        let unit = QuotasConfig {
            unit: Quota {
                sms_per_day: Some(3),
                ..Quota::default()
            },
            ceiling: Quota {
                sms_per_day: Some(5),
                ..Quota::default()
            },
        };
        let own = Quota {
            sms_per_hour: Some(2),
            ..Quota::default()
        };
        let none = Quota::default();
        Quotas::new(
            state,
            &unit,
            [
                ("cmds", &own, false),
                ("rules", &none, true),
                ("other", &none, false),
            ],
        )
    }

    impl Quotas {
        fn spend_one(&self, plugin: &str, cost: Cost) -> Result<(), (OverQuota, bool)> {
            self.spend(plugin, cost, 1)
        }
    }

    /// A limit of 0 refuses everything but a bypassing plugin, which it
    /// does not hold up; a long SMS costs its parts.
    #[test]
    fn zero_limits_and_parts() {
        let state = Arc::new(State::in_memory().unwrap());
        let unit = QuotasConfig {
            unit: Quota {
                calls_per_hour: Some(0),
                sms_per_day: Some(5),
                ..Quota::default()
            },
            ceiling: Quota::default(),
        };
        let none = Quota::default();
        let q = Quotas::new(
            state,
            &unit,
            [("rules", &none, true), ("cmds", &none, false)],
        );
        q.spend("rules", Cost::Call, 1).unwrap();
        q.spend("rules", Cost::Call, 1).unwrap();
        assert_eq!(q.spend("cmds", Cost::Call, 1).unwrap_err().0.max, 0);
        q.spend("cmds", Cost::Sms, 4).unwrap();
        assert!(q.spend("cmds", Cost::Sms, 2).is_err(), "4 parts + 2 > 5");
        q.spend("cmds", Cost::Sms, 1).unwrap();
    }

    /// The plugin's own quota, then the unit's; an alarm plugin is held
    /// only by the ceiling, but uses up the unit's quota; the counters
    /// survive a restart.
    #[test]
    fn which_limit_wins() {
        let state = Arc::new(State::in_memory().unwrap());
        let q = quotas(state.clone());
        q.spend_one("cmds", Cost::Sms).unwrap();
        q.spend_one("cmds", Cost::Sms).unwrap();
        let (over, first) = q.spend_one("cmds", Cost::Sms).unwrap_err();
        assert_eq!(
            (over.scope.as_str(), over.name, first),
            ("cmds", "SMS per hour", true)
        );
        assert!(!q.spend_one("cmds", Cost::Sms).unwrap_err().1, "told once");
        // Calls are not limited here.
        q.spend_one("cmds", Cost::Call).unwrap();
        q.spend_one("other", Cost::Sms).unwrap();
        let (over, _) = q.spend_one("other", Cost::Sms).unwrap_err();
        assert_eq!((over.scope.as_str(), over.max), ("unit", 3));
        for _ in 0..5 {
            q.spend_one("rules", Cost::Sms).unwrap();
        }
        let (over, _) = q.spend_one("rules", Cost::Sms).unwrap_err();
        assert_eq!(over.scope, "ceiling");
        let again = quotas(state);
        assert_eq!(
            again.spend_one("other", Cost::Sms).unwrap_err().0.scope,
            "unit"
        );
        let unit = again
            .counters()
            .into_iter()
            .find(|c| c.scope == "unit")
            .unwrap();
        assert_eq!((unit.used, unit.max), (3, 3), "{unit:?}");
    }
}
