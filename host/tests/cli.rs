//! `larmd plugin inspect` and `larmd run` as a separate process.

mod common;

use common::{Larmd, Plugin, UnitConfig};
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::guest;

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
    let v = larm_host::plugins::compat::host_version();
    assert!(text.contains(&format!("version:  {v}")), "{text}");
    for item in ["lifecycle", "rule", "io", "log"] {
        assert!(
            text.contains(&format!("  larm:plugin/{item}@{v}")),
            "{text}"
        );
    }
}

#[test]
fn inspect_explains_an_unusable_component() {
    let text = inspect("guest-future-version");
    assert!(text.contains("world:    none usable here"), "{text}");
    assert!(text.contains("larm:plugin/rule@1.0.0"), "{text}");
}

/// The example rule's output 1 was switched on.
fn output_1_switched_on_by_follow(larmd: &mut Larmd) {
    larmd.wait_event(&[
        ("event", "output"),
        ("output", "1"),
        ("on", "true"),
        ("by", "follow"),
    ]);
}

/// The example rule runs: closing input 1 switches output 1 on.
fn output_1_follows_input_1(larmd: &mut Larmd) {
    larmd.send("close 1");
    output_1_switched_on_by_follow(larmd);
}

#[test]
fn run_follows_inputs_and_keeps_running_without_stdin() {
    let mut larmd = Larmd::start(&UnitConfig::new().plugin(Plugin::follow()));
    larmd.send("close 1");
    // Then run with stdin closed, as under a service manager.
    larmd.stdin = None;
    output_1_switched_on_by_follow(&mut larmd);
    larmd.stop();
}

#[test]
fn pulling_the_extended_card_blinks_code_five_until_it_is_back() {
    let mut larmd =
        Larmd::start(&UnitConfig::new().section("board.extended", "inputs = 2\noutputs = 2"));
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "off")]);
    larmd.send("card out");
    larmd.wait_blinks("red", 5);
    larmd.send("card in");
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "off")]);
    larmd.stop();
}

/// `larmd sim modem` as a separate process.
struct SimProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: mpsc::Receiver<String>,
    path: String,
}

impl SimProcess {
    fn start(profile: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_larmd"))
            .args(["sim", "modem", "--profile", profile])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = common::lines_of(child.stdout.take().unwrap());
        let first = stdout.recv_timeout(Duration::from_secs(30)).unwrap();
        let path = first.rsplit(' ').next().unwrap().to_string();
        assert!(first.starts_with("simulated"), "{first}");
        Self {
            stdin: child.stdin.take().unwrap(),
            child,
            stdout,
            path,
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
    }

    fn probe(&self) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_larmd"))
            .args(["modem", "probe", "--port", &self.path])
            .output()
            .unwrap()
    }

