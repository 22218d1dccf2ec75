//! Running `larmd` as a separate process in tests.
#![allow(dead_code)] // Each test crate uses its own part of this.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod config;
pub mod http;
pub mod mqtt;
#[allow(unused_imports)] // Each test crate uses its own part of this.
pub use config::{Plugin, UnitConfig};

/// The path of a guest component built by `host/build.rs`.
pub fn guest(name: &str) -> std::path::PathBuf {
    Path::new(env!("OUT_DIR")).join(format!("guests/{name}.wasm"))
}

/// The lines `reader` yields, on a channel fed by a thread of their own,
/// so a test can wait for a line with a timeout.
pub fn lines_of(reader: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    lines
}

/// Asserts that one of the `seen` log lines contains `text`.
#[track_caller]
pub fn assert_logged(seen: &[String], text: &str) {
    assert!(
        seen.iter().any(|l| l.contains(text)),
        "`{text}` not among:\n{}",
        seen.join("\n")
    );
}

/// Whether a log line carries every tracing field of `fields` with that
/// value (as the text format writes them: `name=value`, or `name="value"`
/// for a string).
pub fn has_fields(line: &str, fields: &[(&str, &str)]) -> bool {
    fields.iter().all(|(name, value)| {
        line.split(' ').any(|token| {
            token
                .strip_prefix(name)
                .and_then(|t| t.strip_prefix('='))
                .is_some_and(|v| {
                    v == *value
                        || v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) == Some(value)
                })
        })
    })
}

/// Asserts that one of the `seen` lines is an event with `fields`.
#[track_caller]
pub fn assert_event(seen: &[String], fields: &[(&str, &str)]) {
    assert!(
        seen.iter().any(|l| has_fields(l, fields)),
        "no event {fields:?} among:\n{}",
        seen.join("\n")
    );
}

/// `larmd run` as a separate process, its log read line by line.
pub struct Larmd {
    child: Child,
    pub stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
    dir: tempfile::TempDir,
}

impl Larmd {
    /// Starts larmd with `config` in a fresh folder.
    pub fn start(config: &UnitConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("unit.toml");
        std::fs::write(&file, format!("data_dir = \"data\"\n{config}")).unwrap();
        let args = ["run", "--config", file.to_str().unwrap()];
        Self::spawn(dir, &args)
    }

    /// Starts larmd again on the `unit.toml` of `dir` (from [`Larmd::stop`]).
    pub fn restart(dir: tempfile::TempDir) -> Self {
        Self::spawn(dir, &["run", "--config", "unit.toml"])
    }

    /// Starts `larmd run` with no config (the built-in standard unit) in `dir`.
    pub fn start_default(dir: tempfile::TempDir) -> Self {
        Self::spawn(dir, &["run"])
    }

    /// Starts `larmd ARGS` in `dir`.
    pub fn spawn(dir: tempfile::TempDir, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_larmd"))
            .args(args)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stderr.take().unwrap());
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            log: Vec::new(),
            dir,
        }
    }

    /// Types a console command.
    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{command}").unwrap();
    }

    /// Waits until a log line contains `text`; returns the lines logged up
    /// to and including it since the last wait.
    pub fn wait_for(&mut self, text: &str) -> Vec<String> {
        self.wait_until(&format!("`{text}`"), |line| line.contains(text))
    }

    /// Waits until an event is logged whose tracing fields include every
    /// `(name, value)` of `fields` (e.g. `[("event", "output"), ("output",
    /// "5"), ("on", "true")]`); returns the lines up to and including it.
    /// Tests look at these fields, not at the wording of the message.
    pub fn wait_event(&mut self, fields: &[(&str, &str)]) -> Vec<String> {
        self.wait_until(&format!("event {fields:?}"), |line| {
            has_fields(line, fields)
        })
    }

    /// Waits until `led` blinks `blinks` times in its code.
    pub fn wait_blinks(&mut self, led: &str, blinks: u8) -> Vec<String> {
        self.wait_event(&[
            ("event", "led"),
            ("led", led),
            ("mode", "blink"),
            ("blinks", &blinks.to_string()),
        ])
    }

    /// Waits (a minute at most) until a line satisfies `found`.
    pub fn wait_until(&mut self, what: &str, found: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = found(&line);
                    self.log.push(line.clone());
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("{what} never logged:\n{}", self.log.join("\n")),
            }
        }
    }

    /// Stops larmd with SIGTERM; returns its folder for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "larmd exited early"
        );
        Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.log.push(line);
        }
        assert!(
            status.success(),
            "SIGTERM stops larmd cleanly: {:#?}",
            self.log
        );
        assert!(self.log.iter().any(|l| l.contains("stopping plugins")));
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Larmd {
    /// Kills larmd with SIGKILL, mid-whatever; returns its folder.
    pub fn kill(self) -> tempfile::TempDir {
        self.kill_logged().0
    }

    /// Kills larmd with SIGKILL; returns its folder and every line it
    /// logged since the last wait, up to its death.
    pub fn kill_logged(mut self) -> (tempfile::TempDir, Vec<String>) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        // Until the pipe ends (at once: the writer is dead).
        let mut last = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            last.push(line);
        }
        let dir = tempfile::tempdir().unwrap();
        (std::mem::replace(&mut self.dir, dir), last)
    }

    /// The folder larmd runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Larmd {
    /// A failed test must not leave larmd running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
