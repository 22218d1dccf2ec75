//! The JSON the unit and its server exchange, version 1: pure, so it is
//! tested natively. Every payload carries `"v": 1`; a server must ignore
//! fields it does not know, and the unit rejects a command of another
//! version rather than guess at it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema version.
pub const VERSION: u32 = 1;

/// An input as the status shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Input {
    /// Number, from 1.
    pub n: u8,
    /// Its name (a device setting).
    pub name: String,
    /// Closed to COM.
    pub closed: bool,
}

/// An output as the status shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Output {
    /// Number, from 1.
    pub n: u8,
    /// Switched on.
    pub on: bool,
    /// It is the ALARM output.
    pub alarm: bool,
}

/// The outbox as the status shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Outbox {
    /// Entries waiting.
    pub depth: u32,
    /// Age of the oldest, seconds.
    pub oldest_s: Option<u64>,
}

/// `status` (retained): the whole unit.
#[derive(Debug, Serialize, PartialEq)]
pub struct Status {
    /// Schema version.
    pub v: u32,
    /// Message id.
    pub id: String,
    /// The unit's id.
    pub unit: String,
    /// Signal bars 0-5.
    pub signal_bars: u8,
    /// `lte`, `umts`, `gsm` or `none`.
    pub network: &'static str,
    /// `ready`, `pin-required`, `locked`, `not-inserted`, `error`, `unknown`.
    pub sim: &'static str,
    /// Operator name.
    pub operator: Option<String>,
    /// Extended I/O card present.
    pub extended_io: bool,
    /// Seconds since the unit started.
    pub uptime_s: u64,
    /// What waits to be sent.
    pub outbox: Outbox,
    /// Seconds left of a unit-wide wrong-password lockout (someone has
    /// been guessing the password); absent when the unit is not locked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_lockout_s: Option<u64>,
    /// Inputs.
    pub inputs: Vec<Input>,
    /// Outputs.
    pub outputs: Vec<Output>,
}

/// `events/alarm` and `events/restore`.
#[derive(Debug, Serialize, PartialEq)]
pub struct AlarmEvent<'a> {
    /// Schema version.
    pub v: u32,
    /// Message id: the same on a resend, so drop copies.
    pub id: &'a str,
    /// Input.
    pub input: u8,
    /// Its name.
    pub name: &'a str,
    /// Alarm or restore text.
    pub text: &'a str,
    /// When, seconds since the Unix epoch.
    pub at: i64,
}

/// `events/output`.
#[derive(Debug, Serialize, PartialEq)]
pub struct OutputEvent<'a> {
    /// Schema version.
    pub v: u32,
    /// Message id.
    pub id: &'a str,
    /// Output.
    pub output: u8,
    /// New state.
    pub on: bool,
    /// Who switched it.
    pub by: &'a str,
}

/// `events/health`.
#[derive(Debug, Serialize, PartialEq)]
pub struct HealthEvent<'a> {
    /// Schema version.
    pub v: u32,
    /// Message id.
    pub id: &'a str,
    /// Plugin name.
    pub plugin: &'a str,
    /// `running`, `restarted`, `quarantined`.
    pub state: &'static str,
    /// Faults in the current window.
    pub faults: u32,
    /// The last fault.
    pub last_fault: Option<&'a str>,
}

/// `events/update`.
#[derive(Debug, Serialize, PartialEq)]
pub struct UpdateEvent<'a> {
    /// Schema version.
    pub v: u32,
    /// Message id.
    pub id: &'a str,
    /// Plugin name.
    pub plugin: &'a str,
    /// `installed`, `committed`, `refused`, `rolled-back`.
    pub outcome: &'static str,
    /// SHA-256 of the component, hex.
    pub sha256: Option<&'a str>,
    /// Why it was refused or rolled back.
    pub reason: Option<&'a str>,
}

/// A command from the server, on `cmd`. Every part is optional; all are
/// checked before any is applied.
#[derive(Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Schema version; must be 1.
    pub v: u32,
    /// The server's id for the command, for the log.
    #[serde(default)]
    pub id: Option<String>,
    /// Outputs to switch: `{"3": true}`, or for a time: `{"3": {"on":
    /// true, "for_s": 30}}`.
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputCommand>,
    /// Device settings to change: `{"input.2.mode": "NC"}`; `null`
    /// removes one (`{"gate.caller.+46701234567": null}`).
    #[serde(default)]
    pub settings: BTreeMap<String, Option<String>>,
    /// Send the status now (it is also sent after every command applied).
    #[serde(default)]
    pub status: bool,
}

/// One output's switch in a command.
#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(untagged)]
pub enum OutputCommand {
    /// On (a latch) or off.
    Switch(bool),
    /// On or off, and on for a time.
    Timed(TimedSwitch),
}

/// `{"on": true, "for_s": 30}`.
#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct TimedSwitch {
    /// On or off.
    pub on: bool,
    /// Seconds it stays on, then off by itself.
    pub for_s: Option<f64>,
}

/// The longest command id: ids are remembered (see `lib.rs`), so they are
/// bounded.
pub const MAX_ID: usize = 128;

/// What to change, checked.
#[derive(Debug, PartialEq, Default)]
pub struct Checked {
    /// Outputs, their new state, and how long they stay on (ms).
    pub outputs: Vec<(u8, bool, Option<u32>)>,
    /// Settings and their new values (none: removed).
    pub settings: Vec<(String, Option<String>)>,
}

