//! Fault injection: `larmd` is killed with SIGKILL at random moments while
//! SMS commands, MQTT commands and alarms are in progress, and started
//! again, over and over. Afterwards nothing acknowledged may be missing
//! and nothing applied twice:
//!
//! - an SMS command whose reply went out (`CONINTVL n`) is in the state;
//! - every MQTT command the server published is applied, once: the broker
//!   delivers it again until larmd acknowledges it, which it does only
//!   after applying it, and its id is remembered in the same transaction;
//! - every alarm logged as queued (durable in the outbox) has its SMS sent.
//!
//! `LARM_KILL9_ITERATIONS` sets the number of kills (default 50); CI runs
//! the default. The figures are printed at the end; the README's
//! reliability section quotes them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use common::mqtt::{Observer, rumqttd};
use common::{Larmd, UnitConfig};

const PHONE: &str = "+46701234567";

/// A small xorshift generator: the kill moments, reproducible from the
/// printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Starts (or restarts, on `dir`) the unit and waits until it is connected
/// to the broker; returns it with the lines logged meanwhile.
fn started(dir: Option<tempfile::TempDir>, broker: &str) -> (Larmd, Vec<String>) {
    let mut larmd = match dir {
        Some(dir) => Larmd::restart(dir),
        None => Larmd::start(
            &UnitConfig::new()
                .sim_modem("ec2x", "")
                .section("board", "inputs = 4\noutputs = 3\ndebounce_ms = 0")
                .section(
                    "server",
                    &format!(
                        "url = \"mqtt://{broker}\"\nstay_connected = true\nretry_max_s = 1\ninterval_min = 0"
                    ),
                )
                .standard_plugins(PHONE),
        ),
    };
    let seen = larmd.wait_for("connected to the server");
    (larmd, seen)
}

/// Values of `key=` fields that hold a list of numbers, e.g. `modem=[3, 4]`.
fn numbers_of(line: &str, key: &str) -> Vec<u64> {
    line.split(&format!(" {key}=["))
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .map(|list| list.split(", ").filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

#[test]
fn kill_9_at_random_moments_loses_nothing_acknowledged_and_applies_nothing_twice() {
    let iterations: u32 = std::env::var("LARM_KILL9_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill -9 fault injection: {iterations} iterations, seed {seed}");
    let mut rng = Rng(seed);
    let broker = rumqttd();
    let observer = Observer::connect(broker, "larm");
    let (mut larmd, mut log) = started(None, &broker.to_string());
    let (topic, _) = observer.wait_json("/status", |_| true);
    let base = topic.rsplit_once('/').unwrap().0.to_string();

    let started_at = Instant::now();
    for i in 1..=iterations {
        larmd.send(&format!("sms {PHONE} 0000 CONINTVL {i}"));
        observer.publish(
            &format!("{base}/cmd"),
            format!(r#"{{"v":1,"id":"k{i}","settings":{{"input.2.name":"K{i}"}}}}"#),
        );
        larmd.send("close 1");
        larmd.send("open 1");
        // Within the ~100 ms the unit takes to handle all of it.
        std::thread::sleep(Duration::from_millis(rng.below(120)));
        let (dir, last) = larmd.kill_logged();
        log.extend(last);
        let (next, seen) = started(Some(dir), &broker.to_string());
        larmd = next;
        log.extend(seen);
    }
    // The last run settles: every command is taken, the outbox drains.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        larmd.send("status");
        let seen = larmd.wait_for("outbox:");
        let empty = seen.last().unwrap().contains("outbox: empty");
        log.extend(seen);
        if empty {
            break;
        }
        assert!(Instant::now() < deadline, "the outbox never drained");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The last command is applied now, or was before the last kill (the
    // line saying so may have died with that larmd, its redelivery is then
    // recognised).
    let last_command = format!("command k{iterations}: ");
    let applied_before = format!("command k{iterations} was applied before");
    let taken = |l: &str| l.contains(&last_command) || l.contains(&applied_before);
    if !log.iter().any(|l| taken(l)) {
        log.extend(larmd.wait_until(&last_command, taken));
    }
    let dir = larmd.stop();
    let elapsed = started_at.elapsed();

    // SMS commands whose reply was sent are in the state.
    let acknowledged = (1..=iterations)
        .filter(|i| {
            log.iter().any(|l| {
                l.contains(&format!(
                    "modem: SMS sent to {PHONE}: \"Connection interval: {i} min\""
                ))
            })
        })
        .max();
    let state = larm_host::state::State::open(&dir.path().join("data")).unwrap();
    assert_eq!(state.restored(), None);
    let interval: u32 = state
        .setting("server.interval-min")
        .unwrap()
        .map_or(0, |v| v.parse().unwrap());
    let acknowledged = acknowledged.expect("no SMS command was ever acknowledged");
    assert!(
        interval >= acknowledged,
        "CONINTVL {acknowledged} was acknowledged, the state says {interval}"
    );
    assert!(
        !log.iter()
            .any(|l| l.contains("the unit's state was damaged")),
        "a kill damaged the state"
    );

    // Every MQTT command applied, none twice. Applied is logged before the
    // broker is told; one applied just before a kill is delivered again and
    // recognised by its id; the store keeps the last 64 ids.
    let remembered = state
        .kv_get("server-adapter", "applied-ids")
        .unwrap()
        .unwrap_or_default();
    let remembered: BTreeSet<String> = String::from_utf8(remembered)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut twice = Vec::new();
    for i in 1..=iterations {
        let id = format!("k{i}");
        let times = log
            .iter()
            .filter(|l| l.contains(&format!("command {id}: ")))
            .count();
        let known = log
            .iter()
            .any(|l| l.contains(&format!("command {id} was applied before")));
        assert!(times > 0 || known, "command {id} was lost");
        if times > 1 {
            twice.push(format!("{id} ({times} times)"));
        }
        if i + 64 > iterations {
            assert!(remembered.contains(&id), "{id} is not remembered");
        }
    }
    assert!(twice.is_empty(), "applied more than once: {twice:?}");

    // Every alarm that was queued had its SMS sent.
    let queued: BTreeSet<u64> = log
        .iter()
        .filter(|l| l.contains("event=\"alarm-queued\""))
        .flat_map(|l| numbers_of(l, "modem"))
        .collect();
    let done: BTreeSet<u64> = log
        .iter()
        .filter_map(|l| l.split("done (entry ").nth(1))
        .filter_map(|rest| rest.trim_end_matches(')').parse().ok())
        .collect();
    assert!(!queued.is_empty(), "no alarm was ever queued");
    let lost: Vec<&u64> = queued.difference(&done).collect();
    assert!(lost.is_empty(), "alarm SMS never sent: entries {lost:?}");

    let replies: BTreeMap<&str, usize> = [
        ("SMS commands acknowledged", "\"Connection interval: "),
        ("alarm SMS sent", "\"Alarm: Input 1\""),
    ]
    .into_iter()
    .map(|(what, text)| {
        (
            what,
            log.iter()
                .filter(|l| l.contains("modem: SMS sent") && l.contains(text))
                .count(),
        )
    })
    .collect();
    println!(
        "kill -9: {iterations} kills in {:.0?}; {replies:?}; MQTT commands applied {iterations}/{iterations}, \
         twice 0; alarms queued {}, lost 0",
        elapsed,
        queued.len()
    );
}
