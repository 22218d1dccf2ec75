//! The server link: when to connect, and what a sync does.
//!
//! As docs/unit.md describes, the link syncs every `CONINTVL` minutes
//! (0 = never), and at once for an alarm or `CONNECT`: it connects, says
//! `online`, publishes the adapters' connect messages and the status, sends
//! every report waiting in the outbox, takes the server's pending commands
//! (the broker queued them in the unit's persistent session), and after
//! `linger_s` without traffic disconnects. With `stay_connected` it keeps
//! the connection and sends reports as they come. A failed sync is retried
//! with backoff; meanwhile the red LED shows code 6. The blue LED is lit
//! while connected.
//!
//! - [`mqtt`]: the transport (rumqttc).
//! - [`socket`]: the broker's socket, which drops messages too large to take.

pub mod mqtt;
pub mod socket;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::ServerConfig;
use crate::outbox::{MAX_BACKOFF, Outbox, now_ms};
use crate::plugins::Adapters;
use crate::plugins::bindings::larm::plugin::types::{PluginState, Report};
use crate::plugins::bindings::server_adapter::exports::larm::plugin::adapter::Message;
use crate::unit::Shared;
use crate::updates::Updates;
use mqtt::{Connection, Incoming, MAX_IN_FLIGHT, MqttError};
use socket::Dropped;

/// Tag of publishes that are not outbox entries (state, status, connect
/// messages): their acknowledgement is not waited for.
const UNTRACKED: u64 = 0;

/// What the rest of the unit asks of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Sync now (`CONNECT`).
    Connect,
    /// A new connection interval in minutes (`CONINTVL`); 0 = never.
    Interval(u32),
}

/// When the next periodic sync is due. Time is passed in, so the policy is
/// tested with any clock.
#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl Schedule {
    /// A schedule with an interval of `minutes` (0 = never), whose first
    /// sync is due at once (the unit announces itself when it starts).
    pub fn new(minutes: u32, now: Instant) -> Self {
        Self {
            interval: Self::interval(minutes),
            next: Some(now),
        }
    }

    fn interval(minutes: u32) -> Option<Duration> {
        (minutes > 0).then(|| Duration::from_secs(u64::from(minutes) * 60))
    }

    /// A sync finished at `now`: the next is one interval later.
    pub fn synced(&mut self, now: Instant) {
        self.next = self.interval.map(|i| now + i);
    }

    /// The interval changed at `now`: the next sync is one new interval
    /// from now, or never.
    pub fn set_interval(&mut self, minutes: u32, now: Instant) {
        self.interval = Self::interval(minutes);
        self.next = self.interval.map(|i| now + i);
    }

    /// When the next periodic sync is due; None = only on demand.
    pub fn next(&self) -> Option<Instant> {
        self.next
    }

    /// Whether a periodic sync is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|n| n <= now)
    }
}

/// The server link.
pub struct Link {
    config: ServerConfig,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    adapters: Adapters,
    control: mpsc::UnboundedReceiver<Control>,
    schedule: Schedule,
    /// A sync was asked for and has not succeeded yet.
    wanted: bool,
    /// The unit is stopping (the control channel closed).
    stopping: bool,
    /// The last session got connected, whatever ended it.
    connected_once: bool,
    /// Messages dropped for their size since the unit started.
    dropped_count: u32,
    /// Where components from `update/<name>` go, and their size limit;
    /// none when the unit takes no field updates.
    updates: Option<(Updates, usize)>,
}

impl Link {
    /// A link for `config`; `control` carries `CONNECT` and `CONINTVL`.
    pub fn new(
        config: ServerConfig,
        shared: Arc<Shared>,
        outbox: Arc<Outbox>,
        adapters: Adapters,
        control: mpsc::UnboundedReceiver<Control>,
        updates: Option<(Updates, usize)>,
    ) -> Self {
        let minutes = shared
            .state
            .setting(larm_rules::settings::INTERVAL_KEY)
            .ok()
            .flatten()
            .and_then(|m| {
                larm_rules::settings::interval_min(&m)
                    .inspect_err(|why| warn!("the stored interval is not used: {why}"))
                    .ok()
            })
            .unwrap_or(config.interval_min);
        info!(
            "server link to {}:{}, syncing every {}",
            config.url.get_ref().host,
            config.url.get_ref().port,
            if minutes == 0 {
                "never (alarms and CONNECT only)".to_string()
            } else {
                format!("{minutes} min")
            }
        );
        Self {
            config,
            shared,
            outbox,
            adapters,
            control,
            schedule: Schedule::new(minutes, Instant::now()),
            wanted: true,
            stopping: false,
            connected_once: false,
            dropped_count: 0,
            updates,
        }
    }

    fn set_connected(&self, connected: bool) {
        self.shared.link.send_if_modified(|l| {
            let changed = l.connected != connected;
            l.connected = connected;
            changed
        });
    }

    fn set_failing(&self, failing: bool) {
        self.shared.link.send_if_modified(|l| {
            let changed = l.failing != failing;
            l.failing = failing;
            changed
        });
    }

