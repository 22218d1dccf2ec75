//! SMS in PDU mode: SMS-DELIVER and SMS-SUBMIT (3GPP TS 23.040), the GSM
//! 7-bit alphabet with its extension table and UCS2 (TS 23.038), and
//! concatenated messages.
//!
//! Written here because no crate does this well: `sms-pdu` has no tests and
//! an unmaintained encoding dependency, `sms-pdu-decoder` only decodes, and
//! `gsm7` lacks the extension table's handling across parts. The codec is
//! checked against public vectors (node-pdu's parser tests and
//! smspdudecoder's codec tests, both MIT; the worked examples of 23.038 and
//! 23.040) and by property tests, and decoding never panics (fuzzed).
//!
//! PDUs here include the SMSC field in front of the TPDU, as `AT+CMGR`
//! returns them and `AT+CMGS` takes them.

pub mod gsm7;
mod reassembly;

pub use reassembly::{Reassembler, Sms};

use std::fmt;

/// A PDU that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// Not hexadecimal.
    #[error("not a hex PDU")]
    Hex,
    /// It ends before a field does.
    #[error("the PDU ends inside its {0}")]
    Truncated(&'static str),
    /// A field has a value the codec does not handle.
    #[error("unsupported PDU: {0}")]
    Unsupported(String),
}

/// Hex text to bytes.
pub fn from_hex(hex: &str) -> Result<Vec<u8>, PduError> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return Err(PduError::Hex);
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| PduError::Hex))
        .collect()
}

/// Bytes to upper-case hex text.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A phone number or sender name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An international number (type of address 0x91); digits without `+`.
    International(String),
    /// A national number (0xA1).
    National(String),
    /// An alphanumeric sender name (0xD0), e.g. `Telfort`.
    Alphanumeric(String),
    /// Any other type of address (0x81 "unknown" is the usual one), with its digits.
    Other {
        /// The type-of-address octet.
        toa: u8,
        /// The digits.
        digits: String,
    },
}

impl Address {
    /// An address for a number as people write it: `+46 70-123 45 67` is
    /// international, `0701234567` is sent as "unknown" type as phones do.
    /// What a phone number is, is `larm-rules`' one rule.
    pub fn parse(number: &str) -> Option<Address> {
        let number = larm_rules::PhoneNumber::parse(number).ok()?;
        let digits = number.digits().to_string();
        Some(if number.is_international() {
            Address::International(digits)
        } else {
            Address::Other { toa: 0x81, digits }
        })
    }

    fn toa(&self) -> u8 {
        match self {
            Address::International(_) => 0x91,
            Address::National(_) => 0xa1,
            Address::Alphanumeric(_) => 0xd0,
            Address::Other { toa, .. } => *toa,
        }
    }

    /// Encodes as length (semi-octets), type, value.
    fn encode(&self) -> Vec<u8> {
        match self {
            Address::Alphanumeric(name) => {
                let septets = gsm7::encode(name).unwrap_or_default();
                let packed = gsm7::pack(&septets, 0);
                let semi_octets = (septets.len() * 7).div_ceil(4);
                let mut out = vec![semi_octets as u8, self.toa()];
                out.extend(packed);
                out
            }
            Address::International(d) | Address::National(d) | Address::Other { digits: d, .. } => {
                let mut out = vec![d.len() as u8, self.toa()];
                out.extend(semi_octets(d));
                out
            }
        }
    }

    /// Decodes an address field (`length` counts semi-octets).
    fn decode(r: &mut Reader<'_>) -> Result<Address, PduError> {
        let len = usize::from(r.byte("address")?);
        let toa = r.byte("address")?;
        let value = r.take(len.div_ceil(2), "address")?;
        Ok(match toa & 0x70 {
            0x50 => {
                let septets =
                    gsm7::unpack(value, len * 4 / 7, 0).ok_or(PduError::Truncated("address"))?;
                Address::Alphanumeric(gsm7::decode(&septets))
            }
            _ => {
                let digits = digits(value, len);
                match toa & 0x70 {
                    0x10 => Address::International(digits),
                    0x20 => Address::National(digits),
                    _ => Address::Other { toa, digits },
                }
            }
        })
    }

