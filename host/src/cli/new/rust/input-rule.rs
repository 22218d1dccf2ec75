//! {{name}}: an input rule for a larm unit. Output N follows input N: on
//! while the input is closed to COM, off when it opens.
//!
//! A plugin is a WebAssembly component. The unit calls its exports (below:
//! `init`, `on_timer`, `on_input`), one event at a time, and the plugin acts
//! through the host's interfaces (`io`, `sms`, `kv`, ...), each allowed only
//! as far as its entry's `[plugins.grants]` in the unit config says.

use std::sync::Mutex;

// The Rust side of the WIT files in wit/: the world `plugin` there includes
// larm's `input-rule` world (wit/deps/larm-plugin/worlds.wit documents it).
wit_bindgen::generate!({
    world: "plugin",
    path: "wit",
    // larm's interfaces come from wit/deps: generate them here too.
    generate_all,
});

use exports::larm::plugin::{lifecycle, rule};
use larm::plugin::io;
use larm::plugin::log::{Level, log};
use larm::plugin::types::{Contact, InputEvent, TimerEvent};

struct Plugin;

/// The inputs that take part (empty: all). A static is enough: after a
/// fault or an update the unit makes a fresh instance and calls `init`
/// again. What must outlive an instance goes into `kv`.
static INPUTS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

impl lifecycle::Guest for Plugin {
    /// The entry's `[plugins.config]` table, as key/value pairs: a list
    /// such as `inputs = [1, 3]` arrives as ("inputs", "1,3"). An error
    /// keeps the plugin from starting; `larmd check` shows it.
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let mut inputs = Vec::new();
        for (key, value) in config {
            match key.as_str() {
                "inputs" => {
                    for n in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        inputs.push(n.parse().map_err(|_| format!("inputs: `{n}` is not an input number"))?);
                    }
                }
                other => return Err(format!("unknown config key `{other}` (this plugin takes `inputs`)")),
            }
        }
        log(Level::Info, &format!("following inputs {inputs:?} (empty: all)"));
        *INPUTS.lock().unwrap() = inputs;
        Ok(())
    }

    /// A timer set with `timers::set` fired. This rule sets none.
    fn on_timer(_event: TimerEvent) {}
}

impl rule::Guest for Plugin {
    /// An input changed (after debouncing).
    fn on_input(event: InputEvent) {
        let follows = {
            let inputs = INPUTS.lock().unwrap();
            inputs.is_empty() || inputs.contains(&event.input)
        };
        if !follows || event.input > io::output_count() {
            return;
        }
        // The unit logs every output change; a refusal (not granted, held
        // by a higher owner) is worth a line of our own.
        if let Err(e) = io::set_output(event.input, event.contact == Contact::Closed) {
            log(Level::Warn, &format!("output {}: {e:?}", event.input));
        }
    }
}

export!(Plugin);
