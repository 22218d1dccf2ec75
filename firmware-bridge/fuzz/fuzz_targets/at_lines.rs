//! The AT framer and line classifier take any bytes without panicking.
#![no_main]

use firmware_bridge::modem::at::parse::{Framer, Token, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut framer = Framer::default();
    for chunk in data.chunks(7) {
        for token in framer.push(chunk) {
            if let Token::Line(line) = token {
                let _ = classify(&line, None);
                let _ = classify(&line, Some("AT+CREG?"));
                let _ = classify(&line, Some("AT+CMGS=23"));
            }
        }
    }
});
