//! One plugin's worker: its own thread, queue, store and instance.
//!
//! Events are handled one at a time, in order. Each call runs under the
//! plugin's CPU deadline and memory cap; a trap or a blown limit ends that
//! call only: the instance is dropped (a trapped instance cannot be entered
//! again), the fault is counted, and a fresh instance is started and
//! initialised before the next event. A replacement component is swapped in
//! between two events, so nothing queued is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};
use wasmtime::{Store, Trap};

use super::bindings::larm::plugin::types::{
    CallEvent, InputEvent, PluginHealth, PluginState, Report, SmsMessage, TimerEvent,
};
use super::bindings::server_adapter::exports::larm::plugin::adapter::Message;
use super::bindings::{input_rule, server_adapter, sms_commands};
use super::caps::{HostState, PluginCaps};
use super::epoch::{EpochClock, Spent, WALL_FACTOR, ticks_for};
use super::runtime::Loaded;
use super::supervisor::Supervisor;
use crate::unit::{Action, Shared};

/// An event for a plugin.
#[derive(Debug, Clone)]
pub enum PluginEvent {
    /// An input edge (input rules).
    Input(InputEvent),
    /// One of the plugin's timers fired (every kind).
    Timer(TimerEvent),
    /// An SMS arrived (SMS command sets).
    Sms(SmsMessage),
    /// A call rings (SMS command sets).
    Call(CallEvent),
    /// A report to encode, with its id (server adapters).
    Report(String, Report),
    /// The server link came up, with the unit's base topic (server adapters).
    Connected(String),
    /// A message from the server (server adapters).
    Downlink(Message),
}

/// What came of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Handled; nothing to return.
    Handled,
    /// An SMS or call was claimed (true) or passed on (false).
    Claimed(bool),
    /// Messages for the server.
    Messages(Vec<Message>),
    /// A downlink was applied, or refused with a reason.
    Downlink(Result<(), String>),
    /// The event is not for this kind of plugin.
    NotForThisKind,
    /// The call faulted; the plugin was restarted (or quarantined).
    Faulted(PluginFault),
    /// The plugin is quarantined and takes no events.
    Quarantined,
}

/// What a worker's queue carries.
pub enum Envelope {
    /// An event, and where to send its outcome.
    Event(PluginEvent, Option<oneshot::Sender<Outcome>>),
    /// Swap in a new component (already checked to be of the same kind),
    /// with a new `init` config if given.
    Replace(
        Box<Loaded>,
        Option<InitConfig>,
        oneshot::Sender<Result<(), PluginFault>>,
    ),
    /// Answered once everything queued before it is handled.
    Barrier(oneshot::Sender<()>),
    /// Stop the worker.
    Stop,
}

/// A plugin's config, as its `init` receives it: key/value pairs.
pub type InitConfig = Vec<(String, String)>;

/// Why a call into a plugin failed. Shown in the plugin's health as its
/// `last-fault` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFault {
    /// The call ran past its CPU deadline.
    #[error("exceeded its CPU deadline of {ms} ms")]
    Deadline {
        /// The deadline.
        ms: u128,
    },
    /// The call took too long in wall time, mostly waiting (in host calls
    /// or for a core), without using its CPU deadline.
    #[error("took over {ms} ms without finishing")]
    Stalled {
        /// The wall-time ceiling.
        ms: u128,
    },
    /// The plugin tried to grow its memory past its cap.
    #[error("exceeded its memory limit of {kib} KiB")]
    Memory {
        /// The cap.
        kib: usize,
    },
    /// The plugin trapped (a panic, an unreachable, a bad access...).
    #[error("trapped: {0}")]
    Trap(String),
    /// `init` returned an error.
    #[error("init refused its config: {0}")]
    InitRefused(String),
    /// Instantiation or the call failed for another reason.
    #[error("failed: {0}")]
    Failed(String),
}

/// A plugin's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// CPU deadline per call.
    pub deadline: Duration,
    /// Memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Faults within `fault_window` that quarantine the plugin.
    pub max_faults: u32,
    /// The fault window.
    pub fault_window: Duration,
}

