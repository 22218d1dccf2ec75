//! Latency and throughput through the whole unit, measured in one run:
//!
//! - input edge to output set: a raw edge on the simulated board (the board
//!   task, the event loop, the plugin's queue and worker, the rule, the
//!   output switched through `Outputs`, the board write), for
//!   std-input-rules (edge to ALARM output) and the example rule
//!   follow-input as components, and for the same rule in native Rust on
//!   the same path (the board's edges, a queue, a thread of its own, the
//!   same `io::Host` the components reach);
//! - a burst: input events queued to one rule plugin as fast as they come,
//!   per second;
//! - SMS received to reply: an SMS delivered by the modem simulator on its
//!   pseudo-terminal to the STATUS reply it is handed (the AT exchanges on
//!   the serial path included, so the host's own time is less).
//!
//! `cargo bench -p larm-host --bench latency` prints the tables;
//! `docs/benchmarks.md` records a run. `LARM_LATENCY_N` sets the samples.
//! Each unit keeps its state in a temporary folder, and logs at `info` into
//! a sink, as larmd formats them (the event loop logs every edge).

use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware_bridge::board::{Contact as BoardContact, InputId, SimBoard};
use firmware_bridge::modem::sim::SimEvent;
use larm_host::config::{Config, Grants, Scope};
use larm_host::plugins::bindings::larm::plugin::io::Host as Io;
use larm_host::plugins::bindings::larm::plugin::types::{Contact, InputEvent};
use larm_host::plugins::builtin_names;
use larm_host::plugins::caps::{HostState, PluginCaps};
use larm_host::unit::Unit;
use tokio::sync::{mpsc, oneshot};

const PHONE: &str = "+46701234567";
/// The base board's last output: ALARM.
const ALARM: usize = 5;

/// The unit's config with `plugins` (TOML) on the simulated board.
fn config(dir: &std::path::Path, modem: bool, plugins: &str) -> Config {
    let modem = if modem {
        "[modem]\nsimulator = \"ec2x\"\n"
    } else {
        ""
    };
    let text = format!(
        "data_dir = {:?}\n{modem}\n[board]\nkind = \"sim\"\ninputs = 8\noutputs = {ALARM}\ndebounce_ms = 0\n\
         [quotas.unit]\nsms_per_day = 10000\n{plugins}",
        dir.display().to_string()
    );
    let file = dir.join("unit.toml");
    std::fs::write(&file, &text).unwrap();
    Config::load(&file, &builtin_names()).unwrap()
}

const INPUT_RULES: &str = "[[plugins]]\nname = \"input-rules\"\nbuiltin = \"std-input-rules\"\n\
     bypass_quotas = true\n[plugins.grants]\noutputs = \"any\"\nsms = \"any\"\ncalls = \"any\"\n\
     server = true\nsettings = \"read\"\n[plugins.config]\n\"alarm.flap-changes\" = 0\n";

fn follow_input() -> String {
    let file = std::path::Path::new(env!("OUT_DIR")).join("guests/follow-input.wasm");
    format!(
        "[[plugins]]\nname = \"follow\"\nfile = {:?}\n[plugins.grants]\noutputs = [1]\n\
         [plugins.config]\ninputs = \"1\"\n",
        file.display().to_string()
    )
}

const SMS_COMMANDS: &str = "[[plugins]]\nname = \"sms-commands\"\nbuiltin = \"std-sms-commands\"\n\
     [plugins.grants]\npassword = true\nsms = \"any\"\noutputs = \"any\"\nserver = true\n\
     settings = \"write\"\n";

/// A unit built and running its event loop; dropping it stops it.
struct Running {
    sim: Arc<SimBoard>,
    shared: Arc<larm_host::unit::Shared>,
    modem: Option<firmware_bridge::modem::sim::SimModem>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(rt: &tokio::runtime::Runtime, modem: bool, plugins: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), modem, plugins);
        let unit = rt.block_on(Unit::build(&config, false)).unwrap();
        let sim = unit.sim.clone().unwrap();
        let shared = unit.shared.clone();
        let modem = unit.sim_modem.clone();
        let (stop, stopped) = oneshot::channel();
        rt.block_on(unit.plugins.flush());
        rt.spawn(unit.run(async {
            let _ = stopped.await;
        }));
        Self {
            sim,
            shared,
            modem,
            stop: Some(stop),
            _dir: dir,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Edge to output: input 1 closed and opened in turn, each edge timed
/// to output `output` changing, with a pause between edges (inputs of a
/// unit change a few times a second, not back to back).
fn edges(rt: &tokio::runtime::Runtime, sim: &SimBoard, output: usize, n: usize) -> Vec<Duration> {
    let mut outputs = sim.watch_outputs();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let contact = if i % 2 == 0 {
            BoardContact::Closed
        } else {
            BoardContact::Open
        };
        outputs.borrow_and_update();
        let t0 = Instant::now();
        sim.set_input(InputId(1), contact).unwrap();
        rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                outputs.wait_for(|o| o[output - 1] == (contact == BoardContact::Closed)),
            )
            .await
            .expect("the output did not follow")
            .unwrap();
        });
        let took = t0.elapsed();
        // The first tenth warms the caches up.
        if i >= n / 10 {
            samples.push(took);
        }
        // The rest of the event (std-input-rules writes the alarm and its
        // report to flash) is done before the next edge.
        std::thread::sleep(Duration::from_millis(10));
    }
    samples
}

