//! The standard server adapter (world `server-adapter`): the unit's reports
//! as versioned JSON (schema in [`schema`]) on MQTT topics under the unit's
//! base topic `<prefix>/<unit-id>/`, and the server's commands back.
//!
//! | topic | direction | retained | payload |
//! |---|---|---|---|
//! | `state` | unit → server | yes | `online` / `offline` (the host; last will) |
//! | `status` | unit → server | yes | [`schema::Status`] |
//! | `events/alarm`, `events/restore` | unit → server | no | [`schema::AlarmEvent`] |
//! | `events/output` | unit → server | no | [`schema::OutputEvent`] |
//! | `events/health` | unit → server | no | [`schema::HealthEvent`] |
//! | `events/update` | unit → server | no | [`schema::UpdateEvent`] |
//! | `cmd` | server → unit | no | [`schema::Command`] |
//!
//! With `home_assistant = true` in the plugin config, each connection also
//! publishes Home Assistant discovery configs (retained, under
//! `discovery_prefix`, default `homeassistant`): inputs as binary sensors
//! and outputs as switches ([`discovery`]).
//!
//! Every message carries an `id`; a report sent again after an outage
//! keeps its id, so the server drops copies. A command is checked whole
//! before any of it is applied: outputs through `io`, settings through
//! `settings` (persisted like a change by SMS; `server.interval-min` also
//! sets the connection interval), and the status is sent after it.
//! Grants it needs: `outputs = "any"`, `server = true`, `settings = "write"`.

mod discovery;
mod schema;

use std::sync::Mutex;

wit_bindgen::generate!({
    world: "server-adapter",
    path: "../../wit",
});

use exports::larm::plugin::adapter::{self, Message};
use exports::larm::plugin::lifecycle;
use larm::plugin::log::{Level, log};
use larm::plugin::types::{
    Contact, DeviceStatus, NetworkType, PluginState, Report, SimState, TimerEvent, UpdateOutcome,
};
use larm::plugin::{io, kv, server, settings, status};
use schema::VERSION;

struct StdServerAdapter;

/// Home Assistant's discovery prefix, when discovery is on.
static DISCOVERY: Mutex<Option<String>> = Mutex::new(None);

fn json(topic: &str, value: &impl serde::Serialize, retain: bool) -> Message {
    Message {
        topic: topic.to_string(),
        payload: serde_json::to_vec(value).expect("our types serialise"),
        retain,
    }
}

// The words for states live in larm-rules; these map this guest's
// generated types onto them.
fn network(n: NetworkType) -> &'static str {
    use larm_rules::names::Network;
    match n {
        NetworkType::Lte => Network::Lte,
        NetworkType::Umts => Network::Umts,
        NetworkType::Gsm => Network::Gsm,
        NetworkType::None => Network::None,
    }
    .name()
}

fn sim(s: SimState) -> &'static str {
    use larm_rules::names::Sim;
    match s {
        SimState::Ready => Sim::Ready,
        SimState::PinRequired => Sim::PinRequired,
        SimState::Locked => Sim::Locked,
        SimState::NotInserted => Sim::NotInserted,
        SimState::Error => Sim::Error,
        SimState::Unknown => Sim::Unknown,
    }
    .name()
}

fn plugin_state(s: PluginState) -> &'static str {
    use larm_rules::names::Plugin;
    match s {
        PluginState::Running => Plugin::Running,
        PluginState::Restarted => Plugin::Restarted,
        PluginState::Quarantined => Plugin::Quarantined,
    }
    .name()
}

fn update_outcome(o: UpdateOutcome) -> &'static str {
    use larm_rules::names::Update;
    match o {
        UpdateOutcome::Installed => Update::Installed,
        UpdateOutcome::Committed => Update::Committed,
        UpdateOutcome::Refused => Update::Refused,
        UpdateOutcome::RolledBack => Update::RolledBack,
    }
    .name()
}

/// Input `n`'s name (a device setting).
fn input_name(n: u8) -> String {
    larm_rules::settings::input_settings(n, |key| settings::get(key).ok().flatten())
        .0
        .name
}

fn status_of(id: &str, d: DeviceStatus) -> schema::Status {
    let alarm_output = io::alarm_output();
    schema::Status {
        v: VERSION,
        id: id.to_string(),
        unit: d.unit_id,
        signal_bars: d.signal_bars,
        network: network(d.network),
        sim: sim(d.sim),
        operator: d.operator,
        extended_io: d.extended_io,
        uptime_s: d.uptime_s,
        outbox: schema::Outbox {
            depth: d.outbox_depth,
            oldest_s: d.outbox_oldest_s,
        },
        password_lockout_s: d.password_lockout_s,
        inputs: (1..=d.input_count)
            .map(|n| schema::Input {
                n,
                name: input_name(n),
                closed: matches!(io::read_input(n), Ok(Contact::Closed)),
            })
            .collect(),
        outputs: (1..=d.output_count)
            .map(|n| schema::Output {
                n,
                on: io::read_output(n).unwrap_or(false),
                alarm: n == alarm_output,
            })
            .collect(),
    }
}

impl lifecycle::Guest for StdServerAdapter {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let mut on = false;
        let mut prefix = "homeassistant".to_string();
        for (key, value) in config {
            match key.as_str() {
                "home_assistant" => {
                    on = value
                        .parse()
                        .map_err(|_| format!("home_assistant = {value:?}: use true or false"))?;
                }
                "discovery_prefix" => prefix = value,
                _ => {
                    return Err(format!(
                        "unknown setting `{key}` (home_assistant, discovery_prefix)"
                    ));
                }
            }
        }
        *DISCOVERY.lock().unwrap() = on.then_some(prefix);
        Ok(())
    }

    fn on_timer(_event: TimerEvent) {}
}

