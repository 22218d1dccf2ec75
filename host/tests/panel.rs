//! The web panel in a real browser: `panel/test_panel.py` drives Debian's
//! Chromium with Playwright (Python), against `larmd run` on the simulated
//! board. It needs both installed (`apt-get install chromium`, `pip install
//! playwright`); CI installs them and sets `LARM_TEST_BROWSER=1`, which
//! makes this test fail rather than skip without them.
//! `LARM_SCREENSHOTS=DIR` also writes the panel's screenshots to DIR.

use std::path::Path;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn the_panel_in_headless_chromium() {
    let required = std::env::var_os("LARM_TEST_BROWSER").is_some();
    let playwright = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !(playwright && Path::new(CHROMIUM).exists()) {
        assert!(
            !required,
            "LARM_TEST_BROWSER is set but {} is missing",
            if playwright {
                CHROMIUM
            } else {
                "Python's playwright"
            }
        );
        eprintln!(
            "Chromium or Playwright is not installed: the panel's browser tests do not run here"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/panel/test_panel.py");
    let status = Command::new("python3")
        .arg(&script)
        .env("LARMD", env!("CARGO_BIN_EXE_larmd"))
        .env("LARM_CHROMIUM", CHROMIUM)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{} failed (its output is above)",
        script.display()
    );
}
