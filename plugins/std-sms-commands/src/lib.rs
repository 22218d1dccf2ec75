//! The standard SMS command set (world `sms-commands`): docs/unit.md's
//! commands, `[password] [command] [parameter 1] [parameter 2]`.
//!
//! A message whose password is wrong is not claimed and gets no reply, as
//! docs/unit.md says; the host throttles senders that keep guessing. Config:
//!
//! ```toml
//! [plugins.config]
//! language = "sv"   # "en" (default) or "sv"
//!
//! # Call to open (a gate opener): a call from a number on the list
//! # (ADDNUM / DELNUM / NUMS, or the settings `gate.caller.NUMBER`) switches
//! # the output and is rejected unanswered, so it costs the caller nothing.
//! [plugins.config.gate]
//! output = 3          # the output it switches
//! pulse-s = 1         # on for this long (default 1 s); or:
//! # toggle = true     # switch it over instead
//! confirm = true      # and send the caller "Opened"
//! ```
//!
//! Grants it needs: `password = true`, `sms = "any"` (replies go to the
//! sender), `outputs = "any"`, `server = true`, `settings = "write"`,
//! `system = ["restart-modem", "restart-unit", "factory-reset"]`, and for
//! call to open `calls = "any"` (to reject the call).

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
use larm::plugin::{clock, io, password, server, settings, sms, status, system, voice};
use larm_rules::PhoneNumber;
use larm_rules::settings::{CALLER_PREFIX, caller_key};

struct StdSmsCommands;

/// Reply language of this instance (from `init`).
static LANG: Mutex<Lang> = Mutex::new(Lang::En);

/// Call to open, when configured.
static GATE: Mutex<Option<Gate>> = Mutex::new(None);

/// What a call from a listed number does.
#[derive(Debug, Clone, Copy)]
struct Gate {
    output: u8,
    /// On for this long (ms); none: toggle.
    pulse_ms: Option<u32>,
    confirm: bool,
}

impl lifecycle::Guest for StdSmsCommands {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let mut lang = Lang::En;
        let (mut output, mut pulse_ms, mut toggle, mut confirm) = (None, None, false, false);
        let flag = |key: &str, value: &str| match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{key} = {value:?}: use true or false")),
        };
        for (key, value) in config {
            match key.as_str() {
                "language" => {
                    lang = Lang::parse(&value)
                        .ok_or_else(|| format!("language `{value}`: use \"en\" or \"sv\""))?;
                }
                "gate.output" => {
                    output = Some(
                        value
                            .parse::<u8>()
                            .ok()
                            .filter(|n| (1..=io::output_count()).contains(n))
                            .ok_or_else(|| {
                                format!(
                                    "gate.output = {value}: the unit has outputs 1 to {}",
                                    io::output_count()
                                )
                            })?,
                    );
                }
                "gate.pulse-s" => {
                    pulse_ms = Some(
                        larm_rules::outputs::parse_seconds(&value)
                            .map_err(|e| format!("gate.pulse-s: {e}"))?,
                    );
                }
                "gate.toggle" => toggle = flag(&key, &value)?,
                "gate.confirm" => confirm = flag(&key, &value)?,
                _ => {
                    return Err(format!(
                        "unknown config key `{key}` (this plugin takes `language` and `gate.output`, `gate.pulse-s`, `gate.toggle`, `gate.confirm`)"
                    ));
                }
            }
        }
        let gate = match output {
            Some(_) if toggle && pulse_ms.is_some() => {
                return Err("gate: give `pulse-s` or `toggle = true`, not both".into());
            }
            Some(output) => Some(Gate {
                output,
                // A second by default.
                pulse_ms: (!toggle).then_some(pulse_ms.unwrap_or(1000)),
                confirm,
            }),
            None if toggle || confirm || pulse_ms.is_some() => {
                return Err("gate: set `gate.output`, the output a call opens".into());
            }
            None => None,
        };
        *LANG.lock().unwrap() = lang;
        *GATE.lock().unwrap() = gate;
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

    fn on_call(call: CallEvent) -> bool {
        let Some(gate) = *GATE.lock().unwrap() else {
            return false;
        };
        let Some(caller) = call
            .caller
            .as_deref()
            .and_then(|c| PhoneNumber::parse(c).ok())
        else {
            log(Level::Info, "a call without a number: ignored");
            return false;
        };
        match settings::get(&caller_key(&caller)) {
            Ok(Some(_)) if repeated_ring(&caller) => {
                // The modem tells the caller's number at every ring: the
                // gate opens once per call.
                let _ = voice::reject_call();
                return true;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                log(
                    Level::Info,
                    &format!("call from {caller}: not on the gate list, ignored"),
                );
                return false;
            }
            Err(e) => {
                log(Level::Error, &format!("reading the gate's list: {e:?}"));
                return false;
            }
        }
        // Rejected first: the caller stops paying at once.
        if let Err(e) = voice::reject_call() {
            log(
                Level::Warn,
                &format!("rejecting the call from {caller}: {e:?}"),
            );
        }
        let opened = match gate.pulse_ms {
            Some(ms) => io::pulse_output(gate.output, ms).map(|()| true),
            None => io::read_output(gate.output)
                .and_then(|on| io::set_output(gate.output, !on).map(|()| !on)),
        };
        match opened {
            Ok(open) => {
                log(
                    Level::Info,
                    &format!("call from {caller}: output {} switched", gate.output),
                );
                if gate.confirm {
                    let lang = *LANG.lock().unwrap();
                    let reply = if open { Reply::Opened } else { Reply::Closed };
                    if let Err(e) = sms::send(caller.as_str(), &command::word(lang, reply)) {
                        log(Level::Warn, &format!("confirming to {caller}: {e:?}"));
                    }
                }
            }
            Err(e) => log(
                Level::Warn,
                &format!("call from {caller}: output {}: {e:?}", gate.output),
            ),
        }
        true
    }
}

