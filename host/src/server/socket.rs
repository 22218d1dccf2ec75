//! The broker's socket: TCP, or TLS over TCP, owned by larm rather than by
//! rumqttc, so that no single message from the broker can stop the link.
//!
//! rumqttc's MQTT 3.1.1 client fails the whole connection on an incoming
//! packet over its size limit, before its user sees anything; the broker
//! then sends the same message again at every reconnect (QoS 1 in a
//! persistent session, or a retained message), and the link never comes
//! back. MQTT 5's *Maximum Packet Size* would make the broker drop such a
//! message silently, so the unit could neither log nor report it. So the
//! frames from the broker are read here first: a PUBLISH whose payload is
//! over the limit is skipped without being buffered, acknowledged to the
//! broker (so it is not sent again), and reported; everything else is
//! passed on unchanged. rumqttc offers no way to hand it a stream of our
//! own, but it connects to a Unix socket: it gets one in a private
//! directory, with this module on the other end.
//!
//! Only the framing is read here (the fixed header, a PUBLISH's topic and
//! packet id), never the MQTT session, so rumqttc keeps owning the
//! protocol: keep-alive, acknowledgements, redelivery.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rumqttc::tokio_rustls::TlsConnector;
use rumqttc::tokio_rustls::rustls::pki_types::pem::PemObject;
use rumqttc::tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rumqttc::tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::{Mutex, mpsc};

use super::mqtt::MqttError;
use crate::config::ServerConfig;

/// A packet other than PUBLISH larger than this is a broken or hostile
/// broker: the largest the link asks for is a SUBACK of a few bytes.
pub const MAX_CONTROL_PACKET: usize = 64 * 1024;
/// The packets rumqttc writes are our own; this bounds them anyway.
const MAX_OUTGOING_PACKET: usize = 1 << 20;
/// MQTT's PUBLISH packet type, in the fixed header's high nibble.
const PUBLISH: u8 = 3;
/// MQTT's PUBACK packet type.
const PUBACK: u8 = 4;

/// The largest packet rumqttc may be handed: a PUBLISH with the longest
/// topic MQTT allows, a packet id and the largest payload `limits` let by.
pub fn max_packet(limits: &PayloadLimits) -> usize {
    (limits.max() + 2 + usize::from(u16::MAX) + 2).max(MAX_CONTROL_PACKET)
}

/// A message from the broker that was dropped for its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Its topic, as the broker sent it (outside text: escape it to log).
    pub topic: String,
    /// Size of its payload in bytes.
    pub bytes: usize,
    /// Whether it was a retained message.
    pub retained: bool,
}