    fn apply(&mut self, control: Control) {
        match control {
            Control::Connect => self.wanted = true,
            Control::Interval(minutes) => self.schedule.set_interval(minutes, Instant::now()),
        }
    }

    /// Runs the link until the control channel closes (the unit stops).
    pub async fn run(mut self) {
        let retry_max = Duration::from_secs(self.config.retry_max_s.get());
        let mut backoff = Duration::from_secs(1);
        let mut retry_at = None;
        while !self.stopping {
            let now = Instant::now();
            let must = self.wanted
                || self.config.stay_connected
                || self.schedule.due(now)
                || self.outbox.urgent_due();
            if must && retry_at.is_none_or(|t| t <= now) {
                match self.session().await {
                    Ok(()) => {
                        self.wanted = false;
                        self.set_failing(false);
                        self.schedule.synced(Instant::now());
                        backoff = Duration::from_secs(1);
                        retry_at = None;
                    }
                    Err(e) => {
                        // A connection that worked and then dropped starts
                        // the backoff afresh: the broker is there.
                        if std::mem::take(&mut self.connected_once) {
                            backoff = Duration::from_secs(1);
                        }
                        warn!("server sync failed: {e}; next try in {backoff:?}");
                        self.set_failing(true);
                        self.wanted = true;
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(retry_max);
                    }
                }
                continue;
            }
            let outbox = self.outbox.clone();
            let changed = outbox.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if retry_at.is_none() && self.outbox.urgent_due() {
                continue;
            }
            // An alarm's escalation may release a server step by time alone.
            let wake = [
                retry_at,
                self.schedule.next(),
                self.outbox.next_wake().map(Into::into),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                () = crate::unit::sleep_until(wake) => {}
                control = self.control.recv() => match control {
                    Some(Control::Connect) => {
                        self.wanted = true;
                        retry_at = None;
                    }
                    Some(c) => self.apply(c),
                    None => return,
                },
                () = &mut changed, if retry_at.is_none() => {}
            }
        }
    }

    /// One connection: from connect to disconnect (or to the error that
    /// ended it). Entries taken from the outbox and not acknowledged are
    /// given back.
    async fn session(&mut self) -> Result<(), MqttError> {
        let unit_id = self.shared.state.unit_id().unwrap_or_default();
        let max_update = self.updates.as_ref().map(|(_, limit)| *limit);
        let mut conn = Connection::open(&self.config, &unit_id, max_update).await?;
        self.connected_once = true;
        info!("connected to the server");
        self.set_connected(true);
        self.set_failing(false);
        let mut taken = HashSet::new();
        let result = self.exchange(&mut conn, &mut taken).await;
        self.set_connected(false);
        for id in taken {
            self.outbox.retry_later(id);
        }
        match &result {
            Ok(()) => {
                conn.close().await;
                info!("server sync done; disconnected");
            }
            Err(e) => warn!("server connection lost: {e}"),
        }
        result
    }

    fn publish_all(
        &self,
        conn: &mut Connection,
        messages: Vec<Message>,
        tag: u64,
    ) -> Result<(), MqttError> {
        for m in messages {
            conn.publish(&m.topic, m.payload, m.retain, tag)?;
        }
        Ok(())
    }

    /// The status, encoded by the adapters.
    async fn publish_status(&self, conn: &mut Connection) -> Result<(), MqttError> {
        let status = Report::Status(self.shared.device_status());
        match self
            .adapters
            .encode(&format!("status-{}", now_ms()), &status)
            .await
        {
            Ok(messages) => self.publish_all(conn, messages, UNTRACKED),
            Err(e) => {
                warn!("status not sent: {e}");
                Ok(())
            }
        }
    }

    async fn exchange(
        &mut self,
        conn: &mut Connection,
        taken: &mut HashSet<u64>,
    ) -> Result<(), MqttError> {
        conn.publish("state", b"online".to_vec(), true, UNTRACKED)?;
        let hello = self.adapters.connected(conn.base()).await;
        self.publish_all(conn, hello, UNTRACKED)?;
        self.publish_status(conn).await?;
        let linger = Duration::from_secs(self.config.linger_s);
        let mut last_traffic = Instant::now();
        loop {
            // Listening for changes before taking what is due, so an entry
            // queued meanwhile is not missed.
            let outbox = self.outbox.clone();
            let changed = outbox.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            self.send_due(conn, taken).await?;
            let idle = conn.in_flight() == 0 && !self.config.stay_connected;
            tokio::select! {
                incoming = conn.next() => {
                    last_traffic = Instant::now();
                    match incoming? {
                        Incoming::Acked(UNTRACKED) => {}
                        Incoming::Acked(id) => {
                            taken.remove(&id);
                            debug!("outbox entry {id} acknowledged by the broker");
                            if let Err(e) = self.outbox.done(id) {
                                error!("{e}: entry {id} may be sent again");
                            }
                        }
                        Incoming::Downlink { topic, payload, ack } => {
                            match topic.strip_prefix("update/") {
                                Some(name) => self.update(name, payload).await,
                                None => self.downlink(topic, payload).await,
                            }
                            conn.ack(ack)?;
                        }
                        Incoming::Dropped(dropped) => self.dropped(&dropped),
                    }
                }
                () = &mut changed => {}
                // A retry after a failed encoding, or an escalation, falls due.
                () = crate::unit::sleep_until(self.outbox.next_wake()) => {}
                control = self.control.recv() => match control {
                    // Connected already: a sync means a fresh status.
                    Some(Control::Connect) => self.publish_status(conn).await?,
                    Some(c) => self.apply(c),
                    None => {
                        self.stopping = true;
                        return Ok(());
                    }
                },
                // Staying connected, the status still goes out every interval.
                () = crate::unit::sleep_until(self.schedule.next()), if self.config.stay_connected => {
                    self.publish_status(conn).await?;
                    self.schedule.synced(Instant::now());
                }
                () = tokio::time::sleep_until(last_traffic + linger), if idle => return Ok(()),
            }
        }
    }

