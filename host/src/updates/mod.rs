//! Field updates: signed components installed into a running unit, tried
//! on probation, then committed or rolled back.
//!
//! - [`signature`]: signing and verifying components (minisign).
//! - [`store`]: what is installed, on disk.
//!
//! One task, the update service, carries out every install and rollback,
//! one at a time; the HTTP API (and the CLI through it) and the server link
//! reach it through [`Updates`]. An install:
//!
//! 1. writes the bytes to `staging` (fsynced);
//! 2. checks the signature (for this plugin's name), the world and WIT
//!    version (by compiling it, or from the cache), and the grants its
//!    imports need against the plugin's config;
//! 3. starts it on the plugin's worker between two events (instantiate,
//!    `init`): if that fails, the running component stays, untouched;
//! 4. records it as current, on probation for `probation_s`: a fault, a
//!    blown limit or quarantine meanwhile rolls back at once; at the end it
//!    is committed, and the one before is kept for a manual rollback.
//!
//! Every outcome is logged and reported to the server (`update` reports).

pub mod signature;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::{PluginConfig, UpdatesConfig};
use crate::plugins::PluginError;
use crate::plugins::bindings::larm::plugin::types::{
    PluginState, Report, UpdateEvent, UpdateOutcome,
};
use crate::plugins::compat::PluginKind;
use crate::plugins::runtime::{Loaded, Runtime};
use crate::plugins::worker::{Envelope, PluginFault};
use crate::unit::shared::FieldVersion;
use crate::unit::{Action, Shared};
use signature::{SignatureError, Verified};
use store::{Component, Record, Store};

/// Why an update or a rollback was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// No running plugin by that name.
    #[error("no plugin named `{0}` runs on this unit")]
    NoSuchPlugin(String),
    /// No key is trusted, and unsigned components are not allowed.
    #[error("field updates are off: [updates] trusted_keys names no key")]
    Disabled,
    /// The signature does not hold.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A field update carries precompiled machine code, which no sandbox
    /// checks: let in only when signed, and `[updates] allow_precompiled`.
    #[error(
        "a precompiled plugin is installed in the field only when signed by a trusted key and [updates] allow_precompiled = true"
    )]
    Precompiled,
    /// The component cannot run here (not a component, wrong world or
    /// version, does not link, another kind than the plugin).
    #[error("{0}")]
    Load(String),
    /// Its imports need grants the plugin's config does not give.
    #[error("the component needs more than its config grants: {}", .0.join("; "))]
    Grants(Vec<String>),
    /// It did not start (instantiation or `init` failed).
    #[error("the new component did not start: {0}")]
    DidNotStart(PluginFault),
    /// Nothing was installed in the field for this plugin.
    #[error("nothing to roll back: `{0}` runs its config's component")]
    NothingToRollBack(String),
    /// The data folder cannot be written or read.
    #[error("storage: {0}")]
    Io(String),
    /// The unit is stopping.
    #[error("the unit is stopping")]
    Stopped,
}

impl UpdateError {
    /// Whether the component (or the request) is at fault, not the unit.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Io(_) | Self::Stopped)
    }
}

fn io_error(e: std::io::Error) -> UpdateError {
    UpdateError::Io(e.to_string())
}

/// Whether a component's signature lets it run as plugin `name`:
/// `Some` with what the signature says, `None` for an unsigned component
/// that is let in (`allow_unsigned`, or a config file on a unit with no
/// trusted keys). `from_field`: it came from outside the config; a
/// precompiled plugin does only signed, where `allow_precompiled` says so.
pub fn check_signature(
    config: &UpdatesConfig,
    bytes: &[u8],
    name: &str,
    from_field: bool,
) -> Result<Option<Verified>, UpdateError> {
    let verified = check_signer(config, bytes, name, from_field)?;
    if from_field
        && (verified.is_none() || !config.allow_precompiled)
        && !matches!(crate::plugins::precompiled::parse(bytes), Ok(None))
    {
        return Err(UpdateError::Precompiled);
    }
    Ok(verified)
}

