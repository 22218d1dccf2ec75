//! The server link end to end: `larmd` as a separate process with the
//! default plugins, against a real MQTT broker: rumqttd embedded in the
//! test, and Mosquitto (plain and TLS) when it is installed (CI installs it
//! and sets `LARM_TEST_MOSQUITTO=1`, which makes it required).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::mqtt::{Mosquitto, Observer, free_port, rumqttd};
use common::{Larmd, UnitConfig, assert_logged};
use serde_json::Value;

const PHONE: &str = "+46701234567";

/// A standard unit (the default plugins) reporting to `url`.
fn unit_config(url: &str, server_extra: &str, alarm: &str) -> UnitConfig {
    UnitConfig::new()
        .sim_modem("ec2x", "")
        .section(
            "board",
            "kind = \"sim\"\ninputs = 4\noutputs = 3\ndebounce_ms = 5",
        )
        .section(
            "server",
            &format!(
                "url = \"{url}\"\nlinger_s = 2\nretry_max_s = 1\ninterval_min = 0\n{server_extra}"
            ),
        )
        .section("alarm", alarm)
        // The ALARM output is the alarm rules' alone.
        .section("outputs.3", "owners = [\"input-rules\"]")
        .standard_plugins(PHONE)
}

/// The unit's base topic, from its first message.
fn base_of(topic: &str) -> String {
    topic.rsplit_once('/').unwrap().0.to_string()
}

