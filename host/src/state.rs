//! The unit's persisted state: device settings, the SMS password hash, the
//! unit id, and each plugin's private key-value store.
//!
//! All of it lives in one redb database (`<data_dir>/state.redb`): every
//! change is a transaction that is durable (fsynced) when the call returns,
//! and a crash mid-write leaves the previous state intact.
//!
//! A file that is lost, emptied or corrupted anyway (a failing SD card, a
//! careless copy) must not silently give the unit a new identity and the
//! factory password. After each committed change the whole state is also
//! written to `<data_dir>/state.backup`: a SHA-256 line, then the state as
//! JSON, replaced atomically. At start, a `state.redb` that cannot be
//! opened, or has no unit id while a backup exists, is moved aside and
//! rebuilt from the backup, and [`State::restored`] says so, for the log,
//! the LEDs and the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};

const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
const UNIT: TableDefinition<&str, &str> = TableDefinition::new("unit");
/// Plugin stores share one table; keys are `<plugin>\0<key>`.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// The host's running records (timed outputs, quota counters): kept across
/// restarts, but not the unit's identity or settings, so neither in the
/// backup nor cleared by a factory reset.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");

/// The factory password (docs/unit.md).
pub use larm_rules::password::FACTORY as FACTORY_PASSWORD;
/// Total bytes (keys and values) one plugin may keep in its store.
pub const KV_QUOTA: usize = 64 * 1024;

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database could not be opened, read or written.
    #[error("state store: {0}")]
    Db(String),
    /// A plugin's store would grow past [`KV_QUOTA`].
    #[error("the plugin's store would exceed its {KV_QUOTA} byte quota")]
    Quota,
    /// A bounded family of settings (`larm_rules::settings::FAMILIES`)
    /// would grow past its most keys.
    #[error("at most {max} settings {prefix}*")]
    Full {
        /// The family's prefix.
        prefix: &'static str,
        /// Its most keys.
        max: usize,
    },
}

fn db_err(e: impl std::fmt::Display) -> StateError {
    StateError::Db(e.to_string())
}

/// The unit's persisted state.
pub struct State {
    db: Database,
    /// Where the backup goes; none for a state in memory. The lock keeps
    /// two writers from saving their snapshots out of order.
    backup: Option<Mutex<PathBuf>>,
    restored: Option<String>,
    /// Counts commits that changed the device settings, so the web panel's
    /// event stream follows them without reading the store again and again.
    settings_version: tokio::sync::watch::Sender<u64>,
}

/// Everything in the state, as the backup holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    unit: BTreeMap<String, String>,
    settings: BTreeMap<String, String>,
    kv: BTreeMap<String, Vec<u8>>,
}

