//! `larmd dev` (`larmd run --watch`): a plugin whose component file
//! changes is swapped into the running unit, through the swap a field
//! update goes through, so the unit keeps its state, outputs and timers'
//! owner.
//!
//! The files are watched with `notify` (inotify): their folders, since a
//! build replaces a file rather than writing it in place (cargo links a
//! new one, componentize-py writes it anew). A change is taken once the
//! file has been quiet for [`QUIET`], so a half-written file is not loaded;
//! one that does not load or start is reported and the running one stays.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use larm_host::config::{Config, PluginSource};
use larm_host::plugins::runtime::Runtime;
use larm_host::updates::Target;
use notify::Watcher;
use sha2::Digest;
use tokio::sync::mpsc;

/// How long a file must stay unchanged before it is loaded.
const QUIET: Duration = Duration::from_millis(300);

/// Watches every component file of `config`'s plugins and swaps in each
/// new build; runs until the unit stops.
pub fn watch(
    config: &Config,
    targets: BTreeMap<String, Target>,
    runtime: Arc<Runtime>,
) -> anyhow::Result<()> {
    let files: Vec<(PathBuf, String)> = config
        .plugins
        .iter()
        .filter_map(|p| match &p.source {
            PluginSource::File(path) => Some((path.get_ref().clone(), p.name.get_ref().clone())),
            PluginSource::Builtin(_) => None,
        })
        .collect();
    if files.is_empty() {
        tracing::warn!("--watch: the config names no component file to watch");
        return Ok(());
    }
    let (tx, mut changed) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // What writes a file; not its opening to read it (as the reload
        // itself does).
        let written = |kind: &notify::EventKind| {
            kind.is_create()
                || kind.is_modify()
                || matches!(
                    kind,
                    notify::EventKind::Access(notify::event::AccessKind::Close(
                        notify::event::AccessMode::Write
                    ))
                )
        };
        if let Ok(event) = event
            && written(&event.kind)
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })
    .context("watching the plugin files")?;
    let mut folders: Vec<&std::path::Path> = files.iter().map(|(f, _)| folder_of(f)).collect();
    folders.sort();
    folders.dedup();
    for folder in &folders {
        watcher
            .watch(folder, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {} (build the plugin first)", folder.display()))?;
    }
    for (file, name) in &files {
        tracing::info!(plugin = %name, "watching {}: a new build is swapped in", file.display());
    }
    // What runs, by plugin: a build that writes its file more than once, or
    // anew with the same bytes, is not swapped in again.
    let mut running: BTreeMap<String, String> = files
        .iter()
        .filter_map(|(file, name)| Some((name.clone(), version(&read(name, file)?))))
        .collect();
    tokio::spawn(async move {
        // Kept for as long as the task runs.
        let _watcher = watcher;
        let mut pending: BTreeMap<PathBuf, String> = BTreeMap::new();
        // When the changed files have been quiet for long enough; each
        // change of one starts the quiet time again (others in the folder,
        // a log say, do not).
        let mut quiet = None;
        loop {
            tokio::select! {
                path = changed.recv() => match path {
                    Some(path) => {
                        if let Some((file, name)) = files.iter().find(|(f, _)| same_file(f, &path)) {
                            pending.insert(file.clone(), name.clone());
                            quiet = Some(tokio::time::Instant::now() + QUIET);
                        }
                    }
                    None => return,
                },
                () = larm_host::unit::sleep_until(quiet) => {
                    quiet = None;
                    for (file, name) in std::mem::take(&mut pending) {
                        let Some(target) = targets.get(&name) else { continue };
                        let Some(bytes) = read(&name, &file) else { continue };
                        let version = version(&bytes);
                        if running.get(&name) != Some(&version)
                            && reload(&runtime, &name, &bytes, target).await
                        {
                            tracing::info!(plugin = %name, "reloaded {} (version {version})", file.display());
                            running.insert(name, version);
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

/// The folder a file is in (`.` for a bare file name).
fn folder_of(file: &std::path::Path) -> &std::path::Path {
    match file.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => std::path::Path::new("."),
    }
}

/// Whether a changed path is the watched file (by name within its folder:
/// the folder may be named otherwise in the event).
fn same_file(watched: &std::path::Path, changed: &std::path::Path) -> bool {
    watched.file_name() == changed.file_name()
        && std::fs::canonicalize(folder_of(watched)).ok()
            == std::fs::canonicalize(folder_of(changed)).ok()
}

/// The component file of plugin `name`, if it can be read.
fn read(name: &str, file: &std::path::Path) -> Option<Vec<u8>> {
    match larm_host::state::read_bounded(file, larm_host::state::MAX_COMPONENT_BYTES) {
        Ok(bytes) => Some(bytes),
        // Removed, or still being replaced: the next event brings it back.
        Err(e) => {
            tracing::debug!(plugin = %name, "{}: {e}", file.display());
            None
        }
    }
}

/// A component's version, as the reload shows it: the start of its SHA-256.
fn version(bytes: &[u8]) -> String {
    larm_host::state::hex(&sha2::Sha256::digest(bytes)[..6])
}

/// Loads the new build of plugin `name` and swaps it in; whether it runs.
async fn reload(runtime: &Runtime, name: &str, bytes: &[u8], target: &Target) -> bool {
    let loaded = match runtime.load(bytes) {
        Ok((loaded, _)) if loaded.kind() == target.kind => loaded,
        Ok((loaded, _)) => {
            tracing::error!(plugin = %name, "the new build is a {} component, not a {} one: the running one stays", loaded.kind().world(), target.kind.world());
            return false;
        }
        Err(e) => {
            tracing::error!(plugin = %name, "the new build does not load ({e}): the running one stays");
            return false;
        }
    };
    match larm_host::plugins::swap(name, &target.queue, loaded, None).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("{e}: the running one stays");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_bare_file_name_is_in_the_current_folder() {
        assert_eq!(folder_of(Path::new("door.wasm")), Path::new("."));
        assert_eq!(
            folder_of(Path::new("target/door.wasm")),
            Path::new("target")
        );
        let here = std::env::current_dir().unwrap();
        assert!(same_file(Path::new("door.wasm"), &here.join("door.wasm")));
        assert!(!same_file(Path::new("door.wasm"), &here.join("other.wasm")));
        assert!(
            !same_file(Path::new("door.wasm"), Path::new("/door.wasm")) || here == Path::new("/")
        );
    }
}