/// Raise an alarm, see it reported; have the server switch an output and
/// rename an input, and see the unit obey; garbage and oversized commands
/// are refused and the unit goes on.
fn reports_and_obeys(larmd: &mut Larmd, observer: &Observer) -> String {
    // The blue LED is steady while the unit is connected (docs/unit.md's
    // "connection to the server active").
    larmd.wait_event(&[("event", "led"), ("led", "blue"), ("mode", "steady")]);
    let (topic, status) = observer.wait_json("/status", |_| true);
    let base = base_of(&topic);
    assert_eq!(status["v"], 1);
    assert_eq!(status["inputs"].as_array().unwrap().len(), 4);
    // The first sync waits for the modem's status.
    assert_eq!(
        (&status["network"], &status["signal_bars"]),
        (&"lte".into(), &4.into())
    );
    larmd.wait_for("server sync done");

    larmd.send("close 1");
    let (_, alarm) = observer.wait_json("/events/alarm", |_| true);
    assert_eq!(alarm["input"], 1);
    assert_eq!(alarm["text"], "Alarm: Input 1");
    assert!(alarm["id"].as_str().is_some_and(|id| !id.is_empty()));
    larmd.wait_for("server sync done");

    // A command sent while the unit is offline waits at the broker (the
    // unit's persistent session); CONNECT by SMS syncs at once and takes it.
    observer.publish(
        &format!("{base}/cmd"),
        r#"{"v":1,"id":"while-offline","outputs":{"1":true}}"#,
    );
    observer.wait("/cmd", |_| true);
    larmd.send(&format!("sms {PHONE} 0000 CONNECT"));
    larmd.wait_for("connected to the server");
    larmd.wait_for("downlink on `cmd` applied by server-adapter");
    observer.wait_json("/events/output", |e| e["output"] == 1 && e["on"] == true);

    // Commands while the unit is connected.
    observer.wait_json("/status", |_| true);
    observer.publish(&format!("{base}/cmd"), "garbage");
    observer.publish(&format!("{base}/cmd"), vec![b' '; 20_000]);
    observer.publish(
        &format!("{base}/cmd"),
        r#"{"v":1,"id":"c1","outputs":{"2":true},"settings":{"input.3.name":"Pump","input.3.mode":"NC","server.interval-min":"15"}}"#,
    );
    let mut seen = larmd.wait_for("downlink on `cmd` applied by server-adapter");
    // The interval the command set reaches the link (logged by another task).
    let interval = "connection interval set to 15 min (by server-adapter)";
    if !seen.iter().any(|l| l.contains(interval)) {
        seen.extend(larmd.wait_for(interval));
    }
    assert_logged(&seen, "rejected by server-adapter: not a command");
    assert_logged(&seen, "dropped a message of 20000 bytes on");
    // The output change, then the status after the command.
    observer.wait_json("/events/output", |e| {
        e["output"] == 2 && e["by"] == "server-adapter"
    });
    let (_, status) = observer.wait_json("/status", |s| s["outputs"][1]["on"] == true);
    assert_eq!(status["inputs"][2]["name"], "Pump");

    // The same command again (a broker's redelivery): applied once.
    observer.publish(
        &format!("{base}/cmd"),
        r#"{"v":1,"id":"c1","outputs":{"2":true},"settings":{"input.3.name":"Pump","input.3.mode":"NC","server.interval-min":"15"}}"#,
    );
    larmd.wait_for("command c1 was applied before: ignored");

    // A timed output ends by itself; a gate caller is added, then removed
    // (`null`).
    observer.publish(
        &format!("{base}/cmd"),
        r#"{"v":1,"id":"t1","outputs":{"1":{"on":true,"for_s":0.5}},"settings":{"gate.caller.+46701111111":"Anna"}}"#,
    );
    larmd.wait_for("key=gate.caller.+46701111111 value=Some(\"Anna\")");
    observer.wait_json("/events/output", |e| e["output"] == 1 && e["on"] == false);
    observer.publish(
        &format!("{base}/cmd"),
        r#"{"v":1,"id":"t2","settings":{"gate.caller.+46701111111":null}}"#,
    );
    larmd.wait_for("key=gate.caller.+46701111111 value=None");

    // A command that would switch the ALARM output, which is not the
    // server's, is refused whole: output 2 stays on.
    observer.publish(
        &format!("{base}/cmd"),
        r#"{"v":1,"id":"h1","outputs":{"2":false,"3":false}}"#,
    );
    larmd.wait_for("output 3 may be switched only by input-rules");
    larmd.send("status");
    larmd.wait_for("outputs 1-3 011");

    // A command with one bad part changes nothing, not even its good part.
    let too_long = "x".repeat(larm_rules::settings::MAX_VALUE + 1);
    observer.publish(
        &format!("{base}/cmd"),
        format!(
            r#"{{"v":1,"id":"m1","settings":{{"input.1.name":"X","input.2.alarm-text":"{too_long}"}}}}"#
        ),
    );
    larmd.wait_for("rejected by server-adapter");
    observer.publish(&format!("{base}/cmd"), r#"{"v":1,"id":"s1","status":true}"#);
    let (_, status) = observer.wait_json("/status", |s| s["id"] != status["id"]);
    assert_eq!(status["inputs"][0]["name"], "Input 1", "{status}");
    base
}

/// Messages too large to take (one QoS 1 command waiting in the unit's
/// session, one retained under `cmd/#`) are dropped and acknowledged at the
/// transport and reported on `events/health`; the link comes up and keeps
/// delivering alarms, and the broker does not send them again.
fn oversized_messages_do_not_stop_the_link(
    mut larmd: Larmd,
    observer: &Observer,
    base: &str,
) -> Larmd {
    larmd.wait_for("server sync done");
    observer.publish(&format!("{base}/cmd"), vec![b'x'; 600_000]);
    observer.publish_retained(&format!("{base}/cmd/big"), vec![b'y'; 70_000]);
    observer.wait("/cmd/big", |_| true);
    larmd.send(&format!("sms {PHONE} 0000 CONNECT"));
    larmd.wait_for("dropped a message of 600000 bytes");
    let (_, health) = observer.wait_json("/events/health", |e| e["plugin"] == "server");
    assert!(
        health["last_fault"]
            .as_str()
            .is_some_and(|f| f.contains("600000 bytes")),
        "{health}"
    );
    larmd.wait_for("of 70000 bytes on");
    larmd.send("close 4");
    let (_, alarm) = observer.wait_json("/events/alarm", |a| a["input"] == 4);
    assert_eq!(alarm["text"], "Alarm: Input 4");
    observer.publish_retained(&format!("{base}/cmd/big"), "");
    // Acknowledged: the session of the restarted unit does not get it again.
    let mut larmd = Larmd::restart(larmd.stop());
    let seen = larmd.wait_for("server sync done");
    assert!(
        !seen.iter().any(|l| l.contains("600000 bytes")),
        "sent again: {seen:?}"
    );
    larmd
}

/// A retained command is taken once; the copy the broker hands out again at
/// later connections is ignored, so a local change since stands. (Against
/// Mosquitto: rumqttd does not hand retained messages out again when a
/// persistent session subscribes again.)
fn retained_commands_are_not_applied_again(larmd: &mut Larmd, observer: &Observer, base: &str) {
    observer.publish_retained(
        &format!("{base}/cmd"),
        r#"{"v":1,"id":"r1","outputs":{"1":false}}"#,
    );
    observer.wait_json("/events/output", |e| e["output"] == 1 && e["on"] == false);
    larmd.send(&format!("sms {PHONE} 0000 SETOUTPUT 1 ON"));
    observer.wait_json("/events/output", |e| e["output"] == 1 && e["on"] == true);
    larmd.wait_for("server sync done");
    larmd.send(&format!("sms {PHONE} 0000 CONNECT"));
    larmd.wait_for("is ignored: commands are not retained");
    larmd.send("status");
    larmd.wait_for("outputs 1-3 111");
    observer.publish_retained(&format!("{base}/cmd"), "");
}

#[test]
fn reports_obeys_the_server_and_syncs_on_connect() {
    let _alone = common::mqtt::one_broker_at_a_time();
    let broker = rumqttd();
    let observer = Observer::connect(broker, "larm");
    let home_assistant = Observer::connect(broker, "homeassistant");
    let mut larmd = Larmd::start(&unit_config(&format!("mqtt://{broker}"), "", ""));
    let base = reports_and_obeys(&mut larmd, &observer);
    let larmd = oversized_messages_do_not_stop_the_link(larmd, &observer, &base);

    // Home Assistant discovery: the unit's inputs and outputs, with the
    // topics that feed and switch them.
    let (_, sensor) = home_assistant.wait_json("_in3/config", |_| true);
    assert_eq!(sensor["name"], "Input 3");
    let (topic, switch) = home_assistant.wait_json("_out2/config", |_| true);
    assert!(topic.starts_with("homeassistant/switch/"), "{topic}");
    assert!(switch["command_topic"].as_str().unwrap().ends_with("/cmd"));

    // The setting from the server persists like one changed by SMS: input 3
    // is now NC, so with its contact open it is in alarm after a restart.
    let dir = larmd.stop();
    let mut larmd = Larmd::restart(dir);
    let (_, alarm) = observer.wait_json("/events/alarm", |a| a["input"] == 3);
    assert_eq!(alarm["name"], "Pump");
    larmd.wait_for("server sync done");
}

/// A TCP gate in front of the broker: closed, nothing listens on its port
/// (the broker is down, as far as the unit can tell).
struct Gate {
    port: u16,
}

impl Gate {
    fn closed() -> Self {
        Self { port: free_port() }
    }

    /// Opens the gate: connections are forwarded to `broker`.
    fn open(&self, broker: SocketAddr, runtime: &tokio::runtime::Runtime) {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((
                Ipv4Addr::LOCALHOST,
                self.port,
            )))
            .unwrap();
        runtime.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(broker).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }
}

