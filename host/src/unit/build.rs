//! Building a unit from its config: state, board, outbox, plugins, the
//! server link and the modem task.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use firmware_bridge::board::{Board, Contact, InputId, SimBoard, SimConfig};
use firmware_bridge::leds::UnitState;
use firmware_bridge::modem::sim::SimModem;
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::password::PasswordGuard;
use super::shared::Shared;
use super::{Unit, data_dir};
use crate::config::{BoardConfig, BoardSource, Config, ModemLink, PluginSource};
use crate::modem;
use crate::outbox::{self, Outbox};
use crate::outputs::Outputs;
use crate::plugins::PluginManager;
use crate::plugins::runtime::Runtime;
use crate::quota::Quotas;
use crate::server::Link;
use crate::state::State;
use crate::updates::Updates;
use crate::updates::store::Store;

/// How long the first server sync waits for the modem's status, so it
/// shows the network rather than a modem not read yet.
const FIRST_SYNC_WAITS: Duration = Duration::from_secs(10);

/// A simulated board of the shape `b` has (a real board's wiring gives
/// its counts): its inputs, outputs (ALARM the base board's last) and card,
/// with the inputs in `closed` closed.
pub fn sim_board(b: &BoardConfig, closed: &[u8]) -> SimBoard {
    sim_board_debounced(b, closed, Duration::from_millis(b.debounce_ms))
}

/// [`sim_board`], its inputs debounced for `debounce` (zero: an edge
/// counts at once, as a scenario's edges, which are debounced already).
pub fn sim_board_debounced(b: &BoardConfig, closed: &[u8], debounce: Duration) -> SimBoard {
    let ((inputs, outputs), card) = b.shape();
    SimBoard::with(SimConfig {
        inputs,
        outputs,
        debounce,
        card,
        closed: closed.to_vec(),
    })
}

/// The state record of the simulated board's closed inputs: its wires
/// stay as they were across a restart, as a real board's do (where they
/// are read again). It is written beside each edge's handling, so an input
/// closed when the unit was killed is closed at its next start.
const SIM_INPUTS: &str = "sim.inputs";

/// Keeps which inputs of the simulated board are closed, off the event
/// loop (each write is an fsync). At most one write waits at a time: it
/// reads the board when it runs, so a burst of edges costs one write, and
/// the last write keeps the inputs as they are.
pub(super) struct SimInputs {
    sim: Arc<SimBoard>,
    shared: Arc<Shared>,
    /// A write is queued and has not read the board yet.
    queued: std::sync::atomic::AtomicBool,
    /// One write at a time, in order.
    writing: std::sync::Mutex<()>,
}

impl SimInputs {
    /// Keeps the inputs of `sim` in `shared`'s state.
    pub(super) fn new(sim: Arc<SimBoard>, shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self {
            sim,
            shared,
            queued: std::sync::atomic::AtomicBool::new(false),
            writing: std::sync::Mutex::new(()),
        })
    }

    /// After an edge: writes the inputs soon, unless a write is queued.
    pub(super) fn changed(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write());
    }

    /// Writes the inputs as they are now (at a stop, where a queued write
    /// might not run).
    pub(super) fn write(&self) {
        let _one_at_a_time = self.writing.lock();
        self.queued
            .store(false, std::sync::atomic::Ordering::Release);
        let closed: Vec<u8> = (1..=self.sim.input_count())
            .filter(|&i| self.sim.read_input(InputId(i)) == Ok(Contact::Closed))
            .collect();
        if let Err(e) = self.shared.state.set_record(SIM_INPUTS, &closed) {
            tracing::warn!("cannot keep the simulated inputs: {e}");
        }
    }
}

impl Shared {
    /// Takes the config's rules: the password limits, the outputs' owners,
    /// the quotas and the device settings' defaults.
    pub(crate) fn follow_config(&mut self, config: &Config) {
        self.password = PasswordGuard::new(&config.sms);
        self.outputs = Outputs::new(
            self.board.clone(),
            self.state.clone(),
            config.owners.clone(),
        );
        self.quotas = Quotas::new(
            self.state.clone(),
            &config.quotas,
            config
                .plugins
                .iter()
                .map(|p| (p.name.get_ref().as_str(), &p.quota, p.bypass_quotas)),
        );
        self.setting_defaults = config.setting_defaults();
    }
}

impl Unit {
    /// Builds the unit: opens the state in the data dir, the board, and
    /// loads every plugin (a plugin that cannot be loaded is logged and
    /// left out; the unit runs the others), and starts the modem task.
    /// `config_corrupt` says the config file was bad and `config` is the
    /// last good one.
    pub async fn build(config: &Config, config_corrupt: bool) -> anyhow::Result<Self> {
        Self::build_recording(config, config_corrupt, None).await
    }