enum Guest {
    Rule(input_rule::InputRule),
    Commands(sms_commands::SmsCommands),
    Adapter(server_adapter::ServerAdapter),
}

struct Live {
    store: Store<HostState>,
    guest: Guest,
}

// Each world has its own generated `lifecycle` bindings (one type per
// world), so the shared exports are reached through one match each.
impl Guest {
    fn call_init(
        &self,
        store: &mut Store<HostState>,
        config: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Guest::Rule(g) => g.larm_plugin_lifecycle().call_init(store, config),
            Guest::Commands(g) => g.larm_plugin_lifecycle().call_init(store, config),
            Guest::Adapter(g) => g.larm_plugin_lifecycle().call_init(store, config),
        }
    }

    fn call_on_timer(
        &self,
        store: &mut Store<HostState>,
        event: &TimerEvent,
    ) -> wasmtime::Result<()> {
        match self {
            Guest::Rule(g) => g.larm_plugin_lifecycle().call_on_timer(store, event),
            Guest::Commands(g) => g.larm_plugin_lifecycle().call_on_timer(store, event),
            Guest::Adapter(g) => g.larm_plugin_lifecycle().call_on_timer(store, event),
        }
    }
}

/// What a worker is doing, for the watchdog: when it took up its current
/// envelope (milliseconds since `since`, plus one), or 0 while it waits.
pub struct Beat {
    since: Instant,
    busy: AtomicU64,
}

impl Beat {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            busy: AtomicU64::new(0),
        }
    }

    fn busy(&self) {
        let ms = self.since.elapsed().as_millis() as u64 + 1;
        self.busy.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) {
        self.busy.store(0, Ordering::Relaxed);
    }

    /// How long the worker has been at its current envelope; None while it
    /// waits for one.
    pub fn busy_for(&self) -> Option<Duration> {
        let started = self.busy.load(Ordering::Relaxed).checked_sub(1)?;
        Some(
            self.since
                .elapsed()
                .saturating_sub(Duration::from_millis(started)),
        )
    }
}

/// One plugin's worker state.
pub struct Worker {
    name: String,
    caps: Arc<PluginCaps>,
    shared: Arc<Shared>,
    loaded: Loaded,
    init_config: InitConfig,
    limits: Limits,
    supervisor: Supervisor,
    live: Option<Live>,
    clock: Arc<EpochClock>,
    beat: Arc<Beat>,
}

impl Worker {
    /// A worker for `loaded`, not started yet.
    pub fn new(
        name: String,
        caps: Arc<PluginCaps>,
        shared: Arc<Shared>,
        loaded: Loaded,
        init_config: InitConfig,
        limits: Limits,
        clock: Arc<EpochClock>,
    ) -> Self {
        Self {
            clock,
            beat: Arc::new(Beat::new()),
            supervisor: Supervisor::new(limits.max_faults, limits.fault_window),
            name,
            caps,
            shared,
            loaded,
            init_config,
            limits,
            live: None,
        }
    }

    /// The limits it runs the plugin under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// What the worker is doing, for the watchdog.
    pub fn beat(&self) -> Arc<Beat> {
        self.beat.clone()
    }