    /// Encodes and publishes the reports due, keeping at most
    /// [`MAX_IN_FLIGHT`] unacknowledged.
    async fn send_due(
        &mut self,
        conn: &mut Connection,
        taken: &mut HashSet<u64>,
    ) -> Result<(), MqttError> {
        let room = MAX_IN_FLIGHT.saturating_sub(conn.in_flight());
        for (id, report) in self.outbox.take_reports(room) {
            match self.adapters.encode(&id.to_string(), &report.into()).await {
                // The adapters chose not to send this report.
                Ok(messages) if messages.is_empty() => {
                    if let Err(e) = self.outbox.done(id) {
                        error!("{e}");
                    }
                }
                Ok(messages) => {
                    taken.insert(id);
                    self.publish_all(conn, messages, id)?;
                }
                Err(e) => {
                    warn!("report {id} not encoded: {e}");
                    self.outbox.failed(id, MAX_BACKOFF);
                }
            }
        }
        Ok(())
    }

    /// A message too large to take: the socket skipped and acknowledged
    /// it, so the broker does not send it again. Logged, and reported on
    /// the server's health events (someone sent it).
    fn dropped(&mut self, dropped: &Dropped) {
        self.dropped_count = self.dropped_count.saturating_add(1);
        let (limit, what) = match &self.updates {
            Some((_, limit)) if dropped.topic.contains("/update/") => {
                (*limit, "[updates] max_mqtt_bytes")
            }
            _ => (self.config.max_downlink_bytes, "max_downlink_bytes"),
        };
        let why = format!(
            "dropped a{} message of {} bytes on `{}`: more than {what} ({limit})",
            if dropped.retained { " retained" } else { "" },
            dropped.bytes,
            dropped.topic.escape_debug(),
        );
        warn!(event = "downlink-dropped", bytes = dropped.bytes, "{why}");
        self.shared
            .report_health("server", PluginState::Running, self.dropped_count, why);
    }

    /// A component from the server for plugin `name`: installed, or
    /// refused; either way the server hears of it on its update events.
    async fn update(&self, name: &str, component: Vec<u8>) {
        let Some((updates, _)) = &self.updates else {
            return;
        };
        if !crate::config::is_plugin_name(name) {
            warn!(
                "update on `update/{}` ignored: not a plugin name",
                name.escape_debug()
            );
            return;
        }
        match updates.install(name, component, "server").await {
            Ok(installed) if installed.already => {
                info!(
                    "update for `{}` from the server: runs already",
                    name.escape_debug()
                );
            }
            Ok(_) => info!(
                "update for `{}` from the server installed",
                name.escape_debug()
            ),
            // Logged and reported by the update service.
            Err(_) => {}
        }
    }

    /// A message from the server, for the adapters to apply (the socket
    /// let none through over `max_downlink_bytes`).
    async fn downlink(&self, topic: String, payload: Vec<u8>) {
        let message = Message {
            topic: topic.clone(),
            payload,
            retain: false,
        };
        let shown = topic.escape_debug();
        for (adapter, result) in self.adapters.downlink(&message).await {
            match result {
                Ok(()) => info!("downlink on `{shown}` applied by {adapter}"),
                Err(why) => warn!(
                    "downlink on `{shown}` rejected by {adapter}: {}",
                    why.escape_debug()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conintvl_schedule() {
        let start = Instant::now();
        let mut s = Schedule::new(10, start);
        assert!(s.due(start), "the first sync is at start-up");
        s.synced(start);
        assert!(!s.due(start + Duration::from_secs(9 * 60)));
        assert!(s.due(start + Duration::from_secs(10 * 60)));
        // CONINTVL 0: never again on its own.
        let later = start + Duration::from_secs(60);
        s.set_interval(0, later);
        assert_eq!(s.next(), None);
        assert!(!s.due(start + Duration::from_secs(365 * 24 * 3600)));
        // CONINTVL 5 counts from when it was set.
        s.set_interval(5, later);
        assert!(!s.due(later + Duration::from_secs(299)));
        assert!(s.due(later + Duration::from_secs(300)));
        s.synced(later + Duration::from_secs(300));
        assert_eq!(s.next(), Some(later + Duration::from_secs(600)));
    }
}
