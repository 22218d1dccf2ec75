//! Framing the modem's byte stream into lines and prompts, and telling
//! final result codes, response lines and unsolicited result codes apart.
//!
//! Pure and synchronous, so it is unit-tested and fuzzed on its own.

/// What the modem sent: a line, or the `> ` prompt of `AT+CMGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A non-empty line, line end removed.
    Line(String),
    /// The SMS text prompt.
    Prompt,
}

/// The longest line kept; a modem spewing garbage without line ends cannot
/// make the driver buffer without bound.
pub const MAX_LINE: usize = 4096;

/// Splits bytes into tokens. Line ends may be `\r\n`, `\r\r\n`, `\r` or `\n`.
#[derive(Debug, Default)]
pub struct Framer {
    partial: Vec<u8>,
}

impl Framer {
    /// Feeds bytes; returns the tokens they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Token> {
        let mut tokens = Vec::new();
        for &b in bytes {
            match b {
                b'\r' | b'\n' => {
                    if !self.partial.is_empty() {
                        let line = String::from_utf8_lossy(&self.partial).trim().to_string();
                        self.partial.clear();
                        if !line.is_empty() {
                            tokens.push(Token::Line(line));
                        }
                    }
                }
                _ => {
                    if self.partial.len() < MAX_LINE {
                        self.partial.push(b);
                    }
                    // The prompt comes without a line end.
                    if self.partial == b"> " {
                        self.partial.clear();
                        tokens.push(Token::Prompt);
                    }
                }
            }
        }
        tokens
    }

    /// Whatever is buffered looks like the start of a prompt (`>`); some
    /// modems send `>` and then a line end instead of `> `.
    pub fn pending(&self) -> &[u8] {
        &self.partial
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    /// `OK`
    Ok,
    /// `ERROR` (or `COMMAND NOT SUPPORT`)
    Error,
    /// `+CME ERROR: n` or text: equipment (SIM, modem) error.
    Cme(String),
    /// `+CMS ERROR: n`: SMS error.
    Cms(String),
    /// `NO CARRIER`, `BUSY`, `NO ANSWER`, `NO DIALTONE` (ends a dial).
    CallEnded(String),
}

/// Unsolicited result codes the driver acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    /// `+CMTI: "SM",3`: a new SMS is stored at this index.
    NewMessage {
        /// The storage.
        storage: String,
        /// The index.
        index: u32,
    },
    /// `+CMT: ,<len>` followed by the PDU: an SMS delivered directly.
    Message(String),
    /// `RING`: an incoming call.
    Ring,
    /// `+CLIP: "+46...",145,...`: the caller's number.
    Caller(Option<String>),
    /// `+CREG`/`+CGREG`/`+CEREG` registration change.
    Registration {
        /// `CREG`, `CGREG` or `CEREG`.
        kind: String,
        /// Registration status (1 home, 5 roaming...).
        stat: u8,
        /// Access technology, if reported.
        act: Option<u8>,
    },
    /// `RDY`, `SMS DONE`, `Call Ready` and the like: the modem (re)started
    /// or finished booting a part.
    Ready(String),
    /// `+CPIN: <state>` sent on its own.
    Sim(String),
    /// A call ended (`NO CARRIER` outside a command).
    CallEnded(String),
    /// Anything else: logged and ignored.
    Other(String),
}

/// What a line is, given the command in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Ends the command in flight.
    Final(Final),
    /// Part of the command's response.
    Response,
    /// The modem echoing the command.
    Echo,
    /// Unsolicited.
    Urc(Urc),
}

/// Parses a final result code.
pub fn final_code(line: &str) -> Option<Final> {
    let rest = |p: &str| line.strip_prefix(p).map(|r| r.trim().to_string());
    match line {
        "OK" => Some(Final::Ok),
        "ERROR" | "COMMAND NOT SUPPORT" => Some(Final::Error),
        "NO CARRIER" | "BUSY" | "NO ANSWER" | "NO DIALTONE" => {
            Some(Final::CallEnded(line.to_string()))
        }
        _ => rest("+CME ERROR:")
            .map(Final::Cme)
            .or_else(|| rest("+CMS ERROR:").map(Final::Cms)),
    }
}

/// The fields after `+XXX: `, split on commas outside quotes.
pub fn fields(line: &str) -> Vec<String> {
    let Some((_, rest)) = line.split_once(':') else {
        return Vec::new();
    };
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in rest.trim().chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => fields.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    fields.push(current.trim().to_string());
    fields
}

