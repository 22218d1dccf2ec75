//! The durable outbox: everything that leaves the unit (server reports, SMS,
//! calls) is written here before it is attempted, and removed only once it
//! is acknowledged (PUBACK from the broker, `+CMGS` from the modem, a call
//! that rang). A restart or `kill -9` at any point loses nothing: at worst
//! an entry is sent twice, and its id lets the server drop the copy.
//!
//! Entries live in a redb database (`<data_dir>/outbox.redb`): each change
//! is a transaction that is fsynced before the call returns. An in-memory
//! index mirrors it for the senders' scheduling (attempts, backoff, what is
//! in flight), which need not survive a restart.
//!
//! **Escalation.** The entries raised by one alarm can form a group with a
//! route (`[alarm] route`, e.g. server, then SMS, then call): a later step
//! is held until the steps before it failed (not acknowledged within
//! `escalate_after_s`, or an SMS or call that failed), and dropped once an
//! earlier step succeeded.

mod deliver;
pub mod record;

pub use deliver::deliver_to_modem;
pub use record::Report;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::Step;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Entries kept at most; past it, new reports other than alarms and
/// restores are refused (and logged) so a unit offline for weeks does not
/// fill its flash.
pub const MAX_ENTRIES: usize = 10_000;
/// Longest wait between two attempts at an SMS or call.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A failure of the outbox's storage.
#[derive(Debug, thiserror::Error)]
#[error("outbox: {0}")]
pub struct OutboxError(String);

fn db_err(e: impl std::fmt::Display) -> OutboxError {
    OutboxError(e.to_string())
}

/// What an entry carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// A report for the server.
    Report(Report),
    /// An SMS.
    Sms {
        /// Recipient.
        to: String,
        /// Text.
        text: String,
    },
    /// A voice-call alarm.
    Call {
        /// Number.
        number: String,
        /// Seconds to let it ring.
        ring_s: u32,
    },
}

impl Item {
    /// Whether the server should hear of it at once (alarms and restores
    /// trigger a sync; other reports wait for the next one).
    pub fn urgent(&self) -> bool {
        matches!(self, Item::Report(r) if r.urgent())
    }

    /// Whether it goes to the modem (else to the server).
    pub fn for_modem(&self) -> bool {
        !matches!(self, Item::Report(_))
    }
}

/// One entry, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unique per unit, increasing; the server dedups on it.
    pub id: u64,
    /// When it was queued, milliseconds since the Unix epoch.
    pub queued_ms: u64,
    /// What it carries.
    pub item: Item,
    /// Its alarm group and step there, when it escalates.
    pub route: Option<(u64, Step)>,
    /// When it was released from its route (wall clock, ms); None while held.
    pub released_ms: Option<u64>,
    /// Part of an alarm or restore: its SMS and calls go before routine
    /// replies that are due too.
    #[serde(default)]
    pub alarm: bool,
}

/// A new entry: what, its escalation step if it is part of an alarm, and
/// whether it goes before routine replies.
#[derive(Debug, Clone)]
pub struct New {
    /// What.
    pub item: Item,
    /// Its step in the alarm's route.
    pub step: Option<Step>,
    /// Part of an alarm or a restore: sent before routine SMS (among
    /// themselves in order, so a restore never overtakes its alarm).
    pub alarm: bool,
}

/// In-memory scheduling of one entry.
#[derive(Debug, Default, Clone)]
struct Sched {
    attempts: u32,
    next_try: Option<Instant>,
    /// A failed attempt (SMS or call): the route may go on.
    failed_once: bool,
}

struct Index {
    entries: BTreeMap<u64, (Entry, Sched)>,
    in_flight: HashSet<u64>,
}

impl Index {
    /// Entries released, not in flight and past their backoff, oldest first.
    fn due(&self, now: Instant) -> impl Iterator<Item = &Entry> {
        self.entries
            .values()
            .filter(move |(e, s)| {
                e.released_ms.is_some()
                    && s.next_try.is_none_or(|t| t <= now)
                    && !self.in_flight.contains(&e.id)
            })
            .map(|(e, _)| e)
    }
}

/// How full the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Entries waiting.
    pub depth: u32,
    /// Age of the oldest, in seconds.
    pub oldest_s: Option<u64>,
}

