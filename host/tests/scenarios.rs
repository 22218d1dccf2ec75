//! `larmd plugin test`: the default input rules through their scenarios
//! (`plugins/std-input-rules/tests/`), what a mismatch prints, and a
//! unit's recording replayed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn larmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_larmd"))
}

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/std-input-rules/tests");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    all.sort();
    all
}

#[test]
fn std_input_rules_does_what_its_scenarios_expect() {
    let all = scenarios();
    assert!(all.len() >= 4, "{all:?}");
    let out = larmd()
        .args(["plugin", "test", "--builtin", "std-input-rules"])
        .args(&all)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": ok,").count(), all.len(), "{stdout}");
}

/// A wrong expectation fails the run, and the diff shows the expected
/// line (`-`) beside the actual one (`+`).
#[test]
fn a_mismatch_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let delay = scenarios()
        .into_iter()
        .find(|p| p.ends_with("delay.toml"))
        .unwrap();
    let text = std::fs::read_to_string(&delay)
        .unwrap()
        .replace(
            "../../../examples/sim.toml",
            &format!("{}/../examples/sim.toml", env!("CARGO_MANIFEST_DIR")),
        )
        .replace("text = \"Frysrummet är OK igen\"", "text = \"All well\"");
    let scenario = dir.path().join("delay.toml");
    std::fs::write(&scenario, text).unwrap();
    let out = larmd()
        .args(["plugin", "test", "--builtin", "std-input-rules"])
        .arg(&scenario)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("FAILED: 1 expected action(s) missing (-), 1 unexpected (+)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-    40.000 s  SMS to +46701234567: \"All well\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("+    40.000 s  SMS to +46701234567: \"Frysrummet är OK igen\""),
        "{stdout}"
    );
    assert!(stdout.contains("     12.000 s  output 5 on"), "{stdout}");
}

/// A scenario that says two things in one table is refused with its line.
#[test]
fn a_bad_scenario_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.toml");
    std::fs::write(
        &scenario,
        "[[events]]\nat = 1\ninput = 1\nclosed = true\nsms = \"x\"\n",
    )
    .unwrap();
    let out = larmd()
        .args(["plugin", "test", "--builtin", "std-input-rules"])
        .arg(&scenario)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.toml:1:1: key `events[0]`: says `input` and `sms` at once"),
        "{stderr}"
    );
}

/// `larmd run --record` keeps what the unit's plugins got and did; replayed
/// against the same rules it matches, and against other rules the diff
/// shows where they act otherwise.
#[test]
fn a_recorded_unit_replays_against_a_new_version() {
    let mut unit = common::Larmd::spawn(
        tempfile::tempdir().unwrap(),
        &["run", "--record", "day.toml"],
    );
    unit.wait_for("larmd running");
    unit.send("close 1");
    unit.wait_for("output 5 on (by input-rules)");
    unit.send("open 1");
    unit.wait_for("output 5 off (by input-rules)");
    let dir = unit.stop();
    let recording = dir.path().join("day.toml");
    let text = std::fs::read_to_string(&recording).unwrap();
    for line in [
        "input = 1",
        "closed = true",
        "closed = false",
        "by = \"input-rules\"",
        "output = 5",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    let replay = |config: &Path, what: &[&str]| {
        larmd()
            .args(["plugin", "test", "--plugin", "input-rules", "--config"])
            .arg(config)
            .arg("--replay")
            .arg(&recording)
            .args(what)
            .output()
            .unwrap()
    };

    let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sim.toml");
    let same = replay(&sim, &["--builtin", "std-input-rules"]);
    let stdout = String::from_utf8_lossy(&same.stdout);
    assert!(
        same.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(stdout.contains("replayed as `input-rules`: ok"), "{stdout}");

    // Another rule in the same place: follow-input, in a unit that gives
    // it what it takes.
    let follow = common::guest("follow-input");
    let unit = dir.path().join("follow.toml");
    std::fs::write(
        &unit,
        format!(
            "[modem]\nsimulator = \"ec2x\"\n[board]\nkind = \"sim\"\n\
             [[plugins]]\nname = \"input-rules\"\nfile = {:?}\n\
             [plugins.grants]\noutputs = \"any\"\n",
            follow.display().to_string()
        ),
    )
    .unwrap();
    let other = replay(&unit, &[follow.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&other.stdout);
    assert!(!other.status.success(), "{stdout}");
    // follow-input switches output 1 with input 1, and neither calls nor texts.
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('-') && l.ends_with("output 5 on")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('+') && l.ends_with("output 1 on")),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("acts otherwise than the recorded one"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}
