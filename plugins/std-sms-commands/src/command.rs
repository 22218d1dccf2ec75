//! Parsing command SMS and wording replies: pure, so it is tested natively.
//!
//! Format (docs/unit.md): `[password] [command] [parameter 1] [parameter 2]`,
//! command words in any letter case.

use larm_rules::PhoneNumber;

/// A command with its parameters checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `STATUS`
    Status,
    /// `CHGPASS new repeat`
    ChangePassword(String),
    /// `FACRESET`
    FactoryReset,
    /// `CONNECT`
    Connect,
    /// `CONINTVL minutes` (0 = never)
    Interval(u32),
    /// `OUTPUT n ON|OFF [seconds]` (reply) or `SETOUTPUT n ON|OFF
    /// [seconds]` (no reply); with seconds (`30`, `0.5`), on for that
    /// long, then off.
    Output {
        /// Output number.
        output: u8,
        /// On or off.
        on: bool,
        /// Whether to reply.
        reply: bool,
        /// How long it stays on, in milliseconds; none: a latch.
        ms: Option<u32>,
    },
    /// `ADDNUM +46…`: the number's calls open the gate.
    AddCaller(PhoneNumber),
    /// `DELNUM +46…`
    DelCaller(PhoneNumber),
    /// `NUMS`: the gate's callers.
    Callers,
    /// `RESTART GSM` (true) or `RESTART ALL` (false)
    Restart {
        /// Only the modem.
        modem_only: bool,
    },
}

/// Why a command with the right password cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not a command word.
    Unknown(String),
    /// A parameter is missing or wrong; the text says what the command takes.
    Usage(&'static str),
    /// CHGPASS: the two passwords differ.
    Mismatch,
    /// CHGPASS: the password has the wrong length or characters.
    BadPassword,
}

/// The password and the rest of a command SMS, or None if it has no
/// command word at all. Trailing padding (CR, spaces) is ignored.
pub fn split(text: &str) -> Option<(&str, Vec<&str>)> {
    let mut words = text.split_whitespace();
    let password = words.next()?;
    let rest: Vec<&str> = words.collect();
    (!rest.is_empty()).then_some((password, rest))
}

/// Parses the words after the password.
pub fn parse(words: &[&str]) -> Result<Command, Problem> {
    let word = words[0].to_ascii_uppercase();
    let param = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase());
    let on_off = |w: Option<String>| match w.as_deref() {
        Some("ON") => Some(true),
        Some("OFF") => Some(false),
        _ => None,
    };
    match word.as_str() {
        "STATUS" => Ok(Command::Status),
        "CHGPASS" => match (words.get(1), words.get(2)) {
            (Some(new), Some(repeat)) if new != repeat => Err(Problem::Mismatch),
            (Some(new), Some(_)) if !larm_rules::password::valid(new) => Err(Problem::BadPassword),
            (Some(new), Some(_)) => Ok(Command::ChangePassword(new.to_string())),
            _ => Err(Problem::Usage("CHGPASS new new")),
        },
        "FACRESET" => Ok(Command::FactoryReset),
        "CONNECT" => Ok(Command::Connect),
        "CONINTVL" => param(1)
            .and_then(|m| larm_rules::settings::interval_min(&m).ok())
            .map(Command::Interval)
            .ok_or(Problem::Usage(
                "CONINTVL minutes (0 = never, at most 10080)",
            )),
        "OUTPUT" | "SETOUTPUT" => {
            let usage = if word == "OUTPUT" {
                "OUTPUT n ON/OFF [seconds]"
            } else {
                "SETOUTPUT n ON/OFF [seconds]"
            };
            let ms = match (on_off(param(2)), param(3)) {
                (_, None) => None,
                (Some(true), Some(time)) => Some(
                    larm_rules::outputs::parse_seconds(&time).map_err(|_| Problem::Usage(usage))?,
                ),
                _ => return Err(Problem::Usage(usage)),
            };
            match (param(1).and_then(|n| n.parse().ok()), on_off(param(2))) {
                (Some(output), Some(on)) if words.len() <= 4 => Ok(Command::Output {
                    output,
                    on,
                    reply: word == "OUTPUT",
                    ms,
                }),
                _ => Err(Problem::Usage(usage)),
            }
        }
        "ADDNUM" | "DELNUM" => {
            let usage = if word == "ADDNUM" {
                "ADDNUM +46701234567"
            } else {
                "DELNUM +46701234567"
            };
            // In `+` form: that is how the caller's number arrives.
            match words
                .get(1)
                .map(|n| PhoneNumber::parse(n))
                .filter(|n| n.as_ref().is_ok_and(PhoneNumber::is_international))
            {
                Some(Ok(n)) if words.len() == 2 && word == "ADDNUM" => Ok(Command::AddCaller(n)),
                Some(Ok(n)) if words.len() == 2 => Ok(Command::DelCaller(n)),
                _ => Err(Problem::Usage(usage)),
            }
        }
        "NUMS" => Ok(Command::Callers),
        "RESTART" => match param(1).as_deref() {
            Some("GSM") => Ok(Command::Restart { modem_only: true }),
            Some("ALL") => Ok(Command::Restart { modem_only: false }),
            _ => Err(Problem::Usage("RESTART GSM/ALL")),
        },
        _ => Err(Problem::Unknown(words[0].to_string())),
    }
}

