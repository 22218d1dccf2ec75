//! The running unit: its shared state, how it is built from a config, and
//! the event loop between the board, the modem, the plugins and the outbox.
//!
//! - [`shared`]: what the unit's parts share, and its state channels.
//! - [`action`]: the effects plugins, the HTTP API and the server ask for.
//! - [`build`]: a unit from a config.
//! - [`event_loop`]: input edges and SMS to the plugins, actions to the
//!   outbox, the modem and the server link.
//! - [`leds`]: what the status LEDs show, following the state channels.
//! - [`events`]: the live events, numbered, for the web panel's stream.
//! - [`password`]: the wrong-password limits, per sender and per unit.
//! - [`watchdog`]: systemd's service watchdog, told only while all is well.
//!
//! `docs/architecture.md` walks an input edge and an SMS through them.

pub mod action;
mod build;
mod event_loop;
pub mod events;
pub mod leds;
pub mod password;
pub mod shared;
pub mod watchdog;

use std::path::PathBuf;
use std::sync::Arc;

use firmware_bridge::board::{InputEdge, SimBoard};
use firmware_bridge::leds::UnitState;
use firmware_bridge::modem::sim::SimModem;
use tokio::sync::{broadcast, mpsc, watch};

pub use action::Action;
pub use build::{sim_board, sim_board_debounced};
pub use shared::{LinkState, Shared};

use crate::config::{BoardKind, Config};
use crate::modem::{Incoming, Outgoing};
use crate::outbox::Outbox;
use crate::plugins::PluginManager;
use crate::server::Control;

/// A unit built from a config, ready to run.
pub struct Unit {
    /// The durable outbox.
    pub outbox: Arc<Outbox>,
    /// The simulated board, when the config asks for one.
    pub sim: Option<Arc<SimBoard>>,
    /// What the unit's parts share.
    pub shared: Arc<Shared>,
    /// The plugins.
    pub plugins: PluginManager,
    /// The simulated modem, when the config asks for one.
    pub sim_modem: Option<SimModem>,
    /// The update service: installs and rollbacks of plugin components.
    pub updates: crate::updates::Updates,
    actions: mpsc::UnboundedReceiver<Vec<Action>>,
    edges: broadcast::Receiver<InputEdge>,
    led_state: watch::Sender<UnitState>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    outgoing: Option<mpsc::UnboundedSender<Outgoing>>,
    /// The modem task, while the unit has a modem that opened.
    modem_task: Option<tokio::task::JoinHandle<()>>,
    link: Option<mpsc::UnboundedSender<Control>>,
    allow_from: Vec<larm_rules::PhoneNumber>,
    /// The simulated board's inputs, kept across restarts.
    sim_inputs: Option<Arc<build::SimInputs>>,
}

impl Unit {
    /// What the status LEDs show, and its changes.
    pub fn led_state(&self) -> watch::Receiver<UnitState> {
        self.led_state.subscribe()
    }
}

/// How [`Unit::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Asked to stop.
    Stopped,
    /// A plugin asked for the whole unit to restart.
    Restart,
}

/// Sleeps until `at`, or forever for None: how the unit's tasks wait for
/// the next thing that comes with time, beside their channels.
pub async fn sleep_until(at: Option<impl Into<tokio::time::Instant>>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The unit's monotonic clock: tokio's, which is the system's, except on
/// the virtual clock of `larmd plugin test` (paused and advanced by the
/// scenario). Plugins' clocks, timers and timed outputs all read it.
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The config's data dir, or the default: a local folder on the simulated
/// board, `/var/lib/larm` on a real one.
pub fn data_dir(config: &Config) -> PathBuf {
    config
        .data_dir
        .clone()
        .unwrap_or_else(|| match config.board.kind() {
            BoardKind::Sim => PathBuf::from("larm-data"),
            BoardKind::Linux => PathBuf::from("/var/lib/larm"),
        })
}
