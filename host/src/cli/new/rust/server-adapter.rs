//! {{name}}: a server adapter for a larm unit. It publishes alarms and
//! restores as plain text on `alarms`, and takes `on N` / `off N` on `cmd`
//! to switch output N.
//!
//! A plugin is a WebAssembly component. The unit calls its exports (below:
//! `init`, `on_timer`, `on_connect`, `encode`, `on_downlink`), one event at
//! a time, and the plugin acts through the host's interfaces (`io`,
//! `settings`, ...), each allowed only as far as its entry's
//! `[plugins.grants]` says. The host owns the connection (MQTT, TLS, the
//! outbox): an adapter only turns reports into messages and back.

// The Rust side of the WIT files in wit/: the world `plugin` there includes
// larm's `server-adapter` world (wit/deps/larm-plugin/worlds.wit documents it).
wit_bindgen::generate!({
    world: "plugin",
    path: "wit",
    // larm's interfaces come from wit/deps: generate them here too.
    generate_all,
});

use exports::larm::plugin::adapter::{self, Message};
use exports::larm::plugin::lifecycle;
use larm::plugin::io;
use larm::plugin::types::{Report, TimerEvent};

struct Plugin;

impl lifecycle::Guest for Plugin {
    /// The entry's `[plugins.config]` table, as key/value pairs. This
    /// plugin takes none; an error keeps it from starting.
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        match config.first() {
            Some((key, _)) => Err(format!("unknown config key `{key}` (this plugin takes none)")),
            None => Ok(()),
        }
    }

    /// A timer set with `timers::set` fired. This plugin sets none.
    fn on_timer(_event: TimerEvent) {}
}

impl adapter::Guest for Plugin {
    /// Messages to publish at each connection: none here.
    fn on_connect(_base: String) -> Vec<Message> {
        Vec::new()
    }

    /// A report to send. `id` stays the same when the outbox sends it
    /// again, so a server can drop a copy. Reports this adapter leaves out
    /// (an empty list) are dropped.
    fn encode(id: String, report: Report) -> Vec<Message> {
        let text = match report {
            Report::Alarm(a) => format!("{id} ALARM input {} {}: {}", a.input, a.name, a.text),
            Report::Restore(a) => format!("{id} RESTORE input {} {}: {}", a.input, a.name, a.text),
            _ => return Vec::new(),
        };
        vec![Message {
            topic: "alarms".into(),
            payload: text.into_bytes(),
            retain: false,
        }]
    }

    /// A message from the server. An error is logged by the host.
    fn on_downlink(message: Message) -> Result<(), String> {
        let text = String::from_utf8(message.payload).map_err(|_| "not UTF-8 text".to_string())?;
        let (on, output) = match text.trim().split_once(' ') {
            Some(("on", n)) => (true, n),
            Some(("off", n)) => (false, n),
            _ => return Err(format!("expected `on N` or `off N`, not `{}`", text.trim())),
        };
        let output: u8 = output.trim().parse().map_err(|_| format!("`{output}` is not an output"))?;
        io::set_output(output, on).map_err(|e| format!("output {output}: {e:?}"))
    }
}

export!(Plugin);
