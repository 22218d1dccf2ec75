//! An idle unit: how long `larmd run` takes to start, how much memory it
//! holds, and how often it wakes up. The standard unit of the built-in
//! config (simulated board, modem simulator on a pseudo-terminal, the three
//! default plugins) is started twice in one data folder: first with no
//! compiled-plugin cache (it compiles the plugins), then with it warm; then
//! with its plugins precompiled (below).
//!
//! - Start: from spawning larmd to its `READY=1` on a `NOTIFY_SOCKET` of the
//!   bench's own (what systemd waits for): every plugin is serving then.
//! - Memory: `VmRSS` and `VmHWM` (the peak) from `/proc/<pid>/status`, 5 s
//!   after `READY`.
//! - Wake-ups (warm run): each thread's voluntary context switches from
//!   `/proc/<pid>/task/*/status` at the start and the end of a 60 s window
//!   (`LARM_IDLE_S` sets another); a voluntary switch is a thread going to
//!   sleep, so each is one wake-up to come.
//!
//! - Precompiled: the same unit with its plugins precompiled for this
//!   machine (`larmd plugin compile`), named by file: no compile at start;
//!   and, when `LARM_IDLE_RUNTIME_ONLY` names a runtime-only larmd
//!   (`cargo build --release -p larm-host --no-default-features`), that
//!   build running them.
//!
//! `cargo bench -p larm-host --bench idle` prints the tables;
//! `docs/benchmarks.md` records a run.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Each thread's name and voluntary context switches, by thread id.
fn threads(pid: u32) -> BTreeMap<u32, (String, u64)> {
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
        let name = field(&status, "Name:").unwrap_or_default();
        let switches = field(&status, "voluntary_ctxt_switches:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        threads.insert(tid, (name, switches));
    }
    threads
}

fn field(status: &str, name: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mib = |name: &str| {
        field(&status, name)
            .and_then(|v| v.trim_end_matches(" kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (mib("VmRSS:"), mib("VmHWM:"))
}

/// The built-in config with its plugins precompiled into `dir` by `larmd`,
/// named by file.
fn precompiled_config(dir: &Path) -> PathBuf {
    let mut config = include_str!("../../examples/sim.toml").to_string();
    for plugin in ["std-sms-commands", "std-input-rules", "std-server-adapter"] {
        let file = dir.join(format!("{plugin}.cwasm"));
        let made = Command::new(env!("CARGO_BIN_EXE_larmd"))
            .args(["plugin", "compile", "--builtin", plugin, "--out"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        config = config.replace(
            &format!("builtin = \"{plugin}\""),
            &format!("file = {:?}", file.display().to_string()),
        );
    }
    let path = dir.join("precompiled.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Starts `larmd` in `dir` (with `config`, or its built-in one); returns
/// it once it said `READY=1`, and how long that took.
fn start(larmd: &Path, dir: &Path, config: Option<&Path>) -> (Child, Duration) {
    let socket_path = dir.join("notify");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let started = Instant::now();
    let mut larmd = Command::new(larmd)
        .arg("run")
        .args(
            config
                .map(|c| [std::ffi::OsStr::new("--config"), c.as_os_str()])
                .into_iter()
                .flatten(),
        )
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting larmd");
    let mut buf = [0u8; 256];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("READY=1") => {
                return (larmd, started.elapsed());
            }
            Ok(_) => {}
            Err(e) => {
                let _ = larmd.kill();
                let _ = larmd.wait();
                panic!("larmd never said READY=1: {e}");
            }
        }
    }
}

fn main() {
    let window = Duration::from_secs(
        std::env::var("LARM_IDLE_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let dir = tempfile::tempdir().unwrap();
    let full = PathBuf::from(env!("CARGO_BIN_EXE_larmd"));
    let files = tempfile::tempdir().unwrap();
    let precompiled = precompiled_config(files.path());
    let mut starts = vec![
        (
            "cold (compiles)",
            full.clone(),
            None,
            dir.path().to_path_buf(),
        ),
        ("warm", full.clone(), None, dir.path().to_path_buf()),
        (
            "precompiled",
            full,
            Some(precompiled.clone()),
            files.path().join("full"),
        ),
    ];
    if let Some(runtime_only) = std::env::var_os("LARM_IDLE_RUNTIME_ONLY") {
        starts.push((
            "runtime-only",
            std::fs::canonicalize(runtime_only).expect("LARM_IDLE_RUNTIME_ONLY names no file"),
            Some(precompiled),
            files.path().join("runtime-only"),
        ));
    }
    let mut runs = Vec::new();
    let mut wakeups = BTreeMap::new();
    let mut thread_count = 0;
    for (cache, larmd, config, dir) in starts {
        std::fs::create_dir_all(&dir).unwrap();
        let (mut larmd, took) = start(&larmd, &dir, config.as_deref());
        let pid = larmd.id();
        std::thread::sleep(Duration::from_secs(5));
        let (rss, peak) = memory(pid);
        runs.push((cache, took, rss, peak));
        if cache == "warm" {
            let before = threads(pid);
            std::thread::sleep(window);
            let after = threads(pid);
            thread_count = after.len();
            for (tid, (name, switches)) in &after {
                let start = before.get(tid).map_or(0, |(_, s)| *s);
                let entry: &mut (usize, u64) = wakeups.entry(name.clone()).or_default();
                entry.0 += 1;
                entry.1 += switches.saturating_sub(start);
            }
        }
        let _ = larmd.kill();
        let _ = larmd.wait();
    }

    println!("\nlarmd run (standard unit, simulated board and modem)");
    println!(
        "| {:<16} | {:>12} | {:>10} | {:>10} |",
        "plugins", "to READY", "RSS", "peak RSS"
    );
    println!("|{:-<18}|{:->14}|{:->12}|{:->12}|", "", "", "", "");
    for (cache, took, rss, peak) in &runs {
        println!(
            "| {cache:<16} | {:>9.1} ms | {rss:>6.1} MiB | {peak:>6.1} MiB |",
            took.as_secs_f64() * 1e3
        );
    }

    let seconds = window.as_secs_f64();
    println!("\nidle, warm cache, {} s window", window.as_secs());
    println!(
        "| {:<18} | {:>7} | {:>12} |",
        "threads", "count", "wake-ups/s"
    );
    println!("|{:-<20}|{:->9}|{:->14}|", "", "", "");
    let mut total = 0;
    for (name, (count, switches)) in &wakeups {
        total += switches;
        println!(
            "| {name:<18} | {count:>7} | {:>12.2} |",
            *switches as f64 / seconds
        );
    }
    println!(
        "| {:<18} | {:>7} | {:>12.2} |",
        "all",
        thread_count,
        total as f64 / seconds
    );
}
