//! What larm does beyond the manual's unit, against the real binary on the
//! simulated board and the pseudo-terminal modem: timed outputs that
//! survive a restart, outputs with owners and priorities, quotas on what
//! costs money, and call to open.

mod common;

use common::{Larmd, Plugin, UnitConfig};

const PHONE: &str = "+46701234567";
const GUEST: &str = "+46701111111";

fn sms(larmd: &mut Larmd, text: &str) {
    larmd.send(&format!("sms {PHONE} {text}"));
}

fn reply(larmd: &mut Larmd, text: &str) -> Vec<String> {
    larmd.wait_for(&format!("modem: SMS sent to {PHONE}: {text:?}"))
}

fn output(larmd: &mut Larmd, n: &str, on: &str) -> Vec<String> {
    larmd.wait_event(&[("event", "output"), ("output", n), ("on", on)])
}

fn with_http(config: UnitConfig) -> UnitConfig {
    config.section("http", "listen = \"127.0.0.1:0\"")
}

/// Waits until larmd runs and its API listens (logged in either order);
/// the API's address.
fn running_with_api(larmd: &mut Larmd) -> String {
    let seen = larmd.wait_for("HTTP API on http://");
    if !seen.iter().any(|l| l.contains("larmd running")) {
        larmd.wait_for("larmd running");
    }
    common::http::address(seen.last().unwrap())
}

fn put(addr: &str, path: &str, body: &str) -> (u16, String) {
    common::http::request(addr, "PUT", path, body.as_bytes(), None)
}

