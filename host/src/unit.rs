//! The running unit: board, state, plugins, and the event loop between them.
//!
//! Input edges from the board go to the input rules; the actions plugins take
//! come back on one channel and are carried out or logged here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use firmware_bridge::board::{Board, CardState, Contact as BoardContact, SimBoard, SimConfig};
use firmware_bridge::leds::{self, ErrorCode, Network, UnitState};
use firmware_bridge::modem::sim::{Profile, SimModem};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{error, info, warn};

use crate::config::{BoardKind, Config, Step, normalize_number};
use crate::modem::{self, Incoming, Outgoing};
use crate::outbox::{self, Item, New, Outbox};
use crate::plugins::PluginManager;
use crate::plugins::bindings::larm::plugin::system::RestartTarget;
use crate::plugins::bindings::larm::plugin::types::{
    CallEvent, Contact, InputEvent, NetworkType, OutputChange, PluginState, Report, SimState,
    SmsMessage,
};
use crate::plugins::caps::{Action, Services};
use crate::plugins::runtime::Runtime;
use crate::server::{Control, Link};
use crate::state::State;

/// A unit built from a config, ready to run.
pub struct Unit {
    /// The durable outbox.
    pub outbox: Arc<Outbox>,
    /// The simulated board, when the config asks for one.
    pub sim: Option<Arc<SimBoard>>,
    /// Shared services (board, state, action channel).
    pub services: Arc<Services>,
    /// The plugins.
    pub plugins: PluginManager,
    /// The simulated modem, when the config asks for one.
    pub sim_modem: Option<SimModem>,
    actions: mpsc::UnboundedReceiver<Vec<Action>>,
    edges: broadcast::Receiver<firmware_bridge::board::InputEdge>,
    led_state: watch::Sender<UnitState>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    outgoing: Option<mpsc::UnboundedSender<Outgoing>>,
    link: Option<mpsc::UnboundedSender<Control>>,
    allow_from: Vec<String>,
}