#[test]
fn alarms_raised_while_the_broker_is_down_survive_kill_9_and_arrive_once() {
    let _alone = common::mqtt::one_broker_at_a_time();
    let broker = rumqttd();
    let observer = Observer::connect(broker, "larm");
    let gate = Gate::closed();
    let mut larmd = Larmd::start(&unit_config(
        &format!("mqtt://127.0.0.1:{}", gate.port),
        "",
        "route = [\"server\", \"sms\"]\nescalate_after_s = 2",
    ));
    larmd.wait_for("server sync failed");
    // Red, 6 blinks: no connection with the server.
    larmd.wait_blinks("red", 6);
    for input in 1..=3 {
        larmd.send(&format!("close {input}"));
    }
    // Not acknowledged in time: each alarm escalates to its SMS.
    let mut sent = BTreeSet::new();
    while sent.len() < 3 {
        let seen = larmd.wait_for(&format!("modem: SMS sent to {PHONE}: \"Alarm: Input"));
        let line = seen.last().unwrap();
        let input = line.split("\"Alarm: Input ").nth(1).unwrap();
        sent.insert(input.split('"').next().unwrap().to_string());
    }
    // STATUS shows the reports waiting: the three alarms, and the ALARM
    // output's and the plugins' news.
    larmd.send(&format!("sms {PHONE} 0000 STATUS"));
    let seen = larmd.wait_for("Queued: ");
    let queued: u32 = seen
        .last()
        .unwrap()
        .split("Queued: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(queued >= 3, "{seen:#?}");

    let dir = larmd.kill();
    let mut larmd = Larmd::restart(dir);
    larmd.wait_for("outbox entries from before the restart");
    larmd.wait_blinks("red", 6);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    gate.open(broker, &runtime);
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "off")]);
    larmd.wait_for("server sync done");

    let alarms: BTreeMap<String, u64> = observer
        .collect(Duration::from_secs(3))
        .into_iter()
        .filter(|(topic, _)| topic.ends_with("/events/alarm"))
        .map(|(_, payload)| {
            let event: Value = serde_json::from_slice(&payload).unwrap();
            (
                event["id"].as_str().unwrap().to_string(),
                event["input"].as_u64().unwrap(),
            )
        })
        .collect();
    let inputs: BTreeSet<u64> = alarms.values().copied().collect();
    assert_eq!(alarms.len(), 3, "three alarms, by id: {alarms:?}");
    assert_eq!(inputs, BTreeSet::from([1, 2, 3]));
    // The escalation SMS went out before the kill, and not again.
    let resent = larmd
        .log
        .iter()
        .filter(|l| l.contains("SMS sent") && l.contains("\"Alarm: Input"))
        .count();
    assert_eq!(resent, 0, "{:#?}", larmd.log);
}