    /// The SMSC field: length in octets (type included), type, value.
    fn decode_smsc(r: &mut Reader<'_>) -> Result<Option<Address>, PduError> {
        let len = usize::from(r.byte("SMSC")?);
        if len == 0 {
            return Ok(None);
        }
        let toa = r.byte("SMSC")?;
        let value = r.take(len - 1, "SMSC")?;
        let digits = digits(value, value.len() * 2);
        Ok(Some(match toa & 0x70 {
            0x10 => Address::International(digits),
            _ => Address::Other { toa, digits },
        }))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::International(d) => write!(f, "+{d}"),
            Address::National(d) | Address::Other { digits: d, .. } => f.write_str(d),
            Address::Alphanumeric(name) => f.write_str(name),
        }
    }
}

const SEMI_OCTET_DIGITS: &[u8; 16] = b"0123456789*#abc?";

/// Digits as swapped semi-octets, padded with 0xF.
fn semi_octets(digits: &str) -> Vec<u8> {
    let nibble = |c: u8| {
        SEMI_OCTET_DIGITS
            .iter()
            .position(|&d| d == c)
            .map_or(0xf, |p| p as u8)
    };
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| nibble(pair[0]) | (pair.get(1).map_or(0xf, |&c| nibble(c)) << 4))
        .collect()
}

/// `count` digits from swapped semi-octets (a 0xF nibble ends them).
fn digits(octets: &[u8], count: usize) -> String {
    octets
        .iter()
        .flat_map(|&b| [b & 0xf, b >> 4])
        .take(count)
        .take_while(|&n| n != 0xf)
        .map(|n| char::from(SEMI_OCTET_DIGITS[usize::from(n)]))
        .collect()
}

/// A service-centre timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the Unix epoch, UTC.
    pub unix: i64,
    /// The sender's time zone, in quarter hours east of UTC.
    pub zone_quarters: i8,
}

impl Timestamp {
    fn decode(r: &mut Reader<'_>) -> Result<Timestamp, PduError> {
        let raw = r.take(7, "timestamp")?;
        let bcd = |b: u8| i64::from(b & 0xf) * 10 + i64::from(b >> 4);
        let [year, month, day, hour, minute, second, zone] =
            <[u8; 7]>::try_from(raw).map_err(|_| PduError::Truncated("timestamp"))?;
        let year = bcd(year);
        let year = if year >= 90 { 1900 + year } else { 2000 + year };
        let quarters = ((zone & 0x7) * 10 + (zone >> 4)) as i8;
        let zone_quarters = if zone & 0x8 != 0 { -quarters } else { quarters };
        let local = days_from_civil(year, bcd(month), bcd(day)) * 86_400
            + bcd(hour) * 3600
            + bcd(minute) * 60
            + bcd(second);
        Ok(Timestamp {
            unix: local - i64::from(zone_quarters) * 900,
            zone_quarters,
        })
    }

    fn encode(&self) -> [u8; 7] {
        let local = self.unix + i64::from(self.zone_quarters) * 900;
        let (y, m, d) = civil_from_days(local.div_euclid(86_400));
        let secs = local.rem_euclid(86_400);
        let bcd = |v: i64| {
            let v = v.rem_euclid(100) as u8;
            (v % 10) << 4 | (v / 10)
        };
        let q = self.zone_quarters.unsigned_abs();
        let zone = ((q % 10) << 4) | (q / 10) | if self.zone_quarters < 0 { 0x8 } else { 0 };
        [
            bcd(y),
            bcd(m),
            bcd(d),
            bcd(secs / 3600),
            bcd(secs % 3600 / 60),
            bcd(secs % 60),
            zone,
        ]
    }
}

/// Days since 1970-01-01 of a date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The text of a message part, kept undecoded so that a character split
/// across parts (an escape, a surrogate pair) joins up again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// GSM 7-bit septets.
    Gsm7(Vec<u8>),
    /// UCS2 / UTF-16 code units.
    Ucs2(Vec<u16>),
    /// 8-bit data (shown as hex).
    Data(Vec<u8>),
}

impl Body {
    /// Joins bodies of the same kind.
    fn extend(&mut self, other: &Body) {
        match (self, other) {
            (Body::Gsm7(a), Body::Gsm7(b)) | (Body::Data(a), Body::Data(b)) => a.extend(b),
            (Body::Ucs2(a), Body::Ucs2(b)) => a.extend(b),
            (this, other) => {
                let text = this.text() + &other.text();
                *this = Body::Ucs2(text.encode_utf16().collect());
            }
        }
    }

