//! The unit's modem: one task owns the driver, hands received SMS and calls
//! to the event loop, sends what plugins queue, keeps the modem status (and
//! with it the LEDs) current, and restarts a modem that stops answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware_bridge::modem::{self, Modem, ModemEvent, pdu::Sms};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::plugins::bindings::larm::plugin::types::{NetworkType, SimState};
use crate::unit::Shared;

/// The modem's view of the unit, as the LEDs and `status.device` show it.
/// The modem task publishes it on [`Shared::modem`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModemStatus {
    /// The modem answers commands.
    pub answering: bool,
    /// An SMS is being sent or a call dialled.
    pub busy: bool,
    /// An alarm call rings now: another call waits for it to end, SMS do not.
    pub ringing: bool,
    /// When the last send or call ended (the yellow LED stays lit a moment
    /// longer, so a quick send can be seen).
    pub busy_ended: Option<Instant>,
    /// Bars, 0-5.
    pub signal_bars: u8,
    /// Registered network.
    pub network: NetworkType,
    /// SIM state.
    pub sim: SimState,
    /// Operator name.
    pub operator: Option<String>,
}

impl Default for ModemStatus {
    fn default() -> Self {
        Self {
            answering: false,
            busy: false,
            ringing: false,
            busy_ended: None,
            signal_bars: 0,
            network: NetworkType::None,
            sim: SimState::Unknown,
            operator: None,
        }
    }
}

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
    /// Reject the call ringing in, without answering (`ATH`).
    RejectCall,
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
/// to `incoming`; `outgoing` is what to send. The modem's status is read
/// at once when the modem reports a change of registration or SIM, and its
/// health checked (and the status and mailbox read again) every
/// `status_every`.
///
/// A call rings without holding the task: SMS keep coming in (and going
/// out) while it rings, and it is hung up when its time is over. A second
/// call waits for the first to end.
pub async fn run(
    mut modem: Modem,
    stored: Vec<Sms>,
    status_every: Duration,
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedSender<Incoming>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    for sms in stored {
        let _ = incoming.send(Incoming::Sms(sms));
    }
    refresh_status(&modem, &shared).await;
    let mut tick = tokio::time::interval(status_every);
    tick.tick().await;
    // When the call that rings now is hung up.
    let mut ringing: Option<Instant> = None;
    // A call asked for while another rings.
    let mut next_call: Option<(String, Duration, Done)> = None;
    loop {
        if ringing.is_none()
            && let Some((number, ring, done)) = next_call.take()
        {
            ringing = call(&modem, &shared, &number, ring, done).await;
        }
        tokio::select! {
            wake = modem.wait() => {
                let Some(wake) = wake else {
                    error!("the modem port closed; restarting the modem");
                    restart(&mut modem, &shared).await;
                    read_mailbox(&mut modem, &shared, &incoming).await;
                    continue;
                };
                match modem.process(wake).await {
                    Some(ModemEvent::Sms(sms)) => {
                        shared.last_sms.send_replace(Some(Instant::now()));
                        let _ = incoming.send(Incoming::Sms(sms));
                    }
                    Some(ModemEvent::Call(caller)) => {
                        let _ = incoming.send(Incoming::Call(caller));
                    }
                    Some(ModemEvent::Restarted) => {
                        warn!("the modem restarted on its own; initialising it again");
                        ringing = None;
                        set_ringing(&shared, false);
                        set_busy(&shared, false);
                        if let Err(e) = modem.init().await {
                            error!("modem init: {e}");
                        }
                        refresh_status(&modem, &shared).await;
                        read_mailbox(&mut modem, &shared, &incoming).await;
                    }
                    Some(ModemEvent::StatusChanged) => refresh_status(&modem, &shared).await,
                    None => {}
                }
            }
            () = crate::unit::sleep_until(ringing) => {
                ringing = None;
                hang_up(&modem, &shared).await;
            }
            request = outgoing.recv(), if next_call.is_none() => {
                let Some(request) = request else {
                    // The unit stops: a call must not ring on without it.
                    if ringing.is_some() {
                        hang_up(&modem, &shared).await;
                    }
                    return;
                };
                match request {
                    Outgoing::Sms { to, text, done } => {
                        set_busy(&shared, true);
                        let sent = modem.send_sms(&to, &text).await;
                        match &sent {
                            Ok(_) => info!("SMS sent to {to}"),
                            Err(e) => error!("SMS to {to} not sent: {e}"),
                        }
                        let _ = done.send(sent.map(drop).map_err(|e| e.to_string()));
                        set_busy(&shared, ringing.is_some());
                    }
                    Outgoing::Call { number, ring, done } if ringing.is_some() => {
                        next_call = Some((number, ring, done));
                    }
                    Outgoing::Call { number, ring, done } => {
                        ringing = call(&modem, &shared, &number, ring, done).await;
                    }
                    // An alarm call of ours rings: no call rings in.
                    Outgoing::RejectCall if ringing.is_some() => {
                        info!("no call to reject: an alarm call rings out");
                    }
                    Outgoing::RejectCall => {
                        if let Err(e) = modem.hang_up().await {
                            warn!("rejecting the call: {e}");
                        }
                    }
                    Outgoing::Restart => {
                        set_busy(&shared, true);
                        ringing = None;
                        set_ringing(&shared, false);
                        restart(&mut modem, &shared).await;
                        read_mailbox(&mut modem, &shared, &incoming).await;
                        set_busy(&shared, false);
                    }
                }
            }
            _ = tick.tick() => {
                // Shown (red, code 4) while the modem is brought back, which
                // can take the modem's whole boot time.
                if !modem.alive().await {
                    shared.modem.send_if_modified(|status| match status {
                        Some(s) if s.answering => {
                            s.answering = false;
                            true
                        }
                        _ => false,
                    });
                }
                match modem.recover_if_hung().await {
                    Ok(true) => info!("the modem answers again after a restart"),
                    Ok(false) => {}
                    Err(e) => error!("the modem does not answer and did not come back: {e}"),
                }
                refresh_status(&modem, &shared).await;
                // What arrived while the modem did not answer (or whose
                // notice was lost) is read now, not at the next start.
                read_mailbox(&mut modem, &shared, &incoming).await;
            }
        }
    }
}