fn check_signer(
    config: &UpdatesConfig,
    bytes: &[u8],
    name: &str,
    from_field: bool,
) -> Result<Option<Verified>, UpdateError> {
    if config.keys.is_empty() {
        return if config.allow_unsigned || !from_field {
            Ok(None)
        } else {
            Err(UpdateError::Disabled)
        };
    }
    match signature::verify(bytes, &config.keys, Some(name)) {
        Ok(verified) => Ok(Some(verified)),
        Err(SignatureError::Unsigned) if config.allow_unsigned => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What plugin `name` runs from the field when the unit starts.
#[derive(Default)]
pub struct AtStart {
    /// The field component it runs, with its record; none: the config's.
    pub running: Option<(Record, Vec<u8>)>,
    /// A component that was on probation when the unit stopped, and was
    /// rolled back for it.
    pub rolled_back: Option<Component>,
}

/// What plugin `name` runs from the field at start: the recorded
/// component if it still passes the checks, else the config's. One still
/// on probation did not see it through (the unit stopped or crashed
/// meanwhile, perhaps because of it): it is rolled back first, so a
/// component that takes the unit down cannot do so at every start.
pub fn installed_at_start(store: &Store, config: &UpdatesConfig, name: &str) -> AtStart {
    // What a power cut during an install left behind.
    store.drop_staged(name);
    let mut at_start = AtStart::default();
    let mut record = match store.record(name) {
        Ok(Some(record)) => record,
        Ok(None) => return at_start,
        Err(e) => {
            error!(plugin = %name, "the record of its field update cannot be read ({e}): the config's component runs");
            return at_start;
        }
    };
    if record.on_probation {
        let back = record.previous.clone().map(|current| Record {
            current,
            on_probation: false,
            previous: None,
        });
        if let Err(e) = store.set_record(name, back.as_ref()) {
            error!(plugin = %name, "the rollback cannot be recorded: {e}");
        }
        warn!(plugin = %name, version = %record.current.version(), "update rolled back: the unit restarted while it was on probation");
        at_start.rolled_back = Some(record.current);
        match back {
            Some(back) => record = back,
            None => return at_start,
        }
    }
    let checked = store
        .component(name, &record.current)
        .map_err(io_error)
        .and_then(|bytes| check_signature(config, &bytes, name, true).map(|_| bytes));
    match checked {
        Ok(bytes) => at_start.running = Some((record, bytes)),
        Err(e) => {
            error!(plugin = %name, "its field update {} is not run ({e}): the config's component runs", record.current.version());
        }
    }
    at_start
}

/// A plugin an update may replace.
pub struct Target {
    /// Its world.
    pub kind: PluginKind,
    /// Its worker's queue.
    pub queue: mpsc::UnboundedSender<Envelope>,
    /// Its config entry: grants, and the component to roll back to last.
    pub config: PluginConfig,
}

/// What an install did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Installed {
    /// The component's hash.
    pub sha256: String,
    /// The key that signed it.
    pub key_id: Option<String>,
    /// Seconds of probation ahead of it.
    pub probation_s: u64,
    /// It was running already: nothing was done.
    pub already: bool,
}

/// One plugin, as `GET /api/v1/plugins` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its world.
    pub world: &'static str,
    /// `config` or `field`: where the running component comes from.
    pub source: &'static str,
    /// The running field component, if any.
    pub current: Option<Component>,
    /// Its short version.
    pub version: Option<String>,
    /// On probation, with this many seconds left.
    pub probation_left_s: Option<u64>,
    /// The component a rollback returns to (none: the config's).
    pub previous: Option<Component>,
    /// `running`, `probation` (running, on probation), `restarted`,
    /// `quarantined`.
    pub state: &'static str,
    /// Faults in the current window.
    pub faults: u32,
    /// The last fault.
    pub last_fault: Option<String>,
}

