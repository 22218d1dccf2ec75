//! A modem simulator on a pseudo-terminal.
//!
//! It opens a pty pair and plays a modem on the master side, so the driver
//! under test opens the slave path exactly as it would open `/dev/ttyUSB2`.
//! It answers the AT commands the driver uses, stores and delivers SMS as
//! PDUs (with `+CMTI`), decodes what is sent, and can be told to misbehave.
//! Two profiles differ the way real modems do: an LTE modem like a Quectel
//! EC2x (registers in `+CEREG` only when on LTE, `AT+QCCID`, storage `ME`)
//! and a GSM-only modem like a SIMCom SIM800 (no `+CEREG`, `AT+CCID`,
//! storage `SM`, refuses `AT+CMGF` until `SMS Ready`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};
use tokio_serial::{SerialPort, SerialStream};
use tracing::debug;

use super::at::parse::{fields, number, unquote};
use super::pdu::{self, Address, Timestamp};

/// Which kind of modem to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// An LTE modem like a Quectel EC2x.
    Ec2x,
    /// A GSM-only modem like a SIMCom SIM800.
    Sim800,
}

impl Profile {
    /// By name: `ec2x` or `sim800`.
    pub fn by_name(name: &str) -> Option<Profile> {
        match name.to_ascii_lowercase().as_str() {
            "ec2x" | "quectel" | "lte" => Some(Profile::Ec2x),
            "sim800" | "simcom" | "gsm" => Some(Profile::Sim800),
            _ => None,
        }
    }

    fn storage(self) -> &'static str {
        match self {
            Profile::Ec2x => "ME",
            Profile::Sim800 => "SM",
        }
    }
}

/// The network the simulated modem is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimNetwork {
    /// Not registered.
    None,
    /// 2G.
    Gsm,
    /// 4G (the SIM800 profile falls back to GSM).
    Lte,
}

impl SimNetwork {
    /// By name: `none`, `gsm` or `lte`.
    pub fn by_name(name: &str) -> Option<SimNetwork> {
        match name {
            "none" => Some(SimNetwork::None),
            "gsm" => Some(SimNetwork::Gsm),
            "lte" => Some(SimNetwork::Lte),
            _ => None,
        }
    }
}

/// The simulated SIM card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimCard {
    /// Ready.
    Ready,
    /// Asks for a PIN.
    PinRequired,
    /// No card.
    Absent,
}

impl SimCard {
    /// By name: `ready`, `pin` or `absent`.
    pub fn by_name(name: &str) -> Option<SimCard> {
        match name {
            "ready" => Some(SimCard::Ready),
            "pin" => Some(SimCard::PinRequired),
            "absent" => Some(SimCard::Absent),
            _ => None,
        }
    }
}

/// What the simulated modem saw the driver do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEvent {
    /// An SMS was sent (the whole text, parts joined).
    SmsSent {
        /// Recipient.
        to: String,
        /// Text.
        text: String,
    },
    /// A number was dialled.
    Dialled(String),
    /// A call was hung up.
    HungUp,
    /// The modem was restarted (`AT+CFUN=1,1`).
    Restarted,
}

struct State {
    profile: Profile,
    echo: bool,
    network: SimNetwork,
    sim: SimCard,
    csq: u8,
    silent: bool,
    garbage: bool,
    urc_mid_response: bool,
    booting: bool,
    restart_delay: Duration,
    capacity: usize,
    stored: BTreeMap<u32, Vec<u8>>,
    /// Deliveries waiting for storage space (the network retries).
    waiting: Vec<Vec<u8>>,
    reference: u8,
    message_ref: u8,
    sent_parts: BTreeMap<(String, u16), Vec<(u8, String)>>,
}

/// A control handle on a running simulated modem.
#[derive(Clone)]
pub struct SimModem {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<SimEvent>,
    urcs: mpsc::UnboundedSender<String>,
}

const OK: &str = "OK";

