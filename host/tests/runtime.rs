//! The plugin runtime against real components built from `host/tests/guests`,
//! `examples/plugins` and `plugins/`: faults, limits, grants, compatibility,
//! hot replacement and the precompiled cache. Every guest component has a
//! test named after its crate (`foreach_guest!` below fails to compile
//! otherwise).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use firmware_bridge::board::{Board, InputId, OutputId, SimBoard};
use larm_host::config::Config;
use larm_host::plugins::bindings::larm::plugin::types::{
    Contact, InputEvent, PluginHealth, PluginState,
};
use larm_host::plugins::compat::{self, CompatError};
use larm_host::plugins::runtime::{CacheOutcome, LoadError, Runtime};
use larm_host::plugins::{PluginError, PluginManager, builtin_names};
use larm_host::unit::{Action, Shared};

use common::{Plugin, UnitConfig, guest};
use tokio::sync::mpsc;

include!(concat!(env!("OUT_DIR"), "/foreach_guest.rs"));

/// Demands a test function named after each guest crate.
macro_rules! assert_test_exists {
    ($name:ident, $package:literal) => {
        #[expect(unused_imports, reason = "only checks that the test exists")]
        use self::$name as _;
    };
}
foreach_guest!(assert_test_exists);

/// How long a test waits for something the plugins do.
const WAIT: Duration = Duration::from_secs(30);

/// A unit on a simulated board running the plugins of a config.
struct Harness {
    board: Arc<SimBoard>,
    manager: PluginManager,
    actions: mpsc::UnboundedReceiver<Vec<Action>>,
    failed: Vec<PluginError>,
}

impl Harness {
    fn new(config: &UnitConfig) -> Self {
        let config = Config::parse(
            &config.to_string(),
            Path::new("test.toml"),
            &builtin_names(),
        )
        .expect("test config");
        let board = Arc::new(SimBoard::new(8, 5));
        let (shared, actions) = Shared::in_memory(board.clone()).unwrap();
        let runtime = Runtime::new(None).unwrap();
        let mut manager = PluginManager::new(runtime, shared);
        let store_dir = tempfile::tempdir().unwrap();
        let store = larm_host::updates::store::Store::new(store_dir.path());
        let failed = manager.start_all(&config, &store).failed;
        Self {
            board,
            manager,
            actions,
            failed,
        }
    }

    /// Drives input `input` on the board and hands the edge to the input
    /// rules, as the event loop does.
    fn input(&self, input: u8, contact: Contact) {
        let on_board = match contact {
            Contact::Closed => firmware_bridge::board::Contact::Closed,
            Contact::Open => firmware_bridge::board::Contact::Open,
        };
        self.board.set_input(InputId(input), on_board).unwrap();
        self.manager.input(InputEvent {
            input,
            contact,
            at_ms: 0,
        });
    }

    /// Every action so far, after the plugins have handled what is queued.
    async fn actions(&mut self) -> Vec<Action> {
        self.manager.flush().await;
        let mut all = Vec::new();
        while let Ok(event) = self.actions.try_recv() {
            all.extend(event);
        }
        all
    }

    /// Waits until an action matches `wanted`; returns every action up to
    /// and including it.
    async fn until(&mut self, wanted: impl Fn(&Action) -> bool) -> Vec<Action> {
        let mut seen = Vec::new();
        loop {
            let event = tokio::time::timeout(WAIT, self.actions.recv())
                .await
                .unwrap_or_else(|_| panic!("never came; seen: {seen:#?}"))
                .expect("the unit is running");
            let done = event.iter().any(&wanted);
            seen.extend(event);
            if done {
                return seen;
            }
        }
    }

    /// The texts of SMS sent so far by plugin `by`.
    async fn sms_from(&mut self, by: &str) -> Vec<String> {
        self.actions()
            .await
            .into_iter()
            .filter_map(|a| match a {
                Action::Sms { by: b, text, .. } if b == by => Some(text),
                _ => None,
            })
            .collect()
    }

    fn health(&self, name: &str) -> PluginHealth {
        self.manager
            .health()
            .into_iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no health for {name}"))
    }

    /// Shows the well-behaved `follow` plugin still works: input 2 drives output 2.
    async fn follow_still_works(&mut self) {
        self.input(2, Contact::Closed);
        self.manager.flush().await;
        assert_eq!(self.board.read_output(OutputId(2)), Ok(true));
        self.input(2, Contact::Open);
        self.manager.flush().await;
        assert_eq!(self.board.read_output(OutputId(2)), Ok(false));
        assert_eq!(self.health("follow").state, PluginState::Running);
    }
}

