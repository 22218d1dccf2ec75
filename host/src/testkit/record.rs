//! Scenarios written out: a test run's actions as a scenario's
//! expectations (`larmd plugin test --record`), and a running unit's events
//! and actions as a scenario to replay (`larmd run --record FILE`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;

use super::Happened;
use super::scenario::{EventEntry, ExpectEntry, ModemChange, Scenario, Stimulus, Timed};
use crate::unit::{Action, Shared};

/// `[[events]]` or `[[expect]]` tables, as TOML writes them.
#[derive(Serialize)]
struct Tables<'a, T> {
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a [T]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect: Option<&'a [T]>,
}

fn events_toml(entries: &[EventEntry]) -> String {
    toml::to_string(&Tables {
        events: Some(entries),
        expect: None,
    })
    .unwrap_or_default()
}

fn expect_toml(entries: &[ExpectEntry]) -> String {
    toml::to_string(&Tables {
        events: None,
        expect: Some(entries),
    })
    .unwrap_or_default()
}

/// Rewrites the scenario `file` (whose text is `text`) with `happened` as
/// its expectations. The rest stays as written, comments too; `until` is
/// written out, so the next run lasts as long whatever it then expects.
pub fn write_expectations(
    file: &Path,
    text: &str,
    scenario: &Scenario,
    happened: &Happened,
) -> anyhow::Result<()> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{}: not TOML", file.display()))?;
    doc.remove("expect");
    if !doc.contains_key("until") {
        doc.insert("until", toml_edit::value(scenario.until_ms as f64 / 1000.0));
    }
    let entries: Vec<ExpectEntry> = happened
        .iter()
        .map(|t| ExpectEntry::of(t.at_ms, t.by.clone(), &t.what))
        .collect();
    let mut out = doc.to_string().trim_end().to_string();
    out.push_str("\n\n# Recorded by `larmd plugin test --record`: what the plugin did.\n");
    out.push_str(&expect_toml(&entries));
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::state::write_atomically(dir, file, out.as_bytes())
        .with_context(|| format!("writing {}", file.display()))
}

/// What a recorder writes, in order.
enum Line {
    Event(u64, Stimulus),
    Action(u64, Action),
}

/// A running unit's record (`larmd run --record FILE`): every event its
/// plugins receive and every action they take, appended to a scenario
/// file as they happen, timed from the file's `start`. The writes go
/// through a thread of their own, so a slow disk never holds the unit up.
pub struct Recorder {
    start_ms: u128,
    lines: mpsc::Sender<Line>,
}

impl Recorder {
    /// Appends to `file`, which is made with its `start` (now) unless it
    /// is a recording already.
    pub fn open(file: &Path) -> anyhow::Result<Self> {
        let now_ms = wall_ms();
        let start_ms = match std::fs::metadata(file) {
            Ok(_) => {
                let text = Scenario::read_text(file)?;
                recorded_start(&text).with_context(|| {
                    format!(
                        "{} is not a recording (`start = ...` on its first lines): name a new file",
                        file.display()
                    )
                })?
            }
            Err(_) => {
                let head = format!(
                    "# A larm unit's events and its plugins' actions, recorded by\n\
                     # `larmd run --record`: replay it with\n\
                     # `larmd plugin test NEW.wasm --replay {}`.\n\
                     # `start` is the wall clock at 0 (Unix seconds).\n\
                     start = {}\n\n",
                    file.display(),
                    now_ms / 1000
                );
                std::fs::write(file, head)
                    .with_context(|| format!("writing {}", file.display()))?;
                now_ms / 1000 * 1000
            }
        };
        let (lines, rx) = mpsc::channel();
        let path = file.to_path_buf();
        std::thread::Builder::new()
            .name("record".into())
            .spawn(move || write_lines(&path, rx))
            .context("starting the recorder")?;
        Ok(Self { start_ms, lines })
    }

    fn at_ms(&self) -> u64 {
        wall_ms().saturating_sub(self.start_ms) as u64
    }

