//! `GET /api/v1/status`: the whole unit at one moment, and the id of the
//! newest event then, so a client reads this once and follows the event
//! stream from there (`Last-Event-ID: <event_id>`) without missing a change.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use firmware_bridge::board::{Contact, InputId, OutputId};
use firmware_bridge::leds::LedEngine;
use serde::Serialize;

use super::{Api, error};
use crate::unit::events::{LedView, ModemView, PluginView, card_word};

/// The body of `GET /api/v1/status`.
#[derive(Serialize)]
pub struct StatusBody {
    unit_id: String,
    /// The newest event's id when this was read.
    event_id: String,
    inputs: Vec<InputTerminal>,
    outputs: Vec<OutputTerminal>,
    alarm_output: u8,
    /// `present`, `missing` or `notfitted` (no card configured).
    extended_io: String,
    /// Blue, green, yellow, red.
    leds: Vec<LedView>,
    modem: Option<ModemView>,
    server: ServerBody,
    plugins: Vec<PluginView>,
    /// Seconds left of the unit-wide wrong-password lockout; null when the
    /// unit is not locked.
    password_lockout_s: Option<u64>,
    /// Unsigned components are let in (`[updates] allow_unsigned`).
    unsigned_allowed: bool,
    /// The unit runs on the simulated board (the panel shows its controls).
    simulated: bool,
    /// The simulated modem is there, to send SMS and calls from.
    simulated_modem: bool,
    /// Device settings (input names, delays, alarm numbers, interval...).
    settings: BTreeMap<String, String>,
    /// What each setting the panel edits is when not set: the config's
    /// default (see [`crate::config::Config::setting_defaults`]), else the
    /// unit's own.
    setting_defaults: BTreeMap<String, String>,
    /// Each quota's counter.
    quotas: Vec<crate::quota::Counter>,
}

#[derive(Serialize)]
struct InputTerminal {
    id: u8,
    /// Closed to COM; None if it cannot be read.
    active: Option<bool>,
    /// Its name (setting `input.N.name`, the config's default, or `Input N`).
    name: String,
    /// `NO` or `NC`.
    mode: &'static str,
    /// Seconds it must stay in alarm before the alarm fires.
    delay_s: u32,
    /// In alarm now, by its mode (the delay aside).
    alarm: Option<bool>,
}

#[derive(Serialize)]
struct OutputTerminal {
    id: u8,
    /// On; None if it cannot be read.
    active: Option<bool>,
    /// Who holds it (switched it on): a plugin or `http`.
    held_by: Option<String>,
    /// When it switches off by itself (ms since the Unix epoch).
    off_at_ms: Option<u64>,
    /// Who may switch it, highest priority first; empty: anyone.
    owners: Vec<String>,
}

#[derive(Serialize)]
struct ServerBody {
    /// A server link is configured.
    configured: bool,
    connected: bool,
    /// The last sync failed (red LED, code 6).
    failing: bool,
    /// Outbox entries not yet acknowledged.
    outbox_depth: u32,
    /// Age of the oldest, in seconds.
    outbox_oldest_s: Option<u64>,
}

pub(super) async fn status(State(api): State<Api>) -> Result<Json<StatusBody>, Response> {
    let s = &api.shared;
    // Read first: whatever changes while the rest is read comes as an
    // event after it.
    let event_id = s.events.latest_id();
    let board = &s.board;
    let settings: BTreeMap<String, String> = s
        .state
        .settings("")
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .into_iter()
        .collect();
    let inputs = (1..=board.input_count())
        .map(|id| {
            let input = s.input_settings(id);
            let closed = board
                .read_input(InputId(id))
                .ok()
                .map(|c| c == Contact::Closed);
            InputTerminal {
                id,
                active: closed,
                name: input.name,
                mode: input.mode.name(),
                delay_s: input.delay_s,
                alarm: closed.map(|c| input.mode.alarm(c)),
            }
        })
        .collect();
    let holds = s.outputs.holds().borrow().clone();
    let outputs = (1..=board.output_count())
        .map(|id| OutputTerminal {
            id,
            active: board.read_output(OutputId(id)).ok(),
            held_by: holds.get(&id).map(|h| h.by.clone()),
            off_at_ms: holds.get(&id).and_then(|h| h.off_at_ms),
            owners: s.outputs.owners(id).to_vec(),
        })
        .collect();
    let outbox = s.outbox.summary();
    let link = *s.link.borrow();
    Ok(Json(StatusBody {
        unit_id: s.state.unit_id().unwrap_or_default(),
        event_id,
        inputs,
        outputs,
        alarm_output: board.alarm_output().0,
        extended_io: card_word(*board.card().borrow()),
        leds: s.events.leds(Instant::now()).unwrap_or_else(|| {
            let engine = LedEngine::new(api.leds.borrow().clone(), Instant::now());
            LedView::all(&engine, Instant::now())
        }),
        modem: s.modem.borrow().as_ref().map(ModemView::of),
        server: ServerBody {
            configured: api.server_configured,
            connected: link.connected,
            failing: link.failing,
            outbox_depth: outbox.depth,
            outbox_oldest_s: outbox.oldest_s,
        },
        plugins: s
            .plugin_health()
            .into_iter()
            .map(PluginView::from)
            .collect(),
        password_lockout_s: s.device_status().password_lockout_s,
        unsigned_allowed: api.unsigned_allowed,
        simulated: api.sim.is_some(),
        simulated_modem: api.sim_modem.is_some(),
        settings,
        setting_defaults: s.shown_defaults(),
        quotas: s.quotas.counters(),
    }))
}
