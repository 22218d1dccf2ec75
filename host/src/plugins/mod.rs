//! The plugin runtime: loading components, running each plugin on its own
//! queue under its grants and limits, supervising faults, and replacing a
//! running plugin.
//!
//! - [`runtime`]: the engine, the precompiled cache and loading.
//! - [`precompiled`]: plugins compiled ahead of time for a board.
//! - [`sections`]: the section frame of component files.
//! - [`compat`]: which world a component targets, and version checks.
//! - [`epoch`]: the clock that bounds a call's CPU time, idle between calls.
//! - [`caps`]: the host capabilities, one file per WIT interface, checked
//!   against grants.
//! - [`worker`]: one plugin's thread, queue and instance.
//! - [`supervisor`]: fault counting and quarantine.

pub mod bindings;
pub mod caps;
pub mod compat;
pub mod epoch;
pub mod precompiled;
pub mod runtime;
pub mod sections;
pub mod supervisor;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::config::{Config, PluginConfig, PluginSource, UpdatesConfig};
use crate::testkit::record::Recorder;
use crate::testkit::scenario::Stimulus;
use crate::unit::Shared;
use crate::updates::store::{Record, Store};
use bindings::larm::plugin::types::{CallEvent, InputEvent, PluginHealth, Report, SmsMessage};
use bindings::server_adapter::exports::larm::plugin::adapter::Message;
use caps::PluginCaps;
use compat::PluginKind;
use runtime::{LoadError, Loaded, Runtime};
use worker::{Envelope, InitConfig, Limits, Outcome, PluginEvent, PluginFault, Worker};

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// Names of the plugins embedded in `larmd`.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(name, _)| *name).collect()
}

/// The component bytes of an embedded plugin.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    BUILTINS
        .iter()
        .find_map(|(n, bytes)| (*n == name).then_some(*bytes))
}

/// Why a plugin cannot be added or replaced.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Its component cannot be loaded.
    #[error("plugin `{name}`: {source}")]
    Load {
        /// The plugin.
        name: String,
        /// Why.
        source: Box<LoadError>,
    },
    /// No plugin by that name is built into larmd.
    #[error("no built-in plugin `{0}`")]
    NoBuiltin(String),
    /// No plugin by that name.
    #[error("no plugin named `{0}`")]
    NoSuchPlugin(String),
    /// The new component did not start; the old one keeps running.
    #[error("plugin `{name}`: the new component did not start: {why}")]
    Rejected {
        /// The plugin.
        name: String,
        /// Why.
        why: PluginFault,
    },
    /// The plugin's worker is gone (the unit is shutting down).
    #[error("plugin `{0}` is stopped")]
    Stopped(String),
    /// Its component's signature is not accepted (`[updates]`).
    #[error("plugin `{name}`: {why}")]
    Untrusted {
        /// The plugin.
        name: String,
        /// Why.
        why: crate::updates::UpdateError,
    },
}

/// Loads a plugin's component from its config entry and checks it. A
/// component file must be signed for the plugin when `updates` trusts keys
/// (built-in plugins are part of larmd).
pub fn load(
    runtime: &Runtime,
    plugin: &PluginConfig,
    updates: &UpdatesConfig,
) -> Result<Loaded, PluginError> {
    let name = plugin.name.get_ref().clone();
    let load_error = |source| PluginError::Load {
        name: name.clone(),
        source: Box::new(source),
    };
    let loaded = match &plugin.source {
        PluginSource::File(path) => {
            let path = path.get_ref();
            let bytes = crate::state::read_bounded(path, crate::state::MAX_COMPONENT_BYTES)
                .map_err(|source| {
                    load_error(LoadError::Read {
                        path: path.clone(),
                        source,
                    })
                })?;
            crate::updates::check_signature(updates, &bytes, &name, false).map_err(|why| {
                PluginError::Untrusted {
                    name: name.clone(),
                    why,
                }
            })?;
            runtime.load(&bytes)
        }
        PluginSource::Builtin(builtin_name) => match builtin(builtin_name.get_ref()) {
            Some(bytes) => runtime.load(bytes),
            None => return Err(PluginError::NoBuiltin(builtin_name.get_ref().clone())),
        },
    };
    loaded.map(|(loaded, _)| loaded).map_err(load_error)
}

/// Swaps `loaded` into plugin `name`'s worker (behind `queue`) between two
/// events: everything queued before is handled by the old component, the
/// rest by the new one. If the new one does not start, the old one stays.
pub async fn swap(
    name: &str,
    queue: &mpsc::UnboundedSender<Envelope>,
    loaded: Loaded,
    config: Option<InitConfig>,
) -> Result<(), PluginError> {
    let (tx, rx) = oneshot::channel();
    queue
        .send(Envelope::Replace(Box::new(loaded), config, tx))
        .map_err(|_| PluginError::Stopped(name.to_string()))?;
    rx.await
        .map_err(|_| PluginError::Stopped(name.to_string()))?
        .map_err(|why| PluginError::Rejected {
            name: name.to_string(),
            why,
        })
}

