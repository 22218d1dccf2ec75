//! The scenario format: what happens to a plugin, when, and what it should
//! do about it. `docs/plugins.md` documents it for plugin authors.
//!
//! ```toml
//! unit = "../unit.toml"     # the unit config the plugin runs in (optional)
//! until = 10                # seconds the run lasts (default: the last entry + 60)
//!
//! [[events]]
//! at = 0                    # seconds on the virtual clock
//! input = 1
//! closed = true
//!
//! [[expect]]
//! at = 0
//! output = 1
//! on = true
//! ```
//!
//! Events and expectations are tables with one key saying what they are
//! (`input`, `sms`, `output`...) and the keys that go with it; a table
//! with none, two, or a key its kind does not take is an error naming its
//! line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::ConfigError;

/// A scenario, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// The unit config the plugin runs in, resolved against the scenario's
    /// folder.
    pub unit: Option<PathBuf>,
    /// The plugin's name in that config.
    pub plugin: Option<String>,
    /// The wall clock at 0, in Unix seconds.
    pub start: i64,
    /// When the run ends, in ms.
    pub until_ms: u64,
    /// Inputs of the simulated board closed at 0.
    pub closed: Vec<u8>,
    /// Device settings at 0.
    pub settings: BTreeMap<String, String>,
    /// The events, in time order (equal times: as written).
    pub events: Vec<Timed<Stimulus>>,
    /// The expected actions, in time order (equal times: as written).
    pub expect: Vec<Timed<Happening>>,
}

/// Something at a time on the virtual clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed<T> {
    /// Milliseconds from the start.
    pub at_ms: u64,
    /// Who did it, for an action of a recorded unit (its plugin's name).
    pub by: Option<String>,
    /// What.
    pub what: T,
}

/// An event the plugin receives, or that changes what it reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Stimulus {
    /// An input edge, after debouncing.
    Input {
        /// Which input.
        input: u8,
        /// Closed to COM.
        closed: bool,
    },
    /// An SMS arrives.
    Sms {
        /// The sender.
        from: String,
        /// Its text.
        text: String,
    },
    /// A call rings; no caller id when withheld.
    Call {
        /// The caller.
        from: Option<String>,
    },
    /// The modem's status changes (what `status.device` reads).
    Modem(ModemChange),
    /// The server link comes up or goes down (what `status.device` reads).
    Server {
        /// Connected.
        connected: bool,
    },
    /// A server adapter's connection: `on-connect` with the base topic.
    Connect {
        /// The unit's base topic.
        base: String,
    },
    /// A message from the server (server adapters).
    Downlink {
        /// Its topic under the base.
        topic: String,
        /// Its payload, as text.
        payload: String,
    },
    /// A report for a server adapter to encode.
    Report {
        /// The report's id.
        id: String,
        /// What.
        report: ReportEvent,
    },
    /// Device settings changed by someone else (another plugin, the server).
    Settings(BTreeMap<String, String>),
}

/// A report in a scenario, for a server adapter.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportEvent {
    /// The unit's status, as `status.device` reads it then.
    Status,
    /// An alarm or a restore of an input.
    Alarm {
        /// A restore rather than an alarm.
        restore: bool,
        /// The input.
        input: u8,
        /// Its name.
        name: String,
        /// The alarm text.
        text: String,
    },
    /// An output changed.
    Output {
        /// Which.
        output: u8,
        /// On.
        on: bool,
        /// Who switched it.
        by: String,
    },
}

impl ReportEvent {
    /// A unit's report as a scenario's, for the kinds a scenario has.
    pub fn of(report: &crate::plugins::bindings::larm::plugin::types::Report) -> Option<Self> {
        use crate::plugins::bindings::larm::plugin::types::Report;
        Some(match report {
            Report::Status(_) => ReportEvent::Status,
            Report::Alarm(a) | Report::Restore(a) => ReportEvent::Alarm {
                restore: matches!(report, Report::Restore(_)),
                input: a.input,
                name: a.name.clone(),
                text: a.text.clone(),
            },
            Report::OutputChanged(o) => ReportEvent::Output {
                output: o.output,
                on: o.on,
                by: o.by.clone(),
            },
            Report::PluginHealth(_) | Report::Update(_) => return None,
        })
    }
}

