//! What a plugin costs, measured in one run against baselines:
//!
//! - per event: the example rule "output N follows input N" delivered one
//!   input edge and applying its action, as a WebAssembly component, as
//!   native Rust, in Lua (mlua) and in Rhai, all calling the same generated
//!   `io::Host` trait the component's imports reach (grant check, board
//!   write, action);
//! - loading: compiling a component cold, loading it from the precompiled
//!   cache, and instantiating it (with `init`);
//! - field updates: checking a signature per 100 KB (beside hashing the
//!   same bytes), and the swap from checked bytes to the new version
//!   serving events on the plugin's worker, cache warm and cold.
//!
//! `cargo bench -p larm-host --bench plugin` prints criterion's figures and
//! then a table with ratios; `docs/benchmarks.md` records a run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use firmware_bridge::board::SimBoard;
use larm_host::config::{Grants, Scope};
use larm_host::plugins::bindings::larm::plugin::io::Host as Io;
use larm_host::plugins::bindings::larm::plugin::types::{Contact, InputEvent};
use larm_host::plugins::caps::{HostState, PluginCaps};
use larm_host::plugins::runtime::Runtime;
use larm_host::plugins::worker::{Limits, Outcome, PluginEvent, Worker};
use larm_host::unit::Shared;
use std::sync::Mutex;

const INPUTS: [u8; 4] = [1, 2, 3, 4];

fn component() -> Vec<u8> {
    std::fs::read(Path::new(env!("OUT_DIR")).join("guests/follow-input.wasm")).unwrap()
}

fn shared() -> Arc<Shared> {
    // The action receiver is dropped: actions are discarded, as cheaply as possible.
    Shared::in_memory(Arc::new(SimBoard::new(8, 5))).unwrap().0
}

fn caps(shared: &Arc<Shared>) -> Arc<PluginCaps> {
    let grants = Grants {
        outputs: Scope::Any,
        ..Grants::default()
    };
    Arc::new(PluginCaps::new("bench", grants, shared.clone(), None))
}

/// What the native, Lua and Rhai rules call: the host side of the
/// component's imports, as a store holds it.
fn host(shared: &Arc<Shared>) -> Arc<Mutex<HostState>> {
    Arc::new(Mutex::new(HostState::new(
        caps(shared),
        LIMITS.memory_bytes,
    )))
}

const LIMITS: Limits = Limits {
    deadline: Duration::from_millis(50),
    memory_bytes: 16 << 20,
    max_faults: 3,
    fault_window: Duration::from_secs(60),
};

/// Input 1, closing and opening on alternate calls, so the output changes.
fn edge(n: &mut u64) -> InputEvent {
    *n += 1;
    InputEvent {
        input: 1,
        contact: if n.is_multiple_of(2) {
            Contact::Closed
        } else {
            Contact::Open
        },
        at_ms: *n,
    }
}

/// The rule in native Rust, as the component does it.
fn native_rule(host: &mut HostState, event: &InputEvent) {
    if INPUTS.contains(&event.input) && event.input <= host.output_count() {
        let _ = host.set_output(event.input, event.contact == Contact::Closed);
    }
}

fn worker(runtime: &Runtime, shared: &Arc<Shared>) -> Worker {
    let (loaded, _) = runtime.load(&component()).unwrap();
    Worker::new(
        "bench".into(),
        caps(shared),
        shared.clone(),
        loaded,
        vec![("inputs".into(), "1,2,3,4".into())],
        LIMITS,
        runtime.clock(),
    )
}

