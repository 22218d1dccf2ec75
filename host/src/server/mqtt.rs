//! The MQTT transport: one connection to the broker through rumqttc, with
//! what the server link needs on top: the last will, the downlink
//! subscription, and which of our publishes the broker has acknowledged.
//!
//! rumqttc reports a publish's packet id when it writes it
//! (`Outgoing::Publish`), in the order publishes were queued, and the
//! broker's PUBACK carries that id: a FIFO of tags maps one to the other.
//! rumqttc is kept behind this module, so it can be swapped without
//! touching the link: 0.25.1 has had no release since 2025-11 and pulls the
//! unmaintained `rustls-pemfile` (RUSTSEC-2025-0134). rumqttc speaks to the
//! broker through [`super::socket`], which owns the TCP and TLS connection
//! and drops messages too large to take.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    Transport,
};
use tokio::sync::mpsc;

use super::socket::{self, Dropped, PayloadLimits, Socket};
use crate::config::ServerConfig;

/// How long to wait for the broker to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// rumqttc's request queue; the link keeps fewer publishes in flight.
const QUEUE: usize = 256;
/// Publishes the link keeps unacknowledged at once.
pub const MAX_IN_FLIGHT: usize = 32;

/// Why the connection failed or ended.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A certificate or key file cannot be read.
    #[error("reading {0}: {1}")]
    File(String, std::io::Error),
    /// The broker's socket cannot be opened.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// TLS settings or the TLS handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The broker cannot be reached, or the connection broke.
    #[error("{0}")]
    Connection(Box<rumqttc::ConnectionError>),
    /// The broker refused the connection.
    #[error("the broker refused the connection: {0:?}")]
    Refused(ConnectReturnCode),
    /// No answer from the broker in time.
    #[error("no answer from the broker within {0:?}")]
    Timeout(Duration),
    /// rumqttc's request queue is full or gone.
    #[error("the MQTT client stopped: {0}")]
    Client(Box<rumqttc::ClientError>),
}

impl From<rumqttc::ConnectionError> for MqttError {
    fn from(e: rumqttc::ConnectionError) -> Self {
        Self::Connection(Box::new(e))
    }
}

impl From<rumqttc::ClientError> for MqttError {
    fn from(e: rumqttc::ClientError) -> Self {
        Self::Client(Box::new(e))
    }
}

/// Something the broker sent that the link cares about.
#[derive(Debug)]
pub enum Incoming {
    /// Every message published with this tag was acknowledged.
    Acked(u64),
    /// A message on the downlink topic; `topic` is relative to the unit's
    /// base topic. Hand `ack` to [`Connection::ack`] once it is handled.
    Downlink {
        /// Relative topic (`cmd/...`).
        topic: String,
        /// Payload.
        payload: Vec<u8>,
        /// Acknowledges the message to the broker.
        ack: Ack,
    },
    /// A message too large to take was dropped (and acknowledged).
    Dropped(Dropped),
}

/// A received message's acknowledgement, sent only once the message is
/// handled: the broker delivers a message again until it is acknowledged,
/// so a unit that dies while applying a command gets it again after its
/// restart (and applies it once, by its id).
#[derive(Debug)]
pub struct Ack(rumqttc::Publish);

/// One connection to the broker.
pub struct Connection {
    client: AsyncClient,
    events: EventLoop,
    /// Messages the socket dropped for their size.
    dropped: mpsc::UnboundedReceiver<Dropped>,
    _socket: Socket,
    base: String,
    /// Tags of publishes queued but not yet written, in order.
    queued: VecDeque<u64>,
    /// Packet id -> tag of publishes written but not acknowledged.
    written: HashMap<u16, u64>,
    /// Tag -> publishes not yet acknowledged.
    outstanding: HashMap<u64, usize>,
}

/// The unit's base topic: `<prefix>/<unit-id>`.
pub fn base_topic(config: &ServerConfig, unit_id: &str) -> String {
    format!("{}/{unit_id}", config.prefix.trim_end_matches('/'))
}

/// The payload limits of the unit's downlink: commands, and components
/// under `update/` when the unit takes them.
fn limits(config: &ServerConfig, base: &str, max_update: Option<usize>) -> PayloadLimits {
    PayloadLimits {
        default: config.max_downlink_bytes,
        prefixed: max_update
            .map(|limit| (format!("{base}/update/"), limit))
            .into_iter()
            .collect(),
    }
}

fn options(
    config: &ServerConfig,
    unit_id: &str,
    base: &str,
    socket: &Socket,
    limits: &PayloadLimits,
) -> MqttOptions {
    let client_id = config
        .client_id
        .clone()
        .unwrap_or_else(|| unit_id.to_string());
    let mut options = MqttOptions::new(client_id, socket.path().display().to_string(), 0);
    options
        .set_transport(Transport::unix())
        .set_keep_alive(Duration::from_secs(config.keep_alive_s.get()))
        // The broker keeps our subscription and queues the server's
        // commands while the unit is offline between syncs.
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_last_will(LastWill::new(
            format!("{base}/state"),
            "offline",
            QoS::AtLeastOnce,
            true,
        ))
        // The socket lets nothing larger through.
        .set_max_packet_size(socket::max_packet(limits), 256 * 1024);
    if let (Some(user), password) = (&config.username, &config.password) {
        options.set_credentials(user.clone(), password.clone().unwrap_or_default());
    }
    options
}

