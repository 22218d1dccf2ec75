//! The PDU decoder takes any bytes (and any hex text) without panicking.
#![no_main]

use firmware_bridge::modem::pdu;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pdu::decode_deliver(data);
    let _ = pdu::decode_submit(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(bytes) = pdu::from_hex(text)
    {
        let _ = pdu::decode_deliver(&bytes);
    }
});