/// Ends the call that rings.
async fn hang_up(modem: &Modem, shared: &Shared) {
    if let Err(e) = modem.hang_up().await {
        error!("hanging up the alarm call: {e}");
    }
    set_ringing(shared, false);
    set_busy(shared, false);
}

/// Dials `number`; when it is to be hung up, if the modem took the call.
async fn call(
    modem: &Modem,
    shared: &Shared,
    number: &str,
    ring: Duration,
    done: Done,
) -> Option<Instant> {
    set_busy(shared, true);
    let made = modem.dial(number).await;
    match &made {
        Ok(()) => info!("alarm call to {number} made; it rings for {ring:?}"),
        Err(e) => error!("alarm call to {number} failed: {e}"),
    }
    let ok = made.is_ok();
    let _ = done.send(made.map_err(|e| e.to_string()));
    if ok {
        set_ringing(shared, true);
        Some(Instant::now() + ring)
    } else {
        set_busy(shared, false);
        None
    }
}

/// Reads and hands on the SMS stored on the modem (`AT+CMGL`), then
/// deletes them. Quietly nothing while the SIM is not ready.
async fn read_mailbox(
    modem: &mut Modem,
    shared: &Shared,
    incoming: &mpsc::UnboundedSender<Incoming>,
) {
    let ready = shared
        .modem
        .borrow()
        .as_ref()
        .is_some_and(|s| s.answering && s.sim == SimState::Ready);
    if !ready {
        return;
    }
    match modem.read_stored().await {
        Ok(stored) => {
            if !stored.is_empty() {
                info!("{} stored SMS read from the modem", stored.len());
                shared.last_sms.send_replace(Some(Instant::now()));
            }
            for sms in stored {
                let _ = incoming.send(Incoming::Sms(sms));
            }
        }
        Err(e) => warn!("reading the modem's stored SMS: {e}"),
    }
}

async fn restart(modem: &mut Modem, shared: &Shared) {
    if let Err(e) = modem.restart().await {
        error!("modem restart failed: {e}");
    }
    refresh_status(modem, shared).await;
}

fn set_ringing(shared: &Shared, ringing: bool) {
    shared.modem.send_if_modified(|status| match status {
        Some(s) if s.ringing != ringing => {
            s.ringing = ringing;
            true
        }
        _ => false,
    });
}

fn set_busy(shared: &Shared, busy: bool) {
    shared.modem.send_modify(|status| {
        if let Some(status) = status {
            if status.busy && !busy {
                status.busy_ended = Some(Instant::now());
            }
            status.busy = busy;
        }
    });
}

/// Reads the modem's status and publishes it (to the LEDs and
/// `status.device`) if it changed.
async fn refresh_status(modem: &Modem, shared: &Shared) {
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
    shared.modem.send_if_modified(|shown| {
        // Sending goes on while the status is read.
        let (busy, busy_ended, ringing) = shown
            .as_ref()
            .map_or((false, None, false), |s| (s.busy, s.busy_ended, s.ringing));
        let status = Some(ModemStatus {
            busy,
            busy_ended,
            ringing,
            ..status
        });
        let changed = *shown != status;
        if changed {
            *shown = status;
        }
        changed
    });
}