/// A connection to the broker, with the Unix socket rumqttc connects to.
/// Dropping it closes both.
pub struct Socket {
    path: PathBuf,
    _dir: tempfile::TempDir,
    pump: tokio::task::JoinHandle<()>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Socket {
    /// Connects to the broker of `config` (TLS for `mqtts`); messages with
    /// payloads over their topic's limit are dropped and sent on `dropped`.
    pub async fn connect(
        config: &ServerConfig,
        limits: PayloadLimits,
        dropped: mpsc::UnboundedSender<Dropped>,
    ) -> Result<Self, MqttError> {
        let url = config.url.get_ref();
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| MqttError::Io(format!("connecting to {}:{}", url.host, url.port), e))?;
        let _ = tcp.set_nodelay(true);
        let broker: Box<dyn Stream> = if url.tls {
            let connector = TlsConnector::from(Arc::new(tls_config(config)?));
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| MqttError::Tls(format!("`{}`: {e}", url.host)))?;
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| MqttError::Tls(e.to_string()))?,
            )
        } else {
            Box::new(tcp)
        };
        let dir = tempfile::Builder::new()
            .prefix("larm-mqtt")
            .tempdir()
            .map_err(|e| MqttError::Io("making the MQTT socket's directory".into(), e))?;
        let path = dir.path().join("broker.sock");
        let listener = UnixListener::bind(&path)
            .map_err(|e| MqttError::Io(format!("binding {}", path.display()), e))?;
        let pump = tokio::spawn(async move {
            if let Err(e) = pump(listener, broker, limits, dropped).await {
                tracing::debug!("the broker's socket closed: {e}");
            }
        });
        Ok(Self {
            path,
            _dir: dir,
            pump,
        })
    }

    /// The Unix socket for rumqttc (`Transport::Unix`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits (up to `within`) until what rumqttc wrote before it let go of
    /// its end has reached the broker, and the connection is shut down.
    pub async fn close(mut self, within: std::time::Duration) {
        let _ = tokio::time::timeout(within, &mut self.pump).await;
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// The TLS client settings of `config`: its CA, and its client certificate
/// when it has one.
fn tls_config(config: &ServerConfig) -> Result<ClientConfig, MqttError> {
    let read = |path: &Path| {
        crate::state::read_bounded(path, crate::state::MAX_COMPONENT_BYTES)
            .map_err(|e| MqttError::File(path.display().to_string(), e))
    };
    let pem_error =
        |path: &Path, e: &dyn std::fmt::Display| MqttError::Tls(format!("{}: {e}", path.display()));
    let mut roots = RootCertStore::empty();
    if let Some(file) = &config.ca_file {
        let file = file.get_ref();
        for cert in CertificateDer::pem_slice_iter(&read(file)?) {
            let cert = cert.map_err(|e| pem_error(file, &e))?;
            roots.add(cert).map_err(|e| pem_error(file, &e))?;
        }
        if roots.is_empty() {
            return Err(MqttError::Tls(format!(
                "{}: no CA certificate in it",
                file.display()
            )));
        }
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let (cert, key) = (cert.get_ref(), key.get_ref());
            let chain = CertificateDer::pem_slice_iter(&read(cert)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error(cert, &e))?;
            let secret =
                PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| pem_error(key, &e))?;
            builder
                .with_client_auth_cert(chain, secret)
                .map_err(|e| MqttError::Tls(e.to_string()))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// How large a message's payload may be, by topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadLimits {
    /// For topics no prefix below matches.
    pub default: usize,
    /// Topics starting with a prefix get its limit (component updates are
    /// larger than commands).
    pub prefixed: Vec<(String, usize)>,
}

impl PayloadLimits {
    /// The limit for `topic`.
    pub fn for_topic(&self, topic: &[u8]) -> usize {
        self.prefixed
            .iter()
            .find(|(prefix, _)| topic.starts_with(prefix.as_bytes()))
            .map_or(self.default, |(_, limit)| *limit)
    }

    /// The largest of them.
    pub fn max(&self) -> usize {
        self.prefixed
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, usize::max)
    }
}

/// QoS 1 messages from the broker not acknowledged yet, in the order they
/// came. MQTT wants acknowledgements in that order, so the PUBACK of a
/// dropped message waits for rumqttc's of the messages before it.
#[derive(Debug, Default)]
struct Unacked(VecDeque<(u16, bool)>);

impl Unacked {
    /// A message handed to rumqttc.
    fn passed(&mut self, id: u16) {
        self.0.push_back((id, false));
    }

    /// A message dropped here: the ids to acknowledge now.
    fn dropped(&mut self, id: u16) -> Vec<u16> {
        self.0.push_back((id, true));
        self.ready()
    }

    /// rumqttc acknowledged `id`: the dropped ids to acknowledge after it.
    fn acked(&mut self, id: u16) -> Vec<u16> {
        if let Some(at) = self.0.iter().position(|&(i, dropped)| i == id && !dropped) {
            self.0.remove(at);
        }
        self.ready()
    }

    fn ready(&mut self) -> Vec<u16> {
        let mut ready = Vec::new();
        while let Some(&(id, true)) = self.0.front() {
            ready.push(id);
            self.0.pop_front();
        }
        ready
    }
}

/// MQTT's PUBACK packet for `id`.
fn puback(id: u16) -> [u8; 4] {
    let [hi, lo] = id.to_be_bytes();
    [PUBACK << 4, 2, hi, lo]
}

