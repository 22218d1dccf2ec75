//! The modem's lifecycle over a serial port: init, status, SMS in and out,
//! voice-call alarms, and recovery of a modem that stops answering.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_serial::SerialPortBuilderExt;
use tracing::{debug, info, warn};

use super::at::parse::{fields, number, unquote};
use super::at::{self, AtClient, AtError, Urc};
use super::pdu::{self, Address, Reassembler, Sms};

/// Timeout of ordinary commands.
const SHORT: Duration = Duration::from_secs(5);
/// `+CMGS` can take many seconds while the network answers.
const SEND: Duration = Duration::from_secs(60);
/// How long missing parts of a long SMS are waited for.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a restarting modem may take to answer again.
const BOOT: Duration = Duration::from_secs(30);

/// The SIM's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimState {
    /// Ready.
    Ready,
    /// Asks for a PIN (docs/unit.md: the SIM must have none).
    PinRequired,
    /// Asks for a PUK or another code.
    Locked(String),
    /// No SIM.
    NotInserted,
    /// Some other SIM failure.
    Error(String),
}

/// The access technology the modem is registered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Not registered.
    None,
    /// 2G.
    Gsm,
    /// 3G.
    Umts,
    /// 4G.
    Lte,
}

/// What the modem reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The SIM.
    pub sim: SimState,
    /// Raw `+CSQ` RSSI (0-31, 99 = unknown).
    pub csq: u8,
    /// Signal strength in bars, 0-5 (the blue LED's blinks).
    pub bars: u8,
    /// Registered network.
    pub network: Network,
    /// Roaming.
    pub roaming: bool,
    /// Operator name.
    pub operator: Option<String>,
    /// The modem's IMEI.
    pub imei: Option<String>,
    /// The SIM's ICCID.
    pub iccid: Option<String>,
}

/// What happens on the modem's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemEvent {
    /// A whole SMS arrived.
    Sms(Sms),
    /// A call rings (with the caller's number once `+CLIP` tells it).
    Call(Option<String>),
    /// The modem restarted on its own (it sent `RDY`): it must be initialised again.
    Restarted,
    /// The modem said its registration (`+CREG`/`+CGREG`/`+CEREG`) or its
    /// SIM (`+CPIN`) changed: its status is worth reading now.
    StatusChanged,
}

/// Modem failures.
#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    /// The port cannot be opened.
    #[error("cannot open {0}: {1}")]
    Open(PathBuf, String),
    /// A command failed.
    #[error(transparent)]
    At(#[from] AtError),
    /// The SIM is not usable.
    #[error("SIM not usable: {0:?}")]
    Sim(SimState),
    /// Bad input (an unusable phone number).
    #[error("{0}")]
    Invalid(String),
}

/// Signal bars from a `+CSQ` RSSI: 99 (unknown) and below -109 dBm are 0.
pub fn bars(csq: u8) -> u8 {
    match csq {
        0..=1 | 32.. => 0,
        2..=9 => 1,
        10..=14 => 2,
        15..=19 => 3,
        20..=24 => 4,
        25..=31 => 5,
    }
}

/// A modem on a serial port.
pub struct Modem {
    path: PathBuf,
    baud: u32,
    at: AtClient,
    urcs: mpsc::UnboundedReceiver<Urc>,
    storage: String,
    reassembler: Reassembler,
    reference: u8,
    pending: Vec<ModemEvent>,
    /// URCs that came in while the driver was busy restarting.
    held: std::collections::VecDeque<Urc>,
}

fn open_port(
    path: &Path,
    baud: u32,
) -> Result<(AtClient, mpsc::UnboundedReceiver<Urc>), ModemError> {
    let error = |e: tokio_serial::Error| ModemError::Open(path.to_path_buf(), e.to_string());
    let mut port = tokio_serial::new(path.to_string_lossy(), baud)
        .timeout(SHORT)
        .open_native_async()
        .map_err(error)?;
    // Exclusive mode would outlive our own close while anything else holds
    // the tty, and keep us from reopening it after a restart. ModemManager is
    // kept off the port with udev tags instead (see the README).
    port.set_exclusive(false).map_err(error)?;
    Ok(at::spawn(port))
}

impl Modem {
    /// Opens the port (a `/dev/ttyUSB2`, or the simulator's pty).
    pub fn open(path: &Path, baud: u32) -> Result<Modem, ModemError> {
        let (at, urcs) = open_port(path, baud)?;
        Ok(Modem {
            path: path.to_path_buf(),
            baud,
            at,
            urcs,
            storage: "ME".into(),
            reassembler: Reassembler::new(REASSEMBLY_TIMEOUT),
            reference: 0,
            pending: Vec::new(),
            held: std::collections::VecDeque::new(),
        })
    }

