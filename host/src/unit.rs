//! The running unit: board, state, plugins, and the event loop between them.
//!
//! Input edges from the board go to the input rules; the actions plugins take
//! come back on one channel and are carried out or logged here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use firmware_bridge::board::{Board, CardState, Contact as BoardContact, SimBoard, SimConfig};
use firmware_bridge::leds::{self, ErrorCode, UnitState};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{info, warn};

use crate::config::{BoardKind, Config};
use crate::plugins::PluginManager;
use crate::plugins::bindings::larm::plugin::types::{Contact, InputEvent};
use crate::plugins::caps::{Action, Services};
use crate::plugins::runtime::Runtime;
use crate::state::State;

/// A unit built from a config, ready to run.
pub struct Unit {
    /// The simulated board, when the config asks for one.
    pub sim: Option<Arc<SimBoard>>,
    /// Shared services (board, state, action channel).
    pub services: Arc<Services>,
    /// The plugins.
    pub plugins: PluginManager,
    actions: mpsc::UnboundedReceiver<Action>,
    edges: broadcast::Receiver<firmware_bridge::board::InputEdge>,
    led_state: watch::Sender<UnitState>,
}

impl Unit {
    /// Builds the unit: opens the state in the data dir, the board, and
    /// loads every plugin (a plugin that cannot be loaded is logged and
    /// left out; the unit runs the others).
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        let data_dir = data_dir(config);
        let state = Arc::new(
            State::open(&data_dir)
                .with_context(|| format!("opening the state in {}", data_dir.display()))?,
        );
        let b = &config.board;
        let debounce = Duration::from_millis(b.debounce_ms);
        let (sim, board): (Option<Arc<SimBoard>>, Arc<dyn Board>) = match (b.kind, &b.gpio) {
            (BoardKind::Sim, _) => {
                let sim = Arc::new(SimBoard::with(SimConfig {
                    inputs: b.inputs,
                    outputs: b.outputs,
                    debounce,
                    card: b.extended.map(|c| (c.inputs, c.outputs)),
                }));
                (Some(sim.clone()), sim)
            }
            (BoardKind::Linux, Some(gpio)) => (
                None,
                firmware_bridge::gpio::open(gpio.get_ref(), debounce)
                    .context("opening the board")?,
            ),
            (BoardKind::Linux, None) => unreachable!("validated on config load"),
        };
        let edges = board.subscribe();
        let (tx, actions) = mpsc::unbounded_channel();
        let services = Arc::new(Services::new(board, state, tx));
        let runtime = Runtime::new(Some(data_dir.join("cache")))
            .map_err(|e| anyhow::anyhow!("starting the plugin runtime: {e:#}"))?;
        let mut plugins = PluginManager::new(runtime, services.clone());
        plugins.start_all(config);
        Ok(Self {
            sim,
            services,
            plugins,
            actions,
            edges,
            led_state: watch::channel(UnitState::default()).0,
        })
    }

    /// What the status LEDs show, and its changes.
    pub fn led_state(&self) -> watch::Receiver<UnitState> {
        self.led_state.subscribe()
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let leds = tokio::spawn(leds::drive(
            self.services.board.clone(),
            self.led_state.subscribe(),
        ));
        let status = tokio::spawn(watch_status(self.services.clone(), self.led_state.clone()));
        loop {
            tokio::select! {
                edge = self.edges.recv() => match edge {
                    Ok(edge) => {
                        let contact = match edge.contact {
                            BoardContact::Closed => Contact::Closed,
                            BoardContact::Open => Contact::Open,
                        };
                        info!("input {} {}", edge.input.0, match contact {
                            Contact::Closed => "closed",
                            Contact::Open => "open",
                        });
                        self.plugins.input(InputEvent {
                            input: edge.input.0,
                            contact,
                            at_ms: self.services.monotonic_ms(edge.at),
                        });
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!("{n} input edges were lost: the event loop fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(action) = self.actions.recv() => carry_out(action),
                () = &mut shutdown => break,
            }
        }
        info!("stopping plugins");
        status.abort();
        leds.abort();
        self.plugins.shutdown();
    }
}

/// How often the unit's state is looked at for the status LEDs.
const STATUS_POLL: Duration = Duration::from_millis(250);

/// Keeps the status LEDs' state current: what the unit knows of its card
/// now; the modem and server link add theirs as they come.
async fn watch_status(services: Arc<Services>, led_state: watch::Sender<UnitState>) {
    let mut card = services.board.card();
    let mut tick = tokio::time::interval(STATUS_POLL);
    loop {
        let state = unit_state(&services, *card.borrow_and_update());
        led_state.send_if_modified(|shown| {
            let changed = *shown != state;
            if changed {
                *shown = state;
            }
            changed
        });
        tokio::select! {
            _ = tick.tick() => {}
            _ = card.changed() => {}
        }
    }
}

/// What the LEDs should show.
fn unit_state(services: &Services, card: CardState) -> UnitState {
    let mut state = UnitState {
        server_connected: *services.server_connected.lock().unwrap(),
        ..UnitState::default()
    };
    if card == CardState::Missing {
        state.errors.insert(ErrorCode::ExtendedIo);
    }
    state
}

/// Carries out or logs what a plugin asked for. The modem and the server
/// link are not part of this build yet: their actions are logged as not sent.
fn carry_out(action: Action) {
    match action {
        Action::Output { by, output, on } => {
            info!(
                "output {output} {} (by {by})",
                if on { "on" } else { "off" }
            );
        }
        Action::Sms { by, to, text } => {
            warn!("SMS to {to} (by {by}) not sent, no modem driver in this build: {text:?}");
        }
        Action::Call { by, number, ring_s } => {
            warn!(
                "call to {number} for {ring_s} s (by {by}) not made, no modem driver in this build"
            );
        }
        Action::Report { by, report } => info!("report (by {by}): {report:?}"),
        Action::Connect { by } => info!("server connection requested (by {by})"),
        Action::SetInterval { by, minutes } => {
            info!("connection interval set to {minutes} min (by {by})");
        }
        Action::Restart { by, target } => warn!("restart of {target:?} requested (by {by})"),
        Action::FactoryReset { by } => warn!("factory settings restored (by {by})"),
    }
}

/// The config's data dir, or the default: a local folder on the simulated
/// board, `/var/lib/larm` on a real one.
pub fn data_dir(config: &Config) -> PathBuf {
    config
        .data_dir
        .clone()
        .unwrap_or_else(|| match config.board.kind {
            BoardKind::Sim => PathBuf::from("larm-data"),
            BoardKind::Linux => PathBuf::from("/var/lib/larm"),
        })
}