impl Unit {
    /// Builds the unit: opens the state in the data dir, the board, and
    /// loads every plugin (a plugin that cannot be loaded is logged and
    /// left out; the unit runs the others), and starts the modem task.
    /// `config_corrupt` says the config file was bad and `config` is the
    /// last good one.
    pub async fn build(config: &Config, config_corrupt: bool) -> anyhow::Result<Self> {
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
                    closed: b.closed_at_start.clone(),
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
        let mut services = Services::new(board, state, tx);
        services.max_password_failures = config.sms.password_failures.get();
        services.lockout = Duration::from_secs(config.sms.lockout_s);
        services.config_corrupt = config_corrupt;
        let outbox = Arc::new(
            Outbox::open(
                &data_dir,
                config.alarm.route.get_ref().clone(),
                Duration::from_secs(config.alarm.escalate_after_s.get()),
            )
            .with_context(|| format!("opening the outbox in {}", data_dir.display()))?,
        );
        let _ = services.outbox.set(outbox.clone());
        let services = Arc::new(services);
        let runtime = Runtime::new(Some(data_dir.join("cache")))
            .map_err(|e| anyhow::anyhow!("starting the plugin runtime: {e:#}"))?;
        let mut plugins = PluginManager::new(runtime, services.clone());
        plugins.start_all(config);
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
                    services.clone(),
                    outbox.clone(),
                    plugins.adapters(),
                    rx,
                );
                let services = services.clone();
                let has_modem = config.modem.is_some();
                tokio::spawn(async move {
                    // The first sync's status should show the network, not
                    // a modem not read yet.
                    if has_modem {
                        let _ = tokio::time::timeout(Duration::from_secs(10), async {
                            while services.modem.lock().unwrap().is_none() {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        })
                        .await;
                    }
                    link.run().await;
                });
                Some(tx)
            }
            None => None,
        };

        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let mut sim_modem = None;
        let mut outgoing = None;
        if let Some(m) = &config.modem {
            let port = match (&m.port, &m.simulator) {
                (Some(port), _) => port.clone(),
                (None, Some(profile)) => {
                    let profile = Profile::by_name(profile)
                        .with_context(|| format!("no modem simulator profile `{profile}`"))?;
                    let simulated =
                        SimModem::start(profile).context("starting the modem simulator")?;
                    info!(port = %simulated.path().display(), "modem simulator running");
                    let port = simulated.path().to_path_buf();
                    sim_modem = Some(simulated);
                    port
                }
                (None, None) => unreachable!("validated on config load"),
            };
            match modem::open(&port, m.baud).await {
                Ok((driver, stored)) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(outbox::deliver_to_modem(outbox.clone(), tx.clone()));
                    outgoing = Some(tx);
                    tokio::spawn(modem::run(
                        driver,
                        stored,
                        Duration::from_secs(m.status_interval_s.get()),
                        services.clone(),
                        incoming_tx,
                        rx,
                    ));
                }
                // The unit still runs its inputs and outputs; the red LED
                // shows the modem error.
                Err(e) => {
                    tracing::error!("modem on {}: {e}", port.display());
                    *services.modem.lock().unwrap() = Some(Default::default());
                }
            }
        }
        Ok(Self {
            outbox,
            link,
            sim,
            services,
            plugins,
            sim_modem,
            actions,
            edges,
            incoming,
            outgoing,
            allow_from: config.sms.allow_from.clone(),
            led_state: watch::channel(UnitState::default()).0,
        })
    }

    /// What the status LEDs show, and its changes.
    pub fn led_state(&self) -> watch::Receiver<UnitState> {
        self.led_state.subscribe()
    }

    /// Runs until `shutdown` resolves, or a plugin asks for the unit to
    /// restart (`RESTART ALL`), which the caller carries out.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Ending {
        tokio::pin!(shutdown);
        let leds = tokio::spawn(leds::drive(
            self.services.board.clone(),
            self.led_state.subscribe(),
        ));
        let status = tokio::spawn(watch_status(self.services.clone(), self.led_state.clone()));
        let mut ending = Ending::Stopped;
        'events: loop {
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
                Some(mut event) = self.actions.recv() => {
                    // Restarts go last, so the replies queued with them are
                    // sent first (as `system.restart` promises).
                    event.sort_by_key(|a| matches!(a, Action::Restart { .. }));
                    let restart = event
                        .iter()
                        .find_map(|a| match a {
                            Action::Restart { by, target: RestartTarget::Unit } => Some(by.clone()),
                            _ => None,
                        });
                    self.carry_out(event);
                    if let Some(by) = restart {
                        warn!("restart of the unit requested (by {by})");
                        self.flush_modem().await;
                        ending = Ending::Restart;
                        break 'events;
                    }
                }
                Some(incoming) = self.incoming.recv() => match incoming {
                    Incoming::Sms(sms) => {
                        let sender = sms.sender.to_string();
                        info!(%sender, "SMS received: {:?}", sms.text);
                        if !self.allowed(&sender) {
                            warn!(%sender, "SMS dropped: the sender is not in [sms] allow_from");
                            continue;
                        }
                        let message = SmsMessage {
                            sender: sender.clone(),
                            text: sms.text,
                            sent_at: sms.timestamp.unix,
                        };
                        if self.plugins.sms(message).await.is_none() {
                            info!(%sender, "no command set took the SMS");
                        }
                    }
                    Incoming::Call(caller) => {
                        info!(caller = caller.as_deref().unwrap_or("unknown"), "incoming call");
                        self.plugins.call(CallEvent { caller }).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        info!("stopping plugins");
        status.abort();
        leds.abort();
        self.plugins.shutdown();
        ending
    }

    /// Waits (two minutes at most) until the SMS and calls queued are
    /// sent, so the reply to `RESTART ALL` goes before the restart. What is
    /// not sent by then stays in the outbox for after it.
    async fn flush_modem(&self) {
        if self.outgoing.is_some() {
            modem_drained(&self.outbox).await;
        }
    }
}