fn per_event(c: &mut Criterion) {
    let shared = shared();
    let host = host(&shared);
    let mut group = c.benchmark_group("per_event");
    let mut n = 0;

    group.bench_function("native", |b| {
        let mut host = host.lock().unwrap();
        b.iter(|| native_rule(&mut host, &edge(&mut n)));
    });

    let runtime = Runtime::new(None).unwrap();
    let mut wasm = worker(&runtime, &shared);
    wasm.start().unwrap();
    group.bench_function("wasm", |b| {
        b.iter(|| {
            let outcome = wasm.handle(PluginEvent::Input(edge(&mut n)));
            debug_assert_eq!(outcome, Outcome::Handled);
        });
    });

    let lua = lua_rule(&host).unwrap();
    let on_input: mlua::Function = lua.globals().get("on_input").unwrap();
    group.bench_function("lua", |b| {
        b.iter(|| {
            let e = edge(&mut n);
            on_input
                .call::<()>((e.input, e.contact == Contact::Closed))
                .unwrap();
        });
    });

    let (engine, ast) = rhai_rule(&host);
    let mut scope = rhai::Scope::new();
    group.bench_function("rhai", |b| {
        b.iter(|| {
            let e = edge(&mut n);
            engine
                .call_fn::<()>(
                    &mut scope,
                    &ast,
                    "on_input",
                    (i64::from(e.input), e.contact == Contact::Closed),
                )
                .unwrap();
        });
    });
    group.finish();
}

fn lua_rule(host: &Arc<Mutex<HostState>>) -> mlua::Result<mlua::Lua> {
    let lua = mlua::Lua::new();
    let set = host.clone();
    lua.globals().set(
        "set_output",
        lua.create_function(move |_, (output, on): (u8, bool)| {
            set.lock()
                .unwrap()
                .set_output(output, on)
                .map_err(|e| mlua::Error::RuntimeError(format!("{e:?}")))
        })?,
    )?;
    let count = host.clone();
    lua.globals().set(
        "output_count",
        lua.create_function(move |_, ()| Ok(count.lock().unwrap().output_count()))?,
    )?;
    lua.load(
        r#"
        follows = { [1] = true, [2] = true, [3] = true, [4] = true }
        function on_input(input, closed)
            if follows[input] and input <= output_count() then
                set_output(input, closed)
            end
        end
        "#,
    )
    .exec()?;
    Ok(lua)
}

fn rhai_rule(host: &Arc<Mutex<HostState>>) -> (rhai::Engine, rhai::AST) {
    let mut engine = rhai::Engine::new();
    let set = host.clone();
    engine.register_fn("set_output", move |output: i64, on: bool| {
        let _ = set.lock().unwrap().set_output(output as u8, on);
    });
    let count = host.clone();
    engine.register_fn("output_count", move || {
        i64::from(count.lock().unwrap().output_count())
    });
    let ast = engine
        .compile(
            r#"
            fn on_input(input, closed) {
                if [1, 2, 3, 4].contains(input) && input <= output_count() {
                    set_output(input, closed);
                }
            }
            "#,
        )
        .unwrap();
    (engine, ast)
}

fn loading(c: &mut Criterion) {
    let bytes = component();
    let shared = shared();
    let mut group = c.benchmark_group("load");
    group.sample_size(10);

    let cold = Runtime::new(None).unwrap();
    group.bench_function("compile", |b| b.iter(|| cold.load(&bytes).unwrap()));

    let cache = tempfile::tempdir().unwrap();
    let cached = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    cached.load(&bytes).unwrap();
    group.bench_function("cached", |b| b.iter(|| cached.load(&bytes).unwrap()));

    let mut worker = worker(&cold, &shared);
    group.bench_function(BenchmarkId::new("instantiate", "with init"), |b| {
        b.iter(|| worker.start().unwrap())
    });
    group.finish();
}

/// A component of about 100 KB: the example rule, padded with a custom
/// section.
fn component_100k() -> Vec<u8> {
    let mut bytes = component();
    let pad = 100 * 1024 - bytes.len() - 8;
    let name = b"pad";
    let size = 1 + name.len() + pad;
    bytes.push(0);
    let mut n = size;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        bytes.push(if n == 0 { b } else { b | 0x80 });
        if n == 0 {
            break;
        }
    }
    bytes.push(name.len() as u8);
    bytes.extend(name);
    bytes.extend(std::iter::repeat_n(0x5a, pad));
    bytes
}

