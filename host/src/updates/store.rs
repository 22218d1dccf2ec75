//! What was installed in the field, on disk, per plugin in
//! `<data_dir>/plugins/<name>/`:
//!
//! - `<sha256>.wasm`: a component as it was received (signed bytes);
//! - `staging`: a component being received, before it is checked;
//! - `record.json`: which component runs, whether it is on probation, and
//!   the one before it.
//!
//! The record alone decides what runs, and it is replaced atomically
//! (write, fsync, rename, fsync the folder) only once the component it
//! names is complete on disk: a power cut at any moment leaves the old
//! record or the new one, each naming whole files. No record: the config's
//! component runs.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::{MAX_COMPONENT_BYTES, read_bounded, write_atomically};

/// A record is a few hundred bytes; a larger file is not one.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// One component installed in the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// SHA-256 of the component without its signature, hex.
    pub sha256: String,
    /// The key that signed it; none if it came unsigned (`allow_unsigned`).
    pub key_id: Option<String>,
    /// When it was installed, seconds since the Unix epoch.
    pub installed_at: u64,
}

impl Component {
    /// Its short version: the first 12 hex digits of its hash.
    pub fn version(&self) -> String {
        self.sha256.chars().take(12).collect()
    }
}

/// A plugin's field installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The component that runs.
    pub current: Component,
    /// It is still on probation.
    pub on_probation: bool,
    /// The one before it (`last-good`), for a rollback; none: the config's.
    pub previous: Option<Component>,
}

