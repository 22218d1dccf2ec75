//! `larmd plugin test`: a plugin's component run against a simulated unit
//! on a virtual clock, its actions compared with what a scenario expects.
//!
//! The component runs as the unit runs it: the same runtime, worker,
//! grants, limits and capabilities, on a simulated board and an in-memory
//! state. Only time is not the system's: the run is on tokio's paused
//! clock, which the engine moves from one event to the next, so the
//! plugin's timers, clocks and timed outputs follow the scenario's time
//! and a day's scenario runs in milliseconds. What the plugin does is
//! collected with the time it did it: the actions it took, what it left
//! unclaimed or refused, its faults, and the kv entries and device
//! settings it changed.
//!
//! - [`scenario`]: the file format.
//! - [`record`]: a running unit's events written out as a scenario
//!   (`larmd run --record`), to replay against a new version.

pub mod record;
pub mod scenario;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;

use crate::config::{Config, PluginConfig, PluginSource};
use crate::modem::ModemStatus;
use crate::outbox::Outbox;
use crate::plugins::PluginManager;
use crate::plugins::bindings::larm::plugin::types::{
    Alarm, CallEvent, InputEvent, NetworkType, OutputChange, PluginState, Report, SimState,
    SmsMessage,
};
use crate::plugins::bindings::server_adapter::exports::larm::plugin::adapter::Message;
use crate::plugins::compat::PluginKind;
use crate::plugins::runtime::{Loaded, MemoryLayout, Runtime};
use crate::plugins::worker::{Outcome, PluginEvent, Worker};
use crate::state::State;
use crate::unit::{Action, Shared};
use scenario::{Happening, ModemChange, ReportEvent, Scenario, Stimulus, Timed};

