//! {{name}}: an SMS command set for a larm unit. `<password> PING` gets the
//! reply `PONG, signal N/5`; every other message is left to the command
//! sets after it in the unit config (the standard ones, there).
//!
//! A plugin is a WebAssembly component. The unit calls its exports (below:
//! `init`, `on_timer`, `on_sms`, `on_call`), one event at a time, and the
//! plugin acts through the host's interfaces (`sms`, `password`, `status`,
//! ...), each allowed only as far as its entry's `[plugins.grants]` says.

// The Rust side of the WIT files in wit/: the world `plugin` there includes
// larm's `sms-commands` world (wit/deps/larm-plugin/worlds.wit documents it).
wit_bindgen::generate!({
    world: "plugin",
    path: "wit",
    // larm's interfaces come from wit/deps: generate them here too.
    generate_all,
});

use exports::larm::plugin::{commands, lifecycle};
use larm::plugin::log::{Level, log};
use larm::plugin::types::{CallEvent, SmsMessage, TimerEvent};
use larm::plugin::{password, sms, status};

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

impl commands::Guest for Plugin {
    /// An SMS arrived. Returning true claims it: the command sets after
    /// this one do not see it.
    fn on_sms(message: SmsMessage) -> bool {
        let mut words = message.text.split_whitespace();
        let (Some(candidate), Some(command), None) = (words.next(), words.next(), words.next()) else {
            return false;
        };
        if !command.eq_ignore_ascii_case("PING") {
            return false;
        }
        // The host checks the password (and counts wrong ones per sender);
        // the plugin never reads it. A wrong one gets no reply, as the
        // manual's unit does.
        match password::verify(&message.sender, candidate) {
            Ok(true) => {}
            Ok(false) => return true,
            Err(e) => {
                log(Level::Warn, &format!("password check: {e:?}"));
                return true;
            }
        }
        let bars = status::device().signal_bars;
        if let Err(e) = sms::send(&message.sender, &format!("PONG, signal {bars}/5")) {
            log(Level::Warn, &format!("reply: {e:?}"));
        }
        true
    }

    /// A call rings. This plugin leaves calls to the others.
    fn on_call(_call: CallEvent) -> bool {
        false
    }
}

export!(Plugin);