/// Carries frames both ways until either side closes.
async fn pump(
    listener: UnixListener,
    broker: Box<dyn Stream>,
    limits: PayloadLimits,
    dropped: mpsc::UnboundedSender<Dropped>,
) -> io::Result<()> {
    let (client, _) = listener.accept().await?;
    drop(listener);
    let (broker_rd, broker_wr) = tokio::io::split(broker);
    let (client_rd, client_wr) = client.into_split();
    // rumqttc's packets and our acknowledgements both go to the broker:
    // each is written whole, under this lock, so they never interleave.
    let broker_wr = Mutex::new(broker_wr);
    let unacked = std::sync::Mutex::new(Unacked::default());
    let up = async {
        let mut client_rd = BufReader::new(client_rd);
        while let Some(header) = Header::read(&mut client_rd).await? {
            if header.len > MAX_OUTGOING_PACKET {
                return Err(invalid("rumqttc wrote an oversized packet"));
            }
            let body = header.raw.len();
            let mut frame = header.raw.clone();
            frame.resize(body + header.len, 0);
            client_rd.read_exact(&mut frame[body..]).await?;
            if header.kind() == PUBACK && header.len == 2 {
                let id = u16::from_be_bytes([frame[body], frame[body + 1]]);
                for id in unacked.lock().unwrap().acked(id) {
                    frame.extend(puback(id));
                }
            }
            let mut wr = broker_wr.lock().await;
            wr.write_all(&frame).await?;
            wr.flush().await?;
        }
        broker_wr.lock().await.shutdown().await
    };
    let down = async {
        let mut broker_rd = BufReader::new(broker_rd);
        let mut client_wr = client_wr;
        while let Some(header) = Header::read(&mut broker_rd).await? {
            let prefix = if header.kind() == PUBLISH {
                match Publish::read(&mut broker_rd, &header, &limits).await? {
                    Publish::Pass { prefix, packet_id } => {
                        if let Some(id) = packet_id {
                            unacked.lock().unwrap().passed(id);
                        }
                        prefix
                    }
                    Publish::Dropped(message, packet_id) => {
                        if let Some(id) = packet_id {
                            let ready = unacked.lock().unwrap().dropped(id);
                            let acks: Vec<u8> = ready.into_iter().flat_map(puback).collect();
                            let mut wr = broker_wr.lock().await;
                            wr.write_all(&acks).await?;
                            wr.flush().await?;
                        }
                        let _ = dropped.send(message);
                        continue;
                    }
                }
            } else if header.len > MAX_CONTROL_PACKET {
                return Err(invalid("the broker sent an oversized control packet"));
            } else {
                Vec::new()
            };
            client_wr.write_all(&header.raw).await?;
            client_wr.write_all(&prefix).await?;
            let rest = (header.len - prefix.len()) as u64;
            let copied = tokio::io::copy(&mut (&mut broker_rd).take(rest), &mut client_wr).await?;
            if copied != rest {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            client_wr.flush().await?;
        }
        Ok(())
    };
    tokio::pin!(up, down);
    tokio::select! {
        r = &mut up => r,
        r = &mut down => {
            // rumqttc may have let go of its end while the broker still
            // spoke: what it wrote last (acknowledgements, DISCONNECT) still
            // goes out.
            if r.is_err() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut up).await;
            }
            r
        }
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// An MQTT fixed header: the first byte and the remaining length.
struct Header {
    /// The header's bytes as read, to pass on unchanged.
    raw: Vec<u8>,
    /// Remaining length: the bytes of the packet after the header.
    len: usize,
}

impl Header {
    /// Reads a header; None at a clean end of the stream.
    async fn read(r: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Self>> {
        let first = match r.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut raw = vec![first];
        let mut len = 0usize;
        // The remaining length: at most four bytes, seven bits each.
        for shift in [0, 7, 14, 21] {
            let b = r.read_u8().await?;
            raw.push(b);
            len |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(Some(Self { raw, len }));
            }
        }
        Err(invalid("a remaining length of more than four bytes"))
    }

    fn kind(&self) -> u8 {
        self.raw[0] >> 4
    }

    fn qos(&self) -> u8 {
        (self.raw[0] >> 1) & 3
    }

    fn retain(&self) -> bool {
        self.raw[0] & 1 == 1
    }
}

/// What to do with a PUBLISH, from its variable header.
enum Publish {
    /// Pass it on: these bytes of it were read already.
    Pass {
        /// The topic and packet id, as read.
        prefix: Vec<u8>,
        /// Its packet id (QoS 1).
        packet_id: Option<u16>,
    },
    /// It was skipped; acknowledge this packet id, if it has one.
    Dropped(Dropped, Option<u16>),
}

impl Publish {
    async fn read(
        r: &mut (impl AsyncRead + Unpin),
        header: &Header,
        limits: &PayloadLimits,
    ) -> io::Result<Self> {
        let id_len = match header.qos() {
            0 => 0,
            1 => 2,
            // The link subscribes with QoS 1, so the broker never sends 2.
            _ => return Err(invalid("a PUBLISH with QoS 2 or 3")),
        };
        if header.len < 2 {
            return Err(invalid("a PUBLISH without a topic"));
        }
        let topic_len = usize::from(r.read_u16().await?);
        let payload = header
            .len
            .checked_sub(2 + topic_len + id_len)
            .ok_or_else(|| invalid("a PUBLISH shorter than its topic"))?;
        let mut prefix = vec![0; 2 + topic_len + id_len];
        prefix[..2].copy_from_slice(&(topic_len as u16).to_be_bytes());
        r.read_exact(&mut prefix[2..]).await?;
        let topic = &prefix[2..2 + topic_len];
        let packet_id = (id_len == 2)
            .then(|| u16::from_be_bytes([prefix[2 + topic_len], prefix[3 + topic_len]]));
        if payload <= limits.for_topic(topic) {
            return Ok(Self::Pass { prefix, packet_id });
        }
        let skipped = tokio::io::copy(&mut r.take(payload as u64), &mut tokio::io::sink()).await?;
        if skipped != payload as u64 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Self::Dropped(
            Dropped {
                topic: String::from_utf8_lossy(topic).into_owned(),
                bytes: payload,
                retained: header.retain(),
            },
            packet_id,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(topic: &str, id: Option<u16>, payload: &[u8], retain: bool) -> Vec<u8> {
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(topic.as_bytes());
        if let Some(id) = id {
            body.extend_from_slice(&id.to_be_bytes());
        }
        body.extend_from_slice(payload);
        let first = 0x30 | if id.is_some() { 2 } else { 0 } | u8::from(retain);
        let mut packet = vec![first];
        let mut len = body.len();
        loop {
            let mut b = (len & 0x7f) as u8;
            len >>= 7;
            if len > 0 {
                b |= 0x80;
            }
            packet.push(b);
            if len == 0 {
                break;
            }
        }
        packet.extend(body);
        packet
    }

    /// Feeds `from_broker` through the pump and returns what rumqttc got,
    /// what the broker got back and what was dropped.
    fn limits(default: usize) -> PayloadLimits {
        PayloadLimits {
            default,
            prefixed: vec![("larm/u/update/".into(), 10 * default)],
        }
    }

    async fn through(from_broker: Vec<u8>, max_payload: usize) -> (Vec<u8>, Vec<u8>, Vec<Dropped>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let (broker_end, ours) = tokio::io::duplex(1 << 16);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(listener, Box::new(ours), limits(max_payload), tx));
        let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (mut broker_rd, mut broker_wr) = tokio::io::split(broker_end);
        let writer = tokio::spawn(async move {
            broker_wr.write_all(&from_broker).await.unwrap();
            broker_wr.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        drop(client);
        task.await.unwrap().unwrap();
        let mut back = Vec::new();
        broker_rd.read_to_end(&mut back).await.unwrap();
        let mut dropped = Vec::new();
        while let Ok(d) = rx.try_recv() {
            dropped.push(d);
        }
        (got, back, dropped)
    }

    #[tokio::test]
    async fn small_packets_pass_unchanged() {
        let mut stream = publish("larm/u/cmd", Some(7), b"{\"v\":1}", false);
        stream.extend(publish("larm/u/cmd/x", None, &[b'a'; 300], true));
        // A PINGRESP and a SUBACK.
        stream.extend([0xd0, 0]);
        stream.extend([0x90, 3, 0, 1, 1]);
        let (got, back, dropped) = through(stream.clone(), 1000).await;
        assert_eq!(got, stream);
        assert!(back.is_empty() && dropped.is_empty());
    }

    #[tokio::test]
    async fn an_oversized_publish_is_skipped_acknowledged_and_reported() {
        let before = publish("larm/u/cmd", None, b"small", false);
        let big = publish("larm/u/cmd", Some(0x1234), &vec![b'x'; 3_000_000], false);
        let retained = publish("larm/u/cmd/r", None, &[b'y'; 2000], true);
        // Updates have their own, larger limit.
        let update = publish("larm/u/update/rules", None, &[b'z'; 5000], false);
        let after = publish("larm/u/cmd", None, b"after", false);
        let stream = [before.clone(), big, retained, update.clone(), after.clone()].concat();
        let (got, back, dropped) = through(stream, 1000).await;
        assert_eq!(
            got,
            [before, update, after].concat(),
            "the others pass, in order"
        );
        assert_eq!(back, [0x40, 2, 0x12, 0x34], "a PUBACK for the dropped one");
        assert_eq!(
            dropped,
            [
                Dropped {
                    topic: "larm/u/cmd".into(),
                    bytes: 3_000_000,
                    retained: false
                },
                Dropped {
                    topic: "larm/u/cmd/r".into(),
                    bytes: 2000,
                    retained: true
                }
            ]
        );
    }

    /// MQTT wants acknowledgements in the order messages came: a dropped
    /// message's waits for rumqttc's of the one before it.
    #[tokio::test]
    async fn acknowledgements_keep_the_order_of_the_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let (broker_end, ours) = tokio::io::duplex(1 << 16);
        let (tx, _rx) = mpsc::unbounded_channel();
        tokio::spawn(pump(listener, Box::new(ours), limits(100), tx));
        let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (mut broker_rd, mut broker_wr) = tokio::io::split(broker_end);
        let first = publish("larm/u/cmd", Some(1), b"one", false);
        let stream = [
            first.clone(),
            publish("larm/u/cmd", Some(2), &[b'x'; 500], false),
            publish("larm/u/cmd", Some(3), b"three", false),
        ]
        .concat();
        broker_wr.write_all(&stream).await.unwrap();
        let mut got = vec![0; first.len()];
        client.read_exact(&mut got).await.unwrap();
        let nothing =
            tokio::time::timeout(std::time::Duration::from_millis(100), broker_rd.read_u8()).await;
        assert!(
            nothing.is_err(),
            "acknowledged before the message before it"
        );
        client.write_all(&puback(1)).await.unwrap();
        let mut back = [0; 8];
        broker_rd.read_exact(&mut back).await.unwrap();
        assert_eq!(back, [puback(1), puback(2)].concat()[..]);
        client.write_all(&puback(3)).await.unwrap();
        let mut back = [0; 4];
        broker_rd.read_exact(&mut back).await.unwrap();
        assert_eq!(back, puback(3));
    }

    #[test]
    fn unacked_releases_dropped_ids_in_order() {
        let mut u = Unacked::default();
        assert_eq!(u.dropped(7), [7], "nothing before it");
        u.passed(1);
        assert!(u.dropped(2).is_empty());
        u.passed(3);
        assert!(u.dropped(4).is_empty());
        assert_eq!(u.acked(1), [2]);
        assert_eq!(u.acked(3), [4]);
        assert!(u.acked(99).is_empty(), "an unknown id changes nothing");
    }

    #[tokio::test]
    async fn a_broken_frame_ends_the_connection() {
        for stream in [
            vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
            vec![0x90, 0xff, 0xff, 0x7f],
            // A topic longer than the packet.
            vec![0x30, 3, 0, 9, b'a'],
            publish("t", Some(1), b"", false)
                .into_iter()
                .map(|b| if b == 0x32 { 0x34 } else { b })
                .collect(),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s");
            let listener = UnixListener::bind(&path).unwrap();
            let (mut broker_end, ours) = tokio::io::duplex(1024);
            let (tx, _rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(pump(listener, Box::new(ours), limits(100), tx));
            let _client = tokio::net::UnixStream::connect(&path).await.unwrap();
            broker_end.write_all(&stream).await.unwrap();
            let result = task.await.unwrap();
            assert!(result.is_err(), "{stream:02x?} was taken");
        }
    }
}
