//! What the unit's parts share: the board, the persisted state, the outbox,
//! the action channel, and the unit's changing state, each published on a
//! `watch` channel so the LEDs, the HTTP API, the console and the server
//! link follow a change as it happens instead of polling for it.
//!
//! | channel | written by | read by |
//! |---|---|---|
//! | [`Shared::modem`] | the modem task | LEDs, `status.device`, HTTP, console, server link |
//! | [`Shared::link`] | the server link | LEDs, `status.device`, HTTP, console |
//! | [`Shared::health`] | the plugin workers | LEDs, `status.plugins`, HTTP, console |
//! | [`Shared::field`] | the update service | `status.plugins`, HTTP, console |
//! | [`Shared::last_sms`] | the modem task | LEDs (green) |
//! | `board.card()` | the board | LEDs, `status.device` |
//!
//! [`Shared::events`] numbers those changes, and what passes through the
//! event loop, for the web panel's event stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware_bridge::board::{Board, CardState};
use tokio::sync::{mpsc, watch};

use super::action::Action;
use super::password::PasswordGuard;
use crate::modem::ModemStatus;
use crate::outbox::Outbox;
use crate::outputs::Outputs;
use crate::plugins::bindings::larm::plugin::types::{
    DeviceStatus, PluginHealth, PluginState, Report,
};
use crate::quota::{Cost, OverQuota, Quotas};
use crate::state::State;
use larm_rules::settings::{InputSettings, Mode};

/// Why a change of settings was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value (or key) the rules refuse; says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The state store refused the write.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// The server link's state, as the blue LED and red code 6 show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    /// Connected right now.
    pub connected: bool,
    /// The last attempt to sync failed.
    pub failing: bool,
}

/// A plugin's component installed in the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldVersion {
    /// The first 12 hex digits of its SHA-256.
    pub version: String,
    /// Still on probation.
    pub on_probation: bool,
}

/// The unit's shared parts and state. One per unit, behind an `Arc`.
pub struct Shared {
    /// The I/O board.
    pub board: Arc<dyn Board>,
    /// Persisted state.
    pub state: Arc<State>,
    /// The durable outbox.
    pub outbox: Arc<Outbox>,
    actions: mpsc::UnboundedSender<Vec<Action>>,
    /// The modem's status; None when the unit has no modem configured.
    pub modem: watch::Sender<Option<ModemStatus>>,
    /// The server link.
    pub link: watch::Sender<LinkState>,
    /// Every plugin's health, by name.
    pub health: watch::Sender<BTreeMap<String, PluginHealth>>,
    /// The plugins running a component installed in the field, by name.
    pub field: watch::Sender<BTreeMap<String, FieldVersion>>,
    /// When the last SMS arrived (the green LED's 5 s).
    pub last_sms: watch::Sender<Option<Instant>>,
    /// Wrong-password throttle.
    pub password: PasswordGuard,
    /// The outputs: who holds them, timed switches.
    pub outputs: Outputs,
    /// Quotas on SMS, calls and reports.
    pub quotas: Quotas,
    /// The config file is corrupt and the last good one runs (red LED steady).
    pub config_corrupt: bool,
    /// The config's defaults of device settings not set yet
    /// ([`crate::config::Config::setting_defaults`]).
    pub setting_defaults: BTreeMap<String, String>,
    /// The live events, for `GET /api/v1/events`.
    pub events: super::events::Events,
    /// Where timers run; none outside a tokio runtime (benchmarks).
    pub runtime: Option<tokio::runtime::Handle>,
    /// The plugins' wall clock when it is virtual (`larmd plugin test`):
    /// Unix seconds at `started`. None: the system's clock.
    pub virtual_wall: Option<i64>,
    started: Instant,
}

impl Shared {
    /// The shared parts over a board, a state store and an outbox; the
    /// actions plugins take go to `actions`.
    pub fn new(
        board: Arc<dyn Board>,
        state: Arc<State>,
        outbox: Arc<Outbox>,
        actions: mpsc::UnboundedSender<Vec<Action>>,
    ) -> Self {
        Self {
            outputs: Outputs::new(board.clone(), state.clone(), BTreeMap::new()),
            quotas: Quotas::unlimited(state.clone()),
            board,
            state,
            outbox,
            actions,
            modem: watch::Sender::new(None),
            link: watch::Sender::new(LinkState::default()),
            health: watch::Sender::new(BTreeMap::new()),
            field: watch::Sender::new(BTreeMap::new()),
            last_sms: watch::Sender::new(None),
            password: PasswordGuard::new(&crate::config::SmsConfig::default()),
            config_corrupt: false,
            setting_defaults: BTreeMap::new(),
            events: super::events::Events::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            virtual_wall: None,
            started: super::now(),
        }
    }