/// Waits (two minutes at most) until the outbox has no SMS or call due.
async fn modem_drained(outbox: &Outbox) {
    let _ = tokio::time::timeout(Duration::from_secs(120), async {
        while outbox.modem_pending() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// How [`Unit::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Asked to stop.
    Stopped,
    /// A plugin asked for the whole unit to restart.
    Restart,
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

/// The yellow LED stays lit at least this long, so a send that takes a
/// moment is still seen.
const YELLOW_AT_LEAST: Duration = Duration::from_secs(1);

/// What the LEDs should show.
fn unit_state(services: &Services, card: CardState) -> UnitState {
    let mut state = UnitState {
        server_connected: *services.server_connected.lock().unwrap(),
        sms_received: *services.last_sms.lock().unwrap(),
        config_corrupt: services.config_corrupt,
        ..UnitState::default()
    };
    if card == CardState::Missing {
        state.errors.insert(ErrorCode::ExtendedIo);
    }
    if *services.server_failing.lock().unwrap() {
        state.errors.insert(ErrorCode::Server);
    }
    // A plugin that keeps failing is an internal error: restarting helps
    // only if the fault was passing, which is what the manual says to try.
    let quarantined = services
        .health
        .lock()
        .unwrap()
        .values()
        .any(|h| h.state == PluginState::Quarantined);
    if quarantined {
        state.errors.insert(ErrorCode::Internal);
    }
    if let Some(modem) = services.modem.lock().unwrap().as_ref() {
        state.busy = modem.busy
            || modem
                .busy_ended
                .is_some_and(|t| t.elapsed() < YELLOW_AT_LEAST);
        state.signal_bars = modem.signal_bars;
        state.network = match modem.network {
            NetworkType::Lte => Network::Lte,
            NetworkType::Gsm | NetworkType::Umts => Network::Gsm,
            NetworkType::None => Network::None,
        };
        let code = if !modem.answering {
            Some(ErrorCode::Modem)
        } else if modem.sim != SimState::Ready {
            Some(ErrorCode::Sim)
        } else if modem.network == NetworkType::None {
            Some(ErrorCode::NoNetwork)
        } else if modem.signal_bars <= 1 {
            Some(ErrorCode::LowSignal)
        } else {
            None
        };
        state.errors.extend(code);
    }
    state
}

impl Unit {
    /// Whether `sender` may send commands (`[sms] allow_from`).
    fn allowed(&self, sender: &str) -> bool {
        let sender = normalize_number(sender);
        self.allow_from.is_empty()
            || self
                .allow_from
                .iter()
                .any(|a| normalize_number(a) == sender)
    }

    /// Carries out the actions of one event: SMS, calls and server reports
    /// go to the outbox (an alarm's together, so they can escalate), the
    /// rest to the modem, the server link or the log.
    fn carry_out(&self, event: Vec<Action>) {
        let alarm = event.iter().any(|a| {
            matches!(
                a,
                Action::Report {
                    report: Report::Alarm(_),
                    ..
                }
            )
        });
        let step = |s: Step| alarm.then_some(s);
        let mut queue = Vec::new();
        let mut restart_modem = false;
        for action in event {
            match action {
                Action::Output { by, output, on } => {
                    info!(
                        "output {output} {} (by {by})",
                        if on { "on" } else { "off" }
                    );
                    queue.extend(self.for_server(Report::OutputChanged(OutputChange {
                        output,
                        on,
                        by,
                    })));
                }
                Action::Sms { by, to, text } => {
                    info!("SMS to {to} (by {by}): {text:?}");
                    queue.extend(self.for_modem(Item::Sms { to, text }, step(Step::Sms)));
                }
                Action::Call { by, number, ring_s } => {
                    info!("alarm call to {number} for {ring_s} s (by {by})");
                    queue.extend(self.for_modem(Item::Call { number, ring_s }, step(Step::Call)));
                }
                Action::Report { by, report } => {
                    info!("report (by {by}): {report:?}");
                    queue.extend(self.for_server(report).map(|mut n| {
                        n.step = step(Step::Server);
                        n
                    }));
                }
                Action::Connect { by } => {
                    info!("server connection requested (by {by})");
                    self.to_link(Control::Connect);
                }
                Action::SetInterval { by, minutes } => {
                    info!("connection interval set to {minutes} min (by {by})");
                    self.to_link(Control::Interval(minutes));
                }
                Action::Restart {
                    by,
                    target: RestartTarget::Modem,
                } => {
                    info!("modem restart requested (by {by})");
                    restart_modem = true;
                }
                // The event loop ends the run after this event.
                Action::Restart {
                    target: RestartTarget::Unit,
                    ..
                } => {}
                Action::FactoryReset { by } => warn!("factory settings restored (by {by})"),
            }
        }
        if let Err(e) = self.outbox.push(queue) {
            error!("{e}: the event's SMS, calls and reports are lost");
        }
        if restart_modem {
            match &self.outgoing {
                // After the replies queued with it (as `system.restart` promises).
                Some(modem) => {
                    let (outbox, modem) = (self.outbox.clone(), modem.clone());
                    tokio::spawn(async move {
                        modem_drained(&outbox).await;
                        let _ = modem.send(Outgoing::Restart);
                    });
                }
                None => warn!("no modem to restart"),
            }
        }
    }

    /// An outbox entry for the modem, if the unit has one.
    fn for_modem(&self, item: Item, step: Option<Step>) -> Option<New> {
        if self.outgoing.is_none() {
            warn!("no modem: {item:?} not sent");
            return None;
        }
        Some(New { item, step })
    }

    /// An outbox entry for the server, if the unit has a server link.
    fn for_server(&self, report: Report) -> Option<New> {
        self.link.as_ref()?;
        Some(New {
            item: Item::Report(report),
            step: None,
        })
    }

    fn to_link(&self, control: Control) {
        match &self.link {
            Some(link) => {
                let _ = link.send(control);
            }
            None => info!("no server link: {control:?} has no effect"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::bindings::larm::plugin::types::PluginHealth;
    use crate::plugins::caps::ModemStatus;

    fn services() -> Services {
        Services::new(
            Arc::new(SimBoard::new(1, 1)),
            Arc::new(State::in_memory().unwrap()),
            mpsc::unbounded_channel().0,
        )
    }

    fn healthy_modem() -> ModemStatus {
        ModemStatus {
            answering: true,
            sim: SimState::Ready,
            network: NetworkType::Lte,
            signal_bars: 4,
            ..ModemStatus::default()
        }
    }

    fn errors(services: &Services) -> Vec<ErrorCode> {
        unit_state(services, CardState::NotFitted)
            .errors
            .into_iter()
            .collect()
    }

    #[test]
    fn no_modem_configured_shows_no_modem_codes() {
        assert!(errors(&services()).is_empty());
    }

    #[test]
    fn modem_states_map_to_the_manuals_codes() {
        let s = services();
        let set = |m: ModemStatus| *s.modem.lock().unwrap() = Some(m);
        set(healthy_modem());
        assert!(errors(&s).is_empty());
        let state = unit_state(&s, CardState::NotFitted);
        assert_eq!((state.signal_bars, state.network), (4, Network::Lte));
        set(ModemStatus::default());
        assert_eq!(errors(&s), [ErrorCode::Modem], "not answering: code 4");
        set(ModemStatus {
            sim: SimState::PinRequired,
            ..healthy_modem()
        });
        assert_eq!(errors(&s), [ErrorCode::Sim]);
        set(ModemStatus {
            network: NetworkType::None,
            ..healthy_modem()
        });
        assert_eq!(errors(&s), [ErrorCode::NoNetwork]);
        set(ModemStatus {
            signal_bars: 1,
            ..healthy_modem()
        });
        assert_eq!(errors(&s), [ErrorCode::LowSignal]);
        set(ModemStatus {
            busy_ended: Some(std::time::Instant::now()),
            ..healthy_modem()
        });
        assert!(
            unit_state(&s, CardState::NotFitted).busy,
            "yellow lingers after a send"
        );
    }

    #[test]
    fn card_quarantine_and_corrupt_config() {
        let mut s = services();
        assert_eq!(
            unit_state(&s, CardState::Missing)
                .errors
                .into_iter()
                .collect::<Vec<_>>(),
            [ErrorCode::ExtendedIo]
        );
        s.health.lock().unwrap().insert(
            "rules".into(),
            PluginHealth {
                name: "rules".into(),
                state: PluginState::Quarantined,
                faults: 3,
                last_fault: None,
            },
        );
        assert_eq!(
            errors(&s),
            [ErrorCode::Internal],
            "a quarantined plugin: code 10"
        );
        s.config_corrupt = true;
        assert!(unit_state(&s, CardState::NotFitted).config_corrupt);
    }
}