/// A change of the simulated modem's status; what is left out stays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModemChange {
    /// Bars, 0-5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_bars: Option<u8>,
    /// `none`, `gsm`, `umts` or `lte`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `ready`, `pin-required`, `locked`, `not-inserted`, `error` or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim: Option<String>,
    /// The operator's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// What a plugin did, as a scenario expects it and a run shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// An output was switched.
    Output {
        /// Which.
        output: u8,
        /// On.
        on: bool,
    },
    /// An SMS was sent.
    Sms {
        /// To.
        to: String,
        /// Text.
        text: String,
    },
    /// A call was dialled.
    Call {
        /// To.
        to: String,
        /// How long it may ring.
        ring_s: u32,
    },
    /// A report went to the server, in the words of its `Display`.
    Report(String),
    /// A connection to the server was asked for.
    Connect,
    /// The connection interval was set, in minutes.
    Interval(u32),
    /// The ringing call was rejected.
    RejectCall,
    /// A restart was asked for: `modem` or `unit`.
    Restart(String),
    /// Factory settings were restored.
    FactoryReset,
    /// A kv entry was written (None: deleted); values that are not UTF-8
    /// are shown as `0x` and hex.
    Kv {
        /// The key.
        key: String,
        /// The new value.
        value: Option<String>,
    },
    /// A device setting changed (None: deleted).
    Setting {
        /// The key.
        key: String,
        /// The new value.
        value: Option<String>,
    },
    /// A message a server adapter made, to publish.
    Publish {
        /// Its topic.
        topic: String,
        /// Its payload, as text (`0x` and hex when not UTF-8).
        payload: String,
        /// Retained.
        retain: bool,
    },
    /// An SMS or call the plugin did not claim: `sms` or `call`.
    Unclaimed(String),
    /// A downlink the adapter refused, with its reason.
    Refused(String),
    /// The plugin faulted (restarted or quarantined), with the fault.
    Fault(String),
}

impl Happening {
    /// Whether it is an action the unit carries out (what a recording of
    /// a unit holds), rather than an outcome only a test run sees.
    pub fn is_action(&self) -> bool {
        !matches!(
            self,
            Happening::Kv { .. }
                | Happening::Setting { .. }
                | Happening::Publish { .. }
                | Happening::Unclaimed(_)
                | Happening::Refused(_)
        )
    }
}

impl fmt::Display for Happening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Happening::Output { output, on } => {
                write!(f, "output {output} {}", if *on { "on" } else { "off" })
            }
            Happening::Sms { to, text } => write!(f, "SMS to {to}: {text:?}"),
            Happening::Call { to, ring_s } => write!(f, "call {to} (rings {ring_s} s)"),
            Happening::Report(line) => write!(f, "report {line}"),
            Happening::Connect => write!(f, "connect to the server"),
            Happening::Interval(m) => write!(f, "server interval {m} min"),
            Happening::RejectCall => write!(f, "reject the call"),
            Happening::Restart(what) => write!(f, "restart the {what}"),
            Happening::FactoryReset => write!(f, "factory reset"),
            Happening::Kv { key, value } => match value {
                Some(v) => write!(f, "kv {key:?} = {v:?}"),
                None => write!(f, "kv {key:?} deleted"),
            },
            Happening::Setting { key, value } => match value {
                Some(v) => write!(f, "setting {key} = {v:?}"),
                None => write!(f, "setting {key} deleted"),
            },
            Happening::Publish {
                topic,
                payload,
                retain,
            } => write!(
                f,
                "publish {topic}{}: {payload}",
                if *retain { " (retained)" } else { "" }
            ),
            Happening::Unclaimed(what) => write!(f, "{what} not claimed"),
            Happening::Refused(why) => write!(f, "downlink refused: {why}"),
            Happening::Fault(why) => write!(f, "fault: {why}"),
        }
    }
}

/// One line of a diff: the time and what happened.
pub fn line(at_ms: u64, what: &Happening) -> String {
    format!("{:>9.3} s  {what}", at_ms as f64 / 1000.0)
}

/// Bytes as a scenario shows them: the text, or `0x` and hex.
pub fn shown_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.starts_with("0x") => text.to_string(),
        _ => format!("0x{}", crate::state::hex(bytes)),
    }
}

