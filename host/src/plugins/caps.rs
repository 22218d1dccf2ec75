//! The host capabilities a plugin may call, checked against its grants.
//!
//! [`Capabilities`] is the one implementation: the wasm bindings in
//! [`super::host`] delegate to it, and the benchmarks call it directly from
//! native, Lua and Rhai rules, so every rule pays the same checks.
//!
//! Effects that leave the unit (SMS, calls, server reports, restarts) are
//! emitted as [`Action`]s on the unit's action channel: the event loop hands
//! them to the outbox or the system. Outputs are switched on the board
//! directly and then announced as an [`Action::Output`]. The actions of one
//! event arrive together, so an alarm's report, SMS and calls can escalate
//! as one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use firmware_bridge::board::{
    Board, BoardError, CardState, Contact as BoardContact, InputId, OutputId,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::bindings::larm::plugin::log::Level;
use super::bindings::larm::plugin::system::RestartTarget;
use super::bindings::larm::plugin::types::{
    Contact, DeviceStatus, Error, NetworkType, PluginHealth, Report, SimState, TimerEvent,
};
use crate::config::{Grants, SettingsAccess, SystemAction};
use crate::state::{State, StateError};

/// Timers one plugin may hold at once.
pub const MAX_TIMERS: usize = 64;
/// Longest text a plugin may hand to `sms.send` (ten concatenated parts).
const MAX_SMS_TEXT: usize = 1530;

/// An effect a plugin asked for that leaves the unit or changes it as a whole.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// An output was switched (already applied to the board).
    Output {
        /// Who switched it.
        by: String,
        /// Which output.
        output: u8,
        /// New state.
        on: bool,
    },
    /// Send an SMS.
    Sms {
        /// The plugin that sent it.
        by: String,
        /// Recipient.
        to: String,
        /// Text.
        text: String,
    },
    /// Dial a voice-call alarm.
    Call {
        /// The plugin that asked.
        by: String,
        /// Number to dial.
        number: String,
        /// Seconds to let it ring.
        ring_s: u32,
    },
    /// Report to the server.
    Report {
        /// The plugin that reported.
        by: String,
        /// What.
        report: Report,
    },
    /// Connect to the server now.
    Connect {
        /// The plugin that asked.
        by: String,
    },
    /// Change the connection interval.
    SetInterval {
        /// The plugin that asked.
        by: String,
        /// Minutes; 0 = never.
        minutes: u32,
    },
    /// Restart the modem or the unit.
    Restart {
        /// The plugin that asked.
        by: String,
        /// What to restart.
        target: RestartTarget,
    },
    /// Factory settings were restored.
    FactoryReset {
        /// The plugin that asked.
        by: String,
    },
}

/// The modem's view of the unit, as the status capability shows it. The
/// modem task keeps it current.
#[derive(Debug, Clone)]
pub struct ModemStatus {
    /// The modem answers commands.
    pub answering: bool,
    /// An SMS is being sent or a call dialled.
    pub busy: bool,
    /// When the last send or call ended (the yellow LED stays lit a moment
    /// longer, so a quick send can be seen).
    pub busy_ended: Option<Instant>,
    /// Bars, 0-5.
    pub signal_bars: u8,
    /// Registered network.
    pub network: NetworkType,
    /// SIM state.
    pub sim: SimState,
    /// Operator name.
    pub operator: Option<String>,
}

impl Default for ModemStatus {
    fn default() -> Self {
        Self {
            answering: false,
            busy: false,
            busy_ended: None,
            signal_bars: 0,
            network: NetworkType::None,
            sim: SimState::Unknown,
            operator: None,
        }
    }
}

