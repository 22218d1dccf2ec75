//! `larmd plugin inspect` and `larmd run` as a separate process.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn guest(name: &str) -> std::path::PathBuf {
    Path::new(env!("OUT_DIR")).join(format!("guests/{name}.wasm"))
}

fn inspect(name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_larmd"))
        .args(["plugin", "inspect"])
        .arg(guest(name))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inspect_names_world_version_imports_and_exports() {
    let text = inspect("follow-input");
    assert!(text.contains("world:    larm:plugin/input-rule"), "{text}");
    assert!(text.contains("version:  0.1.0"), "{text}");
    assert!(text.contains("  larm:plugin/rule@0.1.0"), "{text}");
    assert!(text.contains("  larm:plugin/io@0.1.0"), "{text}");
    assert!(text.contains("  larm:plugin/kv@0.1.0"), "{text}");
}

#[test]
fn inspect_explains_an_unusable_component() {
    let text = inspect("guest-future-version");
    assert!(text.contains("world:    none usable here"), "{text}");
    assert!(text.contains("larm:plugin/rule@1.0.0"), "{text}");
}

#[test]
fn run_follows_inputs_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("unit.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[[plugins]]\nname = \"follow\"\nfile = {:?}\n[plugins.grants]\noutputs = [1]\n",
            guest("follow-input").display().to_string()
        ),
    )
    .unwrap();
    let mut larmd = Command::new(env!("CARGO_BIN_EXE_larmd"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = larmd.stdin.take().unwrap();
    writeln!(stdin, "close 1").unwrap();
    // Then run with stdin closed, as under a service manager.
    drop(stdin);
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = larmd.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("output 1 on (by follow)"))
    {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => log.push(line),
            Err(_) => panic!("no output change logged: {log:#?}"),
        }
    }
    assert!(
        larmd.try_wait().unwrap().is_none(),
        "larmd exited when stdin closed"
    );
    Command::new("kill")
        .arg(larmd.id().to_string())
        .status()
        .unwrap();
    let status = larmd.wait().unwrap();
    reader.join().unwrap();
    log.extend(lines.try_iter());
    assert!(status.success(), "SIGTERM stops larmd cleanly: {log:#?}");
    assert!(
        log.iter().any(|l| l.contains("stopping plugins")),
        "{log:#?}"
    );
}