/// A scenario file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    unit: Option<PathBuf>,
    plugin: Option<String>,
    start: Option<i64>,
    until: Option<Spanned<f64>>,
    #[serde(default)]
    closed: Vec<u8>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    events: Vec<Spanned<EventEntry>>,
    #[serde(default)]
    expect: Vec<Spanned<ExpectEntry>>,
}

/// An `[[events]]` table: `at` and the keys of one kind of event.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventEntry {
    /// Seconds from the start.
    pub at: f64,
    /// An input edge: the input...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<u8>,
    /// ...and whether it closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
    /// An SMS: its text...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<String>,
    /// ...and its sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A call, from this number (`""`: withheld).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// The modem's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modem: Option<ModemChange>,
    /// The server link up (true) or down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<bool>,
    /// A server adapter's connection, with the base topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// A downlink: its topic...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downlink: Option<String>,
    /// ...and payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// A report to encode: `status`, `alarm`, `restore` or `output`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// ...its id (default `r-N`)...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// ...an alarm's input name and text...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// ...an output report's output, state and source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<u8>,
    /// ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<bool>,
    /// ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Device settings changed by someone else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<BTreeMap<String, String>>,
}

/// An `[[expect]]` table: `at` and the keys of one kind of action.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectEntry {
    /// Seconds from the start.
    pub at: f64,
    /// The plugin that did it, in a recorded unit (where there are several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// An output switched: which...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<u8>,
    /// ...and to what.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<bool>,
    /// An SMS sent: to...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<String>,
    /// ...with this text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A call dialled: to...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// ...ringing this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_s: Option<u32>,
    /// A report, in one line (`alarm input 1 "Door": "Door alarm"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// A connection asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<bool>,
    /// The server interval set, in minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u32>,
    /// The ringing call rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_call: Option<bool>,
    /// A restart asked for: `modem` or `unit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// Factory settings restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factory_reset: Option<bool>,
    /// A kv entry written: its key...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv: Option<String>,
    /// A device setting changed: its key...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// ...and its value (left out: deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A message to publish: its topic...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<String>,
    /// ...payload...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// ...and whether it is retained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain: Option<bool>,
    /// An SMS or call not claimed: `sms` or `call`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unclaimed: Option<String>,
    /// A downlink refused, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// A fault, with what it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// The largest scenario read: a unit's recording of weeks of events.
pub const MAX_SCENARIO_BYTES: u64 = 64 * 1024 * 1024;

/// How long a run goes on after its last event or expectation, unless the
/// scenario says `until`: long enough for the timers a rule sets for one
/// event (delays, retries), short enough to read.
pub const SETTLE_MS: u64 = 60_000;

/// The latest time a scenario may name: a year, in ms.
const MAX_AT_MS: u64 = 366 * 24 * 3600 * 1000;

/// Seconds as milliseconds, if they are a time a scenario can name.
fn millis(seconds: f64) -> Result<u64, String> {
    let ms = (seconds * 1000.0).round();
    if seconds.is_finite() && ms >= 0.0 && ms <= MAX_AT_MS as f64 {
        Ok(ms as u64)
    } else {
        Err(format!(
            "`at` = {seconds} is not a time from 0 to a year, in seconds"
        ))
    }
}