/// The component under test.
#[derive(Debug, Clone, Copy)]
pub enum Component<'a> {
    /// A component file.
    File(&'a Path),
    /// A plugin built into larmd, by name.
    Builtin(&'a str),
}

/// The unit a plugin is tested in: its config, and the plugin's entry.
pub struct Subject {
    /// The unit's config.
    pub config: Config,
    /// The plugin's entry in it.
    pub plugin: PluginConfig,
}

/// The unit config used when a scenario names none: the standard
/// simulated unit, whose entry for the plugin grants everything.
const DEFAULT_UNIT: &str = include_str!("../../../examples/sim.toml");

impl Subject {
    /// The plugin whose component is `file` in the unit config `unit`:
    /// the entry named `name`, else the one whose `file` is this file,
    /// else the config's only component file. Without a config, the
    /// standard simulated unit with the plugin granted everything, named
    /// `name` or after the file.
    pub fn find(
        unit: Option<&Path>,
        component: Component,
        name: Option<&str>,
        builtins: &[&str],
    ) -> anyhow::Result<Self> {
        let config = match (unit, component) {
            (Some(path), _) => Config::load(path, builtins)?,
            (None, Component::Builtin(_)) => Config::parse(
                DEFAULT_UNIT,
                Path::new("examples/sim.toml (built in)"),
                builtins,
            )?,
            (None, Component::File(file)) => {
                let name = name.map(str::to_string).unwrap_or_else(|| {
                    file.file_stem()
                        .map_or("plugin".into(), |s| s.to_string_lossy().replace('_', "-"))
                });
                let path = std::fs::canonicalize(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let source = format!("file = {}", toml_string(&path.to_string_lossy()));
                let text = format!(
                    "{}\n[[plugins]]\nname = {}\n{source}\n\
                     [plugins.grants]\noutputs = \"any\"\nsms = \"any\"\ncalls = \"any\"\n\
                     server = true\nsettings = \"write\"\npassword = true\n\
                     system = [\"restart-modem\", \"restart-unit\", \"factory-reset\"]\n",
                    without_plugins(DEFAULT_UNIT),
                    toml_string(&name)
                );
                Config::parse(&text, Path::new("(the standard simulated unit)"), builtins)?
            }
        };
        let plugin = pick(&config, component, name)?;
        Ok(Self { config, plugin })
    }
}

/// A unit config's text up to its first plugin entry.
fn without_plugins(text: &str) -> &str {
    text.find("[[plugins]]").map_or(text, |at| &text[..at])
}

/// `text` as a TOML string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The entry of `config` the tested plugin is.
fn pick(config: &Config, component: Component, name: Option<&str>) -> anyhow::Result<PluginConfig> {
    let names = || {
        config
            .plugins
            .iter()
            .map(|p| format!("`{}`", p.name.get_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = name {
        return config
            .plugins
            .iter()
            .find(|p| p.name.get_ref() == name)
            .cloned()
            .with_context(|| {
                format!("the unit config has no plugin `{name}`: it has {}", names())
            });
    }
    let is_it = |p: &&PluginConfig| match (&p.source, component) {
        (PluginSource::File(path), Component::File(file)) => {
            std::fs::canonicalize(path.get_ref()).ok() == std::fs::canonicalize(file).ok()
        }
        (PluginSource::Builtin(b), Component::Builtin(name)) => b.get_ref() == name,
        _ => false,
    };
    if let Some(plugin) = config.plugins.iter().find(is_it) {
        return Ok(plugin.clone());
    }
    let files: Vec<&PluginConfig> = config
        .plugins
        .iter()
        .filter(|p| matches!(p.source, PluginSource::File(_)))
        .collect();
    match files.as_slice() {
        [one] => Ok((*one).clone()),
        _ => bail!(
            "which plugin of the unit config is this? Name it with `plugin = \"NAME\"` in the scenario or --plugin; it has {}",
            names()
        ),
    }
}

/// What a run did, in order.
pub type Happened = Vec<Timed<Happening>>;

/// A component to run through scenarios, compiled once for as long as
/// their units lay memory out alike: compiling a Python component takes
/// seconds, instantiating it microseconds.
pub struct Plugin<'a> {
    bytes: &'a [u8],
    compiled: Option<(MemoryLayout, u64, Arc<Runtime>, Loaded)>,
}

impl<'a> Plugin<'a> {
    /// The component `bytes`, not compiled yet.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            compiled: None,
        }
    }

    /// The world it targets (compiling it for `subject`'s unit).
    pub fn kind(&mut self, subject: &Subject) -> anyhow::Result<PluginKind> {
        Ok(self.compiled(subject)?.1.kind())
    }

    /// The runtime of `subject`'s unit, and the component compiled in it.
    fn compiled(&mut self, subject: &Subject) -> anyhow::Result<(Arc<Runtime>, Loaded)> {
        let (layout, memory_cap) = subject.config.runtime.memory_layout();
        match &self.compiled {
            Some((l, cap, runtime, loaded)) if *l == layout && *cap == memory_cap => {
                Ok((runtime.clone(), loaded.clone()))
            }
            _ => {
                let runtime = Runtime::with_memory(None, layout, memory_cap)
                    .map_err(|e| anyhow::anyhow!("starting the plugin runtime: {e:#}"))?;
                let (loaded, _) = runtime
                    .load(self.bytes)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                self.compiled = Some((layout, memory_cap, runtime.clone(), loaded.clone()));
                Ok((runtime, loaded))
            }
        }
    }
}

/// Runs `plugin` as `subject`'s plugin through `scenario`.
pub fn run(
    plugin: &mut Plugin,
    subject: &Subject,
    scenario: &Scenario,
) -> anyhow::Result<Happened> {
    let (runtime, loaded) = plugin.compiled(subject)?;
    check_kinds(loaded.kind(), scenario)?;
    let clock = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .context("starting the virtual clock")?;
    clock.block_on(async {
        let mut bench = Bench::new(runtime, loaded, subject, scenario)?;
        bench.run(scenario).await;
        Ok(bench.happened)
    })
}

/// Refuses events this kind of plugin never gets, naming the first.
fn check_kinds(kind: PluginKind, scenario: &Scenario) -> anyhow::Result<()> {
    for event in &scenario.events {
        let (needs, what) = match &event.what {
            Stimulus::Input { .. } => (PluginKind::InputRule, "an input edge"),
            Stimulus::Sms { .. } => (PluginKind::SmsCommands, "an SMS"),
            Stimulus::Call { .. } => (PluginKind::SmsCommands, "a call"),
            Stimulus::Connect { .. } => (PluginKind::ServerAdapter, "a connection"),
            Stimulus::Downlink { .. } => (PluginKind::ServerAdapter, "a downlink"),
            Stimulus::Report { .. } => (PluginKind::ServerAdapter, "a report"),
            Stimulus::Modem(_) | Stimulus::Server { .. } | Stimulus::Settings(_) => continue,
        };
        if needs != kind {
            bail!(
                "the event at {:.3} s is {what}, which goes to {} plugins; this component is {}",
                event.at_ms as f64 / 1000.0,
                needs.world(),
                kind.world()
            );
        }
    }
    Ok(())
}

/// The simulated unit a plugin runs on, and what it did.
struct Bench {
    name: String,
    sim: Arc<firmware_bridge::board::SimBoard>,
    shared: Arc<Shared>,
    worker: Worker,
    actions: mpsc::UnboundedReceiver<Vec<Action>>,
    timers: mpsc::UnboundedReceiver<crate::plugins::bindings::larm::plugin::types::TimerEvent>,
    origin: tokio::time::Instant,
    kv: BTreeMap<String, Vec<u8>>,
    settings: BTreeMap<String, String>,
    happened: Happened,
}

impl Bench {
    fn new(
        runtime: Arc<Runtime>,
        loaded: crate::plugins::runtime::Loaded,
        subject: &Subject,
        scenario: &Scenario,
    ) -> anyhow::Result<Self> {
        let closed = if scenario.closed.is_empty() {
            &subject.config.board.closed_at_start
        } else {
            &scenario.closed
        };
        // Events are edges after debouncing: the board takes them at once.
        let sim = Arc::new(crate::unit::sim_board_debounced(
            &subject.config.board,
            closed,
            Duration::ZERO,
        ));
        let (tx, actions) = mpsc::unbounded_channel();
        let state = Arc::new(State::in_memory()?);
        let outbox = Arc::new(Outbox::in_memory(
            subject.config.alarm.route.get_ref().clone(),
            Duration::from_secs(subject.config.alarm.escalate_after_s.get()),
        )?);
        let mut shared = Shared::new(sim.clone(), state, outbox, tx);
        shared.follow_config(&subject.config);
        shared.virtual_wall = Some(scenario.start);
        let shared = Arc::new(shared);
        let changes: Vec<(&str, Option<&str>)> = scenario
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        shared
            .change_settings("scenario", &changes, &[])
            .map_err(|e| anyhow::anyhow!("the scenario's `settings`: {e}"))?;
        shared.modem.send_replace(Some(ModemStatus {
            answering: true,
            signal_bars: 4,
            network: NetworkType::Lte,
            sim: SimState::Ready,
            operator: Some("larm sim".into()),
            ..ModemStatus::default()
        }));
        tokio::spawn(crate::outputs::end_timed(shared.clone()));
        let (timer_tx, timers) = mpsc::unbounded_channel();
        let sink: crate::plugins::caps::TimerSink = Arc::new(move |event| {
            let _ = timer_tx.send(event);
        });
        let manager = PluginManager::new(runtime, shared.clone());
        let worker = manager.worker(&subject.plugin, loaded, &subject.config, Some(sink));
        let name = subject.plugin.name.get_ref().clone();
        let mut bench = Self {
            kv: BTreeMap::new(),
            settings: BTreeMap::new(),
            name,
            sim,
            shared,
            worker,
            actions,
            timers,
            origin: tokio::time::Instant::now(),
            happened: Vec::new(),
        };
        (bench.kv, bench.settings) = bench.stores();
        Ok(bench)
    }

    /// Milliseconds on the virtual clock.
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The plugin's kv entries and the device settings, as they are now.
    fn stores(&self) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
        let state = &self.shared.state;
        (
            state
                .kv_entries(&self.name, "")
                .unwrap_or_default()
                .into_iter()
                .collect(),
            state.settings("").unwrap_or_default().into_iter().collect(),
        )
    }

    async fn run(&mut self, scenario: &Scenario) {
        self.worker.boot();
        self.collect(None);
        let until = self.origin + Duration::from_millis(scenario.until_ms);
        let mut events = scenario.events.iter().peekable();
        loop {
            let next = events
                .peek()
                .map_or(until, |e| self.origin + Duration::from_millis(e.at_ms))
                .min(until);
            tokio::select! {
                biased;
                Some(timer) = self.timers.recv() => {
                    let outcome = self.worker.deliver(PluginEvent::Timer(timer));
                    self.collect(Some((outcome, "timer")));
                }
                Some(batch) = self.actions.recv() => self.record(batch),
                () = tokio::time::sleep_until(next) => {
                    // What falls due at this very time goes first: the
                    // timers' tasks run before the scenario's event.
                    tokio::task::yield_now().await;
                    while let Ok(timer) = self.timers.try_recv() {
                        let outcome = self.worker.deliver(PluginEvent::Timer(timer));
                        self.collect(Some((outcome, "timer")));
                    }
                    match events.next_if(|e| e.at_ms <= scenario.until_ms) {
                        Some(event) => self.apply(&event.what),
                        None => break,
                    }
                }
            }
        }
    }

    /// Applies one event of the scenario.
    fn apply(&mut self, event: &Stimulus) {
        let event = match event {
            Stimulus::Input { input, closed } => {
                let contact = if *closed {
                    firmware_bridge::board::Contact::Closed
                } else {
                    firmware_bridge::board::Contact::Open
                };
                if let Err(e) = self
                    .sim
                    .set_input(firmware_bridge::board::InputId(*input), contact)
                {
                    tracing::warn!("the scenario's input {input}: {e}");
                }
                PluginEvent::Input(InputEvent {
                    input: *input,
                    contact: if *closed {
                        crate::plugins::bindings::larm::plugin::types::Contact::Closed
                    } else {
                        crate::plugins::bindings::larm::plugin::types::Contact::Open
                    },
                    at_ms: self.shared.monotonic_ms(crate::unit::now()),
                })
            }
            Stimulus::Sms { from, text } => {
                self.shared.last_sms.send_replace(Some(crate::unit::now()));
                PluginEvent::Sms(SmsMessage {
                    sender: from.clone(),
                    text: text.clone(),
                    sent_at: self.shared.wall_now(),
                })
            }
            Stimulus::Call { from } => PluginEvent::Call(CallEvent {
                caller: from.clone(),
            }),
            Stimulus::Connect { base } => PluginEvent::Connected(base.clone()),
            Stimulus::Downlink { topic, payload } => PluginEvent::Downlink(Message {
                topic: topic.clone(),
                payload: payload.clone().into_bytes(),
                retain: false,
            }),
            Stimulus::Report { id, report } => PluginEvent::Report(id.clone(), self.report(report)),
            Stimulus::Modem(change) => {
                self.shared.modem.send_modify(|status| {
                    if let Some(status) = status {
                        changed_modem(status, change);
                    }
                });
                return;
            }
            Stimulus::Server { connected } => {
                self.shared
                    .link
                    .send_modify(|link| link.connected = *connected);
                return;
            }
            Stimulus::Settings(settings) => {
                let changes: Vec<(&str, Option<&str>)> = settings
                    .iter()
                    .map(|(k, v)| (k.as_str(), Some(v.as_str())))
                    .collect();
                if let Err(e) = self.shared.change_settings("scenario", &changes, &[]) {
                    tracing::warn!("the scenario's settings at {} ms: {e}", self.now_ms());
                }
                // Someone else's change: not the plugin's to answer for.
                (self.kv, self.settings) = self.stores();
                return;
            }
        };
        let kind = match &event {
            PluginEvent::Sms(_) => "sms",
            PluginEvent::Call(_) => "call",
            _ => "event",
        };
        let outcome = self.worker.deliver(event);
        self.collect(Some((outcome, kind)));
    }

    /// A scenario's report as the unit makes it.
    fn report(&self, report: &ReportEvent) -> Report {
        match report {
            ReportEvent::Status => Report::Status(self.shared.device_status()),
            ReportEvent::Alarm {
                restore,
                input,
                name,
                text,
            } => {
                let alarm = Alarm {
                    input: *input,
                    name: name.clone(),
                    text: text.clone(),
                    at: self.shared.wall_now(),
                };
                if *restore {
                    Report::Restore(alarm)
                } else {
                    Report::Alarm(alarm)
                }
            }
            ReportEvent::Output { output, on, by } => Report::OutputChanged(OutputChange {
                output: *output,
                on: *on,
                by: by.clone(),
            }),
        }
    }

    /// Takes in what a call into the plugin did: its actions, its outcome
    /// (for an event of `kind`), and what it changed in its stores.
    fn collect(&mut self, outcome: Option<(Outcome, &str)>) {
        while let Ok(batch) = self.actions.try_recv() {
            self.record(batch);
        }
        let at_ms = self.now_ms();
        let mut found = Vec::new();
        let mut push = |what| found.push(what);
        match outcome {
            Some((Outcome::Claimed(false), kind)) => push(Happening::Unclaimed(kind.into())),
            Some((Outcome::Messages(messages), _)) => {
                for m in messages {
                    push(Happening::Publish {
                        topic: m.topic,
                        payload: scenario::shown_bytes(&m.payload),
                        retain: m.retain,
                    });
                }
            }
            Some((Outcome::Downlink(Err(why)), _)) => push(Happening::Refused(why)),
            _ => {}
        }
        let (kv, settings) = self.stores();
        for change in changes(&self.kv, &kv) {
            let (key, value) = change;
            push(Happening::Kv {
                key,
                value: value.map(|v| scenario::shown_bytes(&v)),
            });
        }
        for (key, value) in changes(&self.settings, &settings) {
            push(Happening::Setting { key, value });
        }
        (self.kv, self.settings) = (kv, settings);
        self.happened.extend(found.into_iter().map(|what| Timed {
            at_ms,
            by: None,
            what,
        }));
    }

    /// Takes in actions the unit got, at this time.
    fn record(&mut self, batch: Vec<Action>) {
        let at_ms = self.now_ms();
        for action in batch {
            if let Some(what) = happening(&self.name, action) {
                self.happened.push(Timed {
                    at_ms,
                    by: None,
                    what,
                });
            }
        }
    }
}

/// What an action of the unit is in a scenario's words, if it is one of
/// `plugin`'s (or the host's about it).
pub fn happening(plugin: &str, action: Action) -> Option<Happening> {
    Some(match action {
        Action::Output { output, on, .. } => Happening::Output { output, on },
        Action::Sms { to, text, .. } => Happening::Sms { to, text },
        Action::Call { number, ring_s, .. } => Happening::Call { to: number, ring_s },
        Action::Report {
            report: Report::PluginHealth(health),
            ..
        } if health.name == plugin => match health.state {
            PluginState::Running => return None,
            state => Happening::Fault(format!(
                "{} ({})",
                health.last_fault.unwrap_or_default(),
                state.name()
            )),
        },
        Action::Report { report, .. } => Happening::Report(report.to_string()),
        Action::Connect { .. } => Happening::Connect,
        Action::SetInterval { minutes, .. } => Happening::Interval(minutes),
        Action::RejectCall { .. } => Happening::RejectCall,
        Action::Restart { target, .. } => Happening::Restart(
            match target {
                crate::plugins::bindings::larm::plugin::system::RestartTarget::Modem => "modem",
                crate::plugins::bindings::larm::plugin::system::RestartTarget::Unit => "unit",
            }
            .into(),
        ),
        Action::FactoryReset { .. } => Happening::FactoryReset,
    })
}

/// The entries of `after` that differ from `before`, and those gone.
fn changes<V: Clone + PartialEq>(
    before: &BTreeMap<String, V>,
    after: &BTreeMap<String, V>,
) -> Vec<(String, Option<V>)> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| (k.clone(), after.get(k).cloned()))
        .collect()
}