/// The durable outbox.
pub struct Outbox {
    db: Database,
    index: Mutex<Index>,
    route: Vec<Step>,
    escalate_after: Duration,
    changed: Notify,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, with the alarm route and how
    /// long each step has before the next is taken.
    pub fn open(
        dir: &Path,
        route: Vec<Step>,
        escalate_after: Duration,
    ) -> Result<Self, OutboxError> {
        std::fs::create_dir_all(dir).map_err(db_err)?;
        let db = Database::create(dir.join("outbox.redb")).map_err(db_err)?;
        Self::init(db, route, escalate_after)
    }

    /// An outbox kept in memory only (tests and benchmarks): nothing
    /// survives it.
    pub fn in_memory(route: Vec<Step>, escalate_after: Duration) -> Result<Self, OutboxError> {
        let db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(db_err)?;
        Self::init(db, route, escalate_after)
    }

    fn init(db: Database, route: Vec<Step>, escalate_after: Duration) -> Result<Self, OutboxError> {
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            // Ids start from the clock, so a unit whose data was wiped does
            // not reuse ids the server has seen.
            if meta.get("next").map_err(db_err)?.is_none() {
                meta.insert("next", now_ms()).map_err(db_err)?;
            }
            txn.open_table(ENTRIES).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let mut entries = BTreeMap::new();
        {
            let txn = db.begin_read().map_err(db_err)?;
            let table = txn.open_table(ENTRIES).map_err(db_err)?;
            for row in table.iter().map_err(db_err)? {
                let (id, bytes) = row.map_err(db_err)?;
                match serde_json::from_slice::<Entry>(bytes.value()) {
                    Ok(entry) => {
                        entries.insert(id.value(), (entry, Sched::default()));
                    }
                    // Written by another version of larmd: kept on disk,
                    // and said once, rather than guessed at.
                    Err(e) => warn!("outbox entry {} cannot be read: {e}", id.value()),
                }
            }
        }
        if !entries.is_empty() {
            info!("{} outbox entries from before the restart", entries.len());
        }
        Ok(Self {
            db,
            index: Mutex::new(Index {
                entries,
                in_flight: HashSet::new(),
            }),
            route,
            escalate_after,
            changed: Notify::new(),
        })
    }