impl Scenario {
    /// Reads a scenario file; an error names the file, line and key.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        Self::parse(&Self::read_text(file)?, file)
    }

    /// A scenario file's text, read with a bound of [`MAX_SCENARIO_BYTES`].
    pub fn read_text(file: &Path) -> Result<String, ConfigError> {
        crate::config::read_text_bounded(file, MAX_SCENARIO_BYTES)
    }

    /// Reads a scenario's text (`file` names it in errors and resolves
    /// `unit`).
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let raw: RawScenario = crate::config::deserialize(text, file)?;
        let at_line = |span: std::ops::Range<usize>, key: String, message: String| {
            crate::config::invalid(text, file, Some(span), Some(key), message)
        };
        let mut events = Vec::new();
        for (i, entry) in raw.events.into_iter().enumerate() {
            let span = entry.span();
            let entry = entry.into_inner();
            let at_ms =
                millis(entry.at).map_err(|m| at_line(span.clone(), format!("events[{i}]"), m))?;
            let what = entry
                .stimulus(i)
                .map_err(|m| at_line(span, format!("events[{i}]"), m))?;
            events.push(Timed {
                at_ms,
                by: None,
                what,
            });
        }
        let mut expect = Vec::new();
        for (i, entry) in raw.expect.into_iter().enumerate() {
            let span = entry.span();
            let entry = entry.into_inner();
            let at_ms =
                millis(entry.at).map_err(|m| at_line(span.clone(), format!("expect[{i}]"), m))?;
            let by = entry.by.clone();
            let what = entry
                .happening()
                .map_err(|m| at_line(span, format!("expect[{i}]"), m))?;
            expect.push(Timed { at_ms, by, what });
        }
        // Stable: entries at the same time keep their written order.
        events.sort_by_key(|e| e.at_ms);
        expect.sort_by_key(|e| e.at_ms);
        let last = events
            .iter()
            .map(|e| e.at_ms)
            .chain(expect.iter().map(|e| e.at_ms))
            .max()
            .unwrap_or(0);
        let until_ms = match raw.until {
            Some(until) => {
                let span = until.span();
                millis(*until.get_ref())
                    .map_err(|m| at_line(span, "until".into(), m.replace("`at`", "`until`")))?
            }
            None => last + SETTLE_MS,
        };
        Ok(Self {
            unit: raw
                .unit
                .map(|u| file.parent().unwrap_or(Path::new(".")).join(u)),
            plugin: raw.plugin,
            start: raw.start.unwrap_or(DEFAULT_START),
            until_ms,
            closed: raw.closed,
            settings: raw.settings,
            events,
            expect,
        })
    }
}

/// The wall clock at a scenario's 0 unless it says `start`:
/// 2026-01-01 00:00 UTC, so runs read the same time.
pub const DEFAULT_START: i64 = 1_767_225_600;

