//! How often an idle unit wakes up: `larmd run` (the standard unit on the
//! simulated board and modem, the built-in config) left alone, its threads'
//! context switches read from `/proc/<pid>/task/*/status` at the start and
//! the end of a window (60 s; `LARM_IDLE_S` sets another). A voluntary
//! switch is a thread going to sleep, so each is one wake-up to come.
//!
//! `cargo bench -p larm-host --bench idle` prints a table per thread;
//! `docs/benchmarks.md` records a run.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Each thread's name and voluntary context switches, by thread id.
fn sample(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let name = field("Name:").unwrap_or_default();
        let switches = field("voluntary_ctxt_switches:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        threads.insert(tid, (name, switches));
    }
    threads
}

fn main() {
    // `cargo bench` passes criterion-style flags; this bench takes none.
    let window = Duration::from_secs(
        std::env::var("LARM_IDLE_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut larmd = Command::new(env!("CARGO_BIN_EXE_larmd"))
        .arg("run")
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting larmd");
    // Start-up done, the first modem status read, the LEDs settled.
    std::thread::sleep(Duration::from_secs(5));
    let pid = larmd.id();
    let before = sample(pid);
    std::thread::sleep(window);
    let after = sample(pid);
    let _ = larmd.kill();
    let _ = larmd.wait();

    let mut by_name: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (tid, (name, switches)) in &after {
        let start = before.get(tid).map_or(0, |(_, s)| *s);
        let entry = by_name.entry(name.clone()).or_default();
        entry.0 += 1;
        entry.1 += switches.saturating_sub(start);
    }
    let seconds = window.as_secs_f64();
    println!(
        "\nidle larmd (standard unit, simulated board and modem), {} s window",
        window.as_secs()
    );
    println!(
        "| {:<18} | {:>7} | {:>12} |",
        "threads", "count", "wake-ups/s"
    );
    println!("|{:-<20}|{:->9}|{:->14}|", "", "", "");
    let mut total = 0;
    for (name, (count, wakeups)) in &by_name {
        total += wakeups;
        println!(
            "| {name:<18} | {count:>7} | {:>12.2} |",
            *wakeups as f64 / seconds
        );
    }
    println!(
        "| {:<18} | {:>7} | {:>12.2} |",
        "all",
        after.len(),
        total as f64 / seconds
    );
}
