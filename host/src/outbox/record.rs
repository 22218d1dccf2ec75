//! The outbox's own record of a report, as it is stored on disk. It is not
//! the WIT-generated `Report`, so a change of the plugin contract cannot
//! silently change what is on disk; the conversions below are where such a
//! change must be met. The JSON is the one larmd 0.1 wrote (serde's
//! defaults over the same names), so entries queued before an upgrade are
//! still sent after it.

use serde::{Deserialize, Serialize};

use larm_rules::names::{Network, Plugin as PluginState, Sim, Update as UpdateOutcome};

use crate::plugins::bindings::larm::plugin::types as wit;

/// A report for the server, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Report {
    /// Full status snapshot.
    Status(DeviceStatus),
    /// An input went into alarm.
    Alarm(Alarm),
    /// An input left its alarm state.
    Restore(Alarm),
    /// An output changed.
    OutputChanged(OutputChange),
    /// Plugin health changed.
    PluginHealth(PluginHealth),
    /// A field update's outcome.
    Update(UpdateEvent),
}

/// See the WIT's `device-status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DeviceStatus {
    pub unit_id: String,
    pub signal_bars: u8,
    pub network: Network,
    pub sim: Sim,
    pub operator: Option<String>,
    pub server_connected: bool,
    pub extended_io: bool,
    pub input_count: u8,
    pub output_count: u8,
    pub uptime_s: u64,
    pub outbox_depth: u32,
    pub outbox_oldest_s: Option<u64>,
    /// Absent in entries written before it existed, and when None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_lockout_s: Option<u64>,
}

/// See the WIT's `alarm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Alarm {
    pub input: u8,
    pub name: String,
    pub text: String,
    pub at: i64,
}

/// See the WIT's `output-change`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct OutputChange {
    pub output: u8,
    pub on: bool,
    pub by: String,
}

/// See the WIT's `plugin-health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PluginHealth {
    pub name: String,
    pub state: PluginState,
    pub faults: u32,
    pub last_fault: Option<String>,
    /// Absent in entries written before it existed, and when None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Absent in entries written before it existed, and when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_probation: bool,
}

/// See the WIT's `update-event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct UpdateEvent {
    pub plugin: String,
    pub outcome: UpdateOutcome,
    pub sha256: Option<String>,
    pub reason: Option<String>,
}

impl Report {
    /// Whether the server should hear of it at once.
    pub fn urgent(&self) -> bool {
        matches!(self, Report::Alarm(_) | Report::Restore(_))
    }
}

impl From<wit::Report> for Report {
    fn from(r: wit::Report) -> Self {
        match r {
            wit::Report::Status(d) => Report::Status(DeviceStatus {
                unit_id: d.unit_id,
                signal_bars: d.signal_bars,
                network: d.network.into(),
                sim: d.sim.into(),
                operator: d.operator,
                server_connected: d.server_connected,
                extended_io: d.extended_io,
                input_count: d.input_count,
                output_count: d.output_count,
                uptime_s: d.uptime_s,
                outbox_depth: d.outbox_depth,
                outbox_oldest_s: d.outbox_oldest_s,
                password_lockout_s: d.password_lockout_s,
            }),
            wit::Report::Alarm(a) => Report::Alarm(a.into()),
            wit::Report::Restore(a) => Report::Restore(a.into()),
            wit::Report::OutputChanged(o) => Report::OutputChanged(OutputChange {
                output: o.output,
                on: o.on,
                by: o.by,
            }),
            wit::Report::PluginHealth(h) => Report::PluginHealth(PluginHealth {
                name: h.name,
                state: h.state.into(),
                faults: h.faults,
                last_fault: h.last_fault,
                version: h.version,
                on_probation: h.on_probation,
            }),
            wit::Report::Update(u) => Report::Update(UpdateEvent {
                plugin: u.plugin,
                outcome: u.outcome.into(),
                sha256: u.sha256,
                reason: u.reason,
            }),
        }
    }
}

impl From<wit::Alarm> for Alarm {
    fn from(a: wit::Alarm) -> Self {
        Alarm {
            input: a.input,
            name: a.name,
            text: a.text,
            at: a.at,
        }
    }
}

impl From<Alarm> for wit::Alarm {
    fn from(a: Alarm) -> Self {
        wit::Alarm {
            input: a.input,
            name: a.name,
            text: a.text,
            at: a.at,
        }
    }
}