impl SimModem {
    /// Opens a pty pair and starts playing `profile` on it.
    pub fn start(profile: Profile) -> std::io::Result<SimModem> {
        let (master, slave) = SerialStream::pair().map_err(std::io::Error::other)?;
        let path = PathBuf::from(
            slave
                .name()
                .ok_or_else(|| std::io::Error::other("the pty has no name"))?,
        );
        let state = Arc::new(Mutex::new(State {
            profile,
            echo: true,
            network: SimNetwork::Lte,
            sim: SimCard::Ready,
            csq: 20,
            silent: false,
            garbage: false,
            urc_mid_response: false,
            booting: false,
            restart_delay: Duration::from_millis(200),
            capacity: 20,
            stored: BTreeMap::new(),
            waiting: Vec::new(),
            reference: 0,
            message_ref: 0,
            sent_parts: BTreeMap::new(),
        }));
        let (events, _) = broadcast::channel(256);
        let (urcs, urc_rx) = mpsc::unbounded_channel();
        let sim = SimModem {
            path,
            state,
            events,
            urcs,
        };
        tokio::spawn(sim.clone().serve(master, slave, urc_rx));
        Ok(sim)
    }

    /// The slave device path the driver opens.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// What the modem sees the driver do, from now on.
    pub fn events(&self) -> broadcast::Receiver<SimEvent> {
        self.events.subscribe()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Signal strength as `+CSQ` reports it (0-31, 99 unknown).
    pub fn set_signal(&self, csq: u8) {
        self.with(|s| s.csq = csq);
    }

    /// Registers on a network, or drops off it.
    pub fn set_network(&self, network: SimNetwork) {
        self.with(|s| s.network = network);
        let (stat, act) = match network {
            SimNetwork::None => (0, 0),
            SimNetwork::Gsm => (1, 0),
            SimNetwork::Lte => (1, 7),
        };
        self.urc(format!("+CREG: {stat},\"1A2B\",\"01C3D4E5\",{act}"));
    }

    /// Puts in, takes out or PIN-locks the SIM, and says so as a modem with
    /// SIM hot-plug detection does (`+CPIN: ...`).
    pub fn set_sim(&self, sim: SimCard) {
        self.with(|s| s.sim = sim);
        self.urc(format!(
            "+CPIN: {}",
            match sim {
                SimCard::Ready => "READY",
                SimCard::PinRequired => "SIM PIN",
                SimCard::Absent => "NOT READY",
            }
        ));
    }

    /// Stops answering anything (a hung modem), or starts again.
    pub fn set_silent(&self, silent: bool) {
        self.with(|s| s.silent = silent);
    }

    /// Sends line noise before the next answer.
    pub fn send_garbage(&self) {
        self.with(|s| s.garbage = true);
    }

    /// Puts a URC in the middle of every multi-line answer.
    pub fn set_urc_mid_response(&self, on: bool) {
        self.with(|s| s.urc_mid_response = on);
    }

    /// How long a restart keeps the modem silent.
    pub fn set_restart_delay(&self, delay: Duration) {
        self.with(|s| s.restart_delay = delay);
    }

    /// How many messages the storage holds (0: full).
    pub fn set_storage_capacity(&self, capacity: usize) {
        self.with(|s| s.capacity = capacity);
        self.flush_waiting();
    }

    /// Messages stored now.
    pub fn stored(&self) -> usize {
        self.with(|s| s.stored.len())
    }

    /// An SMS from `from` arrives (split into parts if long). With the
    /// storage full, it waits (as the network retries) until there is room.
    pub fn deliver_sms(&self, from: &str, text: &str) {
        let sender = Address::parse(from).unwrap_or_else(|| Address::Alphanumeric(from.into()));
        let smsc = Address::International("46705008999".into());
        let pdus = self.with(|s| {
            s.reference = s.reference.wrapping_add(1);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            pdu::encode_deliver(
                &smsc,
                &sender,
                text,
                Timestamp {
                    unix: now,
                    zone_quarters: 4,
                },
                s.reference,
            )
        });
        self.with(|s| s.waiting.extend(pdus));
        self.flush_waiting();
    }

    /// Stores an SMS without announcing it (it arrived while the unit was down).
    pub fn store_sms_silently(&self, from: &str, text: &str) {
        let sender = Address::parse(from).unwrap_or_else(|| Address::Alphanumeric(from.into()));
        let smsc = Address::International("46705008999".into());
        for p in pdu::encode_deliver(
            &smsc,
            &sender,
            text,
            Timestamp {
                unix: 0,
                zone_quarters: 0,
            },
            0,
        ) {
            self.with(|s| {
                let index = (1..).find(|i| !s.stored.contains_key(i)).unwrap_or(1);
                s.stored.insert(index, p);
            });
        }
    }

    fn flush_waiting(&self) {
        let announced = self.with(|s| {
            let mut announced = Vec::new();
            while s.stored.len() < s.capacity && !s.waiting.is_empty() {
                let p = s.waiting.remove(0);
                let index = (1..).find(|i| !s.stored.contains_key(i)).unwrap_or(1);
                s.stored.insert(index, p);
                // A modem that does not answer says nothing of it either.
                if !(s.silent || s.booting) {
                    announced.push(format!("+CMTI: \"{}\",{index}", s.profile.storage()));
                }
            }
            announced
        });
        for urc in announced {
            self.urc(urc);
        }
    }

    /// A call rings from `from`.
    pub fn ring(&self, from: &str) {
        self.urc("RING".into());
        self.urc(format!("+CLIP: \"{from}\",145,,,,0"));
    }

    fn urc(&self, line: String) {
        let _ = self.urcs.send(line);
    }

    async fn serve(
        self,
        mut port: SerialStream,
        // Kept open: with no slave open, reads on the master fail.
        _slave: SerialStream,
        mut urcs: mpsc::UnboundedReceiver<String>,
    ) {
        let mut buf = [0u8; 1024];
        let mut line = Vec::new();
        let mut prompt: Option<(String, Vec<u8>)> = None;
        loop {
            tokio::select! {
                read = port.read(&mut buf) => {
                    let n = match read {
                        Ok(0) | Err(_) => {
                            // The driver closed its side; wait for it to reopen.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        Ok(n) => n,
                    };
                    if self.with(|s| s.silent || s.booting) {
                        continue;
                    }
                    for &b in &buf[..n] {
                        if let Some((command, mut pdu)) = prompt.take() {
                            match b {
                                0x1a => {
                                    let reply = self.sent(&command, &pdu);
                                    self.write(&mut port, &reply).await;
                                }
                                0x1b => self.write(&mut port, &[OK.into()]).await,
                                _ => {
                                    pdu.push(b);
                                    prompt = Some((command, pdu));
                                }
                            }
                            continue;
                        }
                        if b != b'\r' && b != b'\n' {
                            line.push(b);
                            continue;
                        }
                        if line.is_empty() {
                            continue;
                        }
                        let command = String::from_utf8_lossy(&line).trim().to_string();
                        line.clear();
                        if self.with(|s| s.echo) {
                            let _ = port.write_all(format!("{command}\r").as_bytes()).await;
                        }
                        debug!(%command, "simulated modem got");
                        if command.to_ascii_uppercase().starts_with("AT+CMGS=") && self.can_send() {
                            let _ = port.write_all(b"\r\n> ").await;
                            prompt = Some((command, Vec::new()));
                            continue;
                        }
                        let reply = self.answer(&command);
                        self.write(&mut port, &reply).await;
                        if command.eq_ignore_ascii_case("AT+CFUN=1,1") {
                            self.restart(&mut port).await;
                        }
                    }
                }
                Some(urc) = urcs.recv() => {
                    if !self.with(|s| s.silent || s.booting) {
                        let _ = port.write_all(format!("\r\n{urc}\r\n").as_bytes()).await;
                    }
                }
            }
        }
    }

    async fn write(&self, port: &mut SerialStream, lines: &[String]) {
        let garbage = self.with(|s| std::mem::take(&mut s.garbage));
        if garbage {
            let _ = port.write_all(b"\xff\xfe\x00#!~\x80garbage\x07\r\n").await;
        }
        let mid = self.with(|s| s.urc_mid_response) && lines.len() > 1;
        for (i, l) in lines.iter().enumerate() {
            if mid && i == 1 {
                let _ = port
                    .write_all(b"\r\n+CREG: 1,\"1A2B\",\"01C3D4E5\",7\r\n")
                    .await;
            }
            let _ = port.write_all(format!("\r\n{l}\r\n").as_bytes()).await;
        }
    }

    async fn restart(&self, port: &mut SerialStream) {
        let delay = self.with(|s| {
            s.booting = true;
            s.echo = true;
            s.restart_delay
        });
        let _ = self.events.send(SimEvent::Restarted);
        tokio::time::sleep(delay).await;
        let profile = self.with(|s| {
            s.booting = false;
            s.profile
        });
        let boot: &[&str] = match profile {
            Profile::Ec2x => &["RDY", "+CFUN: 1", "+CPIN: READY", "+QIND: SMS DONE"],
            Profile::Sim800 => &["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"],
        };
        for l in boot {
            let _ = port.write_all(format!("\r\n{l}\r\n").as_bytes()).await;
        }
    }

    fn can_send(&self) -> bool {
        self.with(|s| s.network != SimNetwork::None && s.sim == SimCard::Ready)
    }

    /// An SMS part came in after the prompt.
    fn sent(&self, _command: &str, pdu_hex: &[u8]) -> Vec<String> {
        let decoded = pdu::from_hex(&String::from_utf8_lossy(pdu_hex))
            .and_then(|bytes| pdu::decode_submit(&bytes));
        let Ok(submit) = decoded else {
            return vec!["+CMS ERROR: 304".into()];
        };
        let to = submit.recipient.to_string();
        let mr = self.with(|s| {
            s.message_ref = s.message_ref.wrapping_add(1);
            s.message_ref
        });
        let whole = match submit.concat {
            None => Some(submit.body.text()),
            Some(c) => self.with(|s| {
                let parts = s.sent_parts.entry((to.clone(), c.reference)).or_default();
                parts.push((c.seq, submit.body.text()));
                if parts.len() < usize::from(c.total) {
                    return None;
                }
                let mut parts = s.sent_parts.remove(&(to.clone(), c.reference))?;
                parts.sort();
                Some(parts.into_iter().map(|(_, t)| t).collect())
            }),
        };
        if let Some(text) = whole {
            let _ = self.events.send(SimEvent::SmsSent { to, text });
        }
        vec![format!("+CMGS: {mr}"), OK.into()]
    }

    /// The answer to one command line.
    fn answer(&self, command: &str) -> Vec<String> {
        let upper = command.to_ascii_uppercase();
        let f = fields(&command.replacen('=', ":", 1));
        let mut s = self.state.lock().unwrap();
        let ok = || vec![OK.to_string()];
        let lines = |mut l: Vec<String>| {
            l.push(OK.into());
            l
        };
        let registered = s.network != SimNetwork::None && s.sim == SimCard::Ready;
        let sim_error = match s.sim {
            SimCard::Ready => None,
            SimCard::PinRequired => Some("+CME ERROR: SIM PIN required"),
            SimCard::Absent => Some("+CME ERROR: SIM not inserted"),
        };
        let network = match (s.profile, s.network) {
            (Profile::Sim800, SimNetwork::Lte) => SimNetwork::Gsm,
            (_, n) => n,
        };
        match upper.as_str() {
            "AT" | "AT+CMEE=2" | "AT+CMEE=1" | "AT+CLIP=1" | "ATH" | "AT+CREG=2" | "AT+CGREG=2" => {
                if upper == "ATH" {
                    let _ = self.events.send(SimEvent::HungUp);
                }
                ok()
            }
            "ATE0" | "ATE1" => {
                s.echo = upper == "ATE1";
                ok()
            }
            "ATI" => lines(vec![match s.profile {
                Profile::Ec2x => "Quectel\r\nEC25\r\nRevision: EC25EFAR06A06M4G".into(),
                Profile::Sim800 => "SIM800 R14.18".into(),
            }]),
            "AT+CEREG=2" | "AT+CEREG?" if s.profile == Profile::Sim800 => vec!["ERROR".into()],
            "AT+CEREG=2" => ok(),
            "AT+CPIN?" => match s.sim {
                SimCard::Ready => lines(vec!["+CPIN: READY".into()]),
                SimCard::PinRequired => lines(vec!["+CPIN: SIM PIN".into()]),
                SimCard::Absent => vec!["+CME ERROR: SIM not inserted".into()],
            },
            "AT+CSQ" => lines(vec![format!("+CSQ: {},99", s.csq)]),
            "AT+CREG?" | "AT+CGREG?" | "AT+CEREG?" => {
                let (stat, act) = match (network, upper.as_str()) {
                    (SimNetwork::None, _) => (0, None),
                    _ if !registered => (0, None),
                    // An LTE-only registration shows in CEREG, not CREG.
                    (SimNetwork::Lte, "AT+CREG?") => (0, None),
                    (SimNetwork::Lte, _) => (1, Some(7)),
                    (SimNetwork::Gsm, "AT+CEREG?") => (0, None),
                    (SimNetwork::Gsm, _) => (1, Some(0)),
                };
                let name = &upper[2..upper.len() - 1];
                lines(vec![match act {
                    Some(act) => format!("{name}: 2,{stat},\"1A2B\",\"01C3D4E5\",{act}"),
                    None => format!("{name}: 2,{stat}"),
                }])
            }
            "AT+COPS?" => lines(vec![match (registered, network) {
                (true, SimNetwork::Lte) => "+COPS: 0,0,\"Telia\",7".into(),
                (true, _) => "+COPS: 0,0,\"Telia\",0".into(),
                _ => "+COPS: 0".into(),
            }]),
            "AT+CGSN" => lines(vec!["861234567890123".into()]),
            "AT+QCCID" if s.profile == Profile::Ec2x => match sim_error {
                None => lines(vec!["+QCCID: 89460123456789012345".into()]),
                Some(e) => vec![e.into()],
            },
            "AT+CCID" if s.profile == Profile::Sim800 => match sim_error {
                None => lines(vec!["89460123456789012345".into()]),
                Some(e) => vec![e.into()],
            },
            "AT+CMGF=0" => ok(),
            _ if upper.starts_with("AT+CNMI=") || upper.starts_with("AT+CPMS=") => {
                if let Some(e) = sim_error {
                    return vec![e.into()];
                }
                if upper.starts_with("AT+CPMS=") {
                    let storage = s.profile.storage();
                    if !upper.contains(storage) {
                        return vec!["+CMS ERROR: 302".into()];
                    }
                    let (used, cap) = (s.stored.len(), s.capacity);
                    return lines(vec![format!(
                        "+CPMS: {used},{cap},{used},{cap},{used},{cap}"
                    )]);
                }
                ok()
            }
            "AT+CMGL=4" => {
                let mut out = Vec::new();
                for (index, p) in &s.stored {
                    out.push(format!(
                        "+CMGL: {index},0,,{}",
                        p.len() - 1 - usize::from(p[0])
                    ));
                    out.push(pdu::to_hex(p));
                }
                lines(out)
            }
            _ if upper.starts_with("AT+CMGR=") => {
                match number::<u32>(&f, 0).and_then(|i| s.stored.get(&i)) {
                    Some(p) => lines(vec![
                        format!("+CMGR: 0,,{}", p.len() - 1 - usize::from(p[0])),
                        pdu::to_hex(p),
                    ]),
                    None => vec!["+CMS ERROR: 321".into()],
                }
            }
            _ if upper.starts_with("AT+CMGD=") => {
                if let Some(i) = number::<u32>(&f, 0) {
                    s.stored.remove(&i);
                }
                drop(s);
                self.flush_waiting();
                ok()
            }
            _ if upper.starts_with("AT+CMGS=") => {
                vec![sim_error.unwrap_or("+CMS ERROR: 331").into()]
            }
            _ if upper.starts_with("ATD") && upper.ends_with(';') => {
                if !registered {
                    return vec!["NO CARRIER".into()];
                }
                let number = unquote(&command[3..command.len() - 1]).to_string();
                let _ = self.events.send(SimEvent::Dialled(number));
                ok()
            }
            "AT+CFUN=1,1" => ok(),
            _ => vec!["ERROR".into()],
        }
    }
}