/// What every plugin's capabilities share: the unit's hardware, state and
/// action channel.
pub struct Services {
    /// The I/O board.
    pub board: Arc<dyn Board>,
    /// Persisted state.
    pub state: Arc<State>,
    /// Where effects go: the actions of one event, or one action.
    pub actions: mpsc::UnboundedSender<Vec<Action>>,
    /// The modem's status; None when the unit has no modem configured.
    pub modem: Mutex<Option<ModemStatus>>,
    /// When the last SMS arrived (the green LED's 5 s).
    pub last_sms: Mutex<Option<Instant>>,
    /// Whether the server link is up.
    pub server_connected: Mutex<bool>,
    /// Whether the last attempt to sync with the server failed.
    pub server_failing: Mutex<bool>,
    /// The outbox, once the unit has one.
    pub outbox: std::sync::OnceLock<Arc<crate::outbox::Outbox>>,
    /// Every plugin's health, by name.
    pub health: Mutex<BTreeMap<String, PluginHealth>>,
    /// Wrong-password throttle, by sender.
    throttle: Mutex<HashMap<String, Throttle>>,
    /// Wrong passwords from one sender before it is ignored (`[sms]`).
    pub max_password_failures: u32,
    /// How long a throttled sender is ignored (`[sms]`).
    pub lockout: Duration,
    /// The config file is corrupt and the last good one runs (red LED steady).
    pub config_corrupt: bool,
    /// Where timers run; none outside a tokio runtime (benchmarks).
    pub runtime: Option<tokio::runtime::Handle>,
    started: Instant,
}

#[derive(Default)]
struct Throttle {
    failures: u32,
    until: Option<Instant>,
}

impl Services {
    /// Services over a board and a state store; effects go to `actions`.
    pub fn new(
        board: Arc<dyn Board>,
        state: Arc<State>,
        actions: mpsc::UnboundedSender<Vec<Action>>,
    ) -> Self {
        Self {
            board,
            state,
            actions,
            modem: Mutex::new(None),
            last_sms: Mutex::new(None),
            server_connected: Mutex::new(false),
            server_failing: Mutex::new(false),
            outbox: std::sync::OnceLock::new(),
            health: Mutex::new(BTreeMap::new()),
            throttle: Mutex::new(HashMap::new()),
            max_password_failures: 5,
            lockout: Duration::from_secs(600),
            config_corrupt: false,
            runtime: tokio::runtime::Handle::try_current().ok(),
            started: Instant::now(),
        }
    }

    /// Every plugin's health, by name.
    pub fn plugin_health(&self) -> Vec<PluginHealth> {
        self.health.lock().unwrap().values().cloned().collect()
    }

    /// Milliseconds since the unit started: the plugins' monotonic clock.
    pub fn monotonic_ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64
    }

    /// The unit's status, as `status.device` shows it to plugins.
    pub fn device_status(&self) -> DeviceStatus {
        let modem = self.modem.lock().unwrap().clone().unwrap_or_default();
        let summary = self.outbox.get().map(|o| o.summary()).unwrap_or_default();
        DeviceStatus {
            unit_id: self.state.unit_id().unwrap_or_default(),
            signal_bars: modem.signal_bars,
            network: modem.network,
            sim: modem.sim,
            operator: modem.operator,
            server_connected: *self.server_connected.lock().unwrap(),
            extended_io: *self.board.card().borrow() == CardState::Present,
            input_count: self.board.input_count(),
            output_count: self.board.output_count(),
            uptime_s: self.started.elapsed().as_secs(),
            outbox_depth: summary.depth,
            outbox_oldest_s: summary.oldest_s,
        }
    }

    /// Emits one action on its own.
    pub fn emit(&self, action: Action) {
        // A closed channel means the unit is shutting down.
        let _ = self.actions.send(vec![action]);
    }
}

/// Timers of one plugin: their tasks, so they can be cancelled.
#[derive(Default)]
struct Timers {
    next: u64,
    pending: HashMap<u64, tokio::task::AbortHandle>,
}

/// Delivers a fired timer to the plugin's queue.
pub type TimerSink = Arc<dyn Fn(TimerEvent) + Send + Sync>;

/// One plugin's capabilities.
pub struct Capabilities {
    name: Arc<str>,
    grants: Grants,
    services: Arc<Services>,
    timers: Mutex<Timers>,
    timer_sink: Option<TimerSink>,
    /// The actions of the event being handled; None between events.
    effects: Mutex<Option<Vec<Action>>>,
}

fn not_granted(what: String) -> Error {
    Error::NotGranted(what)
}

fn from_board(e: BoardError) -> Error {
    match e {
        BoardError::Hardware(msg) => Error::Unavailable(msg),
        other => Error::Invalid(other.to_string()),
    }
}

fn from_state(e: StateError) -> Error {
    match e {
        StateError::Quota => Error::Invalid(e.to_string()),
        StateError::Db(_) => Error::Unavailable(e.to_string()),
    }
}

