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
        if let Ok(event) = event {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })
    .context("watching the plugin files")?;
    let mut folders: Vec<PathBuf> = files
        .iter()
        .map(|(f, _)| f.parent().map(PathBuf::from).unwrap_or_default())
        .collect();
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
    tokio::spawn(async move {
        // Kept for as long as the task runs.
        let _watcher = watcher;
        let mut pending: BTreeMap<PathBuf, String> = BTreeMap::new();
        loop {
            // Each change starts the quiet time again.
            let quiet = (!pending.is_empty()).then(|| tokio::time::Instant::now() + QUIET);
            tokio::select! {
                path = changed.recv() => match path {
                    Some(path) => {
                        if let Some((file, name)) = files.iter().find(|(f, _)| same_file(f, &path)) {
                            pending.insert(file.clone(), name.clone());
                        }
                    }
                    None => return,
                },
                () = larm_host::unit::sleep_until(quiet) => {
                    for (file, name) in std::mem::take(&mut pending) {
                        if let Some(target) = targets.get(&name) {
                            reload(&runtime, &name, &file, target).await;
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

/// Whether a changed path is the watched file (by name within its folder:
/// the folder may be named otherwise in the event).
fn same_file(watched: &std::path::Path, changed: &std::path::Path) -> bool {
    watched.file_name() == changed.file_name()
        && std::fs::canonicalize(watched.parent().unwrap_or(watched)).ok()
            == std::fs::canonicalize(changed.parent().unwrap_or(changed)).ok()
}

/// Loads the new build of plugin `name` and swaps it in.
async fn reload(runtime: &Runtime, name: &str, file: &std::path::Path, target: &Target) {
    let bytes = match larm_host::state::read_bounded(file, larm_host::state::MAX_COMPONENT_BYTES) {
        Ok(bytes) => bytes,
        // Removed, or still being replaced: the next event brings it back.
        Err(e) => {
            tracing::debug!(plugin = %name, "{}: {e}", file.display());
            return;
        }
    };
    let loaded = match runtime.load(&bytes) {
        Ok((loaded, _)) if loaded.kind() == target.kind => loaded,
        Ok((loaded, _)) => {
            tracing::error!(plugin = %name, "the new build is a {} component, not a {} one: the running one stays", loaded.kind().world(), target.kind.world());
            return;
        }
        Err(e) => {
            tracing::error!(plugin = %name, "the new build does not load ({e}): the running one stays");
            return;
        }
    };
    let version = larm_host::state::hex(&sha2::Sha256::digest(&bytes)[..6]);
    match larm_host::plugins::swap(name, &target.queue, loaded, None).await {
        Ok(()) => tracing::info!(plugin = %name, "reloaded {} (version {version})", file.display()),
        Err(e) => tracing::error!("{e}: the running one stays"),
    }
}
