//! The unit's modem: one task owns the driver, hands received SMS and calls
//! to the event loop, sends what plugins queue, keeps the modem status (and
//! with it the LEDs) current, and restarts a modem that stops answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware_bridge::modem::{self, Modem, ModemEvent, pdu::Sms};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::plugins::bindings::larm::plugin::types::{NetworkType, SimState};
use crate::plugins::caps::{ModemStatus, Services};

/// What the modem brings in.
#[derive(Debug)]
pub enum Incoming {
    /// A whole SMS.
    Sms(Sms),
    /// A call rings; the caller's number if shown.
    Call(Option<String>),
}

/// Where the modem says whether a send or call worked.
pub type Done = oneshot::Sender<Result<(), String>>;

/// What the unit asks of the modem.
#[derive(Debug)]
pub enum Outgoing {
    /// Send an SMS.
    Sms {
        /// Recipient.
        to: String,
        /// Text.
        text: String,
        /// Told once the network took it (`+CMGS`) or it failed.
        done: Done,
    },
    /// Ring a number for a while, then hang up.
    Call {
        /// Number.
        number: String,
        /// How long it rings.
        ring: Duration,
        /// Told once the call was made or failed.
        done: Done,
    },
    /// Restart the modem (`RESTART GSM`).
    Restart,
}

/// Opens and initialises the modem on `port`, and reads what is stored.
pub async fn open(
    port: &std::path::Path,
    baud: u32,
) -> Result<(Modem, Vec<Sms>), modem::ModemError> {
    let mut modem = Modem::open(port, baud)?;
    let sim = modem.init().await?;
    let stored = if sim == modem::SimState::Ready {
        modem.read_stored().await?
    } else {
        Vec::new()
    };
    if !stored.is_empty() {
        info!("{} SMS arrived while larmd was down", stored.len());
    }
    Ok((modem, stored))
}

/// Runs the modem task. Received messages (those stored at start first) go
/// to `incoming`; `outgoing` is what to send. The modem's status is read,
/// and its health checked, every `status_every`.
pub async fn run(
    mut modem: Modem,
    stored: Vec<Sms>,
    status_every: Duration,
    services: Arc<Services>,
    incoming: mpsc::UnboundedSender<Incoming>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    for sms in stored {
        let _ = incoming.send(Incoming::Sms(sms));
    }
    refresh_status(&modem, &services).await;
    let mut tick = tokio::time::interval(status_every);
    tick.tick().await;
    loop {
        tokio::select! {
            wake = modem.wait() => {
                let Some(wake) = wake else {
                    error!("the modem port closed; restarting the modem");
                    restart(&mut modem, &services).await;
                    continue;
                };
                match modem.process(wake).await {
                    Some(ModemEvent::Sms(sms)) => {
                        *services.last_sms.lock().unwrap() = Some(Instant::now());
                        let _ = incoming.send(Incoming::Sms(sms));
                    }
                    Some(ModemEvent::Call(caller)) => {
                        let _ = incoming.send(Incoming::Call(caller));
                    }
                    Some(ModemEvent::Restarted) => {
                        warn!("the modem restarted on its own; initialising it again");
                        if let Err(e) = modem.init().await {
                            error!("modem init: {e}");
                        }
                        refresh_status(&modem, &services).await;
                    }
                    None => {}
                }
            }
            request = outgoing.recv() => {
                let Some(request) = request else { return };
                set_busy(&services, true);
                match request {
                    Outgoing::Sms { to, text, done } => {
                        let sent = modem.send_sms(&to, &text).await;
                        match &sent {
                            Ok(_) => info!("SMS sent to {to}"),
                            Err(e) => error!("SMS to {to} not sent: {e}"),
                        }
                        let _ = done.send(sent.map(drop).map_err(|e| e.to_string()));
                    }
                    Outgoing::Call { number, ring, done } => {
                        let made = modem.dial(&number, ring).await;
                        match &made {
                            Ok(()) => info!("alarm call to {number} made"),
                            Err(e) => error!("alarm call to {number} failed: {e}"),
                        }
                        let _ = done.send(made.map_err(|e| e.to_string()));
                    }
                    Outgoing::Restart => restart(&mut modem, &services).await,
                }
                set_busy(&services, false);
            }
            _ = tick.tick() => {
                // Shown (red, code 4) while the modem is brought back, which
                // can take the modem's whole boot time.
                if !modem.alive().await
                    && let Some(status) = services.modem.lock().unwrap().as_mut()
                {
                    status.answering = false;
                }
                match modem.recover_if_hung().await {
                    Ok(true) => info!("the modem answers again after a restart"),
                    Ok(false) => {}
                    Err(e) => error!("the modem does not answer and did not come back: {e}"),
                }
                refresh_status(&modem, &services).await;
            }
        }
    }
}

async fn restart(modem: &mut Modem, services: &Services) {
    if let Err(e) = modem.restart().await {
        error!("modem restart failed: {e}");
    }
    refresh_status(modem, services).await;
}

fn set_busy(services: &Services, busy: bool) {
    if let Some(status) = services.modem.lock().unwrap().as_mut() {
        status.busy = busy;
        if !busy {
            status.busy_ended = Some(Instant::now());
        }
    }
}

/// Reads the modem's status into the services (and so into the LEDs and
/// `status.device`).
async fn refresh_status(modem: &Modem, services: &Services) {
    let status = match modem.status().await {
        Ok(s) => ModemStatus {
            answering: true,
            signal_bars: s.bars,
            network: match s.network {
                modem::Network::None => NetworkType::None,
                modem::Network::Gsm => NetworkType::Gsm,
                modem::Network::Umts => NetworkType::Umts,
                modem::Network::Lte => NetworkType::Lte,
            },
            sim: match s.sim {
                modem::SimState::Ready => SimState::Ready,
                modem::SimState::PinRequired => SimState::PinRequired,
                modem::SimState::Locked(_) => SimState::Locked,
                modem::SimState::NotInserted => SimState::NotInserted,
                modem::SimState::Error(_) => SimState::Error,
            },
            operator: s.operator,
            ..ModemStatus::default()
        },
        Err(e) => {
            warn!("modem status: {e}");
            ModemStatus::default()
        }
    };
    let mut shared = services.modem.lock().unwrap();
    // Sending goes on while the status is read.
    let (busy, busy_ended) = shared
        .as_ref()
        .map_or((false, None), |s| (s.busy, s.busy_ended));
    *shared = Some(ModemStatus {
        busy,
        busy_ended,
        ..status
    });
}
