//! The standard SMS command set (world `sms-commands`): docs/unit.md's
//! commands, `[password] [command] [parameter 1] [parameter 2]`.
//!
//! A message whose password is wrong is not claimed and gets no reply, as
//! docs/unit.md says; the host throttles senders that keep guessing. Config:
//!
//! ```toml
//! [plugins.config]
//! language = "sv"   # "en" (default) or "sv"
//! ```
//!
//! Grants it needs: `password = true`, `sms = "any"` (replies go to the
//! sender), `outputs = "any"`, `server = true`, `settings = "write"`,
//! `system = ["restart-modem", "restart-unit", "factory-reset"]`.

mod command;

use std::sync::Mutex;

wit_bindgen::generate!({
    world: "sms-commands",
    path: "../../wit",
});

use command::{Command, Lang, Reply, Status};
use exports::larm::plugin::{commands, lifecycle};
use larm::plugin::log::{Level, log};
use larm::plugin::types::{CallEvent, Contact, NetworkType, SmsMessage, TimerEvent};
use larm::plugin::{io, password, server, settings, sms, status, system};

struct StdSmsCommands;

/// Reply language of this instance (from `init`).
static LANG: Mutex<Lang> = Mutex::new(Lang::En);

impl lifecycle::Guest for StdSmsCommands {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let mut lang = Lang::En;
        for (key, value) in config {
            match key.as_str() {
                "language" => {
                    lang = Lang::parse(&value)
                        .ok_or_else(|| format!("language `{value}`: use \"en\" or \"sv\""))?;
                }
                _ => {
                    return Err(format!(
                        "unknown config key `{key}` (this plugin takes `language`)"
                    ));
                }
            }
        }
        *LANG.lock().unwrap() = lang;
        Ok(())
    }

    fn on_timer(_event: TimerEvent) {}
}

impl commands::Guest for StdSmsCommands {
    fn on_sms(message: SmsMessage) -> bool {
        let Some((pass, words)) = command::split(&message.text) else {
            return false;
        };
        match password::verify(&message.sender, pass) {
            Ok(true) => {}
            // Wrong password (or a throttled sender): no reply at all.
            Ok(false) => return false,
            Err(e) => {
                log(Level::Error, &format!("cannot verify passwords: {e:?}"));
                return false;
            }
        }
        let lang = *LANG.lock().unwrap();
        let reply = match command::parse(&words) {
            Ok(cmd) => run(lang, cmd),
            Err(problem) => Some(command::word(lang, Reply::Problem(&problem))),
        };
        if let Some(text) = reply
            && let Err(e) = sms::send(&message.sender, &text)
        {
            log(Level::Error, &format!("reply to {}: {e:?}", message.sender));
        }
        true
    }

    fn on_call(_call: CallEvent) -> bool {
        false
    }
}

/// Carries out a command; the reply to send, if any.
fn run(lang: Lang, cmd: Command) -> Option<String> {
    let word = |reply| Some(command::word(lang, reply));
    let failed = |e: larm::plugin::types::Error| {
        let why = match e {
            larm::plugin::types::Error::NotGranted(w)
            | larm::plugin::types::Error::Invalid(w)
            | larm::plugin::types::Error::Unavailable(w) => w,
        };
        log(Level::Warn, &why);
        Some(command::word(lang, Reply::Failed(&why)))
    };
    match cmd {
        Command::Status => Some(command::status(lang, &status_now())),
        Command::ChangePassword(new) => match password::change(&new) {
            Ok(()) => word(Reply::PasswordChanged),
            Err(e) => failed(e),
        },
        Command::FactoryReset => match system::factory_reset() {
            Ok(()) => word(Reply::FactoryReset),
            Err(e) => failed(e),
        },
        Command::Connect => match server::request_connection() {
            Ok(()) => word(Reply::Connecting),
            Err(e) => failed(e),
        },
        Command::Interval(minutes) => {
            let stored = settings::set(larm_rules::settings::INTERVAL_KEY, &minutes.to_string());
            match stored.and_then(|()| server::set_interval(minutes)) {
                Ok(()) => word(Reply::Interval(minutes)),
                Err(e) => failed(e),
            }
        }
        Command::Output { output, on, reply } => {
            let count = io::output_count();
            if output == 0 || output > count {
                return word(Reply::NoOutput(output, count));
            }
            match io::set_output(output, on) {
                Ok(()) if reply => word(Reply::Output(output, on)),
                Ok(()) => None,
                Err(e) => failed(e),
            }
        }
        Command::Restart { modem_only } => {
            let target = if modem_only {
                system::RestartTarget::Modem
            } else {
                system::RestartTarget::Unit
            };
            match system::restart(target) {
                Ok(()) => word(Reply::Restarting(modem_only)),
                Err(e) => failed(e),
            }
        }
    }
}

fn status_now() -> Status {
    let device = status::device();
    Status {
        inputs: (1..=io::input_count())
            .map(|i| matches!(io::read_input(i), Ok(Contact::Closed)))
            .collect(),
        outputs: (1..=io::output_count())
            .map(|o| matches!(io::read_output(o), Ok(true)))
            .collect(),
        alarm: matches!(io::read_output(io::alarm_output()), Ok(true)),
        bars: device.signal_bars,
        network: match device.network {
            NetworkType::Lte => Some("LTE"),
            NetworkType::Gsm => Some("GSM"),
            NetworkType::Umts => Some("3G"),
            NetworkType::None => None,
        },
        factory_password: password::is_factory_default().unwrap_or(false),
        queued: (device.outbox_depth > 0).then(|| {
            (
                device.outbox_depth,
                device.outbox_oldest_s.unwrap_or(0) / 60,
            )
        }),
        // Rounded up: a lockout with seconds left is not over.
        lockout_min: device.password_lockout_s.map(|s| s.div_ceil(60)),
        field: status::plugins()
            .into_iter()
            .filter_map(|p| Some((p.name, p.version?, p.on_probation)))
            .collect(),
    }
}

export!(StdSmsCommands);