    /// An event a plugin receives.
    pub fn event(&self, event: Stimulus) {
        let _ = self.lines.send(Line::Event(self.at_ms(), event));
    }

    /// An action the unit carries out.
    pub fn action(&self, action: &Action) {
        let _ = self.lines.send(Line::Action(self.at_ms(), action.clone()));
    }

    /// Records the modem's and the server link's changes (what
    /// `status.device` shows plugins) until the unit stops.
    pub async fn follow(self: std::sync::Arc<Self>, shared: std::sync::Arc<Shared>) {
        let mut modem = shared.modem.subscribe();
        let mut link = shared.link.subscribe();
        let mut shown = ModemChange::default();
        let mut connected = false;
        loop {
            tokio::select! {
                changed = modem.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let Some(status) = modem.borrow_and_update().clone() else { continue };
                    let now = ModemChange {
                        signal_bars: Some(status.signal_bars),
                        network: Some(status.network.name().into()),
                        sim: Some(status.sim.name().into()),
                        operator: status.operator.clone(),
                    };
                    if now != shown {
                        self.event(Stimulus::Modem(now.clone()));
                        shown = now;
                    }
                }
                changed = link.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = link.borrow_and_update().connected;
                    if now != connected {
                        self.event(Stimulus::Server { connected: now });
                        connected = now;
                    }
                }
            }
        }
    }
}

/// The `start` of a recording, in ms.
fn recorded_start(text: &str) -> Option<u128> {
    text.lines()
        .take(16)
        .find_map(|l| l.strip_prefix("start = "))
        .and_then(|s| s.trim().parse::<u128>().ok())
        .map(|s| s * 1000)
}

fn wall_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
}

/// The recorder's thread: appends each line as it comes.
fn write_lines(path: &PathBuf, lines: mpsc::Receiver<Line>) {
    let mut file = match std::fs::OpenOptions::new().append(true).open(path) {
        Ok(file) => file,
        Err(e) => {
            tracing::error!("cannot record to {}: {e}", path.display());
            return;
        }
    };
    for line in lines {
        let text = match line {
            Line::Event(at_ms, event) => events_toml(&[EventEntry::of(at_ms, &event)]),
            Line::Action(at_ms, action) => {
                let by = attributed(&action);
                match super::happening(&by, action) {
                    Some(what) => expect_toml(&[ExpectEntry::of(at_ms, Some(by), &what)]),
                    None => continue,
                }
            }
        };
        if let Err(e) = writeln!(file, "{text}") {
            tracing::error!("cannot record to {}: {e}", path.display());
            return;
        }
    }
}

/// Whose action it is: a plugin's health is its own, though the host
/// reports it.
fn attributed(action: &Action) -> String {
    use crate::plugins::bindings::larm::plugin::types::Report;
    match action {
        Action::Report {
            report: Report::PluginHealth(h),
            ..
        } => h.name.clone(),
        other => other.by().to_string(),
    }
}

/// A recording as a scenario for one plugin: the events its kind gets,
/// and its own actions as the expectations.
pub fn replay_of(
    mut recording: Scenario,
    plugin: &str,
    kind: crate::plugins::compat::PluginKind,
) -> Scenario {
    use crate::plugins::compat::PluginKind;
    recording.events.retain(|e| match &e.what {
        Stimulus::Input { .. } => kind == PluginKind::InputRule,
        Stimulus::Sms { .. } | Stimulus::Call { .. } => kind == PluginKind::SmsCommands,
        Stimulus::Connect { .. } | Stimulus::Downlink { .. } | Stimulus::Report { .. } => {
            kind == PluginKind::ServerAdapter
        }
        Stimulus::Modem(_) | Stimulus::Server { .. } | Stimulus::Settings(_) => true,
    });
    recording
        .expect
        .retain(|e: &Timed<_>| e.by.as_deref() == Some(plugin));
    recording
}
