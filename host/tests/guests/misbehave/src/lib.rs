//! A test input rule whose misbehaviour is chosen by its config:
//!
//! ```toml
//! mode = "echo"            # echo | trap-init | trap-on-input | loop | oom | ungranted | timer
//! label = "v1"             # prefix of the echo SMS
//! ```
//!
//! Every event the plugin survives is echoed as an SMS to `+100`
//! (`<label> <input> <closed|open>`), so a test sees exactly which events
//! reached it, and printed on stdout (which the host logs). In the faulty
//! modes, an event on input 1 triggers the fault; in `timer` mode it sets a
//! 20 ms timer tagged `t<at-ms>`, echoed as `<label> timer <tag>` when it fires.

wit_bindgen::generate!({
    world: "input-rule",
    path: "../../../../wit",
});

use exports::larm::plugin::{lifecycle, rule};
use larm::plugin::types::{Contact, InputEvent, TimerEvent};
use larm::plugin::{io, kv, sms, system, timers};

struct Misbehave;

fn setting(config: &[(String, String)], key: &str) -> Option<String> {
    config
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn stored(key: &str) -> String {
    String::from_utf8(kv::get(key).ok().flatten().unwrap_or_default()).unwrap_or_default()
}

impl lifecycle::Guest for Misbehave {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let mode = setting(&config, "mode").unwrap_or_else(|| "echo".into());
        if mode == "trap-init" {
            panic!("trapping in init, as configured");
        }
        let label = setting(&config, "label").unwrap_or_default();
        kv::set("mode", mode.as_bytes()).map_err(|e| format!("{e:?}"))?;
        kv::set("label", label.as_bytes()).map_err(|e| format!("{e:?}"))?;
        Ok(())
    }

    fn on_timer(event: TimerEvent) {
        echo(&format!("{} timer {}", stored("label"), event.tag));
    }
}

impl rule::Guest for Misbehave {
    fn on_input(event: InputEvent) {
        let mode = stored("mode");
        let mut note = String::new();
        if event.input == 1 {
            match mode.as_str() {
                "trap-on-input" => panic!("trapping on input 1, as configured"),
                "loop" => loop {
                    std::hint::black_box(io::input_count());
                },
                "oom" => {
                    let mut hog: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hog.push(vec![1; 1 << 20]);
                        std::hint::black_box(&hog);
                    }
                }
                "ungranted" => {
                    let output = io::set_output(2, true);
                    let sms = sms::send("+999", "not allowed");
                    let restart = system::restart(system::RestartTarget::Unit);
                    note = format!(" {output:?} {sms:?} {restart:?}");
                }
                "timer" => {
                    let tag = format!("t{}", event.at_ms);
                    timers::set(20, &tag).expect("timers are available");
                }
                _ => {}
            }
        }
        let contact = match event.contact {
            Contact::Closed => "closed",
            Contact::Open => "open",
        };
        echo(&format!(
            "{} {} {contact}{note}",
            stored("label"),
            event.input
        ));
    }
}

fn echo(text: &str) {
    println!("echo: {text}");
    sms::send("+100", text).expect("+100 is granted in the tests");
}

export!(Misbehave);
