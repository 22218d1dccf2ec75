//! The standard unit end to end: `larmd run` with its built-in config as a
//! separate process, the modem simulator on a pseudo-terminal, driven
//! through the console as an installer would with a phone.

mod common;

use common::{Larmd, Plugin, UnitConfig, assert_event};

const PHONE: &str = "+46701234567";

/// Sends the unit an SMS from `PHONE`.
fn sms(larmd: &mut Larmd, text: &str) {
    larmd.send(&format!("sms {PHONE} {text}"));
}

/// Waits for the unit's reply to `PHONE`; returns the lines logged meanwhile.
fn reply(larmd: &mut Larmd, text: &str) -> Vec<String> {
    larmd.wait_for(&format!("modem: SMS sent to {PHONE}: {text:?}"))
}

#[test]
fn commissioning_as_docs_unit_describes() {
    let mut larmd = Larmd::start_default(tempfile::tempdir().unwrap());
    larmd.wait_for("larmd running");

    // "When commissioning for the first time, always start with STATUS."
    sms(&mut larmd, "0000 STATUS");
    reply(
        &mut larmd,
        "IN1-12: 010000000000 OUT1-9: 000000000 ALARM: off Signal: 4/5 LTE. Change the factory password!",
    );

    // The console's `status` says the same, and more, in words.
    larmd.send("status");
    larmd.wait_for("inputs 1-12 010000000000 (1 = closed), outputs 1-9 000000000");
    larmd.wait_for("modem: SIM ready, network lte, signal 4/5, Telia");
    larmd.wait_for("server: not connected; outbox:");

    sms(&mut larmd, "0000 CHGPASS 1234 1234");
    reply(&mut larmd, "Password changed");

    sms(&mut larmd, "1234 OUTPUT 3 ON");
    let seen = reply(&mut larmd, "Output 3 ON");
    assert_event(
        &seen,
        &[
            ("event", "output"),
            ("output", "3"),
            ("on", "true"),
            ("by", "sms-commands"),
        ],
    );

    // SETOUTPUT switches without a reply: the next reply is STATUS's.
    sms(&mut larmd, "1234 SETOUTPUT 3 OFF");
    larmd.wait_event(&[("event", "output"), ("output", "3"), ("on", "false")]);
    sms(&mut larmd, "1234 sTaTuS");
    let seen = reply(
        &mut larmd,
        "IN1-12: 010000000000 OUT1-9: 000000000 ALARM: off Signal: 4/5 LTE.",
    );
    assert_eq!(
        seen.iter()
            .filter(|l| common::has_fields(l, &[("event", "modem-sms")]))
            .count(),
        1,
        "no reply to SETOUTPUT: {seen:#?}"
    );

    // The factory password no longer works, and gets no reply.
    sms(&mut larmd, "0000 STATUS");
    larmd.wait_for("no command set took the SMS");

    // A bad parameter with the right password gets a reply saying why.
    sms(&mut larmd, "1234 OUTPUT 3 MAYBE");
    reply(
        &mut larmd,
        "Wrong parameters. Use: OUTPUT n ON/OFF [seconds]",
    );
    sms(&mut larmd, "1234 FLY");
    larmd.wait_for("modem: SMS sent to +46701234567: \"Unknown command FLY.");

    // RESTART GSM restarts the modem.
    sms(&mut larmd, "1234 RESTART GSM");
    reply(&mut larmd, "Restarting the modem");
    larmd.wait_for("modem: restarted");

    // The password survives a restart of larmd.
    let dir = larmd.stop();
    let mut larmd = Larmd::start_default(dir);
    larmd.wait_for("larmd running");
    sms(&mut larmd, "1234 STATUS");
    reply(
        &mut larmd,
        "IN1-12: 010000000000 OUT1-9: 000000000 ALARM: off Signal: 4/5 LTE.",
    );
    larmd.stop();
}

#[test]
fn repeated_wrong_passwords_get_the_sender_ignored() {
    let mut larmd = Larmd::start_default(tempfile::tempdir().unwrap());
    larmd.wait_for("larmd running");
    for guess in ["1111", "2222", "3333", "4444", "5555"] {
        sms(&mut larmd, &format!("{guess} STATUS"));
        larmd.wait_for("wrong password");
    }
    larmd.wait_for("too many wrong passwords");
    // Even the right password is ignored now, without a reply.
    sms(&mut larmd, "0000 STATUS");
    let seen = larmd.wait_for("ignoring throttled sender");
    assert!(!seen.iter().any(|l| l.contains("modem: SMS sent")));
    // Another phone is not affected.
    larmd.send("sms +46709999999 0000 STATUS");
    larmd.wait_for("modem: SMS sent to +46709999999");
    larmd.stop();
}