/// The modem's status with a scenario's change applied.
fn changed_modem(status: &mut ModemStatus, change: &ModemChange) {
    if let Some(bars) = change.signal_bars {
        status.signal_bars = bars.min(5);
    }
    if let Some(network) = &change.network {
        if let Some(n) = [
            NetworkType::None,
            NetworkType::Gsm,
            NetworkType::Umts,
            NetworkType::Lte,
        ]
        .into_iter()
        .find(|n| n.name() == network)
        {
            status.network = n;
        } else {
            tracing::warn!("the scenario's modem network {network:?}: none, gsm, umts or lte");
        }
    }
    if let Some(sim) = &change.sim {
        if let Some(s) = [
            SimState::Ready,
            SimState::PinRequired,
            SimState::Locked,
            SimState::NotInserted,
            SimState::Error,
            SimState::Unknown,
        ]
        .into_iter()
        .find(|s| s.name() == sim)
        {
            status.sim = s;
        } else {
            tracing::warn!(
                "the scenario's modem sim {sim:?}: ready, pin-required, locked, not-inserted, error or unknown"
            );
        }
    }
    if let Some(operator) = &change.operator {
        status.operator = Some(operator.clone());
    }
}

/// How the actions of a run compare with a scenario's.
pub struct Comparison {
    /// The diff, one line per action: `  ` both, `- ` expected only, `+ `
    /// happened only.
    pub lines: Vec<String>,
    /// Expected actions that did not happen.
    pub missing: usize,
    /// Actions that happened unexpected.
    pub unexpected: usize,
}

