//! A test input rule that breaks once it is updated in, for the field
//! update tests:
//!
//! - with no config it traps in `init`, so it never starts;
//! - with `fragile = "input"` it starts, echoes each event as an SMS to
//!   `+100` (`fragile <input> <closed|open>`), and traps on input 1.
//!
//! guest-misbehave ignores the `fragile` key, so one plugin config fits
//! both: the component a unit runs, and this one offered as its update.

wit_bindgen::generate!({
    world: "input-rule",
    path: "../../../../wit",
});

use exports::larm::plugin::{lifecycle, rule};
use larm::plugin::sms;
use larm::plugin::types::{Contact, InputEvent, TimerEvent};

struct Fragile;

impl lifecycle::Guest for Fragile {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        if !config.iter().any(|(k, v)| k == "fragile" && v == "input") {
            panic!("trapping in init, as built");
        }
        Ok(())
    }

    fn on_timer(_: TimerEvent) {}
}

impl rule::Guest for Fragile {
    fn on_input(event: InputEvent) {
        if event.input == 1 {
            panic!("trapping on input 1, as built");
        }
        let contact = match event.contact {
            Contact::Closed => "closed",
            Contact::Open => "open",
        };
        let _ = sms::send("+100", &format!("fragile {} {contact}", event.input));
    }
}

export!(Fragile);