#[test]
fn an_input_alarm_sends_sms_rings_and_sets_alarm_until_restored() {
    let mut larmd = Larmd::start_default(tempfile::tempdir().unwrap());
    larmd.wait_for("larmd running");

    larmd.send("close 1");
    let mut seen = reply(&mut larmd, "Alarm: Input 1");
    seen.extend(larmd.wait_event(&[("event", "modem-dial"), ("to", "+46701234567")]));
    assert_event(
        &seen,
        &[
            ("event", "output"),
            ("output", "5"),
            ("on", "true"),
            ("by", "input-rules"),
        ],
    );
    // Lit with the alarm SMS, and still lit while the call rings.
    assert_event(
        &seen,
        &[("event", "led"), ("led", "yellow"), ("mode", "steady")],
    );

    larmd.send("open 1");
    // The restore SMS goes out while the alarm call still rings; ALARM goes off at once.
    let seen = reply(&mut larmd, "Restored: Input 1");
    assert_event(
        &seen,
        &[("event", "output"), ("output", "5"), ("on", "false")],
    );
    assert_event(
        &seen,
        &[
            ("event", "report"),
            ("kind", "restore"),
            ("by", "input-rules"),
        ],
    );

    // Input 3 has a 2 s delay: a blip does nothing, a lasting alarm fires,
    // with its Swedish text intact.
    larmd.send("close 3");
    let mut seen = larmd.wait_event(&[("event", "input"), ("input", "3"), ("closed", "true")]);
    larmd.send("open 3");
    seen.extend(larmd.wait_event(&[("event", "input"), ("input", "3"), ("closed", "false")]));
    larmd.send("close 3");
    seen.extend(reply(&mut larmd, "Larm: Frysrummet är för varmt!"));
    let alarms = seen
        .iter()
        .filter(|l| l.contains("(by input-rules): Larm: Frysrummet"))
        .count();
    assert_eq!(alarms, 1, "the blip raised no alarm: {seen:#?}");
    larmd.send("open 3");
    reply(&mut larmd, "Frysrummet är OK igen");

    // Input 2 is an NC loop, closed at start: opening it is the alarm.
    larmd.send("open 2");
    reply(&mut larmd, "Alarm: Dörr");
    larmd.send("close 2");
    reply(&mut larmd, "Restored: Dörr");
    larmd.stop();
}

/// The wires stay as they were across a restart of larmd (as a real
/// board's do): an input still in alarm then is no new alarm, and the ALARM
/// output, off at any start, is on again.
#[test]
fn an_alarm_still_on_at_a_restart_keeps_the_alarm_output_on() {
    let mut larmd = Larmd::start_default(tempfile::tempdir().unwrap());
    larmd.wait_for("larmd running");
    larmd.send("close 1");
    let seen = reply(&mut larmd, "Alarm: Input 1");
    assert_event(
        &seen,
        &[("event", "output"), ("output", "5"), ("on", "true")],
    );

    let mut larmd = Larmd::start_default(larmd.stop());
    let seen = larmd.wait_event(&[
        ("event", "output"),
        ("output", "5"),
        ("on", "true"),
        ("by", "input-rules"),
    ]);
    assert!(
        !seen.iter().any(|l| l.contains("alarm on input 1")),
        "no second alarm: {seen:#?}"
    );
    larmd.send("open 1");
    let seen = reply(&mut larmd, "Restored: Input 1");
    assert_event(
        &seen,
        &[("event", "output"), ("output", "5"), ("on", "false")],
    );
    larmd.stop();
}

#[test]
fn restart_all_restarts_larmd_after_replying() {
    let mut larmd = Larmd::start_default(tempfile::tempdir().unwrap());
    larmd.wait_for("larmd running");
    sms(&mut larmd, "0000 CHGPASS 4321 4321");
    reply(&mut larmd, "Password changed");
    sms(&mut larmd, "4321 RESTART ALL");
    reply(&mut larmd, "Restarting the unit");
    larmd.wait_for("restarting larmd");
    larmd.wait_for("larmd running");
    sms(&mut larmd, "4321 STATUS");
    reply(
        &mut larmd,
        "IN1-12: 010000000000 OUT1-9: 000000000 ALARM: off Signal: 4/5 LTE.",
    );
    larmd.stop();
}

/// The modem's registration and SIM news (`+CREG`, `+CPIN`) reach the LEDs
/// at once, not at the next status poll (an hour away here).
#[test]
fn registration_and_sim_news_show_at_once() {
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .sim_modem("ec2x", "status_interval_s = 3600")
            .plugin(Plugin::sms_commands()),
    );
    let red = |mode: &'static str, blinks: &'static str| {
        [
            ("event", "led"),
            ("led", "red"),
            ("mode", mode),
            ("blinks", blinks),
        ]
    };
    larmd.wait_blinks("green", 1);
    larmd.send("modem network none");
    larmd.wait_event(&red("blink", "3"));
    larmd.send("modem network lte");
    larmd.wait_event(&red("off", "0"));
    larmd.send("modem sim pin");
    larmd.wait_event(&red("blink", "2"));
    larmd.send("modem sim ready");
    larmd.wait_event(&red("off", "0"));
    larmd.stop();
}