/// Parses and checks a command against a unit with `inputs` inputs and
/// `outputs` outputs. The error says what is wrong.
pub fn check(payload: &[u8], inputs: u8, outputs: u8) -> Result<(Command, Checked), String> {
    let text = std::str::from_utf8(payload).map_err(|_| "the payload is not UTF-8".to_string())?;
    let command: Command = serde_json::from_str(text).map_err(|e| format!("not a command: {e}"))?;
    if command
        .id
        .as_ref()
        .is_some_and(|id| id.len() > MAX_ID || id.chars().any(char::is_control))
    {
        return Err(format!(
            "a command id is at most {MAX_ID} bytes, without control characters"
        ));
    }
    if command.v != VERSION {
        return Err(format!(
            "schema version {} is not supported (this unit speaks {VERSION})",
            command.v
        ));
    }
    let mut checked = Checked::default();
    for (n, &switch) in &command.outputs {
        let n = match n.parse::<u8>() {
            Ok(n) if (1..=outputs).contains(&n) => n,
            _ => return Err(format!("output {n:?}: the unit has outputs 1 to {outputs}")),
        };
        let (on, ms) = match switch {
            OutputCommand::Switch(on) | OutputCommand::Timed(TimedSwitch { on, for_s: None }) => {
                (on, None)
            }
            OutputCommand::Timed(TimedSwitch {
                on: true,
                for_s: Some(s),
            }) => (
                true,
                Some(larm_rules::outputs::from_seconds(s).map_err(|e| format!("output {n}: {e}"))?),
            ),
            OutputCommand::Timed(TimedSwitch { on: false, .. }) => {
                return Err(format!("output {n}: `for_s` goes with `\"on\": true`"));
            }
        };
        checked.outputs.push((n, on, ms));
    }
    for (key, value) in &command.settings {
        larm_rules::settings::validate_change(key, value.as_deref(), inputs)?;
        checked.settings.push((key.clone(), value.clone()));
    }
    Ok((command, checked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_command() {
        let (command, checked) = check(
            br#"{"v":1,"id":"c-7","outputs":{"3":true,"1":false,"2":{"on":true,"for_s":0.5}},"settings":{"input.2.mode":"NC","server.interval-min":"15","gate.caller.+46701234567":null}}"#,
            8,
            5,
        )
        .unwrap();
        assert_eq!(command.id.as_deref(), Some("c-7"));
        assert_eq!(
            checked.outputs,
            [(1, false, None), (2, true, Some(500)), (3, true, None)]
        );
        assert_eq!(
            checked.settings,
            [
                ("gate.caller.+46701234567".to_string(), None),
                ("input.2.mode".to_string(), Some("NC".to_string())),
                ("server.interval-min".to_string(), Some("15".to_string()))
            ]
        );
    }

    #[test]
    fn bad_commands_say_why() {
        for (payload, why) in [
            (&b"\xff\xfe"[..], "not UTF-8"),
            (b"garbage", "not a command"),
            (b"{}", "missing field `v`"),
            (br#"{"v":2}"#, "version 2"),
            (br#"{"v":1,"reboot":true}"#, "unknown field"),
            (br#"{"v":1,"outputs":{"6":true}}"#, "outputs 1 to 5"),
            (br#"{"v":1,"outputs":{"x":true}}"#, "outputs 1 to 5"),
            (
                br#"{"v":1,"outputs":{"2":{"on":false,"for_s":3}}}"#,
                "goes with",
            ),
            (
                br#"{"v":1,"outputs":{"2":{"on":true,"for_s":0}}}"#,
                "0.1 to 86400",
            ),
            (
                br#"{"v":1,"outputs":{"2":{"on":true,"for":3}}}"#,
                "did not match",
            ),
            (
                br#"{"v":1,"settings":{"server.interval-min":null}}"#,
                "cannot be removed",
            ),
            (
                br#"{"v":1,"settings":{"input.2.mode":"maybe"}}"#,
                "not NO or NC",
            ),
            (br#"{"v":1,"settings":{"password":"1"}}"#, "no such setting"),
            (br#"{"v":1,"id":"a\nb"}"#, "without control characters"),
        ] {
            let e = check(payload, 8, 5).unwrap_err();
            assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(payload));
        }
    }

    proptest::proptest! {
        /// Whatever a server (or an attacker on the broker) sends, the
        /// answer is a command or a reason, never a panic.
        #[test]
        fn any_payload_is_a_command_or_a_reason(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = check(&payload, 8, 5);
        }

        #[test]
        fn any_json_command_shape_is_a_command_or_a_reason(
            output in "[0-9a-z]{0,3}",
            on in proptest::prelude::any::<bool>(),
            key in "[a-z.0-9-]{0,24}",
            value in ".{0,40}",
        ) {
            let payload = serde_json::json!({"v": 1, "outputs": {output: on}, "settings": {key: value}});
            let _ = check(payload.to_string().as_bytes(), 8, 5);
        }
    }

    #[test]
    fn events_serialise_with_version_and_id() {
        let json = serde_json::to_value(AlarmEvent {
            v: VERSION,
            id: "17",
            input: 3,
            name: "Frysrum",
            text: "Larm: Frysrummet är för varmt!",
            at: 1_700_000_000,
        })
        .unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["id"], "17");
        assert_eq!(json["text"], "Larm: Frysrummet är för varmt!");
    }
}
