//! A busy or absent modem never holds up the unit: commands are handled
//! while an alarm call rings, a flapping input is summed up instead of
//! queueing an SMS and a call per change, and what arrived while the modem
//! did not answer is read as soon as it does.

mod common;

use common::{Larmd, Plugin, UnitConfig};

const PHONE: &str = "+46701234567";

fn sms(larmd: &mut Larmd, text: &str) {
    larmd.send(&format!("sms {PHONE} {text}"));
}

fn reply(larmd: &mut Larmd, text: &str) -> Vec<String> {
    larmd.wait_for(&format!("modem: SMS sent to {PHONE}: {text:?}"))
}

fn unit(input_rules: &str, modem: &str) -> UnitConfig {
    UnitConfig::new()
        // Every edge typed at the console counts.
        .section("board", "debounce_ms = 0")
        .sim_modem("ec2x", modem)
        .plugin(Plugin::sms_commands())
        .plugin(Plugin::input_rules().config(input_rules))
}

#[test]
fn commands_work_while_an_alarm_call_rings() {
    let mut larmd = Larmd::start(&unit(
        &format!("\"alarm.call\" = \"{PHONE},+46709999999\"\n\"alarm.ring-s\" = 300"),
        "",
    ));
    larmd.wait_for("larmd running");
    larmd.send("close 1");
    larmd.wait_event(&[("event", "modem-dial"), ("to", PHONE)]);
    // The call rings for 5 minutes, and the second waits for it; the
    // command's effect and reply do not.
    sms(&mut larmd, "0000 OUTPUT 2 ON");
    let seen = reply(&mut larmd, "Output 2 ON");
    assert!(
        !seen
            .iter()
            .any(|l| l.contains("modem: hung up") || l.contains("dialling +46709999999")),
        "the command waited for a call to end: {seen:#?}"
    );
    common::assert_event(
        &seen,
        &[("event", "output"), ("output", "2"), ("on", "true")],
    );
    larmd.stop();
}

#[test]
fn a_flapping_input_is_summed_up_and_commands_still_get_through() {
    let mut larmd = Larmd::start(&unit(
        &format!(
            "\"alarm.sms\" = \"{PHONE}\"\n\"alarm.call\" = \"{PHONE}\"\n\"alarm.ring-s\" = 1\n\
             \"alarm.flap-changes\" = 4\n\"alarm.flap-hold-off-s\" = 10"
        ),
        "",
    ));
    larmd.wait_for("larmd running");
    // 41 changes: the input ends closed, in alarm.
    for i in 0..41 {
        larmd.send(if i % 2 == 0 { "close 1" } else { "open 1" });
    }
    sms(&mut larmd, "0000 STATUS");
    // The next hold-off sums up the rest, and then the input, still in
    // alarm, raises its alarm once more.
    let mut seen = larmd.wait_for("Input 1 changed 36 times in 10 s: alarms still held");
    seen.extend(reply(&mut larmd, "Alarm: Input 1"));
    seen.extend(larmd.wait_event(&[("event", "modem-dial"), ("to", PHONE)]));
    common::assert_logged(
        &seen,
        &format!(
            "modem: SMS sent to {PHONE}: \"Input 1 changed 5 times in 10 s: alarms held for 10 s\""
        ),
    );
    common::assert_logged(&seen, &format!("modem: SMS sent to {PHONE}: \"IN1-"));
    let count = |what: &str| seen.iter().filter(|l| l.contains(what)).count();
    // 2 alarms and 2 restores before the hold, 2 summaries, the alarm
    // after it: not 101 alarm SMS and 101 calls.
    assert_eq!(
        count(&format!("modem: SMS sent to {PHONE}: \"Alarm: Input 1\"")),
        3,
        "{seen:#?}"
    );
    assert_eq!(count("modem: dialling"), 3, "{seen:#?}");
    larmd.stop();
}

#[test]
fn sms_that_came_while_the_modem_was_silent_are_read_when_it_answers() {
    let mut larmd = Larmd::start(&unit("", "status_interval_s = 1"));
    larmd.wait_for("larmd running");
    larmd.send("modem silent on");
    larmd.wait_blinks("red", 4);
    // Stored, but its +CMTI is lost while the modem does not answer.
    sms(&mut larmd, "0000 OUTPUT 2 ON");
    larmd.send("modem silent off");
    let seen = reply(&mut larmd, "Output 2 ON");
    common::assert_event(
        &seen,
        &[("event", "output"), ("output", "2"), ("on", "true")],
    );
    larmd.stop();
}