/// The native rule on the same path: the board's edges, a queue, a thread
/// of its own, the same `io::Host` (grant check, `Outputs`, the board).
/// Returns the task and the thread; aborting the task ends the thread.
fn native_path(unit: &Running) -> (tokio::task::JoinHandle<()>, std::thread::JoinHandle<()>) {
    let grants = Grants {
        outputs: Scope::Any,
        ..Grants::default()
    };
    let caps = Arc::new(PluginCaps::new("native", grants, unit.shared.clone(), None));
    let mut host = HostState::new(caps, 16 << 20);
    let (queue, mut events) = mpsc::unbounded_channel::<InputEvent>();
    let mut edges = unit.shared.board.subscribe();
    let shared = unit.shared.clone();
    let task = unit.shared.runtime.clone().unwrap().spawn(async move {
        while let Ok(edge) = edges.recv().await {
            let contact = match edge.contact {
                BoardContact::Closed => Contact::Closed,
                BoardContact::Open => Contact::Open,
            };
            let event = InputEvent {
                input: edge.input.0,
                contact,
                at_ms: shared.monotonic_ms(edge.at),
            };
            if queue.send(event).is_err() {
                return;
            }
        }
    });
    let thread = std::thread::spawn(move || {
        while let Some(event) = events.blocking_recv() {
            if event.input == 1 {
                let _ = host.set_output(1, event.contact == Contact::Closed);
            }
        }
    });
    (task, thread)
}

/// Events per second: `n` input events queued to the unit's one rule
/// plugin at once, until it has handled them all.
fn burst(rt: &tokio::runtime::Runtime, plugins: &str, n: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), false, plugins);
    let unit = rt.block_on(Unit::build(&config, false)).unwrap();
    rt.block_on(unit.plugins.flush());
    let t0 = Instant::now();
    for i in 0..n {
        unit.plugins.input(InputEvent {
            input: 1,
            contact: if i % 2 == 0 {
                Contact::Closed
            } else {
                Contact::Open
            },
            at_ms: i,
        });
    }
    rt.block_on(unit.plugins.flush());
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    drop(unit);
    rate
}

/// SMS to reply: `0000 STATUS` delivered by the modem simulator, timed to
/// the reply it is handed.
fn sms_replies(unit: &Running, rt: &tokio::runtime::Runtime, n: usize) -> Vec<Duration> {
    let modem = unit.modem.as_ref().unwrap();
    let mut events = modem.events();
    // The modem task reads the SIM and registers first.
    rt.block_on(async {
        let mut status = unit.shared.modem.subscribe();
        let _ = status.wait_for(Option::is_some).await;
    });
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t0 = Instant::now();
        modem.deliver_sms(PHONE, "0000 STATUS");
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    if let Ok(SimEvent::SmsSent { .. }) = events.recv().await {
                        return;
                    }
                }
            })
            .await
            .expect("no reply");
        });
        if i >= n / 10 {
            samples.push(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    samples
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn row(label: &str, mut samples: Vec<Duration>, base: Option<Duration>) -> Duration {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 50), percentile(&samples, 99));
    let ratio = base.map_or("1.00x".to_string(), |b| {
        format!("{:.2}x", p50.as_secs_f64() / b.as_secs_f64())
    });
    println!(
        "| {label:<32} | {:>10} | {:>10} | {:>10} | {ratio:>8} |",
        micros(p50),
        micros(p99),
        micros(*samples.last().unwrap())
    );
    p50
}

/// The head of a table of [`row`]s, whose first column is `first`.
fn header(first: &str) {
    println!(
        "| {first:<32} | {:>10} | {:>10} | {:>10} | {:>8} |",
        "p50", "p99", "max", "p50 ratio"
    );
    println!(
        "|{:-<34}|{:-<12}|{:-<12}|{:-<12}|{:-<10}|",
        "", "", "", "", ""
    );
}

fn main() {
    // What larmd logs, formatted as it does, into a sink.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .init();
    let n: usize = std::env::var("LARM_LATENCY_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Runtime::new().unwrap();

    println!("\nInput edge to output set ({n} edges each, closing and opening in turn):\n");
    header("rule");
    let native = Running::start(&rt, false, "");
    let (task, thread) = native_path(&native);
    let base = row(
        "native Rust, same path",
        edges(&rt, &native.sim, 1, n),
        None,
    );
    task.abort();
    let _ = thread.join();
    drop(native);
    let follow = Running::start(&rt, false, &follow_input());
    row(
        "follow-input (wasm)",
        edges(&rt, &follow.sim, 1, n),
        Some(base),
    );
    drop(follow);
    let rules = Running::start(&rt, false, INPUT_RULES);
    row(
        "std-input-rules (wasm), ALARM",
        edges(&rt, &rules.sim, ALARM, n),
        Some(base),
    );
    drop(rules);

    let burst_n = 20 * n as u64;
    println!("\nA burst of {burst_n} input events queued to one rule plugin:\n");
    println!("| {:<32} | {:>14} |", "rule", "events/s");
    println!("|{:-<34}|{:-<16}|", "", "");
    for (label, plugins) in [
        ("follow-input (wasm)", follow_input()),
        ("std-input-rules (wasm)", INPUT_RULES.to_string()),
    ] {
        let rate = burst(&rt, &plugins, burst_n);
        println!("| {label:<32} | {:>14.0} |", rate);
    }

    let sms_n = (n / 4).max(10);
    println!(
        "\nSMS received to reply handed to the modem ({sms_n} `0000 STATUS`, pty modem simulator):\n"
    );
    header("command set");
    let commands = Running::start(&rt, true, SMS_COMMANDS);
    row(
        "std-sms-commands (wasm)",
        sms_replies(&commands, &rt, sms_n),
        None,
    );
    drop(commands);
}