fn updates(c: &mut Criterion) {
    use larm_host::updates::signature;
    use sha2::Digest;

    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("bench");
    signature::keygen(&prefix).unwrap();
    let secret = signature::read_secret_key(&keys.path().join("bench.key")).unwrap();
    let trusted = [signature::TrustedKey::read(&keys.path().join("bench.pub")).unwrap()];
    let signed = signature::sign(&component_100k(), "bench", &secret).unwrap();
    let mut group = c.benchmark_group("update");
    group.bench_function("sha256_100KB", |b| b.iter(|| sha2::Sha256::digest(&signed)));
    group.bench_function("verify_100KB", |b| {
        b.iter(|| signature::verify(&signed, &trusted, Some("bench")).unwrap())
    });

    // The swap as the update service does it: load (compile or cache),
    // then instantiate and `init` on the worker between two events.
    let shared = shared();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let warm = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let cold = Runtime::new(None).unwrap();
    let (queue, rx) = tokio::sync::mpsc::unbounded_channel();
    let thread = worker(&warm, &shared).spawn(rx).unwrap();
    warm.load(&signed).unwrap();
    group.sample_size(10);
    for (name, runtime) in [("swap_warm", &warm), ("swap_cold", &cold)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let (loaded, _) = runtime.load(&signed).unwrap();
                tokio
                    .block_on(larm_host::plugins::swap("bench", &queue, loaded, None))
                    .unwrap();
            })
        });
    }
    group.finish();
    let _ = queue.send(larm_host::plugins::worker::Envelope::Stop);
    thread.join().unwrap();
}

/// Criterion's mean for a benchmark, in nanoseconds, from its report files.
fn mean_ns(criterion_dir: &Path, id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(criterion_dir.join(id).join("new/estimates.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn show(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.0} ns"),
        ns if ns < 1e6 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{:.2} ms", ns / 1e6),
    }
}

/// A ratio to the baseline, readable both ways: `12.46x`, or `1/270` when
/// much faster than the baseline.
fn ratio(r: f64) -> String {
    if r >= 0.1 {
        format!("{r:.2}x")
    } else {
        format!("1/{:.0}", 1.0 / r)
    }
}

/// Prints the figures with their ratios to the baseline of each table.
fn table(criterion_dir: &Path) {
    /// A table: its title and its rows (label, criterion id); the first row is the baseline.
    type Table<'a> = (&'a str, &'a [(&'a str, &'a str)]);
    let tables: [Table; 4] = [
        (
            "per event (rule: output N follows input N)",
            &[
                ("native Rust", "per_event/native"),
                ("wasm component", "per_event/wasm"),
                ("Lua (mlua)", "per_event/lua"),
                ("Rhai", "per_event/rhai"),
            ],
        ),
        (
            "loading the component",
            &[
                ("compile (cold)", "load/compile"),
                ("from cache", "load/cached"),
                ("instantiate + init", "load/instantiate/with init"),
            ],
        ),
        (
            "checking a field update's signature",
            &[
                ("sha256, 100 KB", "update/sha256_100KB"),
                ("verify, 100 KB", "update/verify_100KB"),
            ],
        ),
        (
            "swapping it in (checked bytes to serving)",
            &[
                ("cache warm", "update/swap_warm"),
                ("cold (compiles)", "update/swap_cold"),
            ],
        ),
    ];
    for (title, rows) in tables {
        let base = mean_ns(criterion_dir, rows[0].1);
        println!("\n{title}");
        println!("| {:<20} | {:>10} | {:>10} |", "", "mean", "ratio");
        println!("|{:-<22}|{:->12}|{:->12}|", "", "", "");
        for (label, id) in rows {
            let Some(ns) = mean_ns(criterion_dir, id) else {
                continue;
            };
            let ratio = base.map_or("?".into(), |b| ratio(ns / b));
            println!("| {label:<20} | {:>10} | {ratio:>10} |", show(ns));
        }
    }
}

fn criterion_dir() -> PathBuf {
    // The bench runs from <target>/<profile>/deps/; criterion writes to <target>/criterion.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.to_path_buf())
        .join("criterion")
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    per_event(&mut c);
    loading(&mut c);
    updates(&mut c);
    c.final_summary();
    table(&criterion_dir());
}