/// Sends `event` to a plugin's queue; the receiver gets its outcome.
fn ask(queue: &mpsc::UnboundedSender<Envelope>, event: PluginEvent) -> oneshot::Receiver<Outcome> {
    let (tx, rx) = oneshot::channel();
    let _ = queue.send(Envelope::Event(event, Some(tx)));
    rx
}

/// The server adapters, by name: what the server link talks to. Stays
/// valid when a plugin's component is replaced.
#[derive(Clone)]
pub struct Adapters(
    Vec<(String, mpsc::UnboundedSender<Envelope>)>,
    Option<Arc<Recorder>>,
);

impl Adapters {
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every adapter's messages for report `id`; an error names an adapter
    /// that faulted (the report should be tried again later).
    pub async fn encode(&self, id: &str, report: &Report) -> Result<Vec<Message>, String> {
        if let (Some(recorder), Some(report)) =
            (&self.1, crate::testkit::scenario::ReportEvent::of(report))
        {
            recorder.event(Stimulus::Report {
                id: id.to_string(),
                report,
            });
        }
        let mut messages = Vec::new();
        for (name, queue) in &self.0 {
            match ask(queue, PluginEvent::Report(id.to_string(), report.clone())).await {
                Ok(Outcome::Messages(m)) => messages.extend(m),
                Ok(other) => return Err(format!("adapter `{name}` did not encode: {other:?}")),
                Err(_) => return Err(format!("adapter `{name}` is stopped")),
            }
        }
        Ok(messages)
    }

    /// Every adapter's messages for a new connection; `base` is the unit's
    /// base topic.
    pub async fn connected(&self, base: &str) -> Vec<Message> {
        if let Some(recorder) = &self.1 {
            recorder.event(Stimulus::Connect {
                base: base.to_string(),
            });
        }
        let mut messages = Vec::new();
        for (_, queue) in &self.0 {
            if let Ok(Outcome::Messages(m)) =
                ask(queue, PluginEvent::Connected(base.to_string())).await
            {
                messages.extend(m);
            }
        }
        messages
    }

    /// Hands a downlink message to every adapter; returns what each made
    /// of it.
    pub async fn downlink(&self, message: &Message) -> Vec<(String, Result<(), String>)> {
        if let Some(recorder) = &self.1 {
            recorder.event(Stimulus::Downlink {
                topic: message.topic.clone(),
                payload: crate::testkit::scenario::shown_bytes(&message.payload),
            });
        }
        let mut results = Vec::new();
        for (name, queue) in &self.0 {
            let result = match ask(queue, PluginEvent::Downlink(message.clone())).await {
                Ok(Outcome::Downlink(r)) => r,
                Ok(other) => Err(format!("{other:?}")),
                Err(_) => Err("stopped".into()),
            };
            results.push((name.clone(), result));
        }
        results
    }
}

/// What [`PluginManager::start_all`] did.
#[derive(Default)]
pub struct Started {
    /// The plugins that could not be loaded.
    pub failed: Vec<PluginError>,
    /// The plugins that run a component installed in the field.
    pub field: std::collections::BTreeMap<String, Record>,
    /// Field components rolled back at start (they were on probation).
    pub rolled_back: Vec<(String, crate::updates::store::Component)>,
}

struct Handle {
    name: String,
    kind: PluginKind,
    queue: mpsc::UnboundedSender<Envelope>,
    thread: Option<std::thread::JoinHandle<()>>,
    beat: Arc<worker::Beat>,
    /// At one envelope longer than this, the worker is stuck.
    stuck_after: Duration,
}

/// A worker at one envelope longer than this is stuck, at the least: a
/// call into the plugin stops at its CPU deadline, and host calls are
/// short. With long deadlines it is more: one event can take a call, and a
/// restart after each fault up to quarantine, each with its deadline.
const STUCK: Duration = Duration::from_secs(30);

/// Every plugin of the unit.
pub struct PluginManager {
    runtime: Arc<Runtime>,
    shared: Arc<Shared>,
    plugins: Vec<Handle>,
    recorder: Option<Arc<Recorder>>,
}

impl PluginManager {
    /// A manager with no plugins yet.
    pub fn new(runtime: Arc<Runtime>, shared: Arc<Shared>) -> Self {
        Self {
            runtime,
            shared,
            plugins: Vec::new(),
            recorder: None,
        }
    }