/// The last caller that opened the gate, and when (monotonic ms).
static LAST_OPENED: Mutex<Option<(PhoneNumber, u64)>> = Mutex::new(None);

/// Rings of one call come within this of each other.
const ONE_CALL_MS: u64 = 10_000;

/// Whether this ring is one more of a call that opened the gate already;
/// else it is remembered as the one that does.
fn repeated_ring(caller: &PhoneNumber) -> bool {
    let now = clock::monotonic_now();
    let mut last = LAST_OPENED.lock().unwrap();
    let repeated = last
        .as_ref()
        .is_some_and(|(who, at)| who == caller && now.saturating_sub(*at) < ONE_CALL_MS);
    if !repeated {
        *last = Some((caller.clone(), now));
    }
    repeated
}

/// Carries out a command; the reply to send, if any.
fn run(lang: Lang, cmd: Command) -> Option<String> {
    let word = |reply| Some(command::word(lang, reply));
    let failed = |e: larm::plugin::types::Error| {
        let why = match e {
            larm::plugin::types::Error::NotGranted(w)
            | larm::plugin::types::Error::Invalid(w)
            | larm::plugin::types::Error::Unavailable(w)
            | larm::plugin::types::Error::Held(w)
            | larm::plugin::types::Error::OverQuota(w) => w,
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
        Command::Output {
            output,
            on,
            reply,
            ms,
        } => {
            let count = io::output_count();
            if output == 0 || output > count {
                return word(Reply::NoOutput(output, count));
            }
            let switched = match ms {
                Some(ms) => io::pulse_output(output, ms),
                None => io::set_output(output, on),
            };
            match (switched, ms) {
                (Ok(()), Some(ms)) if reply => word(Reply::OutputFor(output, ms)),
                (Ok(()), None) if reply => word(Reply::Output(output, on)),
                (Ok(()), _) => None,
                (Err(e), _) => failed(e),
            }
        }
        Command::AddCaller(number) => {
            // A number listed already keeps the name the server gave it.
            let key = caller_key(&number);
            match settings::get(&key).and_then(|name| match name {
                Some(_) => Ok(()),
                None => settings::set(&key, ""),
            }) {
                Ok(()) => word(Reply::CallerAdded(&number)),
                Err(e) => failed(e),
            }
        }
        Command::DelCaller(number) => match settings::get(&caller_key(&number)) {
            Ok(None) => word(Reply::NotACaller(&number)),
            Ok(Some(_)) => match settings::delete(&caller_key(&number)) {
                Ok(()) => word(Reply::CallerRemoved(&number)),
                Err(e) => failed(e),
            },
            Err(e) => failed(e),
        },
        Command::Callers => match settings::entries(CALLER_PREFIX) {
            Ok(all) => {
                let numbers: Vec<String> = all
                    .into_iter()
                    .map(|(k, _)| k[CALLER_PREFIX.len()..].to_string())
                    .collect();
                word(Reply::Callers(&numbers, numbers.len()))
            }
            Err(e) => failed(e),
        },
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