enum Request {
    Install {
        name: String,
        bytes: Vec<u8>,
        from: String,
        reply: oneshot::Sender<Result<Installed, UpdateError>>,
    },
    Rollback {
        name: String,
        reply: oneshot::Sender<Result<(), UpdateError>>,
    },
    List {
        reply: oneshot::Sender<Vec<PluginInfo>>,
    },
}

/// The update service's handle.
#[derive(Clone)]
pub struct Updates {
    tx: mpsc::UnboundedSender<Request>,
}

impl Updates {
    /// Starts the update service for `targets`; `running` are the field
    /// components the plugins started with, `rolled_back` those rolled
    /// back at start (reported now).
    pub fn start(
        runtime: Arc<Runtime>,
        shared: Arc<Shared>,
        store: Store,
        config: UpdatesConfig,
        targets: BTreeMap<String, Target>,
        running: BTreeMap<String, Record>,
        rolled_back: Vec<(String, Component)>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut service = Service {
            probation: Duration::from_secs(config.probation_s),
            runtime,
            shared,
            store,
            config,
            targets,
            records: BTreeMap::new(),
            deadlines: BTreeMap::new(),
        };
        for (name, record) in running {
            service.set_record(&name, Some(record));
        }
        for (name, component) in rolled_back {
            service.report(
                &name,
                UpdateOutcome::RolledBack,
                Some(component.sha256),
                Some("the unit restarted while it was on probation".into()),
            );
        }
        tokio::spawn(service.run(rx));
        Self { tx }
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(request(reply)).ok()?;
        answer.await.ok()
    }

    /// Installs `bytes` (a signed component) as plugin `name`'s; `from`
    /// says who sent it, for the log.
    pub async fn install(
        &self,
        name: &str,
        bytes: Vec<u8>,
        from: &str,
    ) -> Result<Installed, UpdateError> {
        self.ask(|reply| Request::Install {
            name: name.into(),
            bytes,
            from: from.into(),
            reply,
        })
        .await
        .unwrap_or(Err(UpdateError::Stopped))
    }

    /// Rolls plugin `name` back to the component before the current one.
    pub async fn rollback(&self, name: &str) -> Result<(), UpdateError> {
        self.ask(|reply| Request::Rollback {
            name: name.into(),
            reply,
        })
        .await
        .unwrap_or(Err(UpdateError::Stopped))
    }

    /// Every plugin and what it runs.
    pub async fn list(&self) -> Vec<PluginInfo> {
        self.ask(|reply| Request::List { reply })
            .await
            .unwrap_or_default()
    }
}