/// Reply language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Swedish.
    Sv,
}

impl Lang {
    /// From the config's `language`.
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "sv" => Some(Lang::Sv),
            _ => None,
        }
    }
}

/// What the unit says.
pub enum Reply<'a> {
    /// A problem with the command.
    Problem(&'a Problem),
    /// The password was changed.
    PasswordChanged,
    /// Factory settings restored.
    FactoryReset,
    /// Connecting now.
    Connecting,
    /// The interval was set.
    Interval(u32),
    /// An output was switched.
    Output(u8, bool),
    /// An output was switched on for a time (ms).
    OutputFor(u8, u32),
    /// A gate caller was added.
    CallerAdded(&'a PhoneNumber),
    /// A gate caller was removed.
    CallerRemoved(&'a PhoneNumber),
    /// Not a gate caller.
    NotACaller(&'a PhoneNumber),
    /// The gate's callers, and how many there are in all.
    Callers(&'a [String], usize),
    /// Opened for a caller (call to open's confirmation).
    Opened,
    /// Closed for a caller (a toggling gate switched off).
    Closed,
    /// No such output.
    NoOutput(u8, u8),
    /// Restarting.
    Restarting(bool),
    /// Something the unit could not do right now.
    Failed(&'a str),
}

/// The text of a reply.
pub fn word(lang: Lang, reply: Reply<'_>) -> String {
    use Lang::*;
    let on_off = |on: bool| match (lang, on) {
        (En, true) => "ON",
        (En, false) => "OFF",
        (Sv, true) => "PÅ",
        (Sv, false) => "AV",
    };
    match (lang, reply) {
        (En, Reply::Problem(Problem::Unknown(w))) => format!(
            "Unknown command {w}. Commands: STATUS CHGPASS FACRESET CONNECT CONINTVL OUTPUT SETOUTPUT RESTART ADDNUM DELNUM NUMS"
        ),
        (Sv, Reply::Problem(Problem::Unknown(w))) => format!(
            "Okänt kommando {w}. Kommandon: STATUS CHGPASS FACRESET CONNECT CONINTVL OUTPUT SETOUTPUT RESTART ADDNUM DELNUM NUMS"
        ),
        (En, Reply::Problem(Problem::Usage(u))) => format!("Wrong parameters. Use: {u}"),
        (Sv, Reply::Problem(Problem::Usage(u))) => format!("Fel parametrar. Skriv: {u}"),
        (En, Reply::Problem(Problem::Mismatch)) => {
            "Password not changed: the two passwords differ".into()
        }
        (Sv, Reply::Problem(Problem::Mismatch)) => {
            "Lösenordet är inte ändrat: lösenorden är olika".into()
        }
        (En, Reply::Problem(Problem::BadPassword)) => {
            "Password not changed: use 1-8 characters 0-9 a-z A-Z".into()
        }
        (Sv, Reply::Problem(Problem::BadPassword)) => {
            "Lösenordet är inte ändrat: använd 1-8 tecken 0-9 a-z A-Z".into()
        }
        (En, Reply::PasswordChanged) => "Password changed".into(),
        (Sv, Reply::PasswordChanged) => "Lösenordet är ändrat".into(),
        (En, Reply::FactoryReset) => "Factory settings restored".into(),
        (Sv, Reply::FactoryReset) => "Fabriksinställningar återställda".into(),
        (En, Reply::Connecting) => "Connecting to the server".into(),
        (Sv, Reply::Connecting) => "Ansluter till servern".into(),
        (En, Reply::Interval(0)) => "Connection interval: never".into(),
        (Sv, Reply::Interval(0)) => "Anslutningsintervall: aldrig".into(),
        (En, Reply::Interval(m)) => format!("Connection interval: {m} min"),
        (Sv, Reply::Interval(m)) => format!("Anslutningsintervall: {m} min"),
        (En, Reply::Output(n, on)) => format!("Output {n} {}", on_off(on)),
        (Sv, Reply::Output(n, on)) => format!("Utgång {n} {}", on_off(on)),
        (En, Reply::OutputFor(n, ms)) => format!("Output {n} ON for {} s", seconds(ms)),
        (Sv, Reply::OutputFor(n, ms)) => format!("Utgång {n} PÅ i {} s", seconds(ms)),
        (En, Reply::CallerAdded(n)) => format!("{n} added: its calls open"),
        (Sv, Reply::CallerAdded(n)) => format!("{n} tillagt: samtal därifrån öppnar"),
        (En, Reply::CallerRemoved(n)) => format!("{n} removed"),
        (Sv, Reply::CallerRemoved(n)) => format!("{n} borttaget"),
        (En, Reply::NotACaller(n)) => format!("{n} is not on the list"),
        (Sv, Reply::NotACaller(n)) => format!("{n} finns inte i listan"),
        (lang, Reply::Callers(listed, all)) => callers(lang, listed, all),
        (En, Reply::Opened) => "Opened".into(),
        (Sv, Reply::Opened) => "Öppnat".into(),
        (En, Reply::Closed) => "Closed".into(),
        (Sv, Reply::Closed) => "Stängt".into(),
        (En, Reply::NoOutput(n, count)) => format!("No output {n}: outputs are 1-{count}"),
        (Sv, Reply::NoOutput(n, count)) => format!("Utgång {n} finns inte: utgångar är 1-{count}"),
        (En, Reply::Restarting(true)) => "Restarting the modem".into(),
        (Sv, Reply::Restarting(true)) => "Startar om modemet".into(),
        (En, Reply::Restarting(false)) => "Restarting the unit".into(),
        (Sv, Reply::Restarting(false)) => "Startar om enheten".into(),
        (En, Reply::Failed(why)) => format!("Could not do it: {why}"),
        (Sv, Reply::Failed(why)) => format!("Gick inte: {why}"),
    }
}

/// Milliseconds as seconds, with as many decimals as they need.
fn seconds(ms: u32) -> String {
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{s}")
    } else {
        format!("{s}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

/// The `NUMS` reply: as many numbers as fit the longest SMS, and how many
/// there are in all.
fn callers(lang: Lang, listed: &[String], all: usize) -> String {
    let head = match lang {
        Lang::En => format!("{all} numbers:"),
        Lang::Sv => format!("{all} nummer:"),
    };
    if all == 0 {
        return match lang {
            Lang::En => "No numbers: nobody's call opens".into(),
            Lang::Sv => "Inga nummer: inga samtal öppnar".into(),
        };
    }
    let mut reply = head;
    let mut shown = 0;
    // Room for " (and 500 more)" after the last one.
    for number in listed {
        if reply.chars().count() + 1 + number.chars().count() + 16 > larm_rules::settings::MAX_VALUE
        {
            break;
        }
        reply.push(' ');
        reply.push_str(number);
        shown += 1;
    }
    if shown < all {
        let more = all - shown;
        reply.push_str(&match lang {
            Lang::En => format!(" (and {more} more)"),
            Lang::Sv => format!(" (och {more} till)"),
        });
    }
    reply
}

/// What `STATUS` reports.
pub struct Status {
    /// Inputs closed to COM, input 1 first.
    pub inputs: Vec<bool>,
    /// Outputs on, output 1 first (the ALARM output among them).
    pub outputs: Vec<bool>,
    /// The ALARM output is on.
    pub alarm: bool,
    /// Signal bars 0-5.
    pub bars: u8,
    /// "LTE", "GSM" or none.
    pub network: Option<&'static str>,
    /// The factory password is still in use.
    pub factory_password: bool,
    /// Entries waiting in the outbox and the oldest one's age in minutes,
    /// when there are any.
    pub queued: Option<(u32, u64)>,
    /// Minutes left of a unit-wide wrong-password lockout, when one runs.
    pub lockout_min: Option<u64>,
    /// Plugins running a component installed in the field: name, version,
    /// still on probation.
    pub field: Vec<(String, String, bool)>,
}

/// The `STATUS` reply, one SMS: inputs (1 = closed) and outputs (1 = on)
/// as digit strings, output 1 first, and the ALARM output's state.
pub fn status(lang: Lang, s: &Status) -> String {
    let bits = |v: &[bool]| {
        v.iter()
            .map(|&b| if b { '1' } else { '0' })
            .collect::<String>()
    };
    let network = s.network.unwrap_or(match lang {
        Lang::En => "no network",
        Lang::Sv => "inget nät",
    });
    let (out, alarm_word, on, off, warn) = match lang {
        Lang::En => ("OUT", "ALARM", "on", "off", " Change the factory password!"),
        Lang::Sv => ("UT", "LARM", "på", "av", " Byt fabrikslösenordet!"),
    };
    let queued = match (lang, s.queued) {
        (_, None) => String::new(),
        (Lang::En, Some((n, min))) => format!(" Queued: {n} (oldest {min} min)."),
        (Lang::Sv, Some((n, min))) => format!(" Köat: {n} (äldsta {min} min)."),
    };
    let lockout = match (lang, s.lockout_min) {
        (_, None) => String::new(),
        (Lang::En, Some(min)) => format!(" Lockout: {min} min."),
        (Lang::Sv, Some(min)) => format!(" Spärr: {min} min."),
    };
    let mut reply = format!(
        "IN1-{}: {} {out}1-{}: {} {alarm_word}: {} Signal: {}/5 {network}.{queued}{lockout}{}",
        s.inputs.len(),
        bits(&s.inputs),
        s.outputs.len(),
        bits(&s.outputs),
        if s.alarm { on } else { off },
        s.bars,
        if s.factory_password { warn } else { "" }
    );
    // Field updates, briefly (7 hex digits, like a short git hash), as
    // many as fit the one SMS.
    let (label, trial) = match lang {
        Lang::En => (" Upd:", "trial"),
        Lang::Sv => (" Uppd:", "prov"),
    };
    let mut listed = String::new();
    for (name, version, on_probation) in &s.field {
        let short: String = version.chars().take(7).collect();
        let item = if *on_probation {
            format!(" {name} {short} ({trial})")
        } else {
            format!(" {name} {short}")
        };
        let sep = if listed.is_empty() { "" } else { "," };
        // The closing full stop takes one more character.
        let fits = reply.chars().count()
            + label.len()
            + listed.chars().count()
            + sep.len()
            + item.chars().count()
            < 160;
        if !fits {
            break;
        }
        listed.push_str(sep);
        listed.push_str(&item);
    }
    if !listed.is_empty() {
        reply.push_str(label);
        reply.push_str(&listed);
        reply.push('.');
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(text: &str) -> Result<Command, Problem> {
        let (_, words) = split(text).unwrap();
        parse(&words)
    }

    #[test]
    fn the_examples_of_docs_unit() {
        assert_eq!(split("0000 CHGPASS 1234 1234").unwrap().0, "0000");
        assert_eq!(
            cmd("0000 CHGPASS 1234 1234"),
            Ok(Command::ChangePassword("1234".into()))
        );
        assert_eq!(
            cmd("1234 OUTPUT 3 ON"),
            Ok(Command::Output {
                output: 3,
                on: true,
                reply: true,
                ms: None
            })
        );
        assert_eq!(cmd("1234 STATUS"), Ok(Command::Status));
    }

    #[test]
    fn any_letter_case_and_padding() {
        assert_eq!(cmd("1234 sTaTuS\r"), Ok(Command::Status));
        assert_eq!(
            cmd("1234 setoutput 2 off  "),
            Ok(Command::Output {
                output: 2,
                on: false,
                reply: false,
                ms: None
            })
        );
        assert_eq!(
            cmd("1234 restart gsm"),
            Ok(Command::Restart { modem_only: true })
        );
        assert_eq!(
            cmd("1234 Restart All"),
            Ok(Command::Restart { modem_only: false })
        );
        assert_eq!(cmd("1234 conintvl 0"), Ok(Command::Interval(0)));
        assert_eq!(cmd("1234 connect"), Ok(Command::Connect));
        assert_eq!(cmd("1234 facreset"), Ok(Command::FactoryReset));
    }

    /// Timed outputs and pulses, and the gate's list.
    #[test]
    fn timed_outputs_and_the_gate_list() {
        assert_eq!(
            cmd("1234 OUTPUT 3 ON 30"),
            Ok(Command::Output {
                output: 3,
                on: true,
                reply: true,
                ms: Some(30_000)
            })
        );
        assert!(matches!(
            cmd("1234 setoutput 1 on 0.5"),
            Ok(Command::Output {
                ms: Some(500),
                reply: false,
                ..
            })
        ));
        for bad in [
            "1234 OUTPUT 3 OFF 30",
            "1234 OUTPUT 3 ON soon",
            "1234 OUTPUT 3 ON 0.01",
            "1234 OUTPUT 3 ON 30 40",
        ] {
            assert_eq!(
                cmd(bad),
                Err(Problem::Usage("OUTPUT n ON/OFF [seconds]")),
                "{bad}"
            );
        }
        assert_eq!(
            word(Lang::En, Reply::OutputFor(3, 500)),
            "Output 3 ON for 0.5 s"
        );
        assert_eq!(
            word(Lang::En, Reply::OutputFor(3, 30_000)),
            "Output 3 ON for 30 s"
        );
        let anna = PhoneNumber::parse("+46 70 123 45 67").unwrap();
        assert_eq!(
            cmd("1234 addnum +46 70 123 45 67"),
            Err(Problem::Usage("ADDNUM +46701234567"))
        );
        assert_eq!(
            cmd("1234 ADDNUM +46701234567"),
            Ok(Command::AddCaller(anna.clone()))
        );
        assert_eq!(
            cmd("1234 DELNUM +46701234567"),
            Ok(Command::DelCaller(anna))
        );
        assert_eq!(cmd("1234 NUMS"), Ok(Command::Callers));
        assert_eq!(
            cmd("1234 ADDNUM 0701234567"),
            Err(Problem::Usage("ADDNUM +46701234567"))
        );
        let many: Vec<String> = (0..500).map(|i| format!("+4670{i:07}")).collect();
        let reply = word(Lang::En, Reply::Callers(&many, 500));
        assert!(
            reply.starts_with("500 numbers: +46700000000 +46700000001"),
            "{reply}"
        );
        assert!(
            reply.ends_with(" more)") && reply.chars().count() <= 1530,
            "{reply}"
        );
    }

    #[test]
    fn passwords_are_checked() {
        assert_eq!(cmd("0000 CHGPASS 1234 1235"), Err(Problem::Mismatch));
        assert_eq!(
            cmd("0000 CHGPASS 123456789 123456789"),
            Err(Problem::BadPassword)
        );
        assert_eq!(cmd("0000 CHGPASS åäö åäö"), Err(Problem::BadPassword));
        assert_eq!(
            cmd("0000 CHGPASS 1234"),
            Err(Problem::Usage("CHGPASS new new"))
        );
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        assert_eq!(
            cmd("1234 OUTPUT 3 MAYBE"),
            Err(Problem::Usage("OUTPUT n ON/OFF [seconds]"))
        );
        assert_eq!(
            cmd("1234 CONINTVL soon"),
            Err(Problem::Usage(
                "CONINTVL minutes (0 = never, at most 10080)"
            ))
        );
        assert_eq!(
            cmd("1234 CONINTVL 4294967295"),
            Err(Problem::Usage(
                "CONINTVL minutes (0 = never, at most 10080)"
            )),
            "longer than a week: the same limit as the server's commands"
        );
        assert_eq!(cmd("1234 FLY"), Err(Problem::Unknown("FLY".into())));
        assert!(split("1234").is_none(), "a password alone is no command");
        assert!(split("").is_none());
        let reply = word(Lang::En, Reply::Problem(&Problem::Unknown("FLY".into())));
        assert!(
            reply.starts_with("Unknown command FLY.") && reply.len() <= 160,
            "{reply}"
        );
    }

    #[test]
    fn status_fits_one_sms_in_both_languages() {
        let s = Status {
            inputs: vec![true, false, false, false, false, false, false, false],
            outputs: vec![false, false, true, false, true],
            alarm: true,
            bars: 4,
            network: Some("LTE"),
            factory_password: true,
            queued: None,
            lockout_min: None,
            field: Vec::new(),
        };
        let en = status(Lang::En, &s);
        assert_eq!(
            en,
            "IN1-8: 10000000 OUT1-5: 00101 ALARM: on Signal: 4/5 LTE. Change the factory password!"
        );
        let sv = status(Lang::Sv, &s);
        assert_eq!(
            sv,
            "IN1-8: 10000000 UT1-5: 00101 LARM: på Signal: 4/5 LTE. Byt fabrikslösenordet!"
        );
        assert!(en.chars().count() <= 160 && sv.chars().count() <= 160);
    }

    #[test]
    fn status_shows_what_waits_in_the_outbox_and_still_fits() {
        let s = Status {
            inputs: vec![false; 12],
            outputs: vec![false; 9],
            alarm: true,
            bars: 1,
            network: None,
            factory_password: true,
            queued: Some((3, 1440)),
            lockout_min: Some(10),
            field: Vec::new(),
        };
        let en = status(Lang::En, &s);
        assert!(
            en.contains(" Queued: 3 (oldest 1440 min). Lockout: 10 min. Change"),
            "{en}"
        );
        let sv = status(Lang::Sv, &s);
        assert!(
            sv.contains(" Köat: 3 (äldsta 1440 min). Spärr: 10 min."),
            "{sv}"
        );
        assert!(en.chars().count() <= 160 && sv.chars().count() <= 160);
    }

    #[test]
    fn status_names_field_updates_as_far_as_they_fit() {
        let mut s = Status {
            inputs: vec![false; 8],
            outputs: vec![false; 5],
            alarm: false,
            bars: 4,
            network: Some("LTE"),
            factory_password: false,
            queued: None,
            lockout_min: None,
            field: vec![("rules".into(), "1a2b3c4d5e6f".into(), true)],
        };
        assert!(
            status(Lang::En, &s).ends_with("LTE. Upd: rules 1a2b3c4 (trial)."),
            "{}",
            status(Lang::En, &s)
        );
        assert!(status(Lang::Sv, &s).ends_with(" Uppd: rules 1a2b3c4 (prov)."));
        s.field = (0..20)
            .map(|i| (format!("plugin-{i}"), "abcdef0123".into(), false))
            .collect();
        s.factory_password = true;
        s.queued = Some((3, 1440));
        for lang in [Lang::En, Lang::Sv] {
            let reply = status(lang, &s);
            assert!(reply.chars().count() <= 160, "{reply}");
            assert!(
                reply.contains("plugin-0 abcdef0") && reply.ends_with('.'),
                "{reply}"
            );
        }
    }
}