fn status(addr: &str) -> serde_json::Value {
    let (code, body) = common::http::request(addr, "GET", "/api/v1/status", b"", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn timed_outputs_end_by_themselves_also_across_a_restart() {
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .sim_modem("ec2x", "")
            .plugin(Plugin::sms_commands()),
    );
    larmd.wait_for("larmd running");
    sms(&mut larmd, "0000 OUTPUT 3 ON 1");
    reply(&mut larmd, "Output 3 ON for 1 s");
    output(&mut larmd, "3", "false");
    // A pulse, without a reply.
    sms(&mut larmd, "0000 SETOUTPUT 2 ON 0.5");
    output(&mut larmd, "2", "true");
    output(&mut larmd, "2", "false");
    sms(&mut larmd, "0000 OUTPUT 9 ON 0.01");
    reply(
        &mut larmd,
        "Wrong parameters. Use: OUTPUT n ON/OFF [seconds]",
    );
    // One ends while larmd is stopped, one after it is back.
    sms(&mut larmd, "0000 OUTPUT 1 ON 1");
    reply(&mut larmd, "Output 1 ON for 1 s");
    // Long enough to outlast a stop and a start on a busy machine.
    sms(&mut larmd, "0000 OUTPUT 4 ON 10");
    reply(&mut larmd, "Output 4 ON for 10 s");
    let dir = larmd.stop();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut larmd = Larmd::restart(dir);
    let seen = larmd.wait_for("larmd running");
    common::assert_logged(
        &seen,
        "output 1: its time (by sms-commands) ended while larmd was stopped; off",
    );
    common::assert_logged(
        &seen,
        "output 4 on again after the restart, for the rest of its time (by sms-commands)",
    );
    output(&mut larmd, "4", "false");
    larmd.stop();
}

#[test]
fn outputs_have_owners_and_the_higher_one_holds() {
    let mut larmd = Larmd::start(
        &with_http(UnitConfig::new())
            .section("board", "debounce_ms = 0")
            .section("outputs.5", "owners = [\"input-rules\"]")
            .section(
                "outputs.3",
                "owners = [\"input-rules\", \"sms-commands\", \"http\"]",
            )
            .sim_modem("ec2x", "")
            .plugin(Plugin::sms_commands())
            .plugin(Plugin::input_rules().config(&format!("\"alarm.sms\" = \"{PHONE}\""))),
    );
    let addr = running_with_api(&mut larmd);
    // Only the input rules switch the ALARM output.
    let (code, body) = put(&addr, "/api/v1/outputs/5", r#"{"on": true}"#);
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("output 5 may be switched only by input-rules"),
        "{body}"
    );
    larmd.send("close 1");
    output(&mut larmd, "5", "true");
    sms(&mut larmd, "0000 OUTPUT 5 OFF");
    reply(
        &mut larmd,
        "Could not do it: output 5 may be switched only by input-rules",
    );
    // The SMS command set holds output 3: the API, lower, is refused.
    sms(&mut larmd, "0000 OUTPUT 3 ON");
    reply(&mut larmd, "Output 3 ON");
    let (code, body) = put(&addr, "/api/v1/outputs/3", r#"{"on": false}"#);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("output 3 is held by sms-commands"), "{body}");
    let s = status(&addr);
    let out3 = &s["outputs"][2];
    assert_eq!(out3["held_by"], "sms-commands", "{s}");
    assert_eq!(out3["owners"][0], "input-rules", "{s}");
    assert_eq!(s["outputs"][4]["held_by"], "input-rules", "{s}");
    // Released, it is free for the API, on a timer.
    sms(&mut larmd, "0000 OUTPUT 3 OFF");
    reply(&mut larmd, "Output 3 OFF");
    let (code, body) = put(&addr, "/api/v1/outputs/3", r#"{"on": true, "for_s": 0.5}"#);
    assert_eq!(code, 204, "{body}");
    output(&mut larmd, "3", "true");
    output(&mut larmd, "3", "false");
    let (code, body) = put(
        &addr,
        "/api/v1/outputs/3",
        r#"{"on": true, "for_s": 99999}"#,
    );
    assert_eq!(code, 400, "{body}");
    larmd.stop();
}

#[test]
fn quotas_refuse_what_costs_too_much_and_alarms_bypass_them_to_the_ceiling() {
    let config = with_http(UnitConfig::new())
        .section("board", "debounce_ms = 0")
        .section("quotas.unit", "sms_per_day = 3")
        .section("quotas.ceiling", "sms_per_day = 2")
        .sim_modem("ec2x", "")
        .plugin(Plugin::sms_commands().keys("quota = { sms_per_hour = 2 }"))
        .plugin(
            Plugin::input_rules()
                .keys("bypass_quotas = true")
                .config(&format!("\"alarm.sms\" = \"{PHONE}\"")),
        );
    let mut larmd = Larmd::start(&config);
    let addr = running_with_api(&mut larmd);
    for _ in 0..2 {
        sms(&mut larmd, "0000 CONNECT");
        reply(&mut larmd, "Connecting to the server");
    }
    sms(&mut larmd, "0000 CONNECT");
    larmd.wait_for("refused: sms-commands's quota of 2 SMS per hour is spent");
    // Told on the health events.
    larmd.wait_for("report (by host): health quota running faults 1");
    // The alarm rules bypass the plugin's and the unit's quota...
    larmd.send("close 1");
    larmd.wait_for(&format!("modem: SMS sent to {PHONE}: \"Alarm: Input 1\""));
    larmd.send("open 1");
    larmd.wait_for(&format!(
        "modem: SMS sent to {PHONE}: \"Restored: Input 1\""
    ));
    // ...up to the ceiling.
    larmd.send("close 1");
    larmd.wait_for("refused: ceiling's quota of 2 SMS per day is spent");
    let counters = status(&addr)["quotas"].clone();
    let unit = counters
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scope"] == "unit")
        .unwrap();
    assert_eq!(
        (unit["used"].as_u64(), unit["max"].as_u64()),
        (Some(3), Some(3)),
        "{counters}"
    );
    // The counters survive a restart.
    let dir = larmd.stop();
    let mut larmd = Larmd::restart(dir);
    larmd.wait_for("larmd running");
    sms(&mut larmd, "0000 CONNECT");
    larmd.wait_for("refused: sms-commands's quota of 2 SMS per hour is spent");
    larmd.stop();
}

#[test]
fn calls_from_listed_numbers_open_the_gate_unanswered() {
    let sms_commands = Plugin::builtin(
        "sms-commands",
        "std-sms-commands",
        "password = true\nsms = \"any\"\noutputs = \"any\"\ncalls = \"any\"\nsettings = \"write\"",
    )
    .config("gate = { output = 2, pulse-s = 0.5, confirm = true }");
    let mut larmd = Larmd::start(&UnitConfig::new().sim_modem("ec2x", "").plugin(sms_commands));
    larmd.wait_for("larmd running");
    sms(&mut larmd, "0000 NUMS");
    reply(&mut larmd, "No numbers: nobody's call opens");
    sms(&mut larmd, &format!("0000 ADDNUM {GUEST}"));
    reply(&mut larmd, &format!("{GUEST} added: its calls open"));
    sms(&mut larmd, "0000 ADDNUM anna");
    reply(&mut larmd, "Wrong parameters. Use: ADDNUM +46701234567");
    // An unknown caller is ignored (and not hung up on: the command after
    // it is the point by which a hang-up would show).
    larmd.send("ring +46709999999");
    let mut seen = larmd.wait_for("call from +46709999999: not on the gate list, ignored");
    sms(&mut larmd, "0000 NUMS");
    seen.extend(reply(&mut larmd, &format!("1 numbers: {GUEST}")));
    assert!(
        !seen.iter().any(|l| l.contains("modem: hung up")),
        "{seen:#?}"
    );
    larmd.send(&format!("ring {GUEST}"));
    let seen = larmd.wait_for(&format!("modem: SMS sent to {GUEST}: \"Opened\""));
    common::assert_logged(&seen, "modem: hung up");
    common::assert_event(
        &seen,
        &[("event", "output"), ("output", "2"), ("on", "true")],
    );
    output(&mut larmd, "2", "false");
    // The modem tells the number at every ring of a call: one call opens
    // once.
    larmd.send(&format!("ring {GUEST}"));
    let mut seen = larmd.wait_for("modem: hung up");
    sms(&mut larmd, "0000 NUMS");
    seen.extend(reply(&mut larmd, &format!("1 numbers: {GUEST}")));
    assert!(
        !seen
            .iter()
            .any(|l| l.contains("Opened") || l.contains("event=\"output\"")),
        "{seen:#?}"
    );
    // The list is kept across a restart.
    let dir = larmd.stop();
    let mut larmd = Larmd::restart(dir);
    larmd.wait_for("larmd running");
    sms(&mut larmd, "0000 NUMS");
    reply(&mut larmd, &format!("1 numbers: {GUEST}"));
    sms(&mut larmd, &format!("0000 DELNUM {GUEST}"));
    reply(&mut larmd, &format!("{GUEST} removed"));
    sms(&mut larmd, &format!("0000 DELNUM {GUEST}"));
    reply(&mut larmd, &format!("{GUEST} is not on the list"));
    larmd.stop();
}