impl adapter::Guest for StdServerAdapter {
    fn on_connect(base: String) -> Vec<Message> {
        let Some(prefix) = DISCOVERY.lock().unwrap().clone() else {
            return Vec::new();
        };
        let d = status::device();
        let inputs: Vec<String> = (1..=d.input_count).map(input_name).collect();
        let unit = discovery::Unit {
            id: &d.unit_id,
            base: &base,
            inputs: &inputs,
            outputs: d.output_count,
            alarm_output: io::alarm_output(),
        };
        discovery::configs(&prefix, &unit)
            .into_iter()
            .map(|c| json(&c.topic, &c.payload, true))
            .collect()
    }

    fn encode(id: String, report: Report) -> Vec<Message> {
        let message = match &report {
            Report::Status(d) => json("status", &status_of(&id, d.clone()), true),
            Report::Alarm(a) | Report::Restore(a) => json(
                if matches!(report, Report::Alarm(_)) {
                    "events/alarm"
                } else {
                    "events/restore"
                },
                &schema::AlarmEvent {
                    v: VERSION,
                    id: &id,
                    input: a.input,
                    name: &a.name,
                    text: &a.text,
                    at: a.at,
                },
                false,
            ),
            Report::OutputChanged(o) => json(
                "events/output",
                &schema::OutputEvent {
                    v: VERSION,
                    id: &id,
                    output: o.output,
                    on: o.on,
                    by: &o.by,
                },
                false,
            ),
            Report::PluginHealth(h) => json(
                "events/health",
                &schema::HealthEvent {
                    v: VERSION,
                    id: &id,
                    plugin: &h.name,
                    state: plugin_state(h.state),
                    faults: h.faults,
                    last_fault: h.last_fault.as_deref(),
                },
                false,
            ),
            Report::Update(u) => json(
                "events/update",
                &schema::UpdateEvent {
                    v: VERSION,
                    id: &id,
                    plugin: &u.plugin,
                    outcome: update_outcome(u.outcome),
                    sha256: u.sha256.as_deref(),
                    reason: u.reason.as_deref(),
                },
                false,
            ),
        };
        vec![message]
    }

    fn on_downlink(message: Message) -> Result<(), String> {
        if message.topic != "cmd" {
            return Err(format!("no commands on `{}` (use `cmd`)", message.topic));
        }
        let (command, checked) =
            schema::check(&message.payload, io::input_count(), io::output_count())?;
        let label = command.id.as_deref().unwrap_or("without id");
        if let Some(id) = &command.id
            && applied_before(id)
        {
            log(
                Level::Info,
                &format!("command {id} was applied before: ignored"),
            );
            return Ok(());
        }
        // Outputs first, as one (`switch-outputs`: an output held by a
        // higher owner refuses the command before anything changed). A
        // command cut short by a restart is delivered again and switches
        // them again: a switch to a state, not a toggle. Then the settings in one
        // transaction with the command's id: all of them, or none, and the
        // id is remembered exactly when they are.
        let switches: Vec<io::OutputSwitch> = checked
            .outputs
            .iter()
            .map(|&(output, on, duration_ms)| io::OutputSwitch {
                output,
                on,
                duration_ms,
            })
            .collect();
        io::switch_outputs(&switches).map_err(|e| format!("outputs: {e:?}"))?;
        let changes = checked.settings.clone();
        let remembered: Vec<(String, Option<Vec<u8>>)> = command
            .id
            .as_deref()
            .map(|id| (APPLIED_KEY.to_string(), Some(with_applied(id))))
            .into_iter()
            .collect();
        settings::set_all(&changes, &remembered).map_err(|e| format!("settings: {e:?}"))?;
        if let Some((_, value)) = checked
            .settings
            .iter()
            .find(|(k, _)| k == larm_rules::settings::INTERVAL_KEY)
            && let Some(value) = value
        {
            let minutes = larm_rules::settings::interval_min(value)?;
            server::set_interval(minutes).map_err(|e| format!("interval: {e:?}"))?;
        }
        log(
            Level::Info,
            &format!(
                "command {label}: {} setting(s), {} output(s)",
                checked.settings.len(),
                checked.outputs.len()
            ),
        );
        server::send(&Report::Status(status::device())).map_err(|e| format!("status: {e:?}"))
    }
}

/// Where the ids of the last commands applied are kept (newest last, one
/// per line), so a command the broker delivers again is applied once.
const APPLIED_KEY: &str = "applied-ids";
/// How many ids are remembered.
const APPLIED_MAX: usize = 64;

fn applied_ids() -> Vec<String> {
    let stored = kv::get(APPLIED_KEY).ok().flatten().unwrap_or_default();
    String::from_utf8_lossy(&stored)
        .lines()
        .map(str::to_string)
        .collect()
}

fn applied_before(id: &str) -> bool {
    applied_ids().iter().any(|seen| seen == id)
}

/// The stored list of applied ids with `id` added, the oldest dropped.
fn with_applied(id: &str) -> Vec<u8> {
    let mut ids = applied_ids();
    ids.push(id.to_string());
    let keep = ids.len().saturating_sub(APPLIED_MAX);
    ids[keep..].join("\n").into_bytes()
}

export!(StdServerAdapter);