/// A field without its quotes.
pub fn unquote(field: &str) -> &str {
    field.trim().trim_matches('"')
}

/// Field `i` as a number.
pub fn number<T: std::str::FromStr>(fields: &[String], i: usize) -> Option<T> {
    fields.get(i).and_then(|v| unquote(v).parse().ok())
}

/// Parses an unsolicited result code.
pub fn urc(line: &str) -> Urc {
    let prefix = line.split(':').next().unwrap_or_default();
    let f = fields(line);
    match prefix {
        "+CMTI" => match number(&f, 1) {
            Some(index) => Urc::NewMessage {
                storage: f
                    .first()
                    .map(|s| unquote(s).to_string())
                    .unwrap_or_default(),
                index,
            },
            None => Urc::Other(line.into()),
        },
        "+CMT" => Urc::Message(String::new()),
        "RING" => Urc::Ring,
        "+CLIP" => Urc::Caller(
            f.first()
                .map(|n| unquote(n).to_string())
                .filter(|n| !n.is_empty()),
        ),
        "+CREG" | "+CGREG" | "+CEREG" => match number(&f, 0) {
            Some(stat) => Urc::Registration {
                kind: prefix[1..].to_string(),
                stat,
                act: if f.len() >= 4 { number(&f, 3) } else { None },
            },
            None => Urc::Other(line.into()),
        },
        "+CPIN" => Urc::Sim(
            f.first()
                .map(|s| unquote(s).to_string())
                .unwrap_or_default(),
        ),
        "RDY" | "SMS DONE" | "PB DONE" | "Call Ready" | "SMS Ready" | "+CFUN" | "+QIND" => {
            Urc::Ready(line.into())
        }
        "NO CARRIER" | "BUSY" | "NO ANSWER" => Urc::CallEnded(line.into()),
        _ => Urc::Other(line.into()),
    }
}

/// Prefixes that are always unsolicited, even while a command runs.
const ALWAYS_URC: &[&str] = &[
    "+CMTI", "+CMT", "RING", "+CLIP", "RDY", "SMS DONE", "PB DONE",
];