    /// The text.
    pub fn text(&self) -> String {
        match self {
            Body::Gsm7(septets) => gsm7::decode(septets),
            Body::Ucs2(units) => String::from_utf16_lossy(units),
            Body::Data(bytes) => to_hex(bytes),
        }
    }
}

/// Concatenation info from the user data header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    /// Reference shared by the parts (8 or 16 bit).
    pub reference: u16,
    /// Number of parts.
    pub total: u8,
    /// This part, from 1.
    pub seq: u8,
}

/// A received SMS (one part of it, if concatenated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// The service centre, if given.
    pub smsc: Option<Address>,
    /// The sender.
    pub sender: Address,
    /// When the service centre got it.
    pub timestamp: Timestamp,
    /// The data coding scheme octet.
    pub dcs: u8,
    /// Concatenation, if this is one part of several.
    pub concat: Option<Concat>,
    /// The text of this part.
    pub body: Body,
}

/// An SMS to send (one part), as the modem gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// Message reference.
    pub reference: u8,
    /// The recipient.
    pub recipient: Address,
    /// The data coding scheme octet.
    pub dcs: u8,
    /// Concatenation, if this is one part of several.
    pub concat: Option<Concat>,
    /// The text of this part.
    pub body: Body,
}

/// A PDU ready for `AT+CMGS`: the bytes (SMSC field first) and the TPDU
/// length the command needs (SMSC field excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The whole PDU.
    pub pdu: Vec<u8>,
    /// Its TPDU length in octets.
    pub tpdu_len: usize,
}

/// A cursor over PDU bytes that reports truncation instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], PduError> {
        if n > self.bytes.len() {
            return Err(PduError::Truncated(field));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, PduError> {
        Ok(self.take(1, field)?[0])
    }
}

/// The alphabet a data coding scheme selects (23.038 §4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Alphabet {
    Gsm7,
    Data,
    Ucs2,
}

fn alphabet(dcs: u8) -> Result<Alphabet, PduError> {
    let from_bits = |bits| match bits {
        0 => Ok(Alphabet::Gsm7),
        1 => Ok(Alphabet::Data),
        2 => Ok(Alphabet::Ucs2),
        _ => Err(PduError::Unsupported(format!(
            "reserved alphabet in DCS {dcs:#04x}"
        ))),
    };
    match dcs >> 4 {
        // General data coding (compressed text is not supported).
        0x0..=0x3 if dcs & 0x20 != 0 => Err(PduError::Unsupported("compressed text".into())),
        0x0..=0x7 => from_bits((dcs >> 2) & 3),
        // Message waiting indication groups.
        0xc | 0xd => Ok(Alphabet::Gsm7),
        0xe => Ok(Alphabet::Ucs2),
        0xf => Ok(if dcs & 0x4 != 0 {
            Alphabet::Data
        } else {
            Alphabet::Gsm7
        }),
        _ => Err(PduError::Unsupported(format!("DCS {dcs:#04x}"))),
    }
}

/// Decodes user data: (concatenation, body).
fn decode_user_data(
    r: &mut Reader<'_>,
    dcs: u8,
    has_header: bool,
) -> Result<(Option<Concat>, Body), PduError> {
    let alphabet = alphabet(dcs)?;
    let udl = usize::from(r.byte("user data length")?);
    let octets = match alphabet {
        Alphabet::Gsm7 => (udl * 7).div_ceil(8),
        _ => udl,
    };
    let ud = r.take(octets, "user data")?;
    let mut concat = None;
    let mut header_octets = 0;
    if has_header {
        let udhl = usize::from(*ud.first().ok_or(PduError::Truncated("user data header"))?);
        let header = ud
            .get(1..1 + udhl)
            .ok_or(PduError::Truncated("user data header"))?;
        concat = parse_header(header);
        header_octets = 1 + udhl;
    }
    let body = match alphabet {
        Alphabet::Gsm7 => {
            let header_septets = (header_octets * 8).div_ceil(7);
            let fill = header_septets * 7 - header_octets * 8;
            let count = udl
                .checked_sub(header_septets)
                .ok_or(PduError::Truncated("user data"))?;
            let septets = gsm7::unpack(&ud[header_octets..], count, fill)
                .ok_or(PduError::Truncated("user data"))?;
            Body::Gsm7(septets)
        }
        Alphabet::Ucs2 => Body::Ucs2(
            ud[header_octets..]
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect(),
        ),
        Alphabet::Data => Body::Data(ud[header_octets..].to_vec()),
    };
    Ok((concat, body))
}