#[test]
fn interoperates_with_mosquitto_plain_and_tls() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let observer = Observer::connect(mosquitto.plain, "larm");
    let mut larmd = Larmd::start(&unit_config(&format!("mqtt://{}", mosquitto.plain), "", ""));
    let base = reports_and_obeys(&mut larmd, &observer);
    retained_commands_are_not_applied_again(&mut larmd, &observer, &base);
    let larmd = oversized_messages_do_not_stop_the_link(larmd, &observer, &base);
    drop((larmd, observer));

    // Its own prefix: the first unit's retained status is not this one's.
    let observer = Observer::connect(mosquitto.plain, "tls");
    let tls = format!(
        "ca_file = {:?}\nprefix = \"tls\"",
        mosquitto.ca.display().to_string()
    );
    let mut larmd = Larmd::start(&unit_config(
        &format!("mqtts://{}", mosquitto.tls),
        &tls,
        "",
    ));
    reports_and_obeys(&mut larmd, &observer);
}

/// After a session that got connected, a lost connection is tried again
/// after the shortest wait, not after the backoff the outage before it
/// had grown to.
#[test]
fn the_backoff_starts_afresh_after_a_good_session() {
    let _alone = common::mqtt::one_broker_at_a_time();
    let broker = rumqttd();
    let gate = Gate::closed();
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .section(
                "server",
                &format!(
                    "url = \"mqtt://127.0.0.1:{}\"\nstay_connected = true\ninterval_min = 0",
                    gate.port
                ),
            )
            .plugin(common::Plugin::server_adapter()),
    );
    // The outage: 1 s, 2 s, 4 s...
    larmd.wait_for("next try in 1s");
    larmd.wait_for("next try in 2s");
    larmd.wait_for("next try in 4s");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    gate.open(broker, &runtime);
    larmd.wait_for("connected to the server");
    // The connection drops (the gate and what went through it are gone).
    drop(runtime);
    let seen = larmd.wait_for("server sync failed");
    assert!(
        seen.last().unwrap().ends_with("next try in 1s"),
        "{}",
        seen.join("\n")
    );
    larmd.stop();
}