struct Service {
    runtime: Arc<Runtime>,
    shared: Arc<Shared>,
    store: Store,
    config: UpdatesConfig,
    probation: Duration,
    targets: BTreeMap<String, Target>,
    /// What runs from the field, by plugin.
    records: BTreeMap<String, Record>,
    /// When each plugin on probation is committed.
    deadlines: BTreeMap<String, Instant>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Service {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let mut health = self.shared.health.subscribe();
        // A plugin may have faulted before this task first ran.
        self.roll_back_faulted().await;
        loop {
            let next = self.deadlines.values().min().copied();
            // Faults first: a fault and the end of probation together is a
            // rollback, not a commit.
            tokio::select! {
                biased;
                changed = health.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    health.borrow_and_update();
                    self.roll_back_faulted().await;
                }
                request = requests.recv() => match request {
                    Some(request) => self.handle(request).await,
                    None => return,
                },
                () = crate::unit::sleep_until(next) => {
                    self.roll_back_faulted().await;
                    self.commit_due();
                }
            }
        }
    }

    /// Whether plugin `name` runs well now.
    fn healthy(&self, name: &str) -> bool {
        self.shared
            .health
            .borrow()
            .get(name)
            .is_none_or(|h| h.state == PluginState::Running)
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Install {
                name,
                bytes,
                from,
                reply,
            } => {
                let result = self.install(&name, &bytes, &from).await;
                if let Err(why) = &result {
                    warn!(plugin = %name, %from, "update refused: {why}");
                    self.store.drop_staged(&name);
                    let sha256 = signature::component_sha256(&bytes).ok();
                    self.report(&name, UpdateOutcome::Refused, sha256, Some(why.to_string()));
                }
                let _ = reply.send(result);
            }
            Request::Rollback { name, reply } => {
                let result = self.rollback(&name, "rolled back by hand").await;
                let _ = reply.send(result);
            }
            Request::List { reply } => {
                let _ = reply.send(self.list());
            }
        }
    }

    fn report(
        &self,
        plugin: &str,
        outcome: UpdateOutcome,
        sha256: Option<String>,
        reason: Option<String>,
    ) {
        self.shared.emit(Action::Report {
            by: "host".into(),
            report: Report::Update(UpdateEvent {
                plugin: plugin.into(),
                outcome,
                sha256,
                reason,
            }),
        });
    }

    /// Compiles `bytes` (signature checked) for `name` off the async
    /// threads, and checks its world and grants.
    async fn prepare(&self, name: &str, bytes: Vec<u8>) -> Result<Loaded, UpdateError> {
        let target = self
            .targets
            .get(name)
            .ok_or_else(|| UpdateError::NoSuchPlugin(name.into()))?;
        let runtime = self.runtime.clone();
        let (loaded, _) = tokio::task::spawn_blocking(move || runtime.load(&bytes))
            .await
            .map_err(|_| UpdateError::Stopped)?
            .map_err(|e| UpdateError::Load(e.to_string()))?;
        if loaded.kind() != target.kind {
            return Err(UpdateError::Load(format!(
                "a {} component cannot replace the {} plugin `{name}`",
                loaded.kind(),
                target.kind
            )));
        }
        let missing = target.config.grants.missing_for(&loaded.larm_imports());
        if !missing.is_empty() {
            return Err(UpdateError::Grants(missing));
        }
        Ok(loaded)
    }

    /// Starts `loaded` on plugin `name`'s worker, between two events.
    async fn swap(&self, name: &str, loaded: Loaded) -> Result<(), UpdateError> {
        let target = self
            .targets
            .get(name)
            .ok_or_else(|| UpdateError::NoSuchPlugin(name.into()))?;
        crate::plugins::swap(name, &target.queue, loaded, None)
            .await
            .map_err(|e| match e {
                PluginError::Rejected { why, .. } => UpdateError::DidNotStart(why),
                _ => UpdateError::Stopped,
            })
    }

    async fn install(
        &mut self,
        name: &str,
        bytes: &[u8],
        from: &str,
    ) -> Result<Installed, UpdateError> {
        if !self.targets.contains_key(name) {
            return Err(UpdateError::NoSuchPlugin(name.into()));
        }
        self.store.stage(name, bytes).map_err(io_error)?;
        let sha256 = signature::component_sha256(bytes)?;
        let verified = check_signature(&self.config, bytes, name, true)?;
        let old = self.records.get(name).cloned();
        if let Some(old) = &old
            && old.current.sha256 == sha256
        {
            self.store.drop_staged(name);
            return Ok(Installed {
                key_id: old.current.key_id.clone(),
                sha256,
                probation_s: self.left(name).map_or(0, |d| d.as_secs()),
                already: true,
            });
        }
        let loaded = self.prepare(name, bytes.to_vec()).await?;
        // A component that faulted once long ago is still worth going back
        // to; a quarantined one is not.
        let was_healthy = self
            .shared
            .health
            .borrow()
            .get(name)
            .is_none_or(|h| h.state != PluginState::Quarantined);
        self.swap(name, loaded).await?;
        let current = Component {
            sha256: sha256.clone(),
            key_id: verified.map(|v| v.key_id),
            installed_at: unix_now(),
        };
        // A component on probation, or faulting now, is not a good one to
        // go back to.
        let previous = match old {
            Some(old) if old.on_probation || !was_healthy => old.previous,
            Some(old) => Some(old.current),
            None => None,
        };
        let record = Record {
            current: current.clone(),
            on_probation: !self.probation.is_zero(),
            previous,
        };
        let kept = self
            .store
            .keep_staged(name, &sha256)
            .and_then(|()| self.store.set_record(name, Some(&record)));
        if let Err(e) = kept {
            // It runs, but would not after a restart: say so, and put the
            // running component back so what runs is what is recorded.
            error!(plugin = %name, "the update cannot be recorded: {e}");
            self.restore(name).await;
            return Err(io_error(e));
        }
        info!(
            plugin = %name,
            %from,
            version = %current.version(),
            signer = current.key_id.as_deref().unwrap_or("unsigned"),
            "update installed; on probation for {:?}",
            self.probation
        );
        self.deadlines.remove(name);
        self.set_record(name, Some(record));
        self.report(name, UpdateOutcome::Installed, Some(sha256.clone()), None);
        if self.probation.is_zero() {
            // Recorded as committed already.
            info!(plugin = %name, "update committed (no probation)");
            self.report(name, UpdateOutcome::Committed, Some(sha256.clone()), None);
        }
        Ok(Installed {
            sha256,
            key_id: current.key_id,
            probation_s: self.probation.as_secs(),
            already: false,
        })
    }

    /// Puts back the component the record names (or the config's).
    async fn restore(&mut self, name: &str) {
        let current = self.records.get(name).map(|r| r.current.clone());
        let loaded = self.load_recorded(name, current.as_ref()).await;
        match loaded {
            Ok(loaded) => {
                if let Err(e) = self.swap(name, loaded).await {
                    error!(plugin = %name, "the recorded component did not start again: {e}");
                }
            }
            Err(e) => error!(plugin = %name, "the recorded component cannot be loaded: {e}"),
        }
    }

    /// Loads a recorded field component of `name`, or its config's, off
    /// the async threads (it may compile).
    async fn load_recorded(
        &self,
        name: &str,
        component: Option<&Component>,
    ) -> Result<Loaded, UpdateError> {
        let target = self
            .targets
            .get(name)
            .ok_or_else(|| UpdateError::NoSuchPlugin(name.into()))?;
        let runtime = self.runtime.clone();
        let load = match component {
            Some(component) => {
                let bytes = self.store.component(name, component).map_err(io_error)?;
                check_signature(&self.config, &bytes, name, true)?;
                tokio::task::spawn_blocking(move || {
                    runtime
                        .load(&bytes)
                        .map(|(loaded, _)| loaded)
                        .map_err(|e| UpdateError::Load(e.to_string()))
                })
            }
            None => {
                let (plugin, config) = (target.config.clone(), self.config.clone());
                tokio::task::spawn_blocking(move || {
                    crate::plugins::load(&runtime, &plugin, &config)
                        .map_err(|e| UpdateError::Load(e.to_string()))
                })
            }
        };
        load.await.map_err(|_| UpdateError::Stopped)?
    }

    async fn rollback(&mut self, name: &str, why: &str) -> Result<(), UpdateError> {
        if !self.targets.contains_key(name) {
            return Err(UpdateError::NoSuchPlugin(name.into()));
        }
        let record = self
            .records
            .get(name)
            .cloned()
            .ok_or_else(|| UpdateError::NothingToRollBack(name.into()))?;
        let loaded = self.load_recorded(name, record.previous.as_ref()).await?;
        self.swap(name, loaded).await?;
        let back = record.previous.map(|current| Record {
            current,
            on_probation: false,
            previous: None,
        });
        if let Err(e) = self.store.set_record(name, back.as_ref()) {
            error!(plugin = %name, "the rollback cannot be recorded: {e}; after a restart the rolled-back component may run again");
        }
        warn!(
            plugin = %name,
            version = %record.current.version(),
            "update rolled back: {why}; {} runs again",
            back.as_ref()
                .map_or("the config's component".to_string(), |b| b.current.version())
        );
        self.set_record(name, back);
        self.report(
            name,
            UpdateOutcome::RolledBack,
            Some(record.current.sha256),
            Some(why.into()),
        );
        Ok(())
    }

    /// Rolls back every plugin on probation that faulted.
    async fn roll_back_faulted(&mut self) {
        let faulted: Vec<(String, String)> = {
            let health = self.shared.health.borrow();
            self.deadlines
                .keys()
                .filter_map(|name| {
                    let h = health.get(name)?;
                    (h.state != PluginState::Running).then(|| {
                        (
                            name.clone(),
                            h.last_fault.clone().unwrap_or_else(|| "it faulted".into()),
                        )
                    })
                })
                .collect()
        };
        for (name, fault) in faulted {
            let why = format!("it faulted on probation: {fault}");
            if let Err(e) = self.rollback(&name, &why).await {
                // Never committed now: it stays on probation on disk, so the
                // next start rolls it back; here it just runs, faulty.
                error!(plugin = %name, "the rollback failed: {e}; the faulty update is not committed, and is rolled back at the next start");
                if let Some(mut record) = self.records.get(&name).cloned() {
                    record.on_probation = false;
                    self.set_record(&name, Some(record));
                }
            }
        }
    }

    fn commit_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            if self.healthy(&name) {
                self.commit(&name);
            }
        }
    }

    fn commit(&mut self, name: &str) {
        self.deadlines.remove(name);
        let Some(mut record) = self.records.get(name).cloned() else {
            return;
        };
        record.on_probation = false;
        if let Err(e) = self.store.set_record(name, Some(&record)) {
            error!(plugin = %name, "the commit cannot be recorded: {e}; tried again in a minute");
            self.deadlines.insert(
                name.into(),
                Instant::now() + self.probation.max(Duration::from_secs(60)),
            );
            return;
        }
        info!(plugin = %name, version = %record.current.version(), "update committed");
        let sha256 = record.current.sha256.clone();
        self.set_record(name, Some(record));
        self.report(name, UpdateOutcome::Committed, Some(sha256), None);
    }

    /// Sets what `name` runs from the field, its probation and the version
    /// the status shows.
    fn set_record(&mut self, name: &str, record: Option<Record>) {
        let version = record.as_ref().map(|r| FieldVersion {
            version: r.current.version(),
            on_probation: r.on_probation,
        });
        self.shared.field.send_modify(|field| match version {
            Some(v) => {
                field.insert(name.into(), v);
            }
            None => {
                field.remove(name);
            }
        });
        match record {
            Some(record) => {
                if record.on_probation {
                    self.deadlines
                        .entry(name.into())
                        .or_insert_with(|| Instant::now() + self.probation);
                } else {
                    self.deadlines.remove(name);
                }
                self.records.insert(name.into(), record);
            }
            None => {
                self.deadlines.remove(name);
                self.records.remove(name);
            }
        }
    }

    fn left(&self, name: &str) -> Option<Duration> {
        self.deadlines
            .get(name)
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn list(&self) -> Vec<PluginInfo> {
        let health = self.shared.health.borrow();
        self.targets
            .iter()
            .map(|(name, target)| {
                let record = self.records.get(name);
                let h = health.get(name);
                PluginInfo {
                    name: name.clone(),
                    world: target.kind.world(),
                    source: if record.is_some() { "field" } else { "config" },
                    current: record.map(|r| r.current.clone()),
                    version: record.map(|r| r.current.version()),
                    probation_left_s: self.left(name).map(|d| d.as_secs()),
                    previous: record.and_then(|r| r.previous.clone()),
                    state: match h.map_or(PluginState::Running, |h| h.state) {
                        PluginState::Running if self.deadlines.contains_key(name) => "probation",
                        state => state.name(),
                    },
                    faults: h.map_or(0, |h| h.faults),
                    last_fault: h.and_then(|h| h.last_fault.clone()),
                }
            })
            .collect()
    }
}
