//! Example input rule for integrators: output N follows input N.
//!
//! While input N is closed to COM, output N is on. Inputs without a matching
//! output are ignored. The optional config picks which inputs take part:
//!
//! ```toml
//! [plugins.config]
//! inputs = [1, 2, 3]   # default: every input that has an output of the same number
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2 -p follow-input`;
//! the component is `target/wasm32-wasip2/release/follow_input.wasm`.

use std::sync::Mutex;

wit_bindgen::generate!({
    world: "input-rule",
    path: "../../../wit",
});

use exports::larm::plugin::{lifecycle, rule};
use larm::plugin::io;
use larm::plugin::log::{Level, log};
use larm::plugin::types::{Contact, InputEvent, TimerEvent};

struct FollowInput;

/// The inputs this instance follows (empty: all). A plain static is enough:
/// the host calls `init` on every fresh instance, after a restart too.
static INPUTS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

impl lifecycle::Guest for FollowInput {
    /// The host hands the `[plugins.config]` table over as key/value pairs;
    /// a list such as `inputs = [1, 3]` arrives as `("inputs", "1,3")`.
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let mut inputs = Vec::new();
        for (key, value) in config {
            match key.as_str() {
                "inputs" => inputs = parse_inputs(&value)?,
                _ => {
                    return Err(format!(
                        "unknown config key `{key}` (this plugin takes `inputs`)"
                    ));
                }
            }
        }
        log(
            Level::Info,
            &format!("following inputs {inputs:?} (empty: all)"),
        );
        *INPUTS.lock().unwrap() = inputs;
        Ok(())
    }

    fn on_timer(_event: TimerEvent) {}
}

impl rule::Guest for FollowInput {
    fn on_input(event: InputEvent) {
        let follows = {
            let inputs = INPUTS.lock().unwrap();
            inputs.is_empty() || inputs.contains(&event.input)
        };
        if !follows || event.input > io::output_count() {
            return;
        }
        // The host logs every output change; only failures are worth a line here.
        if let Err(e) = io::set_output(event.input, event.contact == Contact::Closed) {
            log(Level::Warn, &format!("output {}: {e:?}", event.input));
        }
    }
}

/// Reads an input list such as `1, 3`.
fn parse_inputs(list: &str) -> Result<Vec<u8>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse()
                .map_err(|_| format!("`{n}` is not an input number"))
        })
        .collect()
}

export!(FollowInput);

#[cfg(test)]
mod tests {
    use super::parse_inputs;

    #[test]
    fn reads_the_input_list() {
        assert_eq!(parse_inputs("1, 3"), Ok(vec![1, 3]));
        assert_eq!(parse_inputs(""), Ok(vec![]));
        assert!(parse_inputs("x").is_err());
    }
}