/// Compares what `happened` with what was `expected`, line by line: the
/// same action is a match if its times differ by at most `tolerance_ms`
/// (0 on the virtual clock; a real unit's recording lags its events by the
/// time it took to act on them).
pub fn compare(
    expected: &[Timed<Happening>],
    happened: &[Timed<Happening>],
    tolerance_ms: u64,
) -> Comparison {
    let what = |all: &[Timed<Happening>]| -> Vec<String> {
        all.iter().map(|t| t.what.to_string()).collect()
    };
    let (old, new) = (what(expected), what(happened));
    let old_lines: Vec<&str> = old.iter().map(String::as_str).collect();
    let new_lines: Vec<&str> = new.iter().map(String::as_str).collect();
    let diff = similar::TextDiff::from_slices(&old_lines, &new_lines);
    let mut comparison = Comparison {
        lines: Vec::new(),
        missing: 0,
        unexpected: 0,
    };
    for change in diff.iter_all_changes() {
        let was = change.old_index().map(|i| &expected[i]);
        let is = change.new_index().map(|i| &happened[i]);
        match (was, is) {
            (Some(was), Some(is)) if was.at_ms.abs_diff(is.at_ms) <= tolerance_ms => {
                comparison
                    .lines
                    .push(format!("  {}", scenario::line(was.at_ms, &was.what)));
            }
            _ => {
                if let Some(was) = was {
                    comparison.missing += 1;
                    comparison
                        .lines
                        .push(format!("- {}", scenario::line(was.at_ms, &was.what)));
                }
                if let Some(is) = is {
                    comparison.unexpected += 1;
                    comparison
                        .lines
                        .push(format!("+ {}", scenario::line(is.at_ms, &is.what)));
                }
            }
        }
    }
    comparison
}
