//! An MQTT broker and a server-side client for the tests: rumqttd embedded
//! on a free port, and an observer subscribed to the units' topics.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

/// A free loopback port for a server the test starts (a broker, a gate).
///
/// Not one the kernel picks for `bind(0)`: a port it hands out and that is
/// then closed may be handed out again (to a larmd's API, an outgoing
/// connection) before the broker binds it, and two tests would meet on it.
/// Ports are taken from below Linux's ephemeral range (32768 and up), from
/// a counter of this test process, so no two of its tests get the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Test binaries run one at a time; the pid spreads parallel runs.
    let start = (std::process::id() % 1000) as u16 * 12;
    loop {
        let port = 20_000 + start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// Holds the other tests of this process off while the caller runs its
/// broker: with several embedded rumqttd brokers at once in one process,
/// one now and then never acknowledged a subscription (seen on 2 loaded
/// cores), so the tests that start one take turns.
pub fn one_broker_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed holding it must not fail the others.
    ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// rumqttd on a free loopback port, for the life of the test process.
pub fn rumqttd() -> SocketAddr {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let config = format!(
        r#"
        id = 0
        [router]
        id = 0
        max_connections = 100
        max_outgoing_packet_count = 200
        max_segment_size = 104857600
        max_segment_count = 10
        [v4.1]
        name = "v4-1"
        listen = "{addr}"
        next_connection_delay_ms = 1
        [v4.1.connections]
        connection_timeout_ms = 60000
        max_payload_size = 1048576
        max_inflight_count = 100
        dynamic_filters = true
        "#
    );
    let config: rumqttd::Config = toml::from_str(&config).unwrap();
    std::thread::spawn(move || rumqttd::Broker::new(config).start().unwrap());
    wait_listening(addr);
    addr
}

/// Waits until something listens on `addr`.
pub fn wait_listening(addr: SocketAddr) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{addr} never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server's side: a client subscribed to the units' topics.
pub struct Observer {
    client: AsyncClient,
    messages: mpsc::Receiver<(String, Vec<u8>)>,
    _runtime: tokio::runtime::Runtime,
}

impl Observer {
    /// Subscribes to every unit's topics under `prefix`. A client whose
    /// subscription is not acknowledged within 20 s (asked again every 5 s)
    /// is given up for a new one: on a loaded machine the embedded rumqttd
    /// now and then leaves one connection unanswered.
    pub fn connect(broker: SocketAddr, prefix: &str) -> Self {
        for _ in 0..3 {
            if let Some(observer) = Self::try_connect(broker, prefix) {
                return observer;
            }
        }
        panic!("the observer never subscribed, with three clients");
    }

    fn try_connect(broker: SocketAddr, prefix: &str) -> Option<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        static OBSERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = OBSERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut options = MqttOptions::new(
            format!("observer-{}-{n}", std::process::id()),
            broker.ip().to_string(),
            broker.port(),
        );
        options.set_max_packet_size(1 << 20, 1 << 20);
        // A persistent session, subscribed again at every connection: on a
        // busy machine the observer's connection may drop, and nothing the
        // unit publishes meanwhile may be missed.
        options.set_clean_session(false);
        let (client, mut events) = AsyncClient::new(options, 64);
        let (tx, messages) = mpsc::channel();
        let (subscribed_tx, subscribed) = mpsc::channel();
        let resubscribe = client.clone();
        let topic = format!("{prefix}/#");
        runtime.spawn(async move {
            // A subscription the broker has not acknowledged is asked for
            // again: an embedded rumqttd on a loaded machine now and then
            // never answers the first.
            let mut acked = false;
            let mut again = tokio::time::interval(Duration::from_secs(5));
            loop {
                let event = tokio::select! {
                    event = events.poll() => event,
                    _ = again.tick(), if !acked => {
                        let _ = resubscribe.try_subscribe(&topic, QoS::AtLeastOnce);
                        continue;
                    }
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = resubscribe.try_subscribe(&topic, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        acked = true;
                        let _ = subscribed_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        subscribed.recv_timeout(Duration::from_secs(20)).ok()?;
        Some(Self {
            client,
            messages,
            _runtime: runtime,
        })
    }

    /// Waits for a message on a topic ending in `suffix` whose payload
    /// satisfies `matches`.
    pub fn wait(&self, suffix: &str, matches: impl Fn(&[u8]) -> bool) -> (String, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (topic, payload) = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("nothing on */{suffix} in time"));
            if topic.ends_with(suffix) && matches(&payload) {
                return (topic, payload);
            }
        }
    }

    pub fn wait_json(&self, suffix: &str, matches: impl Fn(&Value) -> bool) -> (String, Value) {
        let (topic, payload) = self.wait(suffix, |p| {
            serde_json::from_slice(p).is_ok_and(|v: Value| matches(&v))
        });
        (topic, serde_json::from_slice(&payload).unwrap())
    }

    /// Every message for `window`.
    pub fn collect(&self, window: Duration) -> Vec<(String, Vec<u8>)> {
        let end = Instant::now() + window;
        let mut all = Vec::new();
        while let Ok(m) = self
            .messages
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            all.push(m);
        }
        all
    }

    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload.into())
            .unwrap();
    }

    /// Publishes a message the broker keeps for later subscribers.
    pub fn publish_retained(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, true, payload.into())
            .unwrap();
    }
}

/// Mosquitto, plain and TLS, with a CA and a server certificate made by
/// openssl for this run.
pub struct Mosquitto {
    child: Child,
    /// The plain listener.
    pub plain: SocketAddr,
    /// The TLS listener.
    pub tls: SocketAddr,
    /// The CA that signed its certificate.
    pub ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// None when Mosquitto is not installed and not required.
    pub fn start() -> Option<Self> {
        let required = std::env::var_os("LARM_TEST_MOSQUITTO").is_some();
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists());
        let Some(binary) = binary else {
            assert!(
                !required,
                "LARM_TEST_MOSQUITTO is set but mosquitto is not installed"
            );
            eprintln!("mosquitto is not installed: its interop test does not run here");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .status()
                .unwrap();
            assert!(status.success(), "openssl {args:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=larm test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        let plain = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let tls = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        std::fs::write(
            d.join("mosquitto.conf"),
            format!(
                "per_listener_settings false\nallow_anonymous true\npersistence false\n\
                 listener {} 127.0.0.1\n\
                 listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                plain.port(),
                tls.port(),
                d.join("ca.pem").display(),
                d.join("server.pem").display(),
                d.join("server.key").display(),
            ),
        )
        .unwrap();
        // Mosquitto started as root drops to its own user, which must be
        // able to read what it is given.
        use std::os::unix::fs::PermissionsExt;
        for path in [d.to_path_buf(), d.join("server.key")] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Mosquitto's own log stays out of the test's output.
        let child = Command::new(binary)
            .args(["-c", "mosquitto.conf"])
            .current_dir(d)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(plain);
        wait_listening(tls);
        Some(Self {
            child,
            plain,
            tls,
            ca: d.join("ca.pem"),
            _dir: dir,
        })
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
