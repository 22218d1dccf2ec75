//! Field updates end to end, against `larmd` as a separate process: keys
//! and signatures made with `larmd plugin keygen/sign`, components
//! installed over the HTTP API, the CLI and MQTT, refused for every reason
//! the unit has, tried on probation, committed, rolled back, and killed
//! mid-install.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::http::{address, request};
use common::{Larmd, Plugin, UnitConfig, assert_logged, guest};
use serde_json::Value;

/// The test plugin's grants: output 1, SMS to +100, and the restart
/// guest-misbehave imports `system` for.
const GRANTS: &str = "outputs = [1]\nsms = [\"+100\"]\nsystem = [\"restart-unit\"]";

/// Runs the `larmd` binary.
fn larmd_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larmd"))
        .args(args)
        .output()
        .unwrap()
}

#[track_caller]
fn larmd_ok(args: &[&str]) -> String {
    let out = larmd_cli(args);
    assert!(
        out.status.success(),
        "larmd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Keys and signed components, made with the CLI.
struct Kit {
    dir: tempfile::TempDir,
}

impl Kit {
    /// Two key pairs: `fleet` (trusted by the units) and `stranger`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for who in ["fleet", "stranger"] {
            let prefix = dir.path().join(who);
            larmd_ok(&["plugin", "keygen", "--out", prefix.to_str().unwrap()]);
        }
        Self { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// `component` signed by `who` for the plugin `name`.
    fn sign(&self, who: &str, name: &str, component: &Path) -> PathBuf {
        let out = self.path(&format!(
            "{who}-{name}-{}",
            component.file_name().unwrap().to_string_lossy()
        ));
        larmd_ok(&[
            "plugin",
            "sign",
            "--key",
            self.path(&format!("{who}.key")).to_str().unwrap(),
            "--name",
            name,
            "--out",
            out.to_str().unwrap(),
            component.to_str().unwrap(),
        ]);
        out
    }

    /// A copy of guest-misbehave that is another component (one more
    /// custom section: another hash) doing the same.
    fn misbehave_copy(&self, n: u8) -> PathBuf {
        let mut bytes = std::fs::read(guest("guest-misbehave")).unwrap();
        let name = b"larm-test-copy";
        bytes.extend([0, (1 + name.len() + 1) as u8, name.len() as u8]);
        bytes.extend(name);
        bytes.push(n);
        let path = self.path(&format!("misbehave-copy-{n}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A unit with the HTTP API and the plugin `rules` running `rules`
    /// (a signed component), with `config` as its plugin config.
    fn unit(&self, rules: &Path, probation_s: u64, config: &str) -> UnitConfig {
        let plugin = Plugin::file("rules", rules, GRANTS);
        let plugin = if config.is_empty() {
            plugin
        } else {
            plugin.config(config)
        };
        UnitConfig::new()
            .section("http", "listen = \"127.0.0.1:0\"")
            .section(
                "updates",
                &format!(
                    "trusted_keys = [{:?}]\nprobation_s = {probation_s}",
                    self.path("fleet.pub").display().to_string()
                ),
            )
            // The test rules send an SMS per event: more than the
            // unit's default 100 a day.
            .section("quotas.unit", "sms_per_day = 10000")
            .plugin(plugin)
    }
}

/// larmd started, and its API's address.
fn start(config: &UnitConfig) -> (Larmd, String) {
    let mut larmd = Larmd::start(config);
    let addr = address(&larmd.wait_for("HTTP API on http://").pop().unwrap());
    (larmd, addr)
}

fn install(addr: &str, file: &Path) -> (u16, Value) {
    let bytes = std::fs::read(file).unwrap();
    let (code, body) = request(addr, "PUT", "/api/v1/plugins/rules", &bytes, None);
    (code, serde_json::from_str(&body).unwrap())
}

fn plugins(addr: &str) -> Value {
    let (code, body) = request(addr, "GET", "/api/v1/plugins", b"", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// guest-misbehave (no label) is running: an input edge is echoed.
fn echoes(larmd: &mut Larmd, input: u8, closed: bool) {
    let (verb, word) = if closed {
        ("close", "closed")
    } else {
        ("open", "open")
    };
    larmd.send(&format!("{verb} {input}"));
    larmd.wait_for(&format!("SMS to +100 (by rules):  {input} {word}"));
}

/// Opens input `n` if it is closed (it may be, from before a restart: the
/// simulated wires stay as they were), so that closing it is an edge.
fn opened(larmd: &mut Larmd, n: u8) {
    larmd.send("status");
    let line = larmd.wait_for("(1 = closed)").pop().unwrap();
    let bits = line
        .split("inputs 1-")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap();
    if bits.as_bytes()[usize::from(n) - 1] == b'1' {
        larmd.send(&format!("open {n}"));
        larmd.wait_for(&format!("input {n} open"));
    }
}

/// follow-input is running: output 1 follows input 1.
fn follows(larmd: &mut Larmd) {
    opened(larmd, 1);
    larmd.send("close 1");
    larmd.wait_event(&[
        ("event", "output"),
        ("output", "1"),
        ("on", "true"),
        ("by", "rules"),
    ]);
    larmd.send("open 1");
    larmd.wait_event(&[("event", "output"), ("output", "1"), ("on", "false")]);
}

#[test]
fn refused_updates_leave_the_running_component_untouched() {
    let kit = Kit::new();
    let rules = kit.sign("fleet", "rules", &guest("guest-misbehave"));
    let (mut larmd, addr) = start(&kit.unit(&rules, 3, ""));
    echoes(&mut larmd, 2, true);

    let follow = kit.sign("fleet", "rules", &guest("follow-input"));
    let mut tampered = std::fs::read(&follow).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x20;
    let tampered_file = kit.path("tampered.wasm");
    std::fs::write(&tampered_file, tampered).unwrap();
    let refusals = [
        (guest("follow-input"), "the component is not signed"),
        (tampered_file, "was changed after signing"),
        (
            kit.sign("stranger", "rules", &guest("follow-input")),
            "which is not among [updates] trusted_keys",
        ),
        (
            kit.sign("fleet", "other", &guest("follow-input")),
            "signed for the plugin `other`, not for `rules`",
        ),
        (
            kit.sign("fleet", "rules", &guest("std-sms-commands")),
            "a sms-commands component cannot replace the input-rule plugin `rules`",
        ),
        (
            kit.sign("fleet", "rules", &guest("guest-future-version")),
            "but this host speaks larm:plugin@",
        ),
        (
            kit.sign("fleet", "rules", &guest("std-input-rules")),
            "it imports larm:plugin/voice, but its config grants no `calls`",
        ),
        (
            kit.sign("fleet", "rules", &guest("guest-fragile")),
            "the new component did not start: trapped",
        ),
    ];
    for (file, why) in &refusals {
        let (code, answer) = install(&addr, file);
        assert_eq!(code, 400, "{}: {answer}", file.display());
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(why), "{}: {error}", file.display());
        larmd.wait_event(&[("event", "report"), ("kind", "update")]);
    }
    // Still the old component, untouched, on its own record.
    echoes(&mut larmd, 2, false);
    let listed = plugins(&addr);
    assert_eq!(listed[0]["source"], "config", "{listed}");
    let (code, answer) = request(&addr, "POST", "/api/v1/plugins/rules/rollback", b"", None);
    assert_eq!(code, 409, "{answer}");
    let (code, _) = request(&addr, "PUT", "/api/v1/plugins/nobody", b"x", None);
    assert_eq!(code, 404);
    larmd.stop();
}

#[test]
fn an_update_runs_on_probation_is_committed_survives_a_restart_and_rolls_back() {
    let kit = Kit::new();
    let rules = kit.sign("fleet", "rules", &guest("guest-misbehave"));
    let config = kit
        .unit(&rules, 3, "")
        .sim_modem("ec2x", "")
        .plugin(Plugin::sms_commands());
    let (mut larmd, addr) = start(&config);
    echoes(&mut larmd, 2, true);

    let follow = kit.sign("fleet", "rules", &guest("follow-input"));
    let (code, answer) = install(&addr, &follow);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["probation_s"], 3);
    let sha = answer["sha256"].as_str().unwrap().to_string();
    follows(&mut larmd);
    // STATUS by SMS names it, briefly.
    larmd.send("sms +46701234567 0000 STATUS");
    larmd.wait_for(&format!("Upd: rules {} (trial).", &sha[..7]));
    let listed = plugins(&addr);
    assert_eq!(listed[0]["source"], "field", "{listed}");
    assert_eq!(listed[0]["version"], sha[..12], "{listed}");
    assert!(listed[0]["probation_left_s"].as_u64().is_some(), "{listed}");
    assert_eq!(listed[0]["state"], "probation", "{listed}");
    // The same component again: nothing to do.
    let (code, again) = install(&addr, &follow);
    assert_eq!((code, &again["already"]), (200, &Value::Bool(true)));

    larmd.wait_for("update committed");
    let listed = plugins(&addr);
    assert_eq!(listed[0]["probation_left_s"], Value::Null, "{listed}");
    assert_eq!(listed[0]["previous"], Value::Null, "back to the config's");
    let url = format!("http://{addr}");
    let list = larmd_ok(&["plugin", "list", "--url", &url]);
    assert!(
        list.contains(&format!(
            "rules (input-rule): running, field component {}",
            &sha[..12]
        )),
        "{list}"
    );

    // The record decides what runs after a restart.
    let mut larmd = Larmd::restart(larmd.stop());
    let addr = address(&larmd.wait_for("HTTP API on http://").pop().unwrap());
    follows(&mut larmd);

    // Rolled back by hand: the config's component serves again.
    let url = format!("http://{addr}");
    let out = larmd_ok(&["plugin", "rollback", "rules", "--url", &url]);
    assert!(out.contains("rolled back"), "{out}");
    // Input 2 is still closed from before the restart, as wires stay.
    echoes(&mut larmd, 2, false);
    assert_eq!(plugins(&addr)[0]["source"], "config");
    let out = larmd_cli(&["plugin", "rollback", "rules", "--url", &url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to roll back"));
    larmd.stop();
}

#[test]
fn a_fault_on_probation_rolls_back_at_once() {
    let kit = Kit::new();
    let rules = kit.sign("fleet", "rules", &guest("guest-misbehave"));
    // guest-misbehave ignores `fragile`; guest-fragile then starts, and
    // traps on input 1.
    let (mut larmd, addr) = start(&kit.unit(&rules, 600, "fragile = \"input\""));
    echoes(&mut larmd, 2, true);
    let fragile = kit.sign("fleet", "rules", &guest("guest-fragile"));
    let url = format!("http://{addr}");
    let out = larmd_ok(&[
        "plugin",
        "install",
        "rules",
        fragile.to_str().unwrap(),
        "--url",
        &url,
    ]);
    assert!(out.contains("on probation for 600 s"), "{out}");
    larmd.send("open 2");
    larmd.wait_for("SMS to +100 (by rules): fragile 2 open");
    larmd.send("close 1");
    let seen = larmd.wait_for("update rolled back: it faulted on probation");
    assert_logged(&seen, "trapped");
    let seen = larmd.wait_event(&[("event", "report"), ("kind", "update")]);
    assert_logged(&seen, "update rules rolled-back");
    echoes(&mut larmd, 2, true);
    assert_eq!(plugins(&addr)[0]["source"], "config");

    // A unit that restarts while an update is on probation (perhaps
    // because of it) rolls it back, rather than trying it at every start.
    let (code, answer) = install(&addr, &fragile);
    assert_eq!(code, 200, "{answer}");
    let mut larmd = Larmd::restart(larmd.stop());
    larmd.wait_for("update rolled back: the unit restarted while it was on probation");
    let addr = address(&larmd.wait_for("HTTP API on http://").pop().unwrap());
    // Input 2 is still closed from before the restart, as wires stay.
    echoes(&mut larmd, 2, false);
    assert_eq!(plugins(&addr)[0]["source"], "config");
    larmd.stop();
}

/// `allow_unsigned` (development): unsigned components go in, and the
/// status says the unit takes them.
#[test]
fn allow_unsigned_lets_unsigned_components_in_and_says_so() {
    let config = UnitConfig::new()
        .section("http", "listen = \"127.0.0.1:0\"")
        .section("updates", "allow_unsigned = true\nprobation_s = 0")
        .plugin(Plugin::guest("rules", "guest-misbehave", GRANTS));
    let mut larmd = Larmd::start(&config);
    let seen = larmd.wait_for("HTTP API on http://");
    assert_logged(&larmd.log, "allow_unsigned = true");
    let addr = address(seen.last().unwrap());
    let (_, status) = request(&addr, "GET", "/api/v1/status", b"", None);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["unsigned_allowed"], true, "{status}");
    let (code, answer) = install(&addr, &guest("follow-input"));
    assert_eq!((code, &answer["key_id"]), (200, &Value::Null), "{answer}");
    larmd.wait_for("update committed");
    follows(&mut larmd);
    larmd.stop();
}

/// A field update may carry a plugin precompiled for the board (what a
/// runtime-only larmd runs): signed, on a unit that allows them, it is
/// installed like a component; unsigned, or where keys vouch for
/// components only, it is refused, as it is machine code no sandbox checks.
#[test]
fn a_precompiled_update_goes_in_signed_where_allowed_only() {
    let kit = Kit::new();
    let precompiled = kit.path("follow.cwasm");
    larmd_ok(&[
        "plugin",
        "compile",
        "--out",
        precompiled.to_str().unwrap(),
        guest("follow-input").to_str().unwrap(),
    ]);
    let refused = |larmd: &mut Larmd, addr: &str, file: &Path| {
        let (code, answer) = install(addr, file);
        assert_eq!(code, 400, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains("a precompiled plugin is installed in the field only when signed"),
            "{error}"
        );
        echoes(larmd, 2, true);
    };

    let unsigned = UnitConfig::new()
        .section("http", "listen = \"127.0.0.1:0\"")
        .section(
            "updates",
            "allow_unsigned = true\nallow_precompiled = true\nprobation_s = 0",
        )
        .plugin(Plugin::guest("rules", "guest-misbehave", GRANTS));
    let (mut larmd, addr) = start(&unsigned);
    refused(&mut larmd, &addr, &precompiled);
    larmd.stop();

    let rules = kit.sign("fleet", "rules", &guest("guest-misbehave"));
    let signed = kit.sign("fleet", "rules", &precompiled);
    let (mut larmd, addr) = start(&kit.unit(&rules, 0, ""));
    refused(&mut larmd, &addr, &signed);
    larmd.stop();

    let allowing = kit
        .unit(&rules, 0, "")
        .with_line("updates", "allow_precompiled = true");
    let (mut larmd, addr) = start(&allowing);
    let (code, answer) = install(&addr, &signed);
    assert_eq!(code, 200, "{answer}");
    larmd.wait_for("update committed");
    follows(&mut larmd);
    larmd.stop();
}

/// Input edges at full speed while the component is swapped: each is
/// handled once, by one of the two versions.
#[test]
fn no_event_is_lost_or_handled_twice_across_a_swap() {
    let kit = Kit::new();
    let rules = kit.sign("fleet", "rules", &guest("guest-misbehave"));
    let (mut larmd, addr) = start(&kit.unit(&rules, 600, "label = \"x\""));
    let update = kit.sign("fleet", "rules", &kit.misbehave_copy(1));
    let url = format!("http://{addr}");
    let installer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        larmd_ok(&[
            "plugin",
            "install",
            "rules",
            update.to_str().unwrap(),
            "--url",
            &url,
        ])
    });
    for i in 0..300 {
        larmd.send(if i % 2 == 0 { "close 3" } else { "open 3" });
        std::thread::sleep(Duration::from_millis(6));
    }
    assert!(installer.join().unwrap().contains("installed"));
    // Events reach the plugin in order: once this one is echoed, every
    // edge before it has been handled.
    larmd.send("close 4");
    larmd.wait_for("SMS to +100 (by rules): x 4 closed");
    let edges = larmd
        .log
        .iter()
        .filter(|l| common::has_fields(l, &[("event", "input"), ("input", "3")]))
        .count();
    let echoed = larmd
        .log
        .iter()
        .filter(|l| l.contains("SMS to +100 (by rules): x 3 "))
        .count();
    assert!(edges > 100, "{edges} edges");
    assert_eq!(echoed, edges, "lost or doubled across the swap");
    assert_logged(&larmd.log, "update installed");
    larmd.stop();
}

/// Sends an install and reads the answer, if the unit lives to give one.
fn put_and_forget(addr: &str, body: &[u8]) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return;
    };
    let head = format!(
        "PUT /api/v1/plugins/rules HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_ok() && stream.write_all(body).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

/// kill -9 at random moments of installs: after each restart the unit runs
/// a whole component, and the one its record names.
#[test]
fn kill_9_during_installs_leaves_a_working_version_matching_its_record() {
    let iterations: u32 = std::env::var("LARM_UPDATE_KILL9_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let kit = Kit::new();
    let rules = kit.sign("fleet", "rules", &guest("guest-misbehave"));
    let follow = kit.sign("fleet", "rules", &guest("follow-input"));
    let copy = kit.sign("fleet", "rules", &kit.misbehave_copy(2));
    let sha = |file: &Path| {
        larmd_ok(&[
            "plugin",
            "verify",
            "--key",
            kit.path("fleet.pub").to_str().unwrap(),
            file.to_str().unwrap(),
        ])
        .rsplit("sha256 ")
        .next()
        .unwrap()
        .trim()
        .to_string()
    };
    let follow_sha = sha(&follow);
    let copy_sha = sha(&copy);
    // No probation: an install is committed as soon as it is recorded (a
    // restart during probation rolls back, tested above).
    let (mut larmd, mut addr) = start(&kit.unit(&rules, 0, ""));
    let mut seed = 0x2545_f491_u32;
    let mut running: Option<String> = None;
    let (mut new, mut old) = (0, 0);
    for i in 0..iterations {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let (file, offered) = if i % 2 == 0 {
            (&follow, &follow_sha)
        } else {
            (&copy, &copy_sha)
        };
        let bytes = std::fs::read(file).unwrap();
        let target = addr.clone();
        std::thread::spawn(move || put_and_forget(&target, &bytes));
        // An install takes some tens of milliseconds (cached compile): the
        // kill falls before, inside and after it.
        std::thread::sleep(Duration::from_millis(u64::from(seed % 120)));
        larmd = Larmd::restart(larmd.kill());
        addr = address(&larmd.wait_for("HTTP API on http://").pop().unwrap());
        let listed = plugins(&addr);
        let version = listed[0]["version"].as_str().map(str::to_string);
        // Input 1 may be closed from before the kill (its wires stay), or
        // not if the kill came before that was kept.
        opened(&mut larmd, 1);
        match version.as_deref() {
            Some(v) if follow_sha.starts_with(v) => follows(&mut larmd),
            Some(v) => {
                assert!(copy_sha.starts_with(v), "an unknown version {v} runs");
                echoes(&mut larmd, 1, true);
            }
            None => echoes(&mut larmd, 1, true),
        }
        if version.as_deref().is_some_and(|v| offered.starts_with(v)) {
            new += 1;
        } else {
            assert_eq!(version, running, "neither the old version nor the new one");
            old += 1;
        }
        running = version;
    }
    eprintln!(
        "update kill -9: {iterations} kills during installs; after the restart the new version ran {new} times, the old one {old} times, anything else 0 times"
    );
    larmd.stop();
}

/// The server publishes a component on `update/<name>`; the result comes
/// back on `events/update`.
fn an_update_from_the_server_is_installed_and_reported(broker: std::net::SocketAddr) {
    let kit = Kit::new();
    let rules = kit.sign("fleet", "rules", &guest("guest-misbehave"));
    let observer = common::mqtt::Observer::connect(broker, "larm");
    let config = kit
        .unit(&rules, 600, "")
        .section(
            "server",
            &format!("url = \"mqtt://{broker}\"\nstay_connected = true\ninterval_min = 0"),
        )
        .plugin(Plugin::server_adapter());
    let mut larmd = Larmd::start(&config);
    // The link may connect before the API listens, or after.
    let seen = larmd.wait_for("HTTP API on http://");
    let (topic, _) = observer.wait_json("/status", |_| true);
    let base = topic.rsplit_once('/').unwrap().0.to_string();
    if !seen.iter().any(|l| l.contains("connected to the server")) {
        larmd.wait_for("connected to the server");
    }

    let unsigned = std::fs::read(guest("follow-input")).unwrap();
    observer.publish(&format!("{base}/update/rules"), unsigned);
    let (_, refused) = observer.wait_json("/events/update", |_| true);
    assert_eq!(refused["outcome"], "refused", "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("not signed"),
        "{refused}"
    );

    let follow = std::fs::read(kit.sign("fleet", "rules", &guest("follow-input"))).unwrap();
    observer.publish(&format!("{base}/update/rules"), follow);
    let (_, installed) = observer.wait_json("/events/update", |e| e["outcome"] != "refused");
    assert_eq!(installed["outcome"], "installed", "{installed}");
    assert_eq!(installed["plugin"], "rules");
    follows(&mut larmd);
    larmd.stop();
}

#[test]
fn an_update_from_the_server_through_rumqttd() {
    an_update_from_the_server_is_installed_and_reported(common::mqtt::rumqttd());
}

#[test]
fn an_update_from_the_server_through_mosquitto() {
    if let Some(mosquitto) = common::mqtt::Mosquitto::start() {
        an_update_from_the_server_is_installed_and_reported(mosquitto.plain);
    }
}