/// Finds the concatenation element in a user data header.
fn parse_header(mut header: &[u8]) -> Option<Concat> {
    while let [iei, len, rest @ ..] = header {
        let len = usize::from(*len);
        let data = rest.get(..len)?;
        match (iei, data) {
            (0x00, &[reference, total, seq]) if total > 0 => {
                return Some(Concat {
                    reference: u16::from(reference),
                    total,
                    seq,
                });
            }
            (0x08, &[hi, lo, total, seq]) if total > 0 => {
                return Some(Concat {
                    reference: u16::from_be_bytes([hi, lo]),
                    total,
                    seq,
                });
            }
            _ => header = &rest[len..],
        }
    }
    None
}

/// Decodes an SMS-DELIVER (SMSC field first).
pub fn decode_deliver(pdu: &[u8]) -> Result<Deliver, PduError> {
    let mut r = Reader { bytes: pdu };
    let smsc = Address::decode_smsc(&mut r)?;
    let first = r.byte("first octet")?;
    if first & 0x03 != 0x00 {
        return Err(PduError::Unsupported(format!(
            "message type {} is not SMS-DELIVER",
            first & 0x03
        )));
    }
    let sender = Address::decode(&mut r)?;
    let _pid = r.byte("protocol identifier")?;
    let dcs = r.byte("data coding scheme")?;
    let timestamp = Timestamp::decode(&mut r)?;
    let (concat, body) = decode_user_data(&mut r, dcs, first & 0x40 != 0)?;
    Ok(Deliver {
        smsc,
        sender,
        timestamp,
        dcs,
        concat,
        body,
    })
}

/// Decodes an SMS-SUBMIT (SMSC field first): what the simulator reads from `AT+CMGS`.
pub fn decode_submit(pdu: &[u8]) -> Result<Submit, PduError> {
    let mut r = Reader { bytes: pdu };
    Address::decode_smsc(&mut r)?;
    let first = r.byte("first octet")?;
    if first & 0x03 != 0x01 {
        return Err(PduError::Unsupported(format!(
            "message type {} is not SMS-SUBMIT",
            first & 0x03
        )));
    }
    let reference = r.byte("message reference")?;
    let recipient = Address::decode(&mut r)?;
    let _pid = r.byte("protocol identifier")?;
    let dcs = r.byte("data coding scheme")?;
    match (first >> 3) & 0x3 {
        0 => {}
        2 => {
            r.take(1, "validity period")?;
        }
        _ => {
            r.take(7, "validity period")?;
        }
    }
    let (concat, body) = decode_user_data(&mut r, dcs, first & 0x40 != 0)?;
    Ok(Submit {
        reference,
        recipient,
        dcs,
        concat,
        body,
    })
}

/// Septets (GSM 7-bit) or UTF-16 units (UCS2) per part, for one message or
/// for each part of a concatenated one (whose header takes 6 octets).
const GSM7_SINGLE: usize = 160;
const GSM7_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

/// Splits text into the bodies of the parts it needs: GSM 7-bit when every
/// character is in the alphabet (Swedish å ä ö are), else UCS2. Escapes and
/// surrogate pairs are never split across parts.
pub fn split(text: &str) -> Vec<Body> {
    match gsm7::encode(text) {
        Some(septets) if septets.len() <= GSM7_SINGLE => vec![Body::Gsm7(septets)],
        Some(_) => {
            let mut parts = vec![Vec::new()];
            for c in text.chars() {
                let s = gsm7::septets_of(c).expect("encodable: checked above");
                if parts.last().unwrap().len() + s.len() > GSM7_PART {
                    parts.push(Vec::new());
                }
                parts.last_mut().unwrap().extend_from_slice(s);
            }
            parts.into_iter().map(Body::Gsm7).collect()
        }
        None => {
            let units: Vec<u16> = text.encode_utf16().collect();
            if units.len() <= UCS2_SINGLE {
                return vec![Body::Ucs2(units)];
            }
            let mut parts = vec![Vec::new()];
            for c in text.chars() {
                let mut buf = [0u16; 2];
                let u = c.encode_utf16(&mut buf);
                if parts.last().unwrap().len() + u.len() > UCS2_PART {
                    parts.push(Vec::new());
                }
                parts.last_mut().unwrap().extend_from_slice(u);
            }
            parts.into_iter().map(Body::Ucs2).collect()
        }
    }
}