#[test]
fn the_status_leds_show_the_led_table() {
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .sim_modem("ec2x", "status_interval_s = 1")
            .section("board.extended", "inputs = 2\noutputs = 2")
            .plugin(Plugin::sms_commands()),
    );
    larmd.wait_blinks("blue", 4);
    larmd.wait_blinks("green", 1);

    larmd.send("modem signal 5");
    larmd.wait_blinks("red", 1);
    larmd.send("modem signal 20");
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "off")]);

    larmd.send("modem network gsm");
    larmd.wait_blinks("green", 2);
    larmd.send("modem network none");
    larmd.wait_blinks("red", 3);
    larmd.send("modem network lte");
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "off")]);

    larmd.send("modem sim pin");
    larmd.wait_blinks("red", 2);
    larmd.send("modem sim ready");
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "off")]);

    // A modem that stops answering: code 4 until it answers again.
    larmd.send("modem silent on");
    larmd.wait_blinks("red", 4);
    larmd.send("modem silent off");
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "off")]);

    larmd.send("card out");
    larmd.wait_blinks("red", 5);
    larmd.send("card in");
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "off")]);

    sms(&mut larmd, "0000 STATUS");
    larmd.wait_event(&[("event", "led"), ("led", "green"), ("mode", "steady")]);
    larmd.wait_event(&[("event", "led"), ("led", "yellow"), ("mode", "steady")]);
    larmd.wait_blinks("green", 1);
    larmd.stop();
}

#[test]
fn allow_list_and_throttle_come_from_the_config() {
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .sim_modem("sim800", "")
            .section(
                "sms",
                "password_failures = 2\nlockout_s = 3600\nallow_from = [\"+46 70-123 45 67\"]",
            )
            .plugin(Plugin::sms_commands().config("language = \"sv\"")),
    );
    larmd.wait_for("larmd running");
    larmd.send("sms +46709999999 0000 STATUS");
    larmd.wait_for("SMS dropped: the sender is not in [sms] allow_from");
    sms(&mut larmd, "0000 STATUS");
    reply(
        &mut larmd,
        "IN1-8: 00000000 UT1-5: 00000 LARM: av Signal: 4/5 GSM. Byt fabrikslösenordet!",
    );
    sms(&mut larmd, "1111 STATUS");
    sms(&mut larmd, "2222 STATUS");
    larmd.wait_for("too many wrong passwords");
    sms(&mut larmd, "0000 STATUS");
    larmd.wait_for("ignoring throttled sender");
    larmd.stop();
}

/// An emptied `state.redb` does not make a new unit with the factory
/// password: the state comes back from its backup, loudly, and the red LED
/// says the configuration was corrupt.
#[test]
fn an_emptied_state_comes_back_from_its_backup_and_shows_red() {
    let config = UnitConfig::new()
        .sim_modem("ec2x", "")
        .plugin(Plugin::sms_commands());
    let mut larmd = Larmd::start(&config);
    larmd.wait_for("larmd running");
    sms(&mut larmd, "0000 CHGPASS 1234 1234");
    reply(&mut larmd, "Password changed");
    let dir = larmd.stop();
    std::fs::write(dir.path().join("data/state.redb"), b"").unwrap();
    let mut larmd = Larmd::restart(dir);
    larmd.wait_for("the unit's state was damaged: state.redb was empty; restored from");
    larmd.wait_event(&[("event", "led"), ("led", "red"), ("mode", "steady")]);
    sms(&mut larmd, "1234 STATUS");
    reply(
        &mut larmd,
        "IN1-8: 00000000 OUT1-5: 00000 ALARM: off Signal: 4/5 LTE.",
    );
    larmd.stop();
}

/// Senders can be spoofed: guesses from ever new numbers spend the unit's
/// budget, after which only trusted numbers are heard.
#[test]
fn guesses_from_rotating_senders_lock_the_unit_but_not_trusted_numbers() {
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .sim_modem("ec2x", "")
            .section(
                "sms",
                "unit_password_failures = 6
trusted = [\"+46709999999\"]",
            )
            .plugin(Plugin::sms_commands()),
    );
    larmd.wait_for("larmd running");
    for i in 0..6 {
        larmd.send(&format!("sms +4673000000{i} 1{i}{i}{i} STATUS"));
        larmd.wait_for("wrong password");
    }
    larmd.wait_for("every password command is ignored");
    // The right password from a number not seen before: ignored, no reply.
    sms(&mut larmd, "0000 STATUS");
    let seen = larmd.wait_for("unit-wide password lockout");
    assert!(!seen.iter().any(|l| l.contains("modem: SMS sent")));
    // A trusted number is heard, and told of the lockout.
    larmd.send("sms +46709999999 0000 STATUS");
    let seen = larmd.wait_for("modem: SMS sent to +46709999999");
    common::assert_logged(&seen, "Lockout: 10 min.");
    larmd.send("status");
    larmd.wait_for("passwords: unit-wide lockout, ");
    larmd.stop();
}

#[test]
fn a_plugin_that_keeps_failing_shows_an_internal_error() {
    // Red, 10 blinks: docs/unit.md asks the installer to restart the unit.
    let mut larmd = Larmd::start(
        &UnitConfig::new()
            .plugin(Plugin::guest("broken", "guest-misbehave", "").config("mode = \"trap-init\"")),
    );
    larmd.wait_for("quarantined after 3 faults");
    larmd.wait_blinks("red", 10);
    larmd.stop();
}