/// Classifies a line while `command` is in flight (None: no command).
pub fn classify(line: &str, command: Option<&str>) -> Class {
    let Some(command) = command else {
        return Class::Urc(urc(line));
    };
    if let Some(fin) = final_code(line) {
        return Class::Final(fin);
    }
    if line.eq_ignore_ascii_case(command.trim()) {
        return Class::Echo;
    }
    let prefix = line.split(':').next().unwrap_or_default();
    if ALWAYS_URC.contains(&prefix) {
        return Class::Urc(urc(line));
    }
    // `AT+CREG?` → `+CREG`. A registration URC can arrive in the middle of
    // its own query: the solicited reply has `<n>,<stat>` first (its second
    // field is an unquoted number), the URC `<stat>,"<lac>"...`.
    let asked = command
        .get(2..)
        .map(|c| c.split(['?', '=']).next().unwrap_or_default())
        .unwrap_or_default();
    if matches!(prefix, "+CREG" | "+CGREG" | "+CEREG") {
        let f = fields(line);
        let solicited =
            prefix.eq_ignore_ascii_case(asked) && f.len() >= 2 && !f[1].starts_with('"');
        return if solicited {
            Class::Response
        } else {
            Class::Urc(urc(line))
        };
    }
    Class::Response
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any bytes frame and classify without panicking (cargo-fuzz does
        /// the long runs: `firmware-bridge/fuzz`).
        #[test]
        fn any_bytes_frame_and_classify(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut framer = Framer::default();
            for chunk in bytes.chunks(5) {
                for token in framer.push(chunk) {
                    if let Token::Line(line) = token {
                        prop_assert!(line.len() <= MAX_LINE * 4);
                        let _ = classify(&line, None);
                        let _ = classify(&line, Some("AT+CEREG?"));
                    }
                }
            }
        }
    }

    fn lines(tokens: Vec<Token>) -> Vec<String> {
        tokens
            .into_iter()
            .map(|t| match t {
                Token::Line(l) => l,
                Token::Prompt => "<prompt>".into(),
            })
            .collect()
    }

    #[test]
    fn line_ends_of_every_kind() {
        let mut f = Framer::default();
        assert_eq!(
            lines(f.push(b"\r\nOK\r\n+CSQ: 20,99\r\r\nRDY\rRING\n\r\n")),
            ["OK", "+CSQ: 20,99", "RDY", "RING"]
        );
        assert_eq!(lines(f.push(b"+CM")), Vec::<String>::new());
        assert_eq!(lines(f.push(b"TI: \"SM\",3\r\n")), ["+CMTI: \"SM\",3"]);
    }

    #[test]
    fn the_prompt_has_no_line_end() {
        let mut f = Framer::default();
        assert_eq!(lines(f.push(b"\r\n> ")), ["<prompt>"]);
        assert_eq!(lines(f.push(b"\r\n>\r\n")), [">"]);
    }

    #[test]
    fn garbage_is_bounded_and_survivable() {
        let mut f = Framer::default();
        let junk = vec![0xffu8; MAX_LINE * 3];
        assert!(f.push(&junk).is_empty());
        let out = lines(f.push(b"\r\nOK\r\n"));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].chars().count(), MAX_LINE);
        assert_eq!(out[1], "OK");
    }

    #[test]
    fn final_codes() {
        assert_eq!(final_code("OK"), Some(Final::Ok));
        assert_eq!(final_code("+CME ERROR: 10"), Some(Final::Cme("10".into())));
        assert_eq!(
            final_code("+CME ERROR: SIM not inserted"),
            Some(Final::Cme("SIM not inserted".into()))
        );
        assert_eq!(
            final_code("+CMS ERROR: 322"),
            Some(Final::Cms("322".into()))
        );
        assert_eq!(final_code("+CME ERROR:"), Some(Final::Cme(String::new())));
        assert_eq!(final_code("BUSY"), Some(Final::CallEnded("BUSY".into())));
        assert_eq!(final_code("+CSQ: 1,2"), None);
    }

    #[test]
    fn urcs_in_the_middle_of_a_response() {
        let cmd = Some("AT+CSQ");
        assert_eq!(classify("AT+CSQ", cmd), Class::Echo);
        assert_eq!(classify("+CSQ: 20,99", cmd), Class::Response);
        assert_eq!(
            classify("+CMTI: \"ME\",7", cmd),
            Class::Urc(Urc::NewMessage {
                storage: "ME".into(),
                index: 7
            })
        );
        assert_eq!(classify("RING", cmd), Class::Urc(Urc::Ring));
        assert_eq!(
            classify("+CLIP: \"+46701234567\",145,,,,0", cmd),
            Class::Urc(Urc::Caller(Some("+46701234567".into())))
        );
        assert_eq!(classify("OK", cmd), Class::Final(Final::Ok));
    }

    #[test]
    fn registration_reply_and_urc_are_told_apart() {
        let q = Some("AT+CEREG?");
        assert_eq!(
            classify("+CEREG: 2,1,\"1A2B\",\"01C3D4E5\",7", q),
            Class::Response
        );
        assert_eq!(classify("+CEREG: 2,0", q), Class::Response);
        assert_eq!(
            classify("+CEREG: 1,\"1A2B\",\"01C3D4E5\",7", q),
            Class::Urc(Urc::Registration {
                kind: "CEREG".into(),
                stat: 1,
                act: Some(7)
            })
        );
        // A CREG URC while CEREG is asked.
        assert!(matches!(
            classify("+CREG: 5", q),
            Class::Urc(Urc::Registration { stat: 5, .. })
        ));
        // No command: everything is unsolicited.
        assert!(matches!(classify("+CREG: 1", None), Class::Urc(_)));
    }

    #[test]
    fn boot_and_sim_urcs() {
        assert_eq!(urc("RDY"), Urc::Ready("RDY".into()));
        assert_eq!(urc("+CPIN: READY"), Urc::Sim("READY".into()));
        assert_eq!(urc("+CPIN: \"SIM PIN\""), Urc::Sim("SIM PIN".into()));
        assert_eq!(urc("NO CARRIER"), Urc::CallEnded("NO CARRIER".into()));
        assert_eq!(urc("+CMTI: \"SM\",x"), Urc::Other("+CMTI: \"SM\",x".into()));
        assert_eq!(
            urc("\u{fffd}\u{fffd}"),
            Urc::Other("\u{fffd}\u{fffd}".into())
        );
    }
}
