//! The running unit: board, state, plugins, and the event loop between them.
//!
//! Input edges from the board go to the input rules; the actions plugins take
//! come back on one channel and are carried out or logged here.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use firmware_bridge::board::{Board, Contact as BoardContact, SimBoard};
use tokio::sync::{broadcast, mpsc};
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
        let (sim, board): (Option<Arc<SimBoard>>, Arc<dyn Board>) = match config.board.kind {
            BoardKind::Sim => {
                let sim = Arc::new(SimBoard::new(config.board.inputs, config.board.outputs));
                (Some(sim.clone()), sim)
            }
            BoardKind::Linux => anyhow::bail!(
                "board kind \"linux\" is not available in this build yet; use kind = \"sim\""
            ),
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
        })
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
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
        self.plugins.shutdown();
    }
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
