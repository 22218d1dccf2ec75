//! An input rule built against `larm:plugin@1.0.0`, a contract version this
//! host does not speak.

wit_bindgen::generate!({
    world: "input-rule",
    path: "wit",
});

use exports::larm::plugin::rule::Guest;
use larm::plugin::types::InputEvent;

struct Future;

impl Guest for Future {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        larm::plugin::log::log("hello from 1.0");
        Ok(())
    }

    fn on_input(_event: InputEvent) {}
}

export!(Future);