    /// The runtime the plugins run in (what a replacement is loaded with).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.clone()
    }

    /// Records every event the plugins receive from now on
    /// (`larmd run --record`).
    pub fn record(&mut self, recorder: Arc<Recorder>) {
        self.recorder = Some(recorder);
    }

    /// The recorder, if the unit records.
    pub fn recorder(&self) -> Option<&Arc<Recorder>> {
        self.recorder.as_ref()
    }

    /// Loads every plugin of `config`, in order: the component installed
    /// in the field for it when `store` has one that passes the checks,
    /// else its config's. A plugin that cannot be loaded is skipped and
    /// returned, so the unit runs the others.
    pub fn start_all(&mut self, config: &Config, store: &Store) -> Started {
        let mut started = Started::default();
        for plugin in &config.plugins {
            let name = plugin.name.get_ref();
            let at_start = crate::updates::installed_at_start(store, &config.updates, name);
            if let Some(component) = at_start.rolled_back {
                started.rolled_back.push((name.clone(), component));
            }
            let field = at_start
                .running
                .and_then(|(record, bytes)| match self.runtime.load(&bytes) {
                    Ok((loaded, _)) => Some((record, loaded)),
                    Err(e) => {
                        tracing::error!(plugin = %name, "its field update cannot be loaded ({e}): the config's component runs");
                        None
                    }
                });
            let loaded = match field {
                Some((record, loaded)) => {
                    started.field.insert(name.clone(), record);
                    Ok(loaded)
                }
                None => load(&self.runtime, plugin, &config.updates),
            };
            match loaded {
                Ok(loaded) => self.add(plugin, loaded, config),
                Err(e) => {
                    tracing::error!("{e}");
                    started.failed.push(e);
                }
            }
        }
        started
    }

    /// The running plugins as the update service replaces them.
    pub fn targets(
        &self,
        config: &Config,
    ) -> std::collections::BTreeMap<String, crate::updates::Target> {
        self.plugins
            .iter()
            .filter_map(|h| {
                let plugin = config
                    .plugins
                    .iter()
                    .find(|p| *p.name.get_ref() == h.name)?;
                Some((
                    h.name.clone(),
                    crate::updates::Target {
                        kind: h.kind,
                        queue: h.queue.clone(),
                        config: plugin.clone(),
                    },
                ))
            })
            .collect()
    }

    /// A worker for a loaded plugin under its config's grants and limits;
    /// its timers fire into `timers` (none: they never fire).
    pub(crate) fn worker(
        &self,
        plugin: &PluginConfig,
        loaded: Loaded,
        config: &Config,
        timers: Option<caps::TimerSink>,
    ) -> Worker {
        let name = plugin.name.get_ref().clone();
        let (deadline_ms, memory_mib) = plugin.effective_limits(&config.runtime);
        let limits = Limits {
            deadline: Duration::from_millis(deadline_ms.get()),
            memory_bytes: memory_mib.get() as usize * 1024 * 1024,
            max_faults: config.runtime.max_faults.get(),
            fault_window: Duration::from_secs(config.runtime.fault_window_s.get()),
        };
        let caps = Arc::new(PluginCaps::new(
            &name,
            plugin.grants.clone(),
            self.shared.clone(),
            timers,
        ));
        Worker::new(
            name,
            caps,
            self.shared.clone(),
            loaded,
            plugin.init_config(),
            limits,
            self.runtime.clock(),
        )
    }

    /// Instantiates a loaded plugin and calls its `init` once, as the unit
    /// would start it, without keeping it: what `larmd check` does, so a
    /// config the plugin refuses is found before the unit runs.
    pub fn try_start(
        &self,
        plugin: &PluginConfig,
        loaded: Loaded,
        config: &Config,
    ) -> Result<(), PluginFault> {
        self.worker(plugin, loaded, config, None).start()
    }

    /// Starts a loaded plugin on its own worker.
    pub fn add(&mut self, plugin: &PluginConfig, loaded: Loaded, config: &Config) {
        let name = plugin.name.get_ref().clone();
        let (queue, rx) = mpsc::unbounded_channel();
        let timer_queue = queue.clone();
        let timer_sink: caps::TimerSink = Arc::new(move |event| {
            let _ = timer_queue.send(Envelope::Event(PluginEvent::Timer(event), None));
        });
        let kind = loaded.kind();
        debug!(plugin = %name, world = %kind, "starting plugin");
        let worker = self.worker(plugin, loaded, config, Some(timer_sink));
        let limits = worker.limits();
        let beat = worker.beat();
        let thread = worker.spawn(rx).expect("cannot start a plugin thread");
        let calls = limits.max_faults.saturating_add(1);
        self.plugins.push(Handle {
            name,
            kind,
            queue,
            thread: Some(thread),
            beat,
            stuck_after: STUCK.max(limits.deadline.saturating_mul(calls.saturating_mul(2))),
        });
    }

    /// Names and kinds of the running plugins, in config order.
    pub fn plugins(&self) -> Vec<(String, PluginKind)> {
        self.plugins
            .iter()
            .map(|h| (h.name.clone(), h.kind))
            .collect()
    }

    fn of_kind(&self, kind: PluginKind) -> impl Iterator<Item = &Handle> {
        self.plugins.iter().filter(move |h| h.kind == kind)
    }

    /// Queues an input edge for every input rule. Returns at once.
    pub fn input(&self, event: InputEvent) {
        if let Some(recorder) = &self.recorder {
            recorder.event(Stimulus::Input {
                input: event.input,
                closed: event.contact == bindings::larm::plugin::types::Contact::Closed,
            });
        }
        for handle in self.of_kind(PluginKind::InputRule) {
            let _ = handle
                .queue
                .send(Envelope::Event(PluginEvent::Input(event), None));
        }
    }

    /// Offers an SMS to the command sets in order; returns the name of the
    /// one that claimed it.
    pub async fn sms(&self, message: SmsMessage) -> Option<String> {
        if let Some(recorder) = &self.recorder {
            recorder.event(Stimulus::Sms {
                from: message.sender.clone(),
                text: message.text.clone(),
            });
        }
        self.offer(PluginEvent::Sms(message)).await
    }

    /// Offers a call to the command sets in order; returns who claimed it.
    pub async fn call(&self, call: CallEvent) -> Option<String> {
        if let Some(recorder) = &self.recorder {
            recorder.event(Stimulus::Call {
                from: call.caller.clone(),
            });
        }
        self.offer(PluginEvent::Call(call)).await
    }

    /// Offers an event to the command sets in order until one claims it.
    async fn offer(&self, event: PluginEvent) -> Option<String> {
        for handle in self.of_kind(PluginKind::SmsCommands) {
            if ask(&handle.queue, event.clone()).await == Ok(Outcome::Claimed(true)) {
                return Some(handle.name.clone());
            }
        }
        None
    }

    /// The server adapters, for the server link.
    pub fn adapters(&self) -> Adapters {
        Adapters(
            self.of_kind(PluginKind::ServerAdapter)
                .map(|h| (h.name.clone(), h.queue.clone()))
                .collect(),
            self.recorder.clone(),
        )
    }

    /// Replaces plugin `name`'s component with `bytes`, between two events:
    /// everything queued for it is handled, by the old component up to the
    /// swap and by the new one after. The new component must target the
    /// same world; if it does not start, the old one keeps running.
    /// `config` is the new component's `init` config, if it differs.
    pub async fn replace(
        &self,
        name: &str,
        bytes: &[u8],
        config: Option<InitConfig>,
    ) -> Result<(), PluginError> {
        let handle = self
            .plugins
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| PluginError::NoSuchPlugin(name.to_string()))?;
        let load_error = |source| PluginError::Load {
            name: name.to_string(),
            source: Box::new(source),
        };
        let (loaded, _) = self.runtime.load(bytes).map_err(load_error)?;
        if loaded.kind() != handle.kind {
            return Err(load_error(LoadError::WrongKind {
                expected: handle.kind,
                found: loaded.kind(),
            }));
        }
        swap(name, &handle.queue, loaded, config).await
    }

    /// Waits until every plugin has handled everything queued so far.
    pub async fn flush(&self) {
        let waits: Vec<_> = self
            .plugins
            .iter()
            .map(|h| {
                let (tx, rx) = oneshot::channel();
                let _ = h.queue.send(Envelope::Barrier(tx));
                rx
            })
            .collect();
        for wait in waits {
            let _ = wait.await;
        }
    }

    /// What is wrong with the workers, if anything: one that stopped, or
    /// one stuck at an event (for the watchdog).
    pub fn trouble(&self) -> Option<String> {
        self.plugins.iter().find_map(|h| {
            if h.thread.as_ref().is_some_and(|t| t.is_finished()) {
                return Some(format!("the worker of plugin `{}` stopped", h.name));
            }
            let busy = h.beat.busy_for().filter(|b| *b > h.stuck_after)?;
            Some(format!(
                "the worker of plugin `{}` has been at one event for {} s",
                h.name,
                busy.as_secs()
            ))
        })
    }

    /// Every plugin's health.
    pub fn health(&self) -> Vec<PluginHealth> {
        self.shared.plugin_health()
    }

    /// Stops every plugin after what is queued, and waits for them.
    pub fn shutdown(&mut self) {
        for handle in &self.plugins {
            let _ = handle.queue.send(Envelope::Stop);
        }
        for handle in &mut self.plugins {
            if let Some(thread) = handle.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for PluginManager {
    fn drop(&mut self) {
        self.shutdown();
    }
}