/// The installations of every plugin.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("plugins"),
        }
    }

    fn plugin_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Plugin `name`'s record, if it has one. A record that cannot be
    /// read is an error: the caller runs the config's component and says so.
    pub fn record(&self, name: &str) -> io::Result<Option<Record>> {
        let path = self.plugin_dir(name).join("record.json");
        let bytes = match read_bounded(&path, MAX_RECORD_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Replaces plugin `name`'s record; None removes it (the config's
    /// component runs again). Components no record names are deleted.
    pub fn set_record(&self, name: &str, record: Option<&Record>) -> io::Result<()> {
        let dir = self.plugin_dir(name);
        let path = dir.join("record.json");
        match record {
            Some(record) => {
                let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
                write_atomically(&dir, &path, &json)?;
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => std::fs::File::open(&dir)?.sync_all()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
        }
        self.prune(name, record);
        Ok(())
    }

    /// The bytes of one of plugin `name`'s components, checked against the
    /// hash the record names: a file swapped or damaged on disk is an error,
    /// never a component other than the recorded one.
    pub fn component(&self, name: &str, component: &Component) -> io::Result<Vec<u8>> {
        let damaged = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
        let sha = &component.sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(damaged("the record names no component hash"));
        }
        let bytes = read_bounded(
            &self.plugin_dir(name).join(format!("{sha}.wasm")),
            MAX_COMPONENT_BYTES,
        )?;
        match crate::updates::signature::component_sha256(&bytes) {
            Ok(found) if found == *sha => Ok(bytes),
            _ => Err(damaged("the stored component does not match its record")),
        }
    }

    /// Writes received bytes to `staging`, durably, before they are checked.
    pub fn stage(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let dir = self.plugin_dir(name);
        write_atomically(&dir, &dir.join("staging"), bytes)
    }

    /// Keeps the staged component as `<sha256>.wasm`.
    pub fn keep_staged(&self, name: &str, sha256: &str) -> io::Result<()> {
        let dir = self.plugin_dir(name);
        std::fs::rename(dir.join("staging"), dir.join(format!("{sha256}.wasm")))?;
        std::fs::File::open(&dir)?.sync_all()
    }

    /// Forgets a staged component that was refused.
    pub fn drop_staged(&self, name: &str) {
        let _ = std::fs::remove_file(self.plugin_dir(name).join("staging"));
    }

    /// Deletes the components `record` does not name (left by a refused
    /// install, a rollback, or a power cut between two steps), and the
    /// temporary files of writes a power cut interrupted.
    fn prune(&self, name: &str, record: Option<&Record>) {
        let keep: Vec<String> = record
            .into_iter()
            .flat_map(|r| std::iter::once(&r.current).chain(r.previous.as_ref()))
            .map(|c| format!("{}.wasm", c.sha256))
            .collect();
        let Ok(entries) = std::fs::read_dir(self.plugin_dir(name)) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let stale =
                (file.ends_with(".wasm") && !keep.contains(&file)) || file.starts_with(".tmp");
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal component (the preamble and one custom section holding
    /// `n`) and its record entry.
    fn component(n: u8) -> (Vec<u8>, Component) {
        let bytes = vec![0, b'a', b's', b'm', 0x0d, 0, 1, 0, 0, 3, 1, b'x', n];
        let sha256 = crate::updates::signature::component_sha256(&bytes).unwrap();
        let entry = Component {
            sha256,
            key_id: Some("ABCD".into()),
            installed_at: 1_700_000_000,
        };
        (bytes, entry)
    }

    fn keep(store: &Store, bytes: &[u8], entry: &Component) {
        store.stage("rules", bytes).unwrap();
        store.keep_staged("rules", &entry.sha256).unwrap();
    }

    #[test]
    fn a_record_names_the_component_that_runs_and_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let plugin_dir = dir.path().join("plugins/rules");
        assert_eq!(store.record("rules").unwrap(), None);
        let (one, first_entry) = component(1);
        keep(&store, &one, &first_entry);
        let first = Record {
            current: first_entry.clone(),
            on_probation: true,
            previous: None,
        };
        store.set_record("rules", Some(&first)).unwrap();
        assert_eq!(store.record("rules").unwrap().as_ref(), Some(&first));
        assert_eq!(store.component("rules", &first.current).unwrap(), one);

        let (two, second_entry) = component(2);
        keep(&store, &two, &second_entry);
        let second = Record {
            current: second_entry.clone(),
            on_probation: false,
            previous: Some(first_entry.clone()),
        };
        store.set_record("rules", Some(&second)).unwrap();
        // A third, never recorded (refused, or cut off by a power loss), is
        // deleted with the next record, and so are temporary files; the two
        // named stay.
        std::fs::write(plugin_dir.join("cc.wasm"), b"x").unwrap();
        std::fs::write(plugin_dir.join(".tmpAbC123"), b"x").unwrap();
        store.set_record("rules", Some(&second)).unwrap();
        assert!(!plugin_dir.join("cc.wasm").exists());
        assert!(!plugin_dir.join(".tmpAbC123").exists());
        assert_eq!(store.component("rules", &first_entry).unwrap(), one);
        store.set_record("rules", None).unwrap();
        assert_eq!(store.record("rules").unwrap(), None);
        assert!(store.component("rules", &second_entry).is_err());
    }

    /// A component file swapped for another, or a record naming a path, is
    /// an error: never a component other than the recorded one.
    #[test]
    fn a_stored_component_must_be_the_recorded_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (one, first) = component(1);
        let (two, second) = component(2);
        keep(&store, &one, &first);
        keep(&store, &two, &second);
        std::fs::copy(
            dir.path()
                .join(format!("plugins/rules/{}.wasm", second.sha256)),
            dir.path()
                .join(format!("plugins/rules/{}.wasm", first.sha256)),
        )
        .unwrap();
        assert!(store.component("rules", &first).is_err());
        assert_eq!(store.component("rules", &second).unwrap(), two);
        let outside = Component {
            sha256: "../../../outside".into(),
            ..first
        };
        assert!(store.component("rules", &outside).is_err());
    }

    #[test]
    fn a_garbled_record_is_an_error_not_a_component() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        std::fs::create_dir_all(dir.path().join("plugins/rules")).unwrap();
        std::fs::write(dir.path().join("plugins/rules/record.json"), b"{garbage").unwrap();
        assert!(store.record("rules").is_err());
    }
}