/// Encodes user data: (DCS, UDL, UD).
fn encode_user_data(body: &Body, concat: Option<Concat>) -> (u8, u8, Vec<u8>) {
    let header: Vec<u8> = concat.map_or_else(Vec::new, |c| {
        vec![5, 0x00, 3, c.reference as u8, c.total, c.seq]
    });
    match body {
        Body::Gsm7(septets) => {
            let header_septets = (header.len() * 8).div_ceil(7);
            let fill = header_septets * 7 - header.len() * 8;
            let mut ud = header;
            ud.extend(gsm7::pack(septets, fill));
            (0x00, (header_septets + septets.len()) as u8, ud)
        }
        Body::Ucs2(units) => {
            let mut ud = header;
            ud.extend(units.iter().flat_map(|u| u.to_be_bytes()));
            (0x08, ud.len() as u8, ud)
        }
        Body::Data(bytes) => {
            let mut ud = header;
            ud.extend(bytes);
            (0x04, ud.len() as u8, ud)
        }
    }
}

/// The parts of `text`, with concatenation info when there are several.
fn parts(text: &str, reference: u8) -> Vec<(Body, Option<Concat>)> {
    let bodies = split(text);
    let total = bodies.len().min(255) as u8;
    bodies
        .into_iter()
        .take(255)
        .enumerate()
        .map(|(i, body)| {
            let concat = (total > 1).then_some(Concat {
                reference: u16::from(reference),
                total,
                seq: i as u8 + 1,
            });
            (body, concat)
        })
        .collect()
}

/// Encodes `text` to `to` as SMS-SUBMIT PDUs (no SMSC: the SIM's is used),
/// one per part; `reference` ties the parts of a long message together.
pub fn encode_submit(to: &Address, text: &str, reference: u8) -> Vec<Encoded> {
    parts(text, reference)
        .into_iter()
        .map(|(body, concat)| {
            let (dcs, udl, ud) = encode_user_data(&body, concat);
            let udhi = if concat.is_some() { 0x40 } else { 0 };
            // SMS-SUBMIT, relative validity period (VPF 10).
            let mut tpdu = vec![0x01 | 0x10 | udhi, 0x00];
            tpdu.extend(to.encode());
            // PID 0, DCS, validity 0xAA = 4 days.
            tpdu.extend([0x00, dcs, 0xaa, udl]);
            tpdu.extend(ud);
            let mut pdu = vec![0x00];
            let tpdu_len = tpdu.len();
            pdu.extend(tpdu);
            Encoded { pdu, tpdu_len }
        })
        .collect()
}

/// Encodes `text` from `from` as SMS-DELIVER PDUs, one per part, as a
/// network would deliver them (used by the modem simulator).
pub fn encode_deliver(
    smsc: &Address,
    from: &Address,
    text: &str,
    timestamp: Timestamp,
    reference: u8,
) -> Vec<Vec<u8>> {
    parts(text, reference)
        .into_iter()
        .map(|(body, concat)| {
            let (dcs, udl, ud) = encode_user_data(&body, concat);
            let mut smsc_field = smsc.encode();
            // The SMSC length counts octets (type included), not digits.
            smsc_field[0] = (smsc_field.len() - 1) as u8;
            let mut pdu = smsc_field;
            // SMS-DELIVER, no more messages waiting.
            pdu.push(0x04 | if concat.is_some() { 0x40 } else { 0 });
            pdu.extend(from.encode());
            pdu.extend([0x00, dcs]);
            pdu.extend(timestamp.encode());
            pdu.push(udl);
            pdu.extend(ud);
            pdu
        })
        .collect()
}

#[cfg(test)]
mod tests;