impl Capabilities {
    /// Capabilities for plugin `name` under `grants`. Fired timers go to
    /// `timer_sink`; without one, `timers.set` is unavailable.
    pub fn new(
        name: &str,
        grants: Grants,
        services: Arc<Services>,
        timer_sink: Option<TimerSink>,
    ) -> Self {
        Self {
            name: name.into(),
            grants,
            services,
            timers: Mutex::default(),
            timer_sink,
            effects: Mutex::new(None),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Refuses a call outside the grants: logged, never reaching hardware.
    fn refuse(&self, call: &str, grant: &str) -> Error {
        warn!(plugin = %self.name, "refused {call}: not in grants ({grant})");
        not_granted(format!("{call} needs `{grant}` in this plugin's grants"))
    }

    /// `log.log`
    pub fn log(&self, level: Level, message: &str) {
        let plugin = &*self.name;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => debug!(plugin, "{message}"),
            Level::Info => info!(plugin, "{message}"),
            Level::Warn => warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    /// `clock.monotonic-now`
    pub fn monotonic_now(&self) -> u64 {
        self.services.monotonic_ms(Instant::now())
    }

    /// `clock.wall-now`
    pub fn wall_now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    /// `timers.set`
    pub fn set_timer(&self, delay_ms: u64, tag: String) -> Result<u64, Error> {
        let (Some(runtime), Some(sink)) = (&self.services.runtime, &self.timer_sink) else {
            return Err(Error::Unavailable("timers are not running".into()));
        };
        let mut timers = self.timers.lock().unwrap();
        timers.pending.retain(|_, task| !task.is_finished());
        if timers.pending.len() >= MAX_TIMERS {
            return Err(Error::Invalid(format!(
                "a plugin may hold at most {MAX_TIMERS} timers"
            )));
        }
        timers.next += 1;
        let id = timers.next;
        let sink = sink.clone();
        let task = runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            sink(TimerEvent { id, tag });
        });
        timers.pending.insert(id, task.abort_handle());
        Ok(id)
    }

    /// `timers.cancel`
    pub fn cancel_timer(&self, id: u64) -> bool {
        match self.timers.lock().unwrap().pending.remove(&id) {
            Some(task) if !task.is_finished() => {
                task.abort();
                true
            }
            _ => false,
        }
    }

    /// `io.input-count`
    pub fn input_count(&self) -> u8 {
        self.services.board.input_count()
    }

    /// `io.output-count`
    pub fn output_count(&self) -> u8 {
        self.services.board.output_count()
    }

    /// `io.alarm-output`
    pub fn alarm_output(&self) -> u8 {
        self.services.board.alarm_output().0
    }

    /// `io.read-input`
    pub fn read_input(&self, input: u8) -> Result<Contact, Error> {
        match self.services.board.read_input(InputId(input)) {
            Ok(BoardContact::Closed) => Ok(Contact::Closed),
            Ok(BoardContact::Open) => Ok(Contact::Open),
            Err(e) => Err(from_board(e)),
        }
    }

    /// `io.read-output`
    pub fn read_output(&self, output: u8) -> Result<bool, Error> {
        self.services
            .board
            .read_output(OutputId(output))
            .map_err(from_board)
    }

    /// `io.set-output`
    pub fn set_output(&self, output: u8, on: bool) -> Result<(), Error> {
        if !self.grants.outputs.allows(output) {
            return Err(self.refuse(&format!("set-output {output}"), "outputs"));
        }
        self.services
            .board
            .set_output(OutputId(output), on)
            .map_err(from_board)?;
        self.emit(Action::Output {
            by: self.name.to_string(),
            output,
            on,
        });
        Ok(())
    }

    /// `io.pulse-output`
    pub fn pulse_output(&self, output: u8, duration_ms: u32) -> Result<(), Error> {
        let Some(runtime) = &self.services.runtime else {
            return Err(Error::Unavailable("timers are not running".into()));
        };
        self.set_output(output, true)?;
        let services = self.services.clone();
        let by = self.name.to_string();
        runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(duration_ms.into())).await;
            match services.board.set_output(OutputId(output), false) {
                Ok(()) => services.emit(Action::Output {
                    by,
                    output,
                    on: false,
                }),
                Err(e) => warn!(plugin = %by, "ending pulse on output {output}: {e}"),
            }
        });
        Ok(())
    }

    /// `sms.send`
    pub fn send_sms(&self, to: String, text: String) -> Result<(), Error> {
        if !self.grants.sms.allows_number(&to) {
            return Err(self.refuse(&format!("sms to {to}"), "sms"));
        }
        check_number(&to)?;
        if text.chars().count() > MAX_SMS_TEXT {
            return Err(Error::Invalid(format!(
                "text longer than {MAX_SMS_TEXT} characters"
            )));
        }
        self.emit(Action::Sms {
            by: self.name.to_string(),
            to,
            text,
        });
        Ok(())
    }

    /// `voice.dial`
    pub fn dial(&self, number: String, ring_s: u32) -> Result<(), Error> {
        if !self.grants.calls.allows_number(&number) {
            return Err(self.refuse(&format!("call to {number}"), "calls"));
        }
        check_number(&number)?;
        self.emit(Action::Call {
            by: self.name.to_string(),
            number,
            ring_s: ring_s.clamp(1, 300),
        });
        Ok(())
    }

    /// Starts collecting the actions of one event.
    pub fn begin_event(&self) {
        *self.effects.lock().unwrap() = Some(Vec::new());
    }

    /// Ends the event: its actions go to the unit together.
    pub fn end_event(&self) {
        let effects = self.effects.lock().unwrap().take();
        if let Some(actions) = effects.filter(|a| !a.is_empty()) {
            let _ = self.services.actions.send(actions);
        }
    }

    /// Emits an action: with the event's others while one is handled (see
    /// [`begin_event`](Self::begin_event)), else on its own.
    fn emit(&self, action: Action) {
        match self.effects.lock().unwrap().as_mut() {
            Some(effects) => effects.push(action),
            None => self.services.emit(action),
        }
    }

    /// `status.device`
    pub fn device_status(&self) -> DeviceStatus {
        self.services.device_status()
    }

    /// `status.plugins`
    pub fn plugin_health(&self) -> Vec<PluginHealth> {
        self.services.plugin_health()
    }

    /// `password.verify`: throttled per sender; a throttled sender is told
    /// `false` whatever it sends.
    pub fn verify_password(&self, sender: &str, candidate: &str) -> Result<bool, Error> {
        if !self.grants.password {
            return Err(self.refuse("password.verify", "password"));
        }
        let services = &self.services;
        let now = Instant::now();
        let mut throttle = services.throttle.lock().unwrap();
        let entry = throttle.entry(sender.to_string()).or_default();
        if entry.until.is_some_and(|until| now < until) {
            warn!(plugin = %self.name, sender, "ignoring throttled sender");
            return Ok(false);
        }
        let ok = services
            .state
            .password_matches(candidate)
            .map_err(from_state)?;
        if ok {
            throttle.remove(sender);
        } else {
            entry.failures += 1;
            warn!(plugin = %self.name, sender, failures = entry.failures, "wrong password");
            if entry.failures >= services.max_password_failures {
                entry.failures = 0;
                entry.until = Some(now + services.lockout);
                warn!(plugin = %self.name, sender, "too many wrong passwords: sender ignored for {:?}", services.lockout);
            }
        }
        Ok(ok)
    }

    /// `password.change`
    pub fn change_password(&self, new: &str) -> Result<(), Error> {
        if !self.grants.password {
            return Err(self.refuse("password.change", "password"));
        }
        if !(1..=8).contains(&new.len()) || !new.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::Invalid(
                "a password is 1-8 characters of 0-9, a-z and A-Z".into(),
            ));
        }
        self.services.state.set_password(new).map_err(from_state)?;
        info!(plugin = %self.name, "SMS password changed");
        Ok(())
    }

    /// `password.is-factory-default`
    pub fn password_is_factory_default(&self) -> Result<bool, Error> {
        if !self.grants.password {
            return Err(self.refuse("password.is-factory-default", "password"));
        }
        self.services
            .state
            .password_matches(crate::state::FACTORY_PASSWORD)
            .map_err(from_state)
    }

    fn check_settings(&self, call: &str, need: SettingsAccess) -> Result<(), Error> {
        if self.grants.settings < need {
            let grant = match need {
                SettingsAccess::Write => "settings = \"write\"",
                _ => "settings = \"read\"",
            };
            return Err(self.refuse(call, grant));
        }
        Ok(())
    }

    /// `settings.get`
    pub fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        self.check_settings("settings.get", SettingsAccess::Read)?;
        self.services.state.setting(key).map_err(from_state)
    }

    /// `settings.entries`
    pub fn settings(&self, prefix: &str) -> Result<Vec<(String, String)>, Error> {
        self.check_settings("settings.entries", SettingsAccess::Read)?;
        self.services.state.settings(prefix).map_err(from_state)
    }

    /// `settings.set` / `settings.remove`
    pub fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), Error> {
        self.check_settings("settings.set", SettingsAccess::Write)?;
        if key.is_empty() || key.len() > 128 || value.is_some_and(|v| v.len() > 1024) {
            return Err(Error::Invalid(
                "keys are 1-128 bytes, values at most 1024".into(),
            ));
        }
        self.services
            .state
            .set_setting(key, value)
            .map_err(from_state)?;
        info!(plugin = %self.name, key, ?value, "setting changed");
        Ok(())
    }

    /// `kv.get`
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.services
            .state
            .kv_get(&self.name, key)
            .unwrap_or_else(|e| {
                warn!(plugin = %self.name, "kv.get: {e}");
                None
            })
    }

    /// `kv.set` / `kv.delete`
    pub fn kv_set(&self, key: &str, value: Option<&[u8]>) -> Result<(), Error> {
        self.services
            .state
            .kv_set(&self.name, key, value)
            .map_err(from_state)
    }

    /// `kv.keys`
    pub fn kv_keys(&self) -> Vec<String> {
        self.services.state.kv_keys(&self.name).unwrap_or_else(|e| {
            warn!(plugin = %self.name, "kv.keys: {e}");
            Vec::new()
        })
    }

    fn check_server(&self, call: &str) -> Result<(), Error> {
        if self.grants.server {
            Ok(())
        } else {
            Err(self.refuse(call, "server = true"))
        }
    }

    /// `server.send`
    pub fn report(&self, report: Report) -> Result<(), Error> {
        self.check_server("server.send")?;
        self.emit(Action::Report {
            by: self.name.to_string(),
            report,
        });
        Ok(())
    }

    /// `server.request-connection`
    pub fn request_connection(&self) -> Result<(), Error> {
        self.check_server("server.request-connection")?;
        self.emit(Action::Connect {
            by: self.name.to_string(),
        });
        Ok(())
    }

    /// `server.set-interval`
    pub fn set_interval(&self, minutes: u32) -> Result<(), Error> {
        self.check_server("server.set-interval")?;
        self.emit(Action::SetInterval {
            by: self.name.to_string(),
            minutes,
        });
        Ok(())
    }

    fn check_system(&self, action: SystemAction, name: &str) -> Result<(), Error> {
        if self.grants.system.contains(&action) {
            Ok(())
        } else {
            Err(self.refuse(name, &format!("system = [\"{name}\"]")))
        }
    }

    /// `system.restart`
    pub fn restart(&self, target: RestartTarget) -> Result<(), Error> {
        match target {
            RestartTarget::Modem => {
                self.check_system(SystemAction::RestartModem, "restart-modem")?
            }
            RestartTarget::Unit => self.check_system(SystemAction::RestartUnit, "restart-unit")?,
        }
        self.emit(Action::Restart {
            by: self.name.to_string(),
            target,
        });
        Ok(())
    }

    /// `system.factory-reset`
    pub fn factory_reset(&self) -> Result<(), Error> {
        self.check_system(SystemAction::FactoryReset, "factory-reset")?;
        self.services.state.factory_reset().map_err(from_state)?;
        self.emit(Action::FactoryReset {
            by: self.name.to_string(),
        });
        Ok(())
    }
}

impl Drop for Capabilities {
    fn drop(&mut self) {
        // Timers belong to the plugin, not to one instance: every instance
        // shares the plugin's `Arc<Capabilities>`, so this runs only when
        // the plugin itself is gone.
        for (_, task) in self.timers.lock().unwrap().pending.drain() {
            task.abort();
        }
    }
}

/// A phone number: `+` and digits, or an alphanumeric sender is not dialable.
fn check_number(number: &str) -> Result<(), Error> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty()
        || digits.len() > 20
        || !digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        return Err(Error::Invalid(format!("`{number}` is not a phone number")));
    }
    Ok(())
}