impl State {
    /// Opens (or creates) the state in `dir`, restoring it from its backup
    /// if `state.redb` is unusable (see the module doc).
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(db_err)?;
        let path = dir.join("state.redb");
        let backup_path = dir.join("state.backup");
        let existed = path.exists();
        let (db, mut problem) = match Database::create(&path) {
            Ok(db) => (db, None),
            // Held by another process, or an I/O error that says nothing
            // about the file's contents: not a reason to set it aside.
            Err(e) if !damaged(&e) => return Err(db_err(e)),
            Err(e) => {
                let aside = dir.join(format!("state.redb.corrupt-{}", now_s()));
                std::fs::rename(&path, &aside).map_err(db_err)?;
                let db = Database::create(&path).map_err(db_err)?;
                let why = format!(
                    "state.redb could not be opened ({e}; kept as {})",
                    aside.display()
                );
                (db, Some(why))
            }
        };
        let has_id = {
            let txn = db.begin_read().map_err(db_err)?;
            txn.open_table(UNIT)
                .ok()
                .and_then(|t| t.get("id").ok().flatten())
                .is_some()
        };
        let backup = read_backup(&backup_path);
        if problem.is_none() && !has_id && (existed || matches!(backup, Ok(Some(_)))) {
            problem = Some(if existed {
                "state.redb was empty".to_string()
            } else {
                "state.redb was missing".to_string()
            });
        }
        let restored = match (problem, backup) {
            (None, Err(e)) => {
                tracing::warn!("{e}: it is written anew");
                None
            }
            (None, Ok(_)) => None,
            (Some(problem), Ok(Some(snapshot))) => {
                restore(&db, &snapshot)?;
                Some(format!(
                    "{problem}; restored from {}",
                    backup_path.display()
                ))
            }
            (Some(problem), Ok(None)) => Some(format!(
                "{problem}, and there is no backup: the unit starts with a new id and factory settings"
            )),
            (Some(problem), Err(e)) => {
                // Kept for whoever investigates; the new backup replaces it.
                let aside = dir.join(format!("state.backup.damaged-{}", now_s()));
                let _ = std::fs::rename(&backup_path, &aside);
                Some(format!(
                    "{problem}, and {e} (kept as {}): the unit starts with a new id and factory settings",
                    aside.display()
                ))
            }
        };
        let mut state = Self::init(db)?;
        state.restored = restored;
        state.backup = Some(Mutex::new(backup_path));
        state.save_backup();
        Ok(state)
    }

    /// A state kept in memory only (benchmarks, `larmd check`).
    pub fn in_memory() -> Result<Self, StateError> {
        let db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(db_err)?;
        Self::init(db)
    }

    /// What went wrong with `state.redb` at start and how it was
    /// recovered, if it did.
    pub fn restored(&self) -> Option<&str> {
        self.restored.as_deref()
    }

    /// Writes the backup of the state as it is now. A failure is logged:
    /// the change itself is committed.
    fn save_backup(&self) {
        let Some(path) = &self.backup else { return };
        let path = path.lock().unwrap();
        let saved = self.snapshot().and_then(|snapshot| {
            let json = serde_json::to_vec(&snapshot).map_err(db_err)?;
            let mut bytes = hex(&Sha256::digest(&json)).into_bytes();
            bytes.push(b'\n');
            bytes.extend(json);
            let dir = path.parent().unwrap_or(Path::new("."));
            write_atomically(dir, &path, &bytes).map_err(db_err)
        });
        if let Err(e) = saved {
            tracing::warn!("writing the state's backup {}: {e}", path.display());
        }
    }

    fn snapshot(&self) -> Result<Snapshot, StateError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let strings =
            |def: TableDefinition<&str, &str>| -> Result<BTreeMap<String, String>, StateError> {
                let table = txn.open_table(def).map_err(db_err)?;
                let mut map = BTreeMap::new();
                for entry in table.iter().map_err(db_err)? {
                    let (k, v) = entry.map_err(db_err)?;
                    map.insert(k.value().to_string(), v.value().to_string());
                }
                Ok(map)
            };
        let (unit, settings) = (strings(UNIT)?, strings(SETTINGS)?);
        let mut kv = BTreeMap::new();
        for entry in txn.open_table(KV).map_err(db_err)?.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            kv.insert(k.value().to_string(), v.value().to_vec());
        }
        Ok(Snapshot { unit, settings, kv })
    }

    fn init(db: Database) -> Result<Self, StateError> {
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut unit = txn.open_table(UNIT).map_err(db_err)?;
            if unit.get("id").map_err(db_err)?.is_none() {
                unit.insert("id", new_unit_id().as_str()).map_err(db_err)?;
            }
            if unit.get("password").map_err(db_err)?.is_none() {
                unit.insert("password", hash_password(FACTORY_PASSWORD).as_str())
                    .map_err(db_err)?;
            }
            txn.open_table(SETTINGS).map_err(db_err)?;
            txn.open_table(KV).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Self {
            db,
            backup: None,
            restored: None,
            settings_version: tokio::sync::watch::Sender::new(0),
        })
    }

    fn unit_value(&self, key: &str) -> Result<String, StateError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(UNIT).map_err(db_err)?;
        let value = table.get(key).map_err(db_err)?;
        Ok(value.map(|v| v.value().to_string()).unwrap_or_default())
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<R, StateError>,
    ) -> Result<R, StateError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let result = f(&txn)?;
        txn.commit().map_err(db_err)?;
        self.save_backup();
        Ok(result)
    }

    /// The unit's id, made once and kept across factory resets.
    pub fn unit_id(&self) -> Result<String, StateError> {
        self.unit_value("id")
    }

    /// Whether `candidate` is the SMS password.
    pub fn password_matches(&self, candidate: &str) -> Result<bool, StateError> {
        let stored = self.unit_value("password")?;
        Ok(verify_password(&stored, candidate))
    }

    /// Stores a new SMS password (hashed).
    pub fn set_password(&self, password: &str) -> Result<(), StateError> {
        self.write(|txn| {
            let mut unit = txn.open_table(UNIT).map_err(db_err)?;
            unit.insert("password", hash_password(password).as_str())
                .map_err(db_err)?;
            Ok(())
        })
    }

    /// A device setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StateError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SETTINGS).map_err(db_err)?;
        let value = table.get(key).map_err(db_err)?;
        Ok(value.map(|v| v.value().to_string()))
    }

    /// Every device setting whose key starts with `prefix`, sorted.
    pub fn settings(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SETTINGS).map_err(db_err)?;
        let mut found = Vec::new();
        for entry in table.range(prefix..).map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            found.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(found)
    }

    /// Sets (`Some`) or removes (`None`) a device setting.
    pub fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StateError> {
        self.set_settings(&[(key, value)])
    }

    /// Sets (`Some`) or removes (`None`) several settings in one
    /// transaction: after a crash, all of them are changed or none.
    pub fn set_settings(&self, changes: &[(&str, Option<&str>)]) -> Result<(), StateError> {
        self.set_settings_and_kv(changes, "", &[])
    }

    /// Changes settings and entries of `plugin`'s store in one transaction:
    /// all of them, or none (a store over its quota refuses the lot).
    pub fn set_settings_and_kv(
        &self,
        changes: &[(&str, Option<&str>)],
        plugin: &str,
        store: &[(&str, Option<&[u8]>)],
    ) -> Result<(), StateError> {
        self.write(|txn| Self::change_settings(txn, changes, plugin, store))?;
        if !changes.is_empty() {
            self.settings_version.send_modify(|v| *v += 1);
        }
        Ok(())
    }

    /// Bumped after each commit that changed the device settings.
    pub fn settings_version(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settings_version.subscribe()
    }

    fn change_settings(
        txn: &redb::WriteTransaction,
        changes: &[(&str, Option<&str>)],
        plugin: &str,
        store: &[(&str, Option<&[u8]>)],
    ) -> Result<(), StateError> {
        let mut table = txn.open_table(SETTINGS).map_err(db_err)?;
        for &(key, value) in changes {
            match value {
                Some(v) => table.insert(key, v).map(drop),
                None => table.remove(key).map(drop),
            }
            .map_err(db_err)?;
        }
        // Counted inside the transaction, so two writers cannot both
        // take the last place.
        for &(prefix, max) in larm_rules::settings::FAMILIES {
            if changes
                .iter()
                .any(|(k, v)| v.is_some() && k.starts_with(prefix))
            {
                let mut count = 0;
                for entry in table.range(prefix..).map_err(db_err)? {
                    if !entry.map_err(db_err)?.0.value().starts_with(prefix) {
                        break;
                    }
                    count += 1;
                }
                if count > max {
                    return Err(StateError::Full { prefix, max });
                }
            }
        }
        let mut kv = txn.open_table(KV).map_err(db_err)?;
        for &(key, value) in store {
            kv_change(&mut kv, plugin, key, value)?;
        }
        Ok(())
    }

    /// Factory reset: settings and password back to their defaults, plugin
    /// stores emptied; the unit id stays.
    pub fn factory_reset(&self) -> Result<(), StateError> {
        self.write(|txn| {
            txn.delete_table(SETTINGS).map_err(db_err)?;
            txn.delete_table(KV).map_err(db_err)?;
            txn.open_table(SETTINGS).map_err(db_err)?;
            txn.open_table(KV).map_err(db_err)?;
            let mut unit = txn.open_table(UNIT).map_err(db_err)?;
            unit.insert("password", hash_password(FACTORY_PASSWORD).as_str())
                .map_err(db_err)?;
            Ok(())
        })?;
        self.settings_version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// One of the host's records (see [`RECORDS`]).
    pub fn record(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = match txn.open_table(RECORDS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        let value = table.get(key).map_err(db_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Replaces one of the host's records, durably.
    pub fn set_record(&self, key: &str, value: &[u8]) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(RECORDS)
            .map_err(db_err)?
            .insert(key, value)
            .map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// A value from a plugin's store.
    pub fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(KV).map_err(db_err)?;
        let value = table.get(kv_key(plugin, key).as_str()).map_err(db_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// A plugin's entries whose key starts with `prefix`, sorted by key.
    pub fn kv_entries(
        &self,
        plugin: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(KV).map_err(db_err)?;
        let start = kv_key(plugin, prefix);
        let mut found = Vec::new();
        for entry in table.range(start.as_str()..).map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            let Some(key) = k.value().strip_prefix(&start) else {
                break;
            };
            found.push((format!("{prefix}{key}"), v.value().to_vec()));
        }
        Ok(found)
    }

    /// Stores (`Some`) or deletes (`None`) a value in a plugin's store,
    /// refusing to go over the plugin's quota.
    pub fn kv_set(&self, plugin: &str, key: &str, value: Option<&[u8]>) -> Result<(), StateError> {
        self.write(|txn| {
            let mut table = txn.open_table(KV).map_err(db_err)?;
            kv_change(&mut table, plugin, key, value)
        })
    }
}

/// Whether opening the database failed because of what the file holds.
fn damaged(e: &redb::DatabaseError) -> bool {
    use redb::{DatabaseError, StorageError};
    use std::io::ErrorKind;
    match e {
        DatabaseError::Storage(StorageError::Corrupted(_))
        | DatabaseError::RepairAborted
        | DatabaseError::UpgradeRequired(_) => true,
        DatabaseError::Storage(StorageError::Io(io)) => {
            matches!(io.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData)
        }
        _ => false,
    }
}

/// The backup in `path`, checked against its checksum; `None` if there is
/// none.
fn read_backup(path: &Path) -> Result<Option<Snapshot>, String> {
    let bytes = match read_bounded(path, MAX_BACKUP_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("the backup {} {e}", path.display())),
    };
    let bad = || format!("the backup {} is damaged", path.display());
    let split = bytes.iter().position(|b| *b == b'\n').ok_or_else(bad)?;
    let (sum, json) = (&bytes[..split], &bytes[split + 1..]);
    if sum != hex(&Sha256::digest(json)).as_bytes() {
        return Err(bad());
    }
    serde_json::from_slice(json).map(Some).map_err(|_| bad())
}

/// Writes `snapshot` into a fresh database, in one transaction.
fn restore(db: &Database, snapshot: &Snapshot) -> Result<(), StateError> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut unit = txn.open_table(UNIT).map_err(db_err)?;
        for (k, v) in &snapshot.unit {
            unit.insert(k.as_str(), v.as_str()).map_err(db_err)?;
        }
        let mut settings = txn.open_table(SETTINGS).map_err(db_err)?;
        for (k, v) in &snapshot.settings {
            settings.insert(k.as_str(), v.as_str()).map_err(db_err)?;
        }
        let mut kv = txn.open_table(KV).map_err(db_err)?;
        for (k, v) in &snapshot.kv {
            kv.insert(k.as_str(), v.as_slice()).map_err(db_err)?;
        }
    }
    txn.commit().map_err(db_err)
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Stores (`Some`) or deletes (`None`) one entry of `plugin`'s store,
/// refusing to go over its quota.
fn kv_change(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    plugin: &str,
    key: &str,
    value: Option<&[u8]>,
) -> Result<(), StateError> {
    let full = kv_key(plugin, key);
    match value {
        None => {
            table.remove(full.as_str()).map_err(db_err)?;
        }
        Some(value) => {
            let used: usize = kv_entries(table, plugin)?
                .iter()
                .filter(|(k, _)| k != key)
                .map(|(k, len)| k.len() + len)
                .sum();
            if used + key.len() + value.len() > KV_QUOTA {
                return Err(StateError::Quota);
            }
            table.insert(full.as_str(), value).map_err(db_err)?;
        }
    }
    Ok(())
}

fn kv_key(plugin: &str, key: &str) -> String {
    format!("{plugin}\0{key}")
}

/// A plugin's keys with the length of their values.
fn kv_entries(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    plugin: &str,
) -> Result<Vec<(String, usize)>, StateError> {
    let prefix = kv_key(plugin, "");
    let mut found = Vec::new();
    for entry in table.range(prefix.as_str()..).map_err(db_err)? {
        let (k, v) = entry.map_err(db_err)?;
        let Some(key) = k.value().strip_prefix(&prefix) else {
            break;
        };
        found.push((key.to_string(), v.value().len()));
    }
    Ok(found)
}

/// `salt$sha256(salt || password)` in hex. The password is 1-8 characters
/// and never leaves the host; the salt keeps equal passwords on different
/// units from hashing alike.
fn hash_password(password: &str) -> String {
    let salt = hex(&Sha256::digest(format!(
        "{:?}{}",
        std::time::SystemTime::now(),
        std::process::id()
    ))[..8]);
    format!("{salt}${}", salted(&salt, password))
}

fn salted(salt: &str, password: &str) -> String {
    hex(&Sha256::digest(format!("{salt}{password}")))
}

fn verify_password(stored: &str, candidate: &str) -> bool {
    stored
        .split_once('$')
        .is_some_and(|(salt, hash)| salted(salt, candidate) == hash)
}

fn new_unit_id() -> String {
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    format!("larm-{}", hex(&Sha256::digest(seed)[..4]))
}

/// The most a config file may hold.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The most the state's backup may hold: every plugin's store full, as JSON.
pub const MAX_BACKUP_BYTES: u64 = 64 << 20;
/// The most a component (or a certificate) file may hold: a Python
/// component (componentize-py, CPython inside) is about 18 MB, and 34 MB
/// precompiled (`larmd plugin compile`, what a small board runs).
pub const MAX_COMPONENT_BYTES: u64 = 48 << 20;

/// Reads a file of untrusted size: a regular file of at most `max` bytes,
/// else an error that says what it is (a folder, a device, too large),
/// without reading more than `max + 1` bytes of it.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "is a folder, not a file",
        ));
    }
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "is not a regular file (a device or a pipe?)",
        ));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("is larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or
/// the new one: temp file, fsync, rename, fsync the folder.
pub fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_hashed_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        assert!(state.password_matches("0000").unwrap());
        state.set_password("1234").unwrap();
        let id = state.unit_id().unwrap();
        drop(state);
        let bytes = std::fs::read(dir.path().join("state.redb")).unwrap();
        assert!(
            !bytes.windows(4).any(|w| w == b"1234"),
            "password stored in clear"
        );
        let state = State::open(dir.path()).unwrap();
        assert!(state.password_matches("1234").unwrap());
        assert!(!state.password_matches("0000").unwrap());
        assert_eq!(state.unit_id().unwrap(), id);
    }

    /// A state with a password, a setting and a kv entry; its unit id.
    fn filled(dir: &Path) -> String {
        let state = State::open(dir).unwrap();
        assert_eq!(state.restored(), None);
        state.set_password("1234").unwrap();
        state.set_setting("input.1.name", Some("Door")).unwrap();
        state.kv_set("p", "k", Some(&[0, 1, 255])).unwrap();
        state.unit_id().unwrap()
    }

    fn assert_intact(state: &State, id: &str) {
        assert_eq!(state.unit_id().unwrap(), id);
        assert!(state.password_matches("1234").unwrap());
        assert_eq!(
            state.setting("input.1.name").unwrap().as_deref(),
            Some("Door")
        );
        assert_eq!(state.kv_get("p", "k").unwrap(), Some(vec![0, 1, 255]));
    }

    #[test]
    fn an_emptied_or_missing_state_comes_back_from_its_backup() {
        let dir = tempfile::tempdir().unwrap();
        let id = filled(dir.path());
        let db = dir.path().join("state.redb");
        std::fs::write(&db, b"").unwrap();
        let state = State::open(dir.path()).unwrap();
        assert!(
            state.restored().unwrap().contains("was empty"),
            "{:?}",
            state.restored()
        );
        assert_intact(&state, &id);
        drop(state);
        std::fs::remove_file(&db).unwrap();
        let state = State::open(dir.path()).unwrap();
        assert!(state.restored().unwrap().contains("was missing"));
        assert_intact(&state, &id);
        drop(state);
        assert_eq!(State::open(dir.path()).unwrap().restored(), None);
    }

    #[test]
    fn a_garbled_state_is_kept_aside_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let id = filled(dir.path());
        std::fs::write(dir.path().join("state.redb"), vec![0x5a; 8192]).unwrap();
        let state = State::open(dir.path()).unwrap();
        assert!(state.restored().unwrap().contains("could not be opened"));
        assert_intact(&state, &id);
        assert_eq!(kept(dir.path(), "state.redb.corrupt-"), 1);
    }

    #[test]
    fn a_damaged_backup_is_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let id = filled(dir.path());
        let backup = dir.path().join("state.backup");
        let mut bytes = std::fs::read(&backup).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        std::fs::write(&backup, &bytes).unwrap();
        // The state itself is fine: the backup is written anew.
        assert_intact(&State::open(dir.path()).unwrap(), &id);
        std::fs::write(&backup, &bytes).unwrap();
        std::fs::write(dir.path().join("state.redb"), b"").unwrap();
        let state = State::open(dir.path()).unwrap();
        let why = state.restored().unwrap();
        assert!(why.contains("damaged") && why.contains("new id"), "{why}");
        assert_ne!(state.unit_id().unwrap(), id);
        assert_eq!(kept(dir.path(), "state.backup.damaged-"), 1);
    }

    #[test]
    fn a_state_held_by_another_process_is_an_error_not_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let _held = State::open(dir.path()).unwrap();
        assert!(State::open(dir.path()).is_err());
        assert_eq!(kept(dir.path(), "state.redb.corrupt-"), 0);
    }

    /// Files in `dir` whose name starts with `prefix`.
    fn kept(dir: &Path, prefix: &str) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(prefix)
            })
            .count()
    }

    #[test]
    fn settings_and_a_store_change_together_or_not_at_all() {
        let state = State::in_memory().unwrap();
        let big = vec![0; KV_QUOTA];
        assert!(matches!(
            state.set_settings_and_kv(&[("input.1.name", Some("X"))], "p", &[("ids", Some(&big))]),
            Err(StateError::Quota)
        ));
        assert_eq!(
            state.setting("input.1.name").unwrap(),
            None,
            "nothing half-applied"
        );
        state
            .set_settings_and_kv(&[("input.1.name", Some("X"))], "p", &[("ids", Some(b"m1"))])
            .unwrap();
        assert_eq!(state.setting("input.1.name").unwrap().as_deref(), Some("X"));
        assert_eq!(state.kv_get("p", "ids").unwrap(), Some(b"m1".to_vec()));
    }

    #[test]
    fn kv_is_private_and_bounded() {
        let state = State::in_memory().unwrap();
        state.kv_set("a", "k", Some(b"1")).unwrap();
        state.kv_set("ab", "k", Some(b"2")).unwrap();
        assert_eq!(state.kv_get("a", "k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(
            state.kv_entries("a", "").unwrap(),
            [("k".to_string(), b"1".to_vec())]
        );
        let big = vec![0; KV_QUOTA];
        assert!(matches!(
            state.kv_set("a", "big", Some(&big)),
            Err(StateError::Quota)
        ));
        state.kv_set("a", "k", None).unwrap();
        assert_eq!(state.kv_get("a", "k").unwrap(), None);
    }

    #[test]
    fn factory_reset_keeps_the_id() {
        let state = State::in_memory().unwrap();
        let id = state.unit_id().unwrap();
        state.set_password("abc").unwrap();
        state.set_setting("input.1.name", Some("Door")).unwrap();
        state.kv_set("p", "k", Some(b"v")).unwrap();
        state.factory_reset().unwrap();
        assert_eq!(state.unit_id().unwrap(), id);
        assert!(state.password_matches(FACTORY_PASSWORD).unwrap());
        assert_eq!(state.setting("input.1.name").unwrap(), None);
        assert_eq!(state.kv_get("p", "k").unwrap(), None);
    }

    #[test]
    fn settings_by_prefix() {
        let state = State::in_memory().unwrap();
        state.set_setting("input.1.name", Some("Door")).unwrap();
        state.set_setting("input.2.name", Some("Window")).unwrap();
        state.set_setting("output.1.name", Some("Siren")).unwrap();
        let inputs = state.settings("input.").unwrap();
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[1], ("input.2.name".into(), "Window".into()));
    }
}