    /// Runs the worker on its own thread until [`Envelope::Stop`].
    pub fn spawn(
        mut self,
        mut queue: mpsc::UnboundedReceiver<Envelope>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("plugin-{}", self.name))
            .spawn(move || {
                self.boot();
                while let Some(envelope) = queue.blocking_recv() {
                    self.beat.busy();
                    match envelope {
                        Envelope::Event(event, reply) => {
                            let outcome = self.deliver(event);
                            if let Some(reply) = reply {
                                let _ = reply.send(outcome);
                            }
                        }
                        Envelope::Replace(loaded, config, reply) => {
                            self.caps.begin_event();
                            let replaced = self.replace(*loaded, config);
                            self.caps.end_event();
                            let _ = reply.send(replaced);
                        }
                        Envelope::Barrier(reply) => {
                            let _ = reply.send(());
                        }
                        Envelope::Stop => break,
                    }
                    self.beat.idle();
                }
            })
    }

    /// Starts the plugin, counting failures as faults; what its `init`
    /// does goes to the unit together.
    pub fn boot(&mut self) {
        self.caps.begin_event();
        self.restart();
        self.caps.end_event();
    }

    /// Handles one event (see [`Worker::handle`]); the actions it takes go
    /// to the unit together.
    pub fn deliver(&mut self, event: PluginEvent) -> Outcome {
        self.caps.begin_event();
        let outcome = self.handle(event);
        self.caps.end_event();
        outcome
    }

    /// Starts the budget of a call on `store`.
    fn begin_call(deadline: Duration, store: &mut Store<HostState>) {
        store.data_mut().budget.begin(deadline);
        store.set_epoch_deadline(ticks_for(deadline));
    }

    /// Instantiates the component and calls its `init`, replacing the
    /// running instance. Faults are not counted here; see `restart`.
    pub fn start(&mut self) -> Result<(), PluginFault> {
        let _running = self.clock.running();
        let engine = match &self.loaded {
            Loaded::InputRule(pre) => pre.engine(),
            Loaded::SmsCommands(pre) => pre.engine(),
            Loaded::ServerAdapter(pre) => pre.engine(),
        };
        let mut store = Store::new(
            engine,
            HostState::new(self.caps.clone(), self.limits.memory_bytes),
        );
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|mut store| Ok(store.data_mut().budget.on_deadline()));
        Self::begin_call(self.limits.deadline, &mut store);
        let guest = match &self.loaded {
            Loaded::InputRule(pre) => pre.instantiate(&mut store).map(Guest::Rule),
            Loaded::SmsCommands(pre) => pre.instantiate(&mut store).map(Guest::Commands),
            Loaded::ServerAdapter(pre) => pre.instantiate(&mut store).map(Guest::Adapter),
        }
        .map_err(|e| Self::fault_of(&self.name, &self.limits, store.data(), e))?;
        Self::begin_call(self.limits.deadline, &mut store);
        guest
            .call_init(&mut store, &self.init_config)
            .map_err(|e| Self::fault_of(&self.name, &self.limits, store.data(), e))?
            .map_err(|msg| PluginFault::InitRefused(msg.escape_debug().to_string()))?;
        self.live = Some(Live { store, guest });
        Ok(())
    }

    /// Starts the plugin, counting failures as faults, until it runs or is
    /// quarantined.
    fn restart(&mut self) {
        while self.supervisor.state() != PluginState::Quarantined {
            match self.start() {
                Ok(()) => {
                    info!(plugin = %self.name, "plugin started");
                    self.publish_health();
                    return;
                }
                Err(why) => self.fault(why),
            }
        }
    }

    fn fault(&mut self, why: PluginFault) {
        self.live = None;
        let state = self.supervisor.fault(Instant::now(), why.to_string());
        match state {
            PluginState::Quarantined => error!(
                plugin = %self.name,
                "plugin faulted: {why}; quarantined after {} faults within {:?}",
                self.limits.max_faults, self.limits.fault_window
            ),
            _ => warn!(plugin = %self.name, "plugin faulted: {why}; restarting it"),
        }
        self.publish_health();
    }

    /// What a failed call was: which limit was hit (the store's memory cap
    /// says whether it refused to grow, its budget which time ran out), or
    /// the trap. The wasm backtrace is logged at debug level only.
    fn fault_of(name: &str, limits: &Limits, state: &HostState, e: wasmtime::Error) -> PluginFault {
        tracing::debug!(plugin = %name, "fault detail: {e:?}");
        if state.limits.hit() {
            return PluginFault::Memory {
                kib: limits.memory_bytes / 1024,
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) if state.budget.spent() == Some(Spent::Wall) => {
                PluginFault::Stalled {
                    ms: limits.deadline.as_millis() * u128::from(WALL_FACTOR),
                }
            }
            Some(Trap::Interrupt) => PluginFault::Deadline {
                ms: limits.deadline.as_millis(),
            },
            Some(trap) => PluginFault::Trap(trap.to_string()),
            None => PluginFault::Failed(e.root_cause().to_string().escape_debug().to_string()),
        }
    }

    fn publish_health(&mut self) {
        let health = self.shared.with_version(PluginHealth {
            name: self.name.clone(),
            state: self.supervisor.state(),
            faults: self.supervisor.faults(Instant::now()),
            last_fault: self.supervisor.last_fault().map(str::to_string),
            version: None,
            on_probation: false,
        });
        let changed = self.shared.health.send_if_modified(|all| {
            all.insert(self.name.clone(), health.clone())
                .is_none_or(|old| old != health)
        });
        if changed {
            self.shared.emit(Action::Report {
                by: "host".into(),
                report: Report::PluginHealth(health),
            });
        }
    }

    /// Delivers one event to the plugin under its limits, (re)starting the
    /// instance first if needed and counting a fault if the call fails.
    pub fn handle(&mut self, event: PluginEvent) -> Outcome {
        if self.supervisor.state() == PluginState::Quarantined {
            return Outcome::Quarantined;
        }
        if self.live.is_none() {
            self.restart();
        }
        let deadline = self.limits.deadline;
        let Some(live) = self.live.as_mut() else {
            return Outcome::Quarantined;
        };
        Self::begin_call(deadline, &mut live.store);
        let running = self.clock.running();
        let store = &mut live.store;
        let result = match (&live.guest, event) {
            (guest, PluginEvent::Timer(e)) => {
                guest.call_on_timer(store, &e).map(|()| Outcome::Handled)
            }
            (Guest::Rule(g), PluginEvent::Input(e)) => g
                .larm_plugin_rule()
                .call_on_input(store, e)
                .map(|()| Outcome::Handled),
            (Guest::Commands(g), PluginEvent::Sms(m)) => g
                .larm_plugin_commands()
                .call_on_sms(store, &m)
                .map(Outcome::Claimed),
            (Guest::Commands(g), PluginEvent::Call(c)) => g
                .larm_plugin_commands()
                .call_on_call(store, &c)
                .map(Outcome::Claimed),
            (Guest::Adapter(g), PluginEvent::Report(id, r)) => g
                .larm_plugin_adapter()
                .call_encode(store, &id, &r)
                .map(Outcome::Messages),
            (Guest::Adapter(g), PluginEvent::Connected(base)) => g
                .larm_plugin_adapter()
                .call_on_connect(store, &base)
                .map(Outcome::Messages),
            (Guest::Adapter(g), PluginEvent::Downlink(m)) => g
                .larm_plugin_adapter()
                .call_on_downlink(store, &m)
                .map(Outcome::Downlink),
            _ => Ok(Outcome::NotForThisKind),
        };
        drop(running);
        match result {
            Ok(outcome) => outcome,
            Err(e) => {
                let why = Self::fault_of(&self.name, &self.limits, live.store.data(), e);
                self.fault(why.clone());
                if self.supervisor.state() != PluginState::Quarantined {
                    self.restart();
                }
                Outcome::Faulted(why)
            }
        }
    }

    /// Swaps in a new component. If it does not start, the running one
    /// stays and the error is returned.
    fn replace(&mut self, loaded: Loaded, config: Option<InitConfig>) -> Result<(), PluginFault> {
        let old = std::mem::replace(&mut self.loaded, loaded);
        let old_config = config.map(|c| std::mem::replace(&mut self.init_config, c));
        let old_live = self.live.take();
        match self.start() {
            Ok(()) => {
                self.supervisor.reset();
                info!(plugin = %self.name, "plugin replaced with a new component");
                self.publish_health();
                Ok(())
            }
            Err(why) => {
                warn!(plugin = %self.name, "replacement refused, keeping the running component: {why}");
                self.loaded = old;
                if let Some(config) = old_config {
                    self.init_config = config;
                }
                self.live = old_live;
                Err(why)
            }
        }
    }
}