    /// The AT client, for commands the driver does not wrap.
    pub fn at(&self) -> &AtClient {
        &self.at
    }

    /// Brings the modem to a known state: echo off, verbose errors, SIM
    /// checked, PDU mode, new-message indications, storage, registration
    /// reports and caller id. Returns the SIM state; SMS setup needs a ready SIM.
    pub async fn init(&mut self) -> Result<SimState, ModemError> {
        // The first command may meet echo and boot noise: try a few times.
        let mut alive = Err(AtError::Timeout("AT".into()));
        for _ in 0..3 {
            alive = self.at.command("AT", Duration::from_secs(2)).await;
            if alive.is_ok() {
                break;
            }
        }
        alive?;
        self.at.command("ATE0", SHORT).await?;
        self.at.command("AT+CMEE=2", SHORT).await?;
        let sim = self.sim().await?;
        if sim != SimState::Ready {
            warn!("SIM not ready: {sim:?}");
            return Ok(sim);
        }
        self.at.command("AT+CMGF=0", SHORT).await?;
        // Not every model takes every CNMI form.
        let mut indications = Err(AtError::Error("AT+CNMI".into()));
        for cnmi in ["AT+CNMI=2,1,0,0,0", "AT+CNMI=1,1,0,0,0", "AT+CNMI=2,1"] {
            indications = self.at.command(cnmi, SHORT).await;
            if indications.is_ok() {
                break;
            }
        }
        indications?;
        for storage in ["ME", "SM", "MT"] {
            let cmd = format!("AT+CPMS=\"{storage}\",\"{storage}\",\"{storage}\"");
            if self.at.command(&cmd, SHORT).await.is_ok() {
                self.storage = storage.into();
                break;
            }
        }
        // Optional: a GSM-only modem has no CEREG.
        for cmd in ["AT+CREG=2", "AT+CGREG=2", "AT+CEREG=2", "AT+CLIP=1"] {
            if let Err(e) = self.at.command(cmd, SHORT).await {
                debug!("{e}");
            }
        }
        info!(port = %self.path.display(), storage = %self.storage, "modem initialised");
        Ok(sim)
    }