    /// Builds the unit as [`Unit::build`] does; with a `recorder`, every
    /// event its plugins receive and every action they take is recorded.
    pub async fn build_recording(
        config: &Config,
        config_corrupt: bool,
        recorder: Option<Arc<crate::testkit::record::Recorder>>,
    ) -> anyhow::Result<Self> {
        let data_dir = data_dir(config);
        let state = Arc::new(
            State::open(&data_dir)
                .with_context(|| format!("opening the state in {}", data_dir.display()))?,
        );
        let b = &config.board;
        let debounce = Duration::from_millis(b.debounce_ms);
        let (sim, board): (Option<Arc<SimBoard>>, Arc<dyn Board>) = match &b.source {
            BoardSource::Sim => {
                let closed = match state.record(SIM_INPUTS) {
                    Ok(Some(closed)) => closed,
                    _ => b.closed_at_start.clone(),
                };
                let sim = Arc::new(sim_board(b, &closed));
                (Some(sim.clone()), sim)
            }
            BoardSource::Linux(gpio) => (
                None,
                firmware_bridge::gpio::open(gpio, debounce).context("opening the board")?,
            ),
        };
        let edges = board.subscribe();
        let outbox = Arc::new(
            Outbox::open(
                &data_dir,
                config.alarm.route.get_ref().clone(),
                Duration::from_secs(config.alarm.escalate_after_s.get()),
            )
            .with_context(|| format!("opening the outbox in {}", data_dir.display()))?,
        );
        let (tx, actions) = mpsc::unbounded_channel();
        let mut shared = Shared::new(board, state, outbox.clone(), tx);
        shared.follow_config(config);
        for plugin in &config.plugins {
            if !plugin.bypass_quotas
                && matches!(&plugin.source, PluginSource::Builtin(b) if b.get_ref() == "std-input-rules")
            {
                tracing::warn!(
                    "plugin `{}` sends the alarms but is held by the unit's quotas (100 SMS a day unless [quotas.unit] says otherwise); set `bypass_quotas = true` in its entry so alarms get out",
                    plugin.name.get_ref()
                );
            }
        }
        // A state rebuilt from its backup (or lost with none) is shown like
        // a corrupt config, red steady, until someone looks at the unit.
        let state_restored = shared.state.restored().map(str::to_string);
        if let Some(why) = &state_restored {
            tracing::error!("the unit's state was damaged: {why}");
        }
        shared.config_corrupt = config_corrupt || state_restored.is_some();
        let shared = Arc::new(shared);
        if let Some(why) = state_restored {
            // The server hears of it on its health events, as of a plugin
            // that faulted and was brought back.
            use crate::plugins::bindings::larm::plugin::types::PluginState;
            shared.report_health("state", PluginState::Restarted, 1, why);
        }
        tokio::spawn(super::password::report_lockouts(&shared));
        shared.emit_all(shared.outputs.restore());
        tokio::spawn(crate::outputs::end_timed(shared.clone()));
        let (layout, memory_cap) = config.runtime.memory_layout();
        let runtime = Runtime::with_memory(Some(data_dir.join("cache")), layout, memory_cap)
            .map_err(|e| anyhow::anyhow!("starting the plugin runtime: {e:#}"))?;
        let mut plugins = PluginManager::new(runtime.clone(), shared.clone());
        if let Some(recorder) = recorder {
            tokio::spawn(recorder.clone().follow(shared.clone()));
            plugins.record(recorder);
        }
        let store = Store::new(&data_dir);
        let started = plugins.start_all(config, &store);
        if config.updates.allow_unsigned {
            tracing::warn!(
                "[updates] allow_unsigned = true: components nobody signed are run and installed; for development only"
            );
        }
        let updates = Updates::start(
            runtime,
            shared.clone(),
            store,
            config.updates.clone(),
            plugins.targets(config),
            started.field,
            started.rolled_back,
        );
        let link = match &config.server {
            Some(_) if plugins.adapters().is_empty() => {
                tracing::error!(
                    "[server] is set but no server-adapter plugin runs: the server link is off"
                );
                None
            }
            Some(server) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let link = Link::new(
                    server.clone(),
                    shared.clone(),
                    outbox.clone(),
                    plugins.adapters(),
                    rx,
                    config
                        .updates
                        .enabled()
                        .then(|| (updates.clone(), config.updates.max_mqtt_bytes)),
                );
                let mut modem = shared.modem.subscribe();
                let has_modem = config.modem.is_some();
                tokio::spawn(async move {
                    if has_modem {
                        let _ =
                            tokio::time::timeout(FIRST_SYNC_WAITS, modem.wait_for(Option::is_some))
                                .await;
                    }
                    drop(modem);
                    link.run().await;
                });
                Some(tx)
            }
            None => None,
        };

        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let mut sim_modem = None;
        let mut outgoing = None;
        let mut modem_task = None;
        if let Some(m) = &config.modem {
            let port = match &m.link {
                ModemLink::Port(port) => port.clone(),
                ModemLink::Simulator(profile) => {
                    let simulated =
                        SimModem::start(*profile).context("starting the modem simulator")?;
                    info!(port = %simulated.path().display(), "modem simulator running");
                    let port = simulated.path().to_path_buf();
                    sim_modem = Some(simulated);
                    port
                }
            };
            match modem::open(&port, m.baud).await {
                Ok((driver, stored)) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(outbox::deliver_to_modem(
                        outbox.clone(),
                        tx.clone(),
                        shared.modem.subscribe(),
                    ));
                    outgoing = Some(tx);
                    modem_task = Some(tokio::spawn(modem::run(
                        driver,
                        stored,
                        Duration::from_secs(m.status_interval_s.get()),
                        shared.clone(),
                        incoming_tx,
                        rx,
                    )));
                }
                // The unit still runs its inputs and outputs; the red LED
                // shows the modem error.
                Err(e) => {
                    tracing::error!("modem on {}: {e}", port.display());
                    shared.modem.send_replace(Some(Default::default()));
                }
            }
        }
        Ok(Self {
            outbox,
            updates,
            link,
            sim_inputs: sim.clone().map(|sim| SimInputs::new(sim, shared.clone())),
            sim,
            shared,
            plugins,
            sim_modem,
            actions,
            edges,
            incoming,
            outgoing,
            modem_task,
            allow_from: config.sms.allow_from.clone(),
            led_state: watch::channel(UnitState::default()).0,
        })
    }
}