    /// Shared parts over `board` with state and outbox in memory, for tests
    /// and benchmarks; the receiver gets the actions.
    pub fn in_memory(
        board: Arc<dyn Board>,
    ) -> anyhow::Result<(Arc<Self>, mpsc::UnboundedReceiver<Vec<Action>>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State::in_memory()?);
        let outbox = Arc::new(Outbox::in_memory(
            vec![crate::config::Step::Server],
            Duration::from_secs(60),
        )?);
        Ok((Arc::new(Self::new(board, state, outbox, tx)), rx))
    }

    /// Every plugin's health, by name.
    pub fn plugin_health(&self) -> Vec<PluginHealth> {
        let all: Vec<PluginHealth> = self.health.borrow().values().cloned().collect();
        all.into_iter().map(|h| self.with_version(h)).collect()
    }

    /// `health` with the version of the plugin's component filled in.
    pub fn with_version(&self, mut health: PluginHealth) -> PluginHealth {
        let field = self.field.borrow();
        let version = field.get(&health.name);
        health.version = version.map(|v| v.version.clone());
        health.on_probation = version.is_some_and(|v| v.on_probation);
        health
    }

    /// Milliseconds since the unit started: the plugins' monotonic clock.
    pub fn monotonic_ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64
    }

    /// The plugins' wall clock, in Unix seconds.
    pub fn wall_now(&self) -> i64 {
        match self.virtual_wall {
            Some(at_start) => at_start + self.monotonic_ms(super::now()) as i64 / 1000,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        }
    }

    /// The unit's status, as `status.device` shows it to plugins.
    pub fn device_status(&self) -> DeviceStatus {
        let modem = self.modem.borrow().clone().unwrap_or_default();
        let summary = self.outbox.summary();
        DeviceStatus {
            unit_id: self.state.unit_id().unwrap_or_default(),
            signal_bars: modem.signal_bars,
            network: modem.network,
            sim: modem.sim,
            operator: modem.operator,
            server_connected: self.link.borrow().connected,
            extended_io: *self.board.card().borrow() == CardState::Present,
            input_count: self.board.input_count(),
            output_count: self.board.output_count(),
            uptime_s: super::now()
                .saturating_duration_since(self.started)
                .as_secs(),
            outbox_depth: summary.depth,
            outbox_oldest_s: summary.oldest_s,
            password_lockout_s: self.password.lockout_left().map(|d| d.as_secs().max(1)),
        }
    }

    /// Input `n`'s settings as its rule plugin sees them: the device
    /// setting, else the config's default, else larm-rules' own.
    pub fn input_settings(&self, n: u8) -> InputSettings {
        larm_rules::settings::input_settings(n, |key| self.setting_or_default(key)).0
    }

    /// Input `n`'s wiring alone, as [`Shared::input_settings`] has it.
    pub fn input_mode(&self, n: u8) -> Mode {
        larm_rules::settings::input_mode(n, |key| self.setting_or_default(key))
    }

    /// A device setting, else the config's default for it.
    fn setting_or_default(&self, key: &str) -> Option<String> {
        self.state
            .setting(key)
            .ok()
            .flatten()
            .or_else(|| self.setting_defaults.get(key).cloned())
    }

    /// What each device setting the web panel edits is when not set: the
    /// config's default, else larm-rules' own (the texts made from the
    /// input's name as it is).
    pub fn shown_defaults(&self) -> BTreeMap<String, String> {
        use larm_rules::settings::{RING_KEY, key, ring_s};
        let given = |k: &str| self.setting_defaults.get(k).cloned();
        let mut shown = self.setting_defaults.clone();
        for n in 1..=self.board.input_count() {
            let name = key(n, "name");
            let (input, _) = larm_rules::settings::input_settings(n, |k| {
                let set = (k == name).then(|| self.state.setting(k).ok().flatten());
                set.flatten().or_else(|| given(k))
            });
            // The name's own default, not the name set.
            let input = larm_rules::settings::InputSettings {
                name: larm_rules::settings::input_settings(n, given).0.name,
                ..input
            };
            shown.insert(key(n, "name"), input.name);
            shown.insert(key(n, "mode"), input.mode.name().into());
            shown.insert(key(n, "delay-s"), input.delay_s.to_string());
            shown.insert(key(n, "alarm-text"), input.alarm_text);
            shown.insert(key(n, "restore-text"), input.restore_text);
        }
        shown.insert(
            RING_KEY.into(),
            ring_s(given(RING_KEY).as_deref()).to_string(),
        );
        shown
    }

    /// Changes device settings from outside the config (`by`: a plugin or
    /// `http`): each checked by larm-rules, all stored in one transaction
    /// with `by`'s own store entries, or none; each change logged.
    pub fn change_settings(
        &self,
        by: &str,
        changes: &[(&str, Option<&str>)],
        store: &[(&str, Option<&[u8]>)],
    ) -> Result<(), SettingsError> {
        let inputs = self.board.input_count();
        for (key, value) in changes {
            larm_rules::settings::validate_change(key, *value, inputs)
                .map_err(SettingsError::Invalid)?;
        }
        self.state.set_settings_and_kv(changes, by, store)?;
        for (key, value) in changes {
            tracing::info!(by = %by, key = %key.escape_debug(), value = ?value, "setting changed");
        }
        Ok(())
    }

    /// Emits the actions of one event, together.
    pub fn emit_all(&self, actions: Vec<Action>) {
        if !actions.is_empty() {
            // A closed channel means the unit is shutting down.
            let _ = self.actions.send(actions);
        }
    }

    /// Tells the server about the health of one of the unit's own parts
    /// (`state`, `server`, `password`), on the health events plugins use.
    pub fn report_health(&self, part: &str, state: PluginState, faults: u32, why: String) {
        self.emit(Action::Report {
            by: "host".into(),
            report: Report::PluginHealth(PluginHealth {
                name: part.into(),
                state,
                faults,
                last_fault: Some(why),
                version: None,
                on_probation: false,
            }),
        });
    }

    /// Emits one action on its own.
    pub fn emit(&self, action: Action) {
        self.emit_all(vec![action]);
    }

    /// Counts a send of `units` of `cost` by `by` against its quotas; a
    /// refusal is logged, and told on the health events the first time.
    pub fn spend(&self, by: &str, cost: Cost, units: u32) -> Result<(), OverQuota> {
        self.quotas.spend(by, cost, units).map_err(|(over, first)| {
            tracing::warn!(plugin = %by, "refused: {over}");
            if first {
                self.report_health("quota", PluginState::Running, 1, format!("{by}: {over}"));
            }
            over
        })
    }
}
