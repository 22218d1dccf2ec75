//! The modem: SMS in PDU mode.

pub mod pdu;
