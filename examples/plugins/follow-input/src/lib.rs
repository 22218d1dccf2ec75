//! Example input rule for integrators: output N follows input N.
//!
//! While input N is closed to COM, output N is on. Inputs without a matching
//! output are ignored. The optional config picks which inputs take part:
//!
//! ```toml
//! [plugins.config]
//! inputs = "1,2,3"   # default: every input that has an output of the same number
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2 -p follow-input`;
//! the component is `target/wasm32-wasip2/release/follow_input.wasm`.

use std::sync::Mutex;

wit_bindgen::generate!({
    world: "input-rule",
    path: "../../../wit",
});

use exports::larm::plugin::rule::Guest;
use larm::plugin::io;
use larm::plugin::log::{Level, log};
use larm::plugin::types::{Contact, InputEvent, TimerEvent};

struct FollowInput;

/// The inputs this instance follows (empty: all). A plain static is enough:
/// the host calls `init` on every fresh instance, after a restart too.
static INPUTS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

impl Guest for FollowInput {
    fn init(config: String) -> Result<(), String> {
        let inputs = parse_inputs(&config)?;
        log(
            Level::Info,
            &format!("following inputs {inputs:?} (empty: all)"),
        );
        *INPUTS.lock().unwrap() = inputs;
        Ok(())
    }

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

    fn on_timer(_event: TimerEvent) {}
}

/// Reads `inputs = "1,2"` from the plugin's TOML config. A full TOML parser
/// is not worth its size here: one optional key is all this plugin takes.
fn parse_inputs(config: &str) -> Result<Vec<u8>, String> {
    let mut inputs = Vec::new();
    for line in config.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("cannot read config line `{line}`"))?;
        if key.trim() != "inputs" {
            return Err(format!("unknown config key `{}`", key.trim()));
        }
        for n in value.trim().trim_matches('"').split(',').map(str::trim) {
            if n.is_empty() {
                continue;
            }
            inputs.push(
                n.parse()
                    .map_err(|_| format!("`{n}` is not an input number"))?,
            );
        }
    }
    Ok(inputs)
}

export!(FollowInput);

#[cfg(test)]
mod tests {
    use super::parse_inputs;

    #[test]
    fn reads_the_input_list() {
        assert_eq!(parse_inputs("inputs = \"1, 3\"\n"), Ok(vec![1, 3]));
        assert_eq!(parse_inputs(""), Ok(vec![]));
        assert!(parse_inputs("outputs = \"1\"").is_err());
        assert!(parse_inputs("inputs = \"x\"").is_err());
    }
}