impl From<Report> for wit::Report {
    fn from(r: Report) -> Self {
        match r {
            Report::Status(d) => wit::Report::Status(wit::DeviceStatus {
                unit_id: d.unit_id,
                signal_bars: d.signal_bars,
                network: d.network.into(),
                sim: d.sim.into(),
                operator: d.operator,
                server_connected: d.server_connected,
                extended_io: d.extended_io,
                input_count: d.input_count,
                output_count: d.output_count,
                uptime_s: d.uptime_s,
                outbox_depth: d.outbox_depth,
                outbox_oldest_s: d.outbox_oldest_s,
                password_lockout_s: d.password_lockout_s,
            }),
            Report::Alarm(a) => wit::Report::Alarm(a.into()),
            Report::Restore(a) => wit::Report::Restore(a.into()),
            Report::OutputChanged(o) => wit::Report::OutputChanged(wit::OutputChange {
                output: o.output,
                on: o.on,
                by: o.by,
            }),
            Report::PluginHealth(h) => wit::Report::PluginHealth(wit::PluginHealth {
                name: h.name,
                state: h.state.into(),
                faults: h.faults,
                last_fault: h.last_fault,
                version: h.version,
                on_probation: h.on_probation,
            }),
            Report::Update(u) => wit::Report::Update(wit::UpdateEvent {
                plugin: u.plugin,
                outcome: u.outcome.into(),
                sha256: u.sha256,
                reason: u.reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<wit::Report> {
        vec![
            wit::Report::Status(wit::DeviceStatus {
                unit_id: "u1".into(),
                signal_bars: 4,
                network: wit::NetworkType::Lte,
                sim: wit::SimState::PinRequired,
                operator: Some("Telia".into()),
                server_connected: true,
                extended_io: false,
                input_count: 8,
                output_count: 5,
                uptime_s: 7,
                outbox_depth: 2,
                outbox_oldest_s: None,
                password_lockout_s: None,
            }),
            wit::Report::Alarm(wit::Alarm {
                input: 3,
                name: "Frysrum".into(),
                text: "Larm!".into(),
                at: 1_700_000_000,
            }),
            wit::Report::Restore(wit::Alarm {
                input: 3,
                name: "Frysrum".into(),
                text: "Åter".into(),
                at: 1_700_000_001,
            }),
            wit::Report::OutputChanged(wit::OutputChange {
                output: 2,
                on: true,
                by: "http".into(),
            }),
            wit::Report::PluginHealth(wit::PluginHealth {
                name: "rules".into(),
                state: wit::PluginState::Quarantined,
                faults: 3,
                last_fault: Some("trapped".into()),
                version: None,
                on_probation: false,
            }),
            wit::Report::Update(wit::UpdateEvent {
                plugin: "rules".into(),
                outcome: wit::UpdateOutcome::RolledBack,
                sha256: Some("ab12".into()),
                reason: Some("trapped".into()),
            }),
        ]
    }

    #[test]
    fn round_trips_through_the_record() {
        for report in samples() {
            let back: wit::Report = Report::from(report.clone()).into();
            assert_eq!(back, report);
        }
    }

    /// What larmd 0.1 wrote (serde over the WIT-generated types), read
    /// back as the same reports.
    #[test]
    fn reads_what_larmd_0_1_wrote() {
        let written = [
            r#"{"Status":{"unit_id":"u1","signal_bars":4,"network":"Lte","sim":"PinRequired","operator":"Telia","server_connected":true,"extended_io":false,"input_count":8,"output_count":5,"uptime_s":7,"outbox_depth":2,"outbox_oldest_s":null}}"#,
            r#"{"Alarm":{"input":3,"name":"Frysrum","text":"Larm!","at":1700000000}}"#,
            r#"{"Restore":{"input":3,"name":"Frysrum","text":"Åter","at":1700000001}}"#,
            r#"{"OutputChanged":{"output":2,"on":true,"by":"http"}}"#,
            r#"{"PluginHealth":{"name":"rules","state":"Quarantined","faults":3,"last_fault":"trapped"}}"#,
        ];
        for (json, report) in written.into_iter().zip(samples()) {
            let read: Report = serde_json::from_str(json).unwrap();
            assert_eq!(read, Report::from(report));
            assert_eq!(
                serde_json::to_string(&read).unwrap(),
                json,
                "written the same way"
            );
        }
    }
}
