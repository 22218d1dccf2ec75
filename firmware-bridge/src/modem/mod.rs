//! The modem: AT commands and SMS in PDU mode.

pub mod at;
pub mod pdu;