/// The one kind of entry a table is: exactly one of `kinds` must be set.
fn one_kind(kinds: &[(&'static str, bool)], what: &str) -> Result<&'static str, String> {
    let set: Vec<&'static str> = kinds.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
    match set.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "says no {what}: give one of {}",
            kinds
                .iter()
                .map(|(k, _)| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        many => Err(format!(
            "says {} at once: one {what} per table",
            many.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        )),
    }
}

/// Refuses the keys of `extras` that are set but do not go with `kind`.
fn only(kind: &str, allowed: &[&str], extras: &[(&str, bool)]) -> Result<(), String> {
    match extras
        .iter()
        .find(|(key, set)| *set && !allowed.contains(key))
    {
        Some((key, _)) => Err(format!("`{key}` does not go with `{kind}`")),
        None => Ok(()),
    }
}

/// A value a kind needs.
fn needed<T>(value: Option<T>, kind: &str, key: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("`{kind}` needs `{key}`"))
}

impl EventEntry {
    /// The event this table says.
    fn stimulus(self, index: usize) -> Result<Stimulus, String> {
        let kind = one_kind(
            &[
                // A report's `input` is the alarm's.
                ("input", self.input.is_some() && self.report.is_none()),
                ("sms", self.sms.is_some()),
                ("call", self.call.is_some()),
                ("modem", self.modem.is_some()),
                ("server", self.server.is_some()),
                ("connect", self.connect.is_some()),
                ("downlink", self.downlink.is_some()),
                ("report", self.report.is_some()),
                ("settings", self.settings.is_some()),
            ],
            "event",
        )?;
        let allowed: &[&str] = match kind {
            "input" => &["closed"],
            "sms" => &["from"],
            "downlink" => &["payload"],
            "report" => &["id", "name", "text", "output", "on", "by"],
            _ => &[],
        };
        only(
            kind,
            allowed,
            &[
                ("closed", self.closed.is_some()),
                ("from", self.from.is_some()),
                ("payload", self.payload.is_some()),
                ("id", self.id.is_some()),
                ("name", self.name.is_some()),
                ("text", self.text.is_some()),
                ("output", self.output.is_some()),
                ("on", self.on.is_some()),
                ("by", self.by.is_some()),
            ],
        )?;
        Ok(match kind {
            "input" => Stimulus::Input {
                input: needed(self.input, kind, "input")?,
                closed: needed(self.closed, kind, "closed")?,
            },
            "sms" => Stimulus::Sms {
                from: needed(self.from, kind, "from")?,
                text: needed(self.sms, kind, "sms")?,
            },
            "call" => Stimulus::Call {
                from: self.call.filter(|c| !c.is_empty()),
            },
            "modem" => Stimulus::Modem(needed(self.modem, kind, "modem")?),
            "server" => Stimulus::Server {
                connected: needed(self.server, kind, "server")?,
            },
            "connect" => Stimulus::Connect {
                base: needed(self.connect, kind, "connect")?,
            },
            "downlink" => Stimulus::Downlink {
                topic: needed(self.downlink, kind, "downlink")?,
                payload: needed(self.payload, kind, "payload")?,
            },
            "report" => {
                let id = self.id.unwrap_or_else(|| format!("r-{index}"));
                let report = match needed(self.report, kind, "report")?.as_str() {
                    "status" => ReportEvent::Status,
                    which @ ("alarm" | "restore") => ReportEvent::Alarm {
                        restore: which == "restore",
                        input: needed(self.input, which, "input")?,
                        name: self.name.unwrap_or_default(),
                        text: self.text.unwrap_or_default(),
                    },
                    "output" => ReportEvent::Output {
                        output: needed(self.output, "output", "output")?,
                        on: needed(self.on, "output", "on")?,
                        by: self.by.unwrap_or_default(),
                    },
                    other => {
                        return Err(format!(
                            "`report = {other:?}`: a scenario reports `status`, `alarm`, `restore` or `output`"
                        ));
                    }
                };
                Stimulus::Report { id, report }
            }
            _ => Stimulus::Settings(needed(self.settings, kind, "settings")?),
        })
    }

    /// The table that says `event`, at `at_ms`.
    pub fn of(at_ms: u64, event: &Stimulus) -> Self {
        let mut entry = Self {
            at: at_ms as f64 / 1000.0,
            ..Self::default()
        };
        match event.clone() {
            Stimulus::Input { input, closed } => {
                entry.input = Some(input);
                entry.closed = Some(closed);
            }
            Stimulus::Sms { from, text } => {
                entry.sms = Some(text);
                entry.from = Some(from);
            }
            Stimulus::Call { from } => entry.call = Some(from.unwrap_or_default()),
            Stimulus::Modem(change) => entry.modem = Some(change),
            Stimulus::Server { connected } => entry.server = Some(connected),
            Stimulus::Connect { base } => entry.connect = Some(base),
            Stimulus::Downlink { topic, payload } => {
                entry.downlink = Some(topic);
                entry.payload = Some(payload);
            }
            Stimulus::Report { id, report } => {
                entry.id = Some(id);
                match report {
                    ReportEvent::Status => entry.report = Some("status".into()),
                    ReportEvent::Alarm {
                        restore,
                        input,
                        name,
                        text,
                    } => {
                        entry.report = Some(if restore { "restore" } else { "alarm" }.into());
                        entry.input = Some(input);
                        entry.name = Some(name);
                        entry.text = Some(text);
                    }
                    ReportEvent::Output { output, on, by } => {
                        entry.report = Some("output".into());
                        entry.output = Some(output);
                        entry.on = Some(on);
                        entry.by = Some(by);
                    }
                }
            }
            Stimulus::Settings(settings) => entry.settings = Some(settings),
        }
        entry
    }
}

impl ExpectEntry {
    /// The action this table says.
    fn happening(self) -> Result<Happening, String> {
        let kind = one_kind(
            &[
                ("output", self.output.is_some()),
                ("sms", self.sms.is_some()),
                ("call", self.call.is_some()),
                ("report", self.report.is_some()),
                ("connect", self.connect.is_some()),
                ("interval", self.interval.is_some()),
                ("reject_call", self.reject_call.is_some()),
                ("restart", self.restart.is_some()),
                ("factory_reset", self.factory_reset.is_some()),
                ("kv", self.kv.is_some()),
                ("setting", self.setting.is_some()),
                ("publish", self.publish.is_some()),
                ("unclaimed", self.unclaimed.is_some()),
                ("refused", self.refused.is_some()),
                ("fault", self.fault.is_some()),
            ],
            "action",
        )?;
        let allowed: &[&str] = match kind {
            "output" => &["on"],
            "sms" => &["text"],
            "call" => &["ring_s"],
            "kv" | "setting" => &["value"],
            "publish" => &["payload", "retain"],
            _ => &[],
        };
        only(
            kind,
            allowed,
            &[
                ("on", self.on.is_some()),
                ("text", self.text.is_some()),
                ("ring_s", self.ring_s.is_some()),
                ("value", self.value.is_some()),
                ("payload", self.payload.is_some()),
                ("retain", self.retain.is_some()),
            ],
        )?;
        let yes = |flag: Option<bool>, key: &str| match flag {
            Some(true) => Ok(()),
            _ => Err(format!("`{key}` is `true` or left out")),
        };
        Ok(match kind {
            "output" => Happening::Output {
                output: needed(self.output, kind, "output")?,
                on: needed(self.on, kind, "on")?,
            },
            "sms" => Happening::Sms {
                to: needed(self.sms, kind, "sms")?,
                text: needed(self.text, kind, "text")?,
            },
            "call" => Happening::Call {
                to: needed(self.call, kind, "call")?,
                ring_s: needed(self.ring_s, kind, "ring_s")?,
            },
            "report" => Happening::Report(needed(self.report, kind, "report")?),
            "connect" => {
                yes(self.connect, kind)?;
                Happening::Connect
            }
            "interval" => Happening::Interval(needed(self.interval, kind, "interval")?),
            "reject_call" => {
                yes(self.reject_call, kind)?;
                Happening::RejectCall
            }
            "restart" => Happening::Restart(needed(self.restart, kind, "restart")?),
            "factory_reset" => {
                yes(self.factory_reset, kind)?;
                Happening::FactoryReset
            }
            "kv" => Happening::Kv {
                key: needed(self.kv, kind, "kv")?,
                value: self.value,
            },
            "setting" => Happening::Setting {
                key: needed(self.setting, kind, "setting")?,
                value: self.value,
            },
            "publish" => Happening::Publish {
                topic: needed(self.publish, kind, "publish")?,
                payload: needed(self.payload, kind, "payload")?,
                retain: self.retain.unwrap_or(false),
            },
            "unclaimed" => Happening::Unclaimed(needed(self.unclaimed, kind, "unclaimed")?),
            "refused" => Happening::Refused(needed(self.refused, kind, "refused")?),
            _ => Happening::Fault(needed(self.fault, kind, "fault")?),
        })
    }

    /// The table that says `what`, at `at_ms`, by `by`.
    pub fn of(at_ms: u64, by: Option<String>, what: &Happening) -> Self {
        let mut entry = Self {
            at: at_ms as f64 / 1000.0,
            by,
            ..Self::default()
        };
        match what.clone() {
            Happening::Output { output, on } => {
                entry.output = Some(output);
                entry.on = Some(on);
            }
            Happening::Sms { to, text } => {
                entry.sms = Some(to);
                entry.text = Some(text);
            }
            Happening::Call { to, ring_s } => {
                entry.call = Some(to);
                entry.ring_s = Some(ring_s);
            }
            Happening::Report(line) => entry.report = Some(line),
            Happening::Connect => entry.connect = Some(true),
            Happening::Interval(m) => entry.interval = Some(m),
            Happening::RejectCall => entry.reject_call = Some(true),
            Happening::Restart(what) => entry.restart = Some(what),
            Happening::FactoryReset => entry.factory_reset = Some(true),
            Happening::Kv { key, value } => {
                entry.kv = Some(key);
                entry.value = value;
            }
            Happening::Setting { key, value } => {
                entry.setting = Some(key);
                entry.value = value;
            }
            Happening::Publish {
                topic,
                payload,
                retain,
            } => {
                entry.publish = Some(topic);
                entry.payload = Some(payload);
                entry.retain = retain.then_some(true);
            }
            Happening::Unclaimed(what) => entry.unclaimed = Some(what),
            Happening::Refused(why) => entry.refused = Some(why),
            Happening::Fault(why) => entry.fault = Some(why),
        }
        entry
    }
}