    /// Probes until the output (stdout and stderr) contains `text`: the
    /// simulator takes its stdin commands in its own time.
    fn probe_until(&self, text: &str) -> std::process::Output {
        for _ in 0..50 {
            let out = self.probe();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if all.contains(text) {
                return out;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the probe never showed `{text}`");
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn modem_probe_against_the_simulator() {
    let sim = SimProcess::start("ec2x");
    let out = sim.probe();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "SIM:      ready",
        "signal:   4 bars (CSQ 20)",
        "network:  LTE",
        "operator: Telia",
        "IMEI:     861234567890123",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }

    let mut sim = SimProcess::start("sim800");
    sim.send("signal 7");
    sim.send("sim pin");
    let text = String::from_utf8_lossy(&sim.probe_until("PIN required").stdout).to_string();
    assert!(text.contains("SIM:      PIN required"), "{text}");
    assert!(text.contains("signal:   1 bars (CSQ 7)"), "{text}");
    assert!(text.contains("network:  not registered"), "{text}");
}

#[test]
fn modem_probe_fails_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_larmd"))
        .args(["modem", "probe", "--port", "/dev/ttyNOPE7"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/dev/ttyNOPE7 does not exist"));

    let mut sim = SimProcess::start("ec2x");
    sim.send("silent on");
    let out = sim.probe_until("does not answer");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not answer"), "{stderr}");
}

#[tokio::test]
async fn the_simulator_prints_what_the_unit_sends() {
    let mut sim = SimProcess::start("ec2x");
    let mut modem = firmware_bridge::modem::Modem::open(Path::new(&sim.path), 115_200).unwrap();
    modem.init().await.unwrap();
    modem
        .send_sms("+46701234567", "Larm: dörren är öppen")
        .await
        .unwrap();
    modem.dial("+46701234567").await.unwrap();
    modem.hang_up().await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(sim.stdout.recv_timeout(Duration::from_secs(30)).unwrap());
    }
    assert_eq!(
        seen,
        [
            "SMS to +46701234567: Larm: dörren är öppen",
            "dialled +46701234567",
            "hung up"
        ]
    );
    sim.send("sms +46709876543 1234 STATUS");
    match tokio::time::timeout(Duration::from_secs(30), modem.next_event())
        .await
        .unwrap()
    {
        Some(firmware_bridge::modem::ModemEvent::Sms(sms)) => assert_eq!(sms.text, "1234 STATUS"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_corrupt_config_runs_the_last_good_one_with_the_red_led_steady() {
    let mut larmd = Larmd::start(&UnitConfig::new().plugin(Plugin::follow()));
    larmd.wait_for("larmd running");
    let dir = larmd.stop();
    // Half a write, as a power cut while editing would leave it.
    std::fs::write(
        dir.path().join("unit.toml"),
        "data_dir = \"data\"\n[[plugins]]\nname = \"fol",
    )
    .unwrap();
    let mut larmd = Larmd::restart(dir);
    larmd.wait_for("the config is corrupt: running the last good one");
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "steady")]);
    output_1_follows_input_1(&mut larmd);
    larmd.stop();
}

/// A config that passes `check` but cannot start (its HTTP port is taken)
/// is not kept as the last good one: the copy of the config that ran stays.
#[test]
fn only_a_config_that_started_becomes_the_last_good_one() {
    let mut larmd = Larmd::start(&UnitConfig::new().plugin(Plugin::follow()));
    larmd.wait_for("larmd running");
    let dir = larmd.stop();
    let last_good = dir.path().join("unit.toml.last-good");
    let good = std::fs::read_to_string(&last_good).unwrap();
    assert!(good.contains("follow"), "{good}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("unit.toml"),
        format!("data_dir = \"data\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_larmd"))
        .args(["run", "--config", "unit.toml"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the port is taken: larmd stops");
    assert_eq!(std::fs::read_to_string(&last_good).unwrap(), good);
}

/// `larmd check` on a config file in a fresh folder.
fn check(config: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unit.toml");
    std::fs::write(&file, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_larmd"))
        .args(["check", "--config", file.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

/// An installer who copies a bench config onto a real board gets an
/// error, not a unit that takes unsigned components: on `kind = "linux"`,
/// `allow_unsigned` must be asked for on the command line too.
#[test]
fn unsigned_components_on_a_real_board_must_be_asked_for_twice() {
    let board = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/board.toml"),
    )
    .unwrap();
    let config = format!("{board}\n[updates]\nallow_unsigned = true\n");
    let refused = check(&config, &[]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("allow_unsigned = true on a real board"),
        "{why}"
    );
    let told_twice = check(&config, &["--allow-unsigned"]);
    assert!(
        told_twice.status.success(),
        "{}",
        String::from_utf8_lossy(&told_twice.stderr)
    );
}

/// With trusted keys, a component file must be signed for its plugin.
#[test]
fn with_trusted_keys_an_unsigned_component_file_is_refused() {
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("fleet");
    let made = Command::new(env!("CARGO_BIN_EXE_larmd"))
        .args(["plugin", "keygen", "--out", prefix.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success());
    let config = format!(
        "[updates]\ntrusted_keys = [{:?}]\n{}",
        keys.path().join("fleet.pub").display().to_string(),
        UnitConfig::new().plugin(Plugin::follow())
    );
    let refused = check(&config, &[]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("plugin `follow`: the component is not signed"),
        "{why}"
    );
}

/// Under systemd (`Type=notify`, `WatchdogSec=`), larmd says `READY=1` once
/// it runs, then `WATCHDOG=1` every half interval while its parts answer.
#[test]
fn larmd_tells_systemd_it_is_ready_and_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // systemd names the process it watches; exec keeps the shell's pid.
    /// Killed however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _larmd = Killed(
        Command::new("sh")
            .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" run"])
            .arg(env!("CARGO_BIN_EXE_larmd"))
            .current_dir(dir.path())
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000")
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Alive while it starts, READY once it runs, then alive every 0.2 s.
    let mut said: Vec<String> = Vec::new();
    let mut buf = [0u8; 256];
    let alive_after_ready = |said: &[String]| {
        said.iter()
            .skip_while(|s| !s.contains("READY=1"))
            .filter(|s| s.contains("WATCHDOG=1"))
            .count()
    };
    while alive_after_ready(&said) < 2 {
        let n = socket
            .recv(&mut buf)
            .expect("larmd stopped telling systemd");
        said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
}

/// The service unit passes `systemd-analyze verify`, with `ExecStart`
/// pointed at the larmd just built. CI sets `LARM_TEST_SYSTEMD`, which
/// makes `systemd-analyze` required.
#[test]
fn the_service_unit_passes_systemd_analyze() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        assert!(
            std::env::var_os("LARM_TEST_SYSTEMD").is_none(),
            "LARM_TEST_SYSTEMD is set but systemd-analyze is not installed"
        );
        eprintln!("systemd-analyze is not installed: the service unit is not checked here");
        return;
    }
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/larmd.service"))
            .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/larmd run"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("larmd.service");
    std::fs::write(
        &file,
        unit.replace("/usr/bin/larmd", env!("CARGO_BIN_EXE_larmd")),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small board's memory layout: little address space reserved and a
/// small guard per plugin memory; plugins run the same.
#[test]
fn plugins_run_with_a_small_memory_layout() {
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .section(
                "runtime",
                "memory_mib = 4\nmemory_reservation_mib = 8\nmemory_guard_kib = 64",
            )
            .plugin(Plugin::follow()),
    );
    larmd.wait_for("larmd running");
    output_1_follows_input_1(&mut larmd);
    larmd.stop();
}

/// `larmd check` starts each plugin as the unit would (its `init` reads
/// its config), so a typo in a built-in plugin's config is found before
/// the unit quarantines it and silences the alarms.
#[test]
fn check_starts_each_plugin_and_names_the_one_that_refuses_its_config() {
    let good = UnitConfig::new().plugin(Plugin::input_rules());
    let ok = check(&good.to_string(), &[]);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        said.contains("plugin `input-rules`: input-rule component, starts, ok"),
        "{said}"
    );

    let typo = UnitConfig::new()
        .plugin(Plugin::sms_commands())
        .plugin(Plugin::input_rules().config("\"input.3.delay-s\" = \"abc\""));
    let refused = check(&typo.to_string(), &[]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(
        said.contains("plugin `sms-commands`: sms-commands component, starts, ok"),
        "{said}"
    );
    assert!(
        said.contains("plugin `input-rules`: input-rule component, does not start"),
        "{said}"
    );
    assert!(said.contains("input.3.delay-s"), "{said}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("1 plugin(s) would not start"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// `larmd check` of `config`, which must fail: what it says why.
fn check_refuses(config: &UnitConfig) -> String {
    let refused = check(&config.to_string(), &[]);
    assert!(!refused.status.success(), "{config} was not refused");
    String::from_utf8_lossy(&refused.stderr).into_owned()
}

/// `larmd plugin compile` in a folder of its own.
fn compile(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_larmd"))
        .current_dir(dir)
        .args(["plugin", "compile"])
        .args(args)
        .output()
        .unwrap()
}

/// A plugin precompiled for this machine runs as its component does; one
/// made for another board, or for another memory layout, is refused with
/// the reason.
#[test]
fn a_precompiled_plugin_runs_and_one_for_another_board_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let host = larm_host::plugins::precompiled::Target::host().unwrap();
    let made = compile(dir.path(), &[guest("follow-input").to_str().unwrap()]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let file = dir.path().join(format!("follow-input.{host}.cwasm"));
    assert!(
        String::from_utf8_lossy(&made.stdout).contains(&format!("precompiled for {host}")),
        "{}",
        String::from_utf8_lossy(&made.stdout)
    );
    let mut larmd =
        Larmd::start(&UnitConfig::new().plugin(Plugin::file("follow", &file, "outputs = \"any\"")));
    larmd.wait_for("larmd running");
    output_1_follows_input_1(&mut larmd);
    larmd.stop();

    let other = larm_host::plugins::precompiled::Target::ALL
        .into_iter()
        .find(|t| *t != host)
        .unwrap();
    let foreign = dir.path().join("foreign.cwasm");
    let made = compile(
        dir.path(),
        &[
            "--target",
            other.triple(),
            "--out",
            foreign.to_str().unwrap(),
            "--builtin",
            "std-input-rules",
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = UnitConfig::new().plugin(Plugin::file("rules", &foreign, "outputs = \"any\""));
    let why = check_refuses(&config);
    assert!(
        why.contains(&format!(
            "precompiled for {other}, but this larmd runs on {host}"
        )),
        "{why}"
    );

    // Made for a board whose config lays memories out otherwise.
    let small = dir.path().join("small.toml");
    std::fs::write(
        &small,
        UnitConfig::new()
            .section("runtime", "memory_guard_kib = 64")
            .to_string(),
    )
    .unwrap();
    let made = compile(
        dir.path(),
        &[
            "--config",
            small.to_str().unwrap(),
            "--out",
            "small.cwasm",
            guest("follow-input").to_str().unwrap(),
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = UnitConfig::new().plugin(Plugin::file(
        "follow",
        &dir.path().join("small.cwasm"),
        "outputs = \"any\"",
    ));
    let why = check_refuses(&config);
    assert!(
        why.contains("precompiled for other engine settings"),
        "{why}"
    );

    // A byte of its code changed on the way.
    let mut damaged = std::fs::read(&file).unwrap();
    let at = damaged.len() - 100;
    damaged[at] ^= 0x40;
    std::fs::write(&file, damaged).unwrap();
    let config = UnitConfig::new().plugin(Plugin::file("follow", &file, "outputs = \"any\""));
    let why = check_refuses(&config);
    assert!(why.contains("precompiled plugin is damaged"), "{why}");
}

/// The simulated board's wires stay as they were across a restart, as a
/// real board's do: an input closed before larmd stopped is closed after.
#[test]
fn the_simulated_inputs_are_kept_across_a_restart() {
    let mut larmd = Larmd::start(&UnitConfig::new().plugin(Plugin::follow()));
    larmd.wait_for("larmd running");
    larmd.send("close 4");
    larmd.wait_for("input 4 closed");
    larmd.send("close 1");
    output_1_switched_on_by_follow(&mut larmd);
    let dir = larmd.stop();
    let mut larmd = Larmd::restart(dir);
    larmd.wait_for("larmd running");
    larmd.send("status");
    larmd.wait_for("inputs 1-8 10010000 (1 = closed)");
    larmd.send("open 4");
    larmd.wait_for("input 4 open");
    let mut larmd = Larmd::restart(larmd.stop());
    larmd.wait_for("larmd running");
    larmd.send("status");
    larmd.wait_for("inputs 1-8 10000000 (1 = closed)");
    larmd.stop();
}

/// Without `RUST_LOG`, the console shows what the unit does in plain lines:
/// the time of day and the words, no module paths or fields, reports in
/// words rather than as debug structs.
#[test]
fn the_console_is_plain_lines_without_rust_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_larmd"))
        .arg("run")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = common::lines_of(child.stderr.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = Vec::new();
    let mut wait_for = |text: &str| {
        while !seen.iter().any(|l: &String| l.contains(text)) {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no `{text}` in {seen:#?}"),
            }
        }
        seen.clone()
    };
    wait_for("larmd running");
    writeln!(stdin, "close 1").unwrap();
    let seen = wait_for("report (by input-rules): alarm");
    child.kill().unwrap();
    child.wait().unwrap();
    let timed = |line: &str| {
        line.len() > 10
            && line[..8].bytes().enumerate().all(|(i, b)| {
                if i % 3 == 2 {
                    b == b':'
                } else {
                    b.is_ascii_digit()
                }
            })
            && &line[8..10] == "  "
    };
    let output = seen.iter().find(|l| l.contains("output 5 on")).unwrap();
    assert!(timed(output), "{output}");
    assert_eq!(&output[10..], "output 5 on (by input-rules)");
    assert!(
        seen.iter().any(|l| l
            .ends_with("report (by input-rules): alarm input 1 \"Input 1\": \"Alarm: Input 1\"")),
        "{seen:#?}"
    );
    assert!(
        !seen
            .iter()
            .any(|l| l.contains(" INFO ") || l.contains("larm_host::") || l.contains("event=")),
        "{seen:#?}"
    );
}
