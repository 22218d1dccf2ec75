//! `larmd plugin test`: the default input rules through their scenarios
//! (`plugins/std-input-rules/tests/`), and what a mismatch prints.

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