impl Connection {
    /// Connects, and subscribes to the unit's downlink topics: `<base>/cmd/#`
    /// and, with `max_update` (field updates are on), `<base>/update/+`
    /// with its own size limit.
    pub async fn open(
        config: &ServerConfig,
        unit_id: &str,
        max_update: Option<usize>,
    ) -> Result<Self, MqttError> {
        let base = base_topic(config, unit_id);
        let (tx, dropped) = mpsc::unbounded_channel();
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let limits = limits(config, &base, max_update);
            let socket = Socket::connect(config, limits.clone(), tx).await?;
            let (client, mut events) =
                AsyncClient::new(options(config, unit_id, &base, &socket, &limits), QUEUE);
            loop {
                if let Event::Incoming(Packet::ConnAck(ack)) = events.poll().await? {
                    return match ack.code {
                        ConnectReturnCode::Success => Ok((socket, client, events)),
                        code => Err(MqttError::Refused(code)),
                    };
                }
            }
        })
        .await
        .map_err(|_| MqttError::Timeout(CONNECT_TIMEOUT))?;
        let (socket, client, events) = connected?;
        client
            .subscribe(format!("{base}/cmd/#"), QoS::AtLeastOnce)
            .await?;
        if max_update.is_some() {
            client
                .subscribe(format!("{base}/update/+"), QoS::AtLeastOnce)
                .await?;
        }
        Ok(Self {
            client,
            events,
            dropped,
            _socket: socket,
            base,
            queued: VecDeque::new(),
            written: HashMap::new(),
            outstanding: HashMap::new(),
        })
    }

    /// Publishes `payload` on `topic` (relative to the base topic, or from
    /// the broker's root when it starts with `/`) with QoS 1;
    /// [`Incoming::Acked`] with `tag` follows once every publish with that
    /// tag is acknowledged.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        tag: u64,
    ) -> Result<(), MqttError> {
        let topic = match topic.strip_prefix('/') {
            Some(absolute) => absolute.to_string(),
            None => format!("{}/{topic}", self.base),
        };
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)?;
        self.queued.push_back(tag);
        *self.outstanding.entry(tag).or_default() += 1;
        Ok(())
    }

    /// Acknowledges a received message (see [`Ack`]).
    pub fn ack(&self, ack: Ack) -> Result<(), MqttError> {
        Ok(self.client.try_ack(&ack.0)?)
    }

    /// The unit's base topic.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Tags with publishes not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// The next thing the broker sent that the link cares about.
    pub async fn next(&mut self) -> Result<Incoming, MqttError> {
        loop {
            // A drop is said before the messages that came after it.
            let event = tokio::select! {
                biased;
                Some(dropped) = self.dropped.recv() => return Ok(Incoming::Dropped(dropped)),
                event = self.events.poll() => event?,
            };
            match event {
                Event::Outgoing(Outgoing::Publish(pkid)) => {
                    if let Some(tag) = self.queued.pop_front() {
                        self.written.insert(pkid, tag);
                    }
                }
                Event::Incoming(Packet::PubAck(ack)) => {
                    let Some(tag) = self.written.remove(&ack.pkid) else {
                        continue;
                    };
                    let left = self.outstanding.get_mut(&tag).map(|n| {
                        *n -= 1;
                        *n
                    });
                    if left == Some(0) {
                        self.outstanding.remove(&tag);
                        return Ok(Incoming::Acked(tag));
                    }
                }
                // A retained command is an old one the broker keeps for
                // new subscribers: applying it at every connection would
                // undo what was done locally since. Dropped, and said.
                Event::Incoming(Packet::Publish(publish)) if publish.retain => {
                    tracing::warn!(
                        "a retained message on `{}` ({} bytes) is ignored: commands are not retained",
                        publish.topic.escape_debug(),
                        publish.payload.len()
                    );
                    self.ack(Ack(publish))?;
                }
                Event::Incoming(Packet::Publish(publish)) => {
                    let topic = publish
                        .topic
                        .strip_prefix(&self.base)
                        .map(|t| t.trim_start_matches('/').to_string())
                        .unwrap_or_else(|| publish.topic.clone());
                    return Ok(Incoming::Downlink {
                        topic,
                        payload: publish.payload.to_vec(),
                        ack: Ack(publish),
                    });
                }
                _ => {}
            }
        }
    }

    /// Says `offline` on the state topic (a clean disconnect does not fire
    /// the last will) and disconnects, waiting briefly for both to go out.
    pub async fn close(mut self) {
        let base = self.base.clone();
        let _ = self
            .client
            .try_publish(format!("{base}/state"), QoS::AtLeastOnce, true, "offline");
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = self.events.poll().await {
                if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
        // rumqttc's end of the socket closes with it; the socket then
        // passes on the last acknowledgements and the DISCONNECT.
        let Self {
            client,
            events,
            _socket: socket,
            ..
        } = self;
        drop((client, events));
        socket.close(Duration::from_secs(2)).await;
    }
}