    /// The SIM's state (`AT+CPIN?`).
    pub async fn sim(&self) -> Result<SimState, ModemError> {
        match self.at.command("AT+CPIN?", SHORT).await {
            Ok(lines) => {
                let state = lines
                    .iter()
                    .find(|l| l.starts_with("+CPIN"))
                    .map(|l| unquote(&fields(l).join(",")).to_string())
                    .unwrap_or_default();
                Ok(match state.as_str() {
                    "READY" => SimState::Ready,
                    "SIM PIN" => SimState::PinRequired,
                    other => SimState::Locked(other.to_string()),
                })
            }
            Err(AtError::Cme(_, e)) => Ok(match e.as_str() {
                "10" | "SIM not inserted" => SimState::NotInserted,
                "11" | "SIM PIN required" => SimState::PinRequired,
                _ => SimState::Error(e),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Everything the modem reports about itself.
    pub async fn status(&self) -> Result<Status, ModemError> {
        let sim = self.sim().await?;
        let csq = self
            .at
            .command("AT+CSQ", SHORT)
            .await?
            .iter()
            .find(|l| l.starts_with("+CSQ"))
            .and_then(|l| number(&fields(l), 0))
            .unwrap_or(99);
        let mut network = Network::None;
        let mut roaming = false;
        // An LTE modem may register only in CEREG: ask all three.
        for cmd in ["AT+CEREG?", "AT+CGREG?", "AT+CREG?"] {
            let Ok(lines) = self.at.command(cmd, SHORT).await else {
                continue;
            };
            let Some(f) = lines.iter().find(|l| l.starts_with('+')).map(|l| fields(l)) else {
                continue;
            };
            let stat: u8 = number(&f, 1).unwrap_or(0);
            if network == Network::None && matches!(stat, 1 | 5) {
                roaming = stat == 5;
                network = match (cmd, number::<u8>(&f, 4)) {
                    ("AT+CEREG?", _) | (_, Some(7..=13)) => Network::Lte,
                    (_, Some(2..=6)) => Network::Umts,
                    _ => Network::Gsm,
                };
            }
        }
        let operator = self
            .at
            .command("AT+COPS?", SHORT)
            .await
            .ok()
            .and_then(|lines| lines.into_iter().find(|l| l.starts_with("+COPS")))
            .and_then(|l| fields(&l).get(2).map(|o| unquote(o).to_string()))
            .filter(|o| !o.is_empty());
        let imei = self
            .at
            .command("AT+CGSN", SHORT)
            .await
            .ok()
            .and_then(|lines| {
                lines
                    .into_iter()
                    .find(|l| l.chars().all(|c| c.is_ascii_digit()))
            });
        let mut iccid = None;
        for cmd in ["AT+QCCID", "AT+CCID", "AT+ICCID"] {
            if let Ok(lines) = self.at.command(cmd, SHORT).await {
                iccid = lines
                    .into_iter()
                    .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
                    .find(|l| l.len() >= 18 && l.chars().all(|c| c.is_ascii_alphanumeric()));
                if iccid.is_some() {
                    break;
                }
            }
        }
        Ok(Status {
            sim,
            csq,
            bars: bars(csq),
            network,
            roaming,
            operator,
            imei,
            iccid,
        })
    }

    /// Reads and deletes every stored message (ones that arrived while
    /// larm was down), returning the whole ones.
    pub async fn read_stored(&mut self) -> Result<Vec<Sms>, ModemError> {
        let lines = self.at.command("AT+CMGL=4", SEND).await?;
        let mut found = Vec::new();
        let mut index = None;
        for line in lines {
            if line.starts_with("+CMGL") {
                index = number::<u32>(&fields(&line), 0);
            } else if let Some(i) = index.take() {
                found.push((i, line));
            }
        }
        let mut messages = Vec::new();
        for (i, hex) in found {
            // Handed on only once deleted: one that cannot be deleted now
            // is read again next time, neither lost nor handled twice.
            if let Err(e) = self.at.command(&format!("AT+CMGD={i}"), SHORT).await {
                warn!("deleting stored SMS {i}: {e}; it is read again later");
                break;
            }
            if let Some(sms) = self.take_part(&hex) {
                messages.push(sms);
            }
        }
        Ok(messages)
    }

    /// Decodes a stored or delivered part; a bad PDU is logged and dropped.
    fn take_part(&mut self, hex: &str) -> Option<Sms> {
        match pdu::from_hex(hex).and_then(|bytes| pdu::decode_deliver(&bytes)) {
            Ok(part) => self.reassembler.push(part, Instant::now()),
            Err(e) => {
                warn!("dropping an SMS that cannot be decoded ({e}): {hex}");
                None
            }
        }
    }

    async fn read_message(&mut self, index: u32) -> Result<Option<Sms>, ModemError> {
        let lines = self.at.command(&format!("AT+CMGR={index}"), SHORT).await?;
        let sms = lines
            .iter()
            .skip_while(|l| !l.starts_with("+CMGR"))
            .nth(1)
            .and_then(|hex| self.take_part(&hex.clone()));
        self.at.command(&format!("AT+CMGD={index}"), SHORT).await?;
        Ok(sms)
    }

    /// Sends an SMS (in parts if long); returns the message references.
    pub async fn send_sms(&mut self, to: &str, text: &str) -> Result<Vec<u8>, ModemError> {
        let address = Address::parse(to)
            .ok_or_else(|| ModemError::Invalid(format!("`{to}` is not a phone number")))?;
        self.reference = self.reference.wrapping_add(1);
        let mut references = Vec::new();
        for part in pdu::encode_submit(&address, text, self.reference) {
            let lines = self
                .at
                .command_with_payload(
                    &format!("AT+CMGS={}", part.tpdu_len),
                    &pdu::to_hex(&part.pdu),
                    SEND,
                )
                .await?;
            references.extend(
                lines
                    .iter()
                    .find(|l| l.starts_with("+CMGS"))
                    .and_then(|l| number::<u8>(&fields(l), 0)),
            );
        }
        Ok(references)
    }

    /// Starts a voice-call alarm: dials `number` and returns once the modem
    /// took the call. It rings until [`Modem::hang_up`]; the modem keeps
    /// receiving (and sending) SMS meanwhile, so the caller decides how
    /// long it rings without holding the modem.
    pub async fn dial(&self, number: &str) -> Result<(), ModemError> {
        let address = Address::parse(number)
            .ok_or_else(|| ModemError::Invalid(format!("`{number}` is not a phone number")))?;
        self.at.command(&format!("ATD{address};"), SHORT).await?;
        Ok(())
    }

    /// Ends the call in progress (`ATH`).
    pub async fn hang_up(&self) -> Result<(), ModemError> {
        self.at.command("ATH", SHORT).await?;
        Ok(())
    }

    /// Whether the modem answers at all.
    pub async fn alive(&self) -> bool {
        self.at.command("AT", Duration::from_secs(2)).await.is_ok()
    }

    /// Checks that the modem answers; if it does not (twice, a few seconds
    /// apart), restarts it. Returns whether a restart was needed.
    pub async fn recover_if_hung(&mut self) -> Result<bool, ModemError> {
        if self.alive().await {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if self.alive().await {
            return Ok(false);
        }
        warn!(port = %self.path.display(), "the modem stopped answering");
        self.restart().await?;
        Ok(true)
    }

    /// Restarts the modem (`AT+CFUN=1,1`, or just reopening the port if it
    /// does not answer), waits for it to answer again, and initialises it.
    pub async fn restart(&mut self) -> Result<SimState, ModemError> {
        info!(port = %self.path.display(), "restarting the modem");
        let _ = self.at.command("AT+CFUN=1,1", SHORT).await;
        // Close our side: a USB modem's tty goes away during the restart.
        self.at = AtClient::disconnected();
        // A USB modem's tty goes away and comes back: reopen it when it does.
        let deadline = Instant::now() + BOOT;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Ok((at, urcs)) = open_port(&self.path, self.baud) {
                self.at = at;
                self.urcs = urcs;
                if self.alive().await {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(AtError::Timeout("AT after restart".into()).into());
            }
        }
        let sim = self.init().await?;
        // The boot messages of a restart we asked for are not news.
        while let Ok(urc) = self.urcs.try_recv() {
            if !matches!(urc, Urc::Ready(_) | Urc::Sim(_)) {
                self.held.push_back(urc);
            }
        }
        Ok(sim)
    }

    /// The next thing that happens on the modem's side. New messages are
    /// read and deleted from storage here; parts of long ones are held until
    /// the message is whole (or its missing parts time out).
    pub async fn next_event(&mut self) -> Option<ModemEvent> {
        loop {
            let wake = self.wait().await?;
            if let Some(event) = self.process(wake).await {
                return Some(event);
            }
        }
    }

    /// Waits for something to handle. Cancel-safe: use it in `select!`
    /// with other work, then hand what it returns to [`Modem::process`].
    pub async fn wait(&mut self) -> Option<Wake> {
        if let Some(urc) = self.held.pop_front() {
            return Some(Wake::Urc(urc));
        }
        if !self.pending.is_empty() {
            return Some(Wake::Pending);
        }
        let expiry = self.reassembler.deadline();
        tokio::select! {
            urc = self.urcs.recv() => urc.map(Wake::Urc),
            () = sleep_until(expiry) => Some(Wake::Expired),
        }
    }

    /// Handles what [`Modem::wait`] returned; the event it makes, if any.
    pub async fn process(&mut self, wake: Wake) -> Option<ModemEvent> {
        let urc = match wake {
            Wake::Pending => return self.pending.pop(),
            Wake::Expired => {
                for sms in self.reassembler.expire(Instant::now()) {
                    warn!(sender = %sms.sender, "parts of a long SMS never came; delivering what arrived");
                    self.pending.push(ModemEvent::Sms(sms));
                }
                return self.pending.pop();
            }
            Wake::Urc(urc) => urc,
        };
        match urc {
            Urc::NewMessage { index, .. } => match self.read_message(index).await {
                Ok(sms) => sms.map(ModemEvent::Sms),
                Err(e) => {
                    warn!("reading SMS {index}: {e}");
                    None
                }
            },
            Urc::Message(hex) => self.take_part(&hex).map(ModemEvent::Sms),
            Urc::Caller(number) => Some(ModemEvent::Call(number)),
            Urc::Ready(what) if what == "RDY" => Some(ModemEvent::Restarted),
            Urc::Registration { .. } | Urc::Sim(_) => Some(ModemEvent::StatusChanged),
            other => {
                debug!("modem: {other:?}");
                None
            }
        }
    }
}

/// Something for [`Modem::process`] to handle.
#[derive(Debug)]
pub enum Wake {
    /// An unsolicited result code.
    Urc(Urc),
    /// Missing parts of a long SMS timed out.
    Expired,
    /// Events are waiting.
    Pending,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csq_to_bars() {
        assert_eq!(bars(99), 0);
        assert_eq!(bars(0), 0);
        assert_eq!(bars(5), 1);
        assert_eq!(bars(12), 2);
        assert_eq!(bars(17), 3);
        assert_eq!(bars(22), 4);
        assert_eq!(bars(31), 5);
    }
}
