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

    /// The bytes of one of plugin `name`'s components.
    pub fn component(&self, name: &str, component: &Component) -> io::Result<Vec<u8>> {
        read_bounded(
            &self
                .plugin_dir(name)
                .join(format!("{}.wasm", component.sha256)),
            MAX_COMPONENT_BYTES,
        )
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

    fn component(sha: &str) -> Component {
        Component {
            sha256: sha.into(),
            key_id: Some("ABCD".into()),
            installed_at: 1_700_000_000,
        }
    }

    #[test]
    fn a_record_names_the_component_that_runs_and_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.record("rules").unwrap(), None);
        store.stage("rules", b"one").unwrap();
        store.keep_staged("rules", "aa").unwrap();
        let first = Record {
            current: component("aa"),
            on_probation: true,
            previous: None,
        };
        store.set_record("rules", Some(&first)).unwrap();
        assert_eq!(store.record("rules").unwrap().as_ref(), Some(&first));
        assert_eq!(store.component("rules", &first.current).unwrap(), b"one");

        store.stage("rules", b"two").unwrap();
        store.keep_staged("rules", "bb").unwrap();
        let second = Record {
            current: component("bb"),
            on_probation: false,
            previous: Some(component("aa")),
        };
        store.set_record("rules", Some(&second)).unwrap();
        // A third, never recorded (refused, or cut off by a power loss), is
        // deleted with the next record; the two named stay.
        std::fs::write(dir.path().join("plugins/rules/cc.wasm"), b"x").unwrap();
        std::fs::write(dir.path().join("plugins/rules/.tmpAbC123"), b"x").unwrap();
        store.set_record("rules", Some(&second)).unwrap();
        assert!(!dir.path().join("plugins/rules/cc.wasm").exists());
        assert!(!dir.path().join("plugins/rules/.tmpAbC123").exists());
        assert_eq!(store.component("rules", &component("aa")).unwrap(), b"one");
        store.set_record("rules", None).unwrap();
        assert_eq!(store.record("rules").unwrap(), None);
        assert!(store.component("rules", &component("bb")).is_err());
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