/// The example rule, following input 2 only.
fn follow() -> Plugin {
    Plugin::guest("follow", "follow-input", "outputs = [2]").config("inputs = [2]")
}

/// The misbehaving guest in `mode`, with `limits`, beside [`follow`].
fn misbehave(mode: &str, limits: &str) -> UnitConfig {
    UnitConfig::new()
        .plugin(
            Plugin::guest("bad", "guest-misbehave", "outputs = [1]\nsms = [\"+100\"]")
                .limits(limits)
                .config(&format!("mode = \"{mode}\"\nlabel = \"bad\"")),
        )
        .plugin(follow())
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_in_init_quarantines_the_plugin() {
    let mut h = Harness::new(&misbehave("trap-init", ""));
    h.manager.flush().await;
    let bad = h.health("bad");
    assert_eq!(bad.state, PluginState::Quarantined);
    assert_eq!(bad.faults, 3, "started, restarted twice, then quarantined");
    let why = bad.last_fault.unwrap();
    assert!(why.contains("unreachable"), "a panic is a trap: {why}");
    h.input(1, Contact::Closed);
    assert!(h.sms_from("bad").await.is_empty());
    h.follow_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_on_an_event_restarts_the_plugin() {
    let mut h = Harness::new(&misbehave("trap-on-input", ""));
    h.input(2, Contact::Closed);
    h.input(1, Contact::Closed);
    h.input(2, Contact::Open);
    assert_eq!(h.sms_from("bad").await, ["bad 2 closed", "bad 2 open"]);
    let bad = h.health("bad");
    assert_eq!((bad.state, bad.faults), (PluginState::Restarted, 1));
    h.follow_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_traps_quarantine_the_plugin() {
    let mut h = Harness::new(&misbehave("trap-on-input", ""));
    for _ in 0..3 {
        h.input(1, Contact::Closed);
    }
    h.input(2, Contact::Closed);
    assert!(h.sms_from("bad").await.is_empty(), "quarantined: no events");
    assert_eq!(h.health("bad").state, PluginState::Quarantined);
    h.follow_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_loop_is_stopped_at_the_deadline() {
    let mut h = Harness::new(&misbehave("loop", "deadline_ms = 20"));
    h.input(1, Contact::Closed);
    h.input(2, Contact::Closed);
    assert_eq!(h.sms_from("bad").await, ["bad 2 closed"]);
    let bad = h.health("bad");
    assert_eq!(bad.faults, 1);
    assert_eq!(
        bad.last_fault.as_deref(),
        Some("exceeded its CPU deadline of 20 ms")
    );
    h.follow_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_hog_is_stopped_at_the_limit() {
    let mut h = Harness::new(&misbehave("oom", "memory_mib = 4"));
    h.input(1, Contact::Closed);
    h.input(2, Contact::Closed);
    assert_eq!(h.sms_from("bad").await, ["bad 2 closed"]);
    let bad = h.health("bad");
    assert_eq!(bad.faults, 1);
    let why = bad.last_fault.unwrap();
    assert!(
        why.starts_with("exceeded its memory limit of 4096 KiB"),
        "{why}"
    );
    h.follow_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_outside_the_grants_are_refused() {
    let mut h = Harness::new(&misbehave("ungranted", ""));
    h.input(1, Contact::Closed);
    let actions = h.actions().await;
    let sms: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Sms { to, text, .. } => Some((to.as_str(), text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(sms.len(), 1, "only the echo to +100 went out: {sms:?}");
    let (to, text) = sms[0];
    assert_eq!(to, "+100");
    assert_eq!(
        text.matches("NotGranted").count(),
        3,
        "output 2, SMS to +999 and restart were all refused: {text}"
    );
    assert!(
        text.contains("outputs") && text.contains("restart-unit"),
        "{text}"
    );
    assert_eq!(
        h.board.outputs(),
        vec![false; 5],
        "no output reached the board"
    );
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Restart { .. })),
        "no restart was requested"
    );
    assert_eq!(h.health("bad").faults, 0, "a refused call is not a fault");
    h.follow_still_works().await;
}

/// Loads `guest` as plugin `name` beside `follow`; returns the harness and
/// the one load error, checked to be a compatibility error.
fn rejected(name: &str, guest: &str) -> (Harness, CompatError, String) {
    let h = Harness::new(
        &UnitConfig::new()
            .plugin(Plugin::guest(name, guest, ""))
            .plugin(follow()),
    );
    assert_eq!(h.failed.len(), 1);
    let message = h.failed[0].to_string();
    let PluginError::Load { source, .. } = &h.failed[0] else {
        panic!("not a load error: {message}");
    };
    let LoadError::Incompatible(compat) = &**source else {
        panic!("not a compatibility error: {message}");
    };
    let compat = compat.clone();
    (h, compat, message)
}

#[tokio::test(flavor = "multi_thread")]
/// A component of a world larm does not know is refused before it runs.
async fn guest_unknown_world() {
    let (mut h, error, message) = rejected("gadget", "guest-unknown-world");
    assert!(
        matches!(error, CompatError::UnknownWorld { .. }),
        "{message}"
    );
    assert!(message.contains("acme:gadget/widget@0.1.0"), "{message}");
    let host = compat::host_version();
    assert!(
        message.contains(&format!("larm:plugin/rule@{host}")),
        "{message}"
    );
    assert_eq!(h.manager.plugins().len(), 1, "only follow runs");
    h.follow_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
/// A component built for a future major version is refused, naming it.
async fn guest_future_version() {
    let (mut h, error, message) = rejected("future", "guest-future-version");
    assert!(matches!(error, CompatError::Version { .. }), "{message}");
    assert!(message.contains("larm:plugin/rule@1.0.0"), "{message}");
    let host = compat::host_version();
    assert!(
        message.contains(&format!("larm:plugin@{host}")),
        "{message}"
    );
    h.follow_still_works().await;
}

/// A component built against the contract before this one (0.1.0, kept as
/// a compiled fixture: building from source can never test "old plugin,
/// new host") is refused with a message that names both versions.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_built_for_an_older_contract_is_refused_naming_its_version() {
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/follow-input-0.1.0.wasm");
    let runtime = Runtime::new(None).unwrap();
    let error = runtime.load_file(&old).map(drop).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, LoadError::Incompatible(CompatError::Version { .. })),
        "{message}"
    );
    assert!(message.contains("@0.1.0` is at version 0.1.0"), "{message}");
    let host = compat::host_version();
    assert!(
        message.contains(&format!("this host speaks larm:plugin@{host}")),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn timers_come_back_as_events() {
    let mut h = Harness::new(&misbehave("timer", ""));
    h.manager.input(InputEvent {
        input: 1,
        contact: Contact::Closed,
        at_ms: 42,
    });
    let mut echoes = h.sms_from("bad").await;
    for _ in 0..100 {
        if echoes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        echoes.extend(h.sms_from("bad").await);
    }
    assert_eq!(echoes, ["bad 1 closed", "bad timer t42"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_replace_loses_no_queued_event() {
    let mut h = Harness::new(
        &UnitConfig::new().plugin(
            Plugin::guest("rule", "guest-misbehave", "outputs = [3]\nsms = [\"+100\"]")
                .config("mode = \"echo\"\nlabel = \"v1\""),
        ),
    );
    const EVENTS: usize = 400;
    let contact = |i: usize| {
        if i.is_multiple_of(2) {
            Contact::Closed
        } else {
            Contact::Open
        }
    };
    for i in 0..EVENTS / 2 {
        h.input(3, contact(i));
    }
    // The swap is queued behind the first half; the second half is queued
    // while the new component is being compiled and swapped in.
    let replacement = std::fs::read(guest("follow-input")).unwrap();
    let manager = &h.manager;
    let replace = manager.replace(
        "rule",
        &replacement,
        Some(vec![("inputs".into(), "3".into())]),
    );
    let feed = async {
        for i in EVENTS / 2..EVENTS {
            manager.input(InputEvent {
                input: 3,
                contact: contact(i),
                at_ms: 0,
            });
            tokio::task::yield_now().await;
        }
    };
    let (replaced, ()) = tokio::join!(replace, feed);
    replaced.expect("replacement accepted");

    // Each event shows up exactly once, in order: as an echo SMS from the
    // old component or as an output change from the new one.
    let seen: Vec<Contact> = h
        .actions()
        .await
        .into_iter()
        .filter_map(|a| match a {
            Action::Sms { text, .. } if text == "v1 3 closed" => Some(Contact::Closed),
            Action::Sms { text, .. } if text == "v1 3 open" => Some(Contact::Open),
            Action::Output { output: 3, on, .. } => {
                Some(if on { Contact::Closed } else { Contact::Open })
            }
            _ => None,
        })
        .collect();
    let expected: Vec<Contact> = (0..EVENTS).map(contact).collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn replacement_that_does_not_fit_keeps_the_old_component() {
    let mut h = Harness::new(&UnitConfig::new().plugin(follow()));
    let gadget = std::fs::read(guest("guest-unknown-world")).unwrap();
    let err = h
        .manager
        .replace("follow", &gadget, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("targets no larm world"), "{err}");
    let err = h
        .manager
        .replace("nobody", &gadget, None)
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::NoSuchPlugin(_)), "{err}");
    h.follow_still_works().await;
}

#[test]
fn compiled_components_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(guest("follow-input")).unwrap();
    let runtime = Runtime::new(Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(runtime.load(&bytes).unwrap().1, CacheOutcome::Compiled);
    drop(runtime);

    let runtime = Runtime::new(Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(runtime.load(&bytes).unwrap().1, CacheOutcome::Cached);

    // A damaged cache entry is recompiled, not trusted.
    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::write(entry.path(), b"garbage").unwrap();
    assert_eq!(runtime.load(&bytes).unwrap().1, CacheOutcome::Compiled);
    assert_eq!(runtime.load(&bytes).unwrap().1, CacheOutcome::Cached);

    // Machine code damaged in place (bits flipped by a failing flash) is
    // never run: it would crash larmd at every start.
    let mut damaged = std::fs::read(entry.path()).unwrap();
    for i in (4096..damaged.len()).step_by(997) {
        damaged[i] ^= 0xff;
    }
    std::fs::write(entry.path(), damaged).unwrap();
    let (loaded, outcome) = runtime.load(&bytes).unwrap();
    assert_eq!(outcome, CacheOutcome::Compiled);
    drop(loaded);
    assert_eq!(runtime.load(&bytes).unwrap().1, CacheOutcome::Cached);
}

#[test]
fn garbage_is_not_a_component() {
    let runtime = Runtime::new(None).unwrap();
    match runtime.load(b"\0asm garbage") {
        Err(LoadError::Invalid(e)) => assert!(!e.to_string().is_empty()),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("garbage loaded"),
    }
}

/// The example plugin: output N follows input N.
#[tokio::test(flavor = "multi_thread")]
async fn follow_input() {
    let mut h = Harness::new(&UnitConfig::new().plugin(follow()));
    assert!(h.failed.is_empty());
    h.follow_still_works().await;
    assert!(h.actions().await.contains(&Action::Output {
        by: "follow".into(),
        output: 2,
        on: true
    }));
}

/// The test guest, well behaved: every event it gets is echoed, in order.
#[tokio::test(flavor = "multi_thread")]
async fn guest_misbehave() {
    let mut h = Harness::new(&misbehave("echo", ""));
    h.input(1, Contact::Closed);
    h.input(3, Contact::Closed);
    h.input(1, Contact::Open);
    assert_eq!(
        h.sms_from("bad").await,
        ["bad 1 closed", "bad 3 closed", "bad 1 open"]
    );
    assert_eq!(h.health("bad").state, PluginState::Running);
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_fragile() {
    let fragile = |config: &str| {
        let plugin = Plugin::guest("fragile", "guest-fragile", "sms = [\"+100\"]");
        let plugin = if config.is_empty() {
            plugin
        } else {
            plugin.config(config)
        };
        UnitConfig::new().plugin(plugin).plugin(follow())
    };
    let mut h = Harness::new(&fragile(""));
    h.manager.flush().await;
    assert_eq!(h.health("fragile").state, PluginState::Quarantined);
    h.follow_still_works().await;

    let mut h = Harness::new(&fragile("fragile = \"input\""));
    h.input(2, Contact::Closed);
    h.input(1, Contact::Closed);
    assert_eq!(h.sms_from("fragile").await, ["fragile 2 closed"]);
    assert_eq!(h.health("fragile").state, PluginState::Restarted);
}

fn sms_to(actions: &[Action], to: &str) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Sms { to: t, text, .. } if t == to => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn is_sms(text: &'static str) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::Sms { text: t, .. } if t == text)
}

/// The standard input rules: NO and NC, the ALARM output, alarm SMS and
/// call, restore, and a delay that ignores a blip.
#[tokio::test(flavor = "multi_thread")]
async fn std_input_rules() {
    // The defaults as TOML tables and numbers, as an installer writes them.
    let mut h = Harness::new(&UnitConfig::new().plugin(Plugin::input_rules().config(
        "alarm.sms = \"+4670111\"\nalarm.call = \"+4670222\"\nalarm.ring-s = 5\n\
         input.2.mode = \"NC\"\ninput.3.delay-s = 1\n\
         input.3.alarm-text = \"Larm: Frysrummet är för varmt!\"\ninput.4.delay-s = 1",
    )));
    assert!(h.failed.is_empty(), "{:?}", h.failed);
    let alarm = h.board.alarm_output();

    // Input 2 is NC and open at start: in alarm from the first moment.
    let seen = h.until(is_sms("Alarm: Input 2")).await;
    assert!(seen.contains(&Action::Call {
        by: "input-rules".into(),
        number: "+4670222".into(),
        ring_s: 5
    }));
    assert_eq!(h.board.read_output(alarm), Ok(true), "ALARM on");

    // Input 1 is NO: closing it is an alarm, opening it a restore.
    h.input(1, Contact::Closed);
    h.until(is_sms("Alarm: Input 1")).await;
    h.input(1, Contact::Open);
    h.until(is_sms("Restored: Input 1")).await;
    assert_eq!(
        h.board.read_output(alarm),
        Ok(true),
        "input 2 is still in alarm"
    );
    h.input(2, Contact::Closed);
    let seen = h.until(is_sms("Restored: Input 2")).await;
    assert!(
        seen.iter()
            .any(|a| matches!(a, Action::Output { output, on: false, .. } if *output == alarm.0))
    );
    assert_eq!(
        h.board.read_output(alarm),
        Ok(false),
        "ALARM off with the last restore"
    );

    // Input 4 blips (shorter than its 1 s delay), then input 3 stays
    // closed: only input 3 alarms, with its own text. Input 4's timer was
    // set first, so it would have fired first.
    h.input(4, Contact::Closed);
    h.input(4, Contact::Open);
    h.input(3, Contact::Closed);
    let seen = h.until(is_sms("Larm: Frysrummet är för varmt!")).await;
    assert_eq!(
        sms_to(&seen, "+4670111"),
        ["Larm: Frysrummet är för varmt!"]
    );
    assert_eq!(h.health("input-rules").state, PluginState::Running);
}

/// The standard SMS command set: a command with the right password is
/// answered; a wrong password gets no reply at all.
#[tokio::test(flavor = "multi_thread")]
async fn std_sms_commands() {
    let mut h = Harness::new(&UnitConfig::new().plugin(Plugin::sms_commands()));
    let sms = |text: &str| larm_host::plugins::bindings::larm::plugin::types::SmsMessage {
        sender: "+46701234567".into(),
        text: text.into(),
        sent_at: 0,
    };
    assert_eq!(
        h.manager.sms(sms("1111 OUTPUT 3 ON")).await,
        None,
        "wrong password: not claimed"
    );
    assert_eq!(
        h.manager.sms(sms("0000 OUTPUT 3 ON")).await.as_deref(),
        Some("sms-commands")
    );
    let seen = h.until(|a| matches!(a, Action::Sms { .. })).await;
    assert_eq!(sms_to(&seen, "+46701234567"), ["Output 3 ON"]);
    assert_eq!(h.board.read_output(OutputId(3)), Ok(true));
}

/// The standard server adapter: an alarm becomes versioned JSON on
/// `events/alarm`, carrying the report's id.
#[tokio::test(flavor = "multi_thread")]
async fn std_server_adapter() {
    use larm_host::plugins::bindings::larm::plugin::types::{Alarm, Report};
    let h = Harness::new(&UnitConfig::new().plugin(Plugin::server_adapter()));
    let report = Report::Alarm(Alarm {
        input: 3,
        name: "Frysrum".into(),
        text: "Larm!".into(),
        at: 1_700_000_000,
    });
    let messages = h.manager.adapters().encode("42", &report).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].topic, "events/alarm");
    let json: serde_json::Value = serde_json::from_slice(&messages[0].payload).unwrap();
    assert_eq!(
        (json["v"].as_u64(), json["id"].as_str()),
        (Some(1), Some("42"))
    );
    assert_eq!(json["text"], "Larm!");
}