    /// Queues the entries of one event, durably, as one transaction. When
    /// they include an alarm and a route is configured, those on the route
    /// form a group that escalates. Returns their ids.
    pub fn push(&self, new: Vec<New>) -> Result<Vec<u64>, OutboxError> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let mut index = self.index.lock().unwrap();
        let full = index.entries.len() >= MAX_ENTRIES;
        let new: Vec<New> = new
            .into_iter()
            .filter(|n| {
                let keep = !full || n.item.urgent();
                if !keep {
                    warn!("outbox full ({MAX_ENTRIES} entries): {:?} dropped", n.item);
                }
                keep
            })
            .collect();
        let now = now_ms();
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut made = Vec::with_capacity(new.len());
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let mut table = txn.open_table(ENTRIES).map_err(db_err)?;
            let mut next = meta.get("next").map_err(db_err)?.map_or(1, |v| v.value());
            let group = next;
            let routed = new.iter().any(|n| n.step.is_some()) && !self.route.is_empty();
            for n in new {
                let step = n.step.filter(|s| routed && self.route.contains(s));
                let first = step.is_some_and(|s| Some(&s) == self.route.first());
                let entry = Entry {
                    id: next,
                    queued_ms: now,
                    alarm: n.alarm,
                    item: n.item,
                    route: step.map(|s| (group, s)),
                    released_ms: (step.is_none() || first).then_some(now),
                };
                let bytes = serde_json::to_vec(&entry).map_err(db_err)?;
                table.insert(next, bytes.as_slice()).map_err(db_err)?;
                made.push(entry);
                next += 1;
            }
            meta.insert("next", next).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let ids = made.iter().map(|e| e.id).collect();
        for entry in made {
            index.entries.insert(entry.id, (entry, Sched::default()));
        }
        drop(index);
        self.changed.notify_waiters();
        Ok(ids)
    }

    /// Entry `id` was acknowledged: removed for good, and with it the later
    /// steps of its route that are no longer needed.
    pub fn done(&self, id: u64) -> Result<(), OutboxError> {
        let mut index = self.index.lock().unwrap();
        index.in_flight.remove(&id);
        let Some((entry, _)) = index.entries.get(&id) else {
            return Ok(());
        };
        let mut gone = vec![id];
        if let Some((group, step)) = entry.route {
            let position = |s: Step| self.route.iter().position(|r| *r == s);
            for (other, _) in index.entries.values() {
                if let Some((g, s)) = other.route
                    && g == group
                    && position(s) > position(step)
                    && other.released_ms.is_none()
                {
                    info!(
                        "outbox: {s:?} step of alarm {group} not needed: the {step:?} step succeeded"
                    );
                    gone.push(other.id);
                }
            }
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(ENTRIES).map_err(db_err)?;
            for id in &gone {
                table.remove(id).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        for id in gone {
            index.entries.remove(&id);
        }
        drop(index);
        self.changed.notify_waiters();
        Ok(())
    }

    /// An attempt at entry `id` failed: it is tried again after a backoff.
    /// Returns when.
    pub fn failed(&self, id: u64, max_backoff: Duration) -> Option<Duration> {
        let mut index = self.index.lock().unwrap();
        index.in_flight.remove(&id);
        let (_, sched) = index.entries.get_mut(&id)?;
        sched.attempts += 1;
        sched.failed_once = true;
        let wait = Duration::from_secs(1 << sched.attempts.min(16)).min(max_backoff);
        sched.next_try = Some(Instant::now() + wait);
        drop(index);
        self.changed.notify_waiters();
        Some(wait)
    }

    /// Releases held steps whose earlier steps failed, and returns the
    /// entries due now (released, not in flight, past their backoff) for
    /// the modem (`modem = true`) or the server, oldest first, marking them
    /// in flight. The caller reports each with [`done`](Self::done) or
    /// [`failed`](Self::failed), or gives it back with
    /// [`retry_later`](Self::retry_later).
    pub fn take_due(&self, modem: bool, limit: usize) -> Vec<Entry> {
        self.escalate();
        let mut index = self.index.lock().unwrap();
        let now = Instant::now();
        let due: Vec<Entry> = index
            .due(now)
            .filter(|e| e.item.for_modem() == modem)
            .take(limit)
            .cloned()
            .collect();
        index.in_flight.extend(due.iter().map(|e| e.id));
        due
    }

    /// The next SMS or call due (alarms and restores first), as
    /// [`take_due`](Self::take_due) takes it; calls only if `calls`.
    pub fn take_next_for_modem(&self, calls: bool) -> Option<Entry> {
        self.escalate();
        let mut index = self.index.lock().unwrap();
        let now = Instant::now();
        let next = index
            .due(now)
            .filter(|e| e.item.for_modem() && (calls || !matches!(e.item, Item::Call { .. })))
            .min_by_key(|e| (!e.alarm, e.id))
            .cloned()?;
        index.in_flight.insert(next.id);
        Some(next)
    }

    /// The reports due for the server, as [`take_due`](Self::take_due)
    /// takes them: (entry id, report).
    pub fn take_reports(&self, limit: usize) -> Vec<(u64, Report)> {
        self.take_due(false, limit)
            .into_iter()
            .filter_map(|e| match e.item {
                Item::Report(report) => Some((e.id, report)),
                Item::Sms { .. } | Item::Call { .. } => None,
            })
            .collect()
    }

    /// Gives back an entry taken with [`take_due`](Self::take_due) and not
    /// attempted (the connection went down first).
    pub fn retry_later(&self, id: u64) {
        self.index.lock().unwrap().in_flight.remove(&id);
    }

    /// Whether a report that should reach the server at once is due (held
    /// steps whose time has come are released first).
    pub fn urgent_due(&self) -> bool {
        self.escalate();
        self.index
            .lock()
            .unwrap()
            .due(Instant::now())
            .any(|e| e.item.urgent())
    }

    /// Whether an SMS or call is due or being sent (one waiting for its
    /// next try after a failure does not count).
    pub fn modem_pending(&self) -> bool {
        let index = self.index.lock().unwrap();
        let now = Instant::now();
        index.entries.values().any(|(e, s)| {
            e.item.for_modem()
                && e.released_ms.is_some()
                && (index.in_flight.contains(&e.id) || s.next_try.is_none_or(|t| t <= now))
        })
    }

    /// When something may become due by time alone: an entry's next try
    /// after a failure, or an alarm step's escalation time. The senders
    /// sleep until then (or until the outbox changes), not on a tick.
    pub fn next_wake(&self) -> Option<Instant> {
        let index = self.index.lock().unwrap();
        let now = Instant::now();
        let now_wall = now_ms();
        let after = self.escalate_after.as_millis() as u64;
        let retry = index
            .entries
            .values()
            .filter_map(|(_, s)| s.next_try)
            .filter(|t| *t > now)
            .min();
        let held = index.entries.values().any(|(e, _)| e.released_ms.is_none());
        let escalation = held
            .then(|| {
                index
                    .entries
                    .values()
                    .filter(|(e, _)| e.route.is_some())
                    .filter_map(|(e, _)| e.released_ms)
                    .map(|released| released + after)
                    .filter(|at| *at > now_wall)
                    .min()
            })
            .flatten()
            .map(|at| now + Duration::from_millis(at - now_wall));
        retry.into_iter().chain(escalation).min()
    }

    /// Depth and the oldest entry's age.
    pub fn summary(&self) -> Summary {
        let index = self.index.lock().unwrap();
        let now = now_ms();
        Summary {
            depth: index.entries.len() as u32,
            oldest_s: index
                .entries
                .values()
                .map(|(e, _)| e.queued_ms)
                .min()
                .map(|t| now.saturating_sub(t) / 1000),
        }
    }

    /// Resolves when an entry is queued, acknowledged or failed after this
    /// call (call `enable` on it before looking, so nothing slips between).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Releases the held steps whose previous step failed: it was not
    /// acknowledged within the escalation time of its release, or (an SMS
    /// or call) an attempt failed.
    fn escalate(&self) {
        let mut index = self.index.lock().unwrap();
        let now = now_ms();
        let after = self.escalate_after.as_millis() as u64;
        let position = |s: Step| self.route.iter().position(|r| *r == s);
        let release: Vec<u64> = index
            .entries
            .values()
            .filter(|(e, _)| e.released_ms.is_none())
            .filter_map(|(held, _)| {
                let (group, step) = held.route?;
                // The nearest earlier step of this alarm still waiting.
                let earlier = index.entries.values().filter(|(e, _)| {
                    e.route
                        .is_some_and(|(g, s)| g == group && position(s) < position(step))
                });
                let nearest = earlier
                    .clone()
                    .filter_map(|(e, _)| e.route.and_then(|(_, s)| position(s)))
                    .max();
                let failed = nearest.is_none()
                    || earlier
                        .filter(|(e, _)| e.route.and_then(|(_, s)| position(s)) == nearest)
                        .any(|(e, sched)| {
                            sched.failed_once || e.released_ms.is_some_and(|r| now >= r + after)
                        });
                failed.then_some(held.id)
            })
            .collect();
        if release.is_empty() {
            return;
        }
        let mut released = Vec::new();
        for id in release {
            let (entry, _) = index.entries.get_mut(&id).expect("listed above");
            let mut updated = entry.clone();
            updated.released_ms = Some(now);
            match self.store(&updated) {
                Ok(()) => {
                    *entry = updated;
                    released.push(entry.clone());
                }
                Err(e) => warn!("{e}: escalation tried again at the next change"),
            }
        }
        let any = !released.is_empty();
        for entry in released {
            if let Some((group, step)) = entry.route {
                warn!(
                    "alarm {group}: escalating to its {step:?} step (entry {})",
                    entry.id
                );
            }
        }
        // The other sender (the server link or the modem's) may have a step
        // to take now.
        if any {
            self.changed.notify_waiters();
        }
    }

    /// Writes one entry (durably).
    fn store(&self, entry: &Entry) -> Result<(), OutboxError> {
        let bytes = serde_json::to_vec(entry).map_err(db_err)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(ENTRIES)
            .map_err(db_err)?
            .insert(entry.id, bytes.as_slice())
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests;
