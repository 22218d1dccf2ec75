//! `larmd plugin test`: runs a component through scenarios (or a unit's
//! recording) on a virtual clock and prints how its actions compare.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use larm_host::plugins::{builtin, builtin_names};
use larm_host::state::{MAX_COMPONENT_BYTES, read_bounded};
use larm_host::testkit::scenario::Scenario;
use larm_host::testkit::{self, Component, Subject, record};

/// What `larmd plugin test` was asked.
pub struct Request<'a> {
    /// The component.
    pub component: Component<'a>,
    /// The scenarios.
    pub scenarios: &'a [PathBuf],
    /// A unit's recording to replay, instead of scenarios.
    pub replay: Option<&'a Path>,
    /// The unit config the plugin runs in, over the scenarios' `unit`.
    pub config: Option<&'a Path>,
    /// The plugin's name in it, over the scenarios' `plugin`.
    pub plugin: Option<&'a str>,
    /// Write what happened as each scenario's expectations.
    pub record: bool,
}

/// Runs the request; an error when a scenario's actions differ.
pub fn run(request: &Request) -> anyhow::Result<()> {
    let bytes = match request.component {
        Component::File(file) => read_bounded(file, MAX_COMPONENT_BYTES)
            .with_context(|| format!("reading {}", file.display()))?,
        Component::Builtin(name) => builtin(name)
            .with_context(|| {
                format!(
                    "no built-in plugin `{}`: one of {}",
                    name.escape_debug(),
                    builtin_names().join(", ")
                )
            })?
            .to_vec(),
    };
    let mut plugin = testkit::Plugin::new(&bytes);
    if let Some(recording) = request.replay {
        return replay(request, &mut plugin, recording);
    }
    if request.scenarios.is_empty() {
        bail!("name a scenario file (or --replay a recording)");
    }
    let mut failed = 0;
    for path in request.scenarios {
        let text = Scenario::read_text(path)?;
        let scenario = Scenario::parse(&text, path)?;
        let subject = subject(request, &scenario)?;
        let happened = testkit::run(&mut plugin, &subject, &scenario)?;
        if request.record {
            record::write_expectations(path, &text, &scenario, &happened)?;
            println!(
                "{}: recorded {} action(s) of `{}` as its expectations",
                path.display(),
                happened.len(),
                subject.plugin.name.get_ref()
            );
            continue;
        }
        if !report(&path.display().to_string(), &scenario.expect, &happened, 0) {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} scenario(s) failed", request.scenarios.len());
    }
    Ok(())
}

/// The unit and plugin entry for `scenario`.
fn subject(request: &Request, scenario: &Scenario) -> anyhow::Result<Subject> {
    Subject::find(
        request.config.or(scenario.unit.as_deref()),
        request.component,
        request.plugin.or(scenario.plugin.as_deref()),
        &builtin_names(),
    )
}

/// `--replay`: a unit's recording against this component, as the plugin
/// the recording's unit ran in its place.
fn replay(request: &Request, plugin: &mut testkit::Plugin, recording: &Path) -> anyhow::Result<()> {
    let recorded = Scenario::load(recording)?;
    let subject = subject(request, &recorded)?;
    let name = subject.plugin.name.get_ref().clone();
    let scenario = record::replay_of(recorded, &name, plugin.kind(&subject)?);
    let mut happened = testkit::run(plugin, &subject, &scenario)?;
    // A unit records what it carries out, not what only a test sees.
    happened.retain(|t| t.what.is_action());
    let shown = format!("{} replayed as `{name}`", recording.display());
    if !report(&shown, &scenario.expect, &happened, REPLAY_TOLERANCE_MS) {
        bail!("the new component acts otherwise than the recorded one");
    }
    Ok(())
}

/// How far a replayed action's time may be from the recorded one's: the
/// unit recorded each action when it had acted, a little after its event.
const REPLAY_TOLERANCE_MS: u64 = 250;

/// Prints how a run went; whether it matched (times within `tolerance_ms`).
fn report(
    what: &str,
    expected: &[testkit::scenario::Timed<testkit::scenario::Happening>],
    happened: &testkit::Happened,
    tolerance_ms: u64,
) -> bool {
    let comparison = testkit::compare(expected, happened, tolerance_ms);
    if comparison.missing == 0 && comparison.unexpected == 0 {
        println!("{what}: ok, {} action(s) as expected", happened.len());
        return true;
    }
    println!(
        "{what}: FAILED: {} expected action(s) missing (-), {} unexpected (+)",
        comparison.missing, comparison.unexpected
    );
    for line in &comparison.lines {
        println!("  {line}");
    }
    false
}
