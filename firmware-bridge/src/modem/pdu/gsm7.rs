//! The GSM 7-bit default alphabet and its extension table (3GPP TS 23.038
//! §6.2.1), and septet packing (§6.1.2.1).

/// The escape to the extension table.
pub const ESC: u8 = 0x1b;

/// The default alphabet, indexed by septet. 0x1B is the escape (shown as a
/// space if it ends a message).
const DEFAULT: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (septet after ESC, character).
const EXTENSION: [(u8, char); 10] = [
    (0x0a, '\u{c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2f, '\\'),
    (0x3c, '['),
    (0x3d, '~'),
    (0x3e, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The septets of `c`: one, two (escape + extension), or none if `c` is
/// not in the GSM alphabet.
pub fn septets_of(c: char) -> Option<&'static [u8]> {
    static SEPTETS: [u8; 128] = {
        let mut table = [0u8; 128];
        let mut i = 0;
        while i < 128 {
            table[i] = i as u8;
            i += 1;
        }
        table
    };
    static EXTENDED: [[u8; 2]; 10] = {
        let mut table = [[0u8; 2]; 10];
        let mut i = 0;
        while i < 10 {
            table[i] = [ESC, EXTENSION[i].0];
            i += 1;
        }
        table
    };
    if let Some(i) = EXTENSION.iter().position(|&(_, e)| e == c) {
        return Some(&EXTENDED[i]);
    }
    // 0x1B is the escape, not a space: a space is 0x20.
    DEFAULT
        .iter()
        .enumerate()
        .position(|(i, &d)| d == c && i != usize::from(ESC))
        .map(|i| std::slice::from_ref(&SEPTETS[i]))
}

/// The septets of `text`, or None if a character is not in the alphabet.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let mut septets = Vec::with_capacity(text.len());
    for c in text.chars() {
        septets.extend_from_slice(septets_of(c)?);
    }
    Some(septets)
}

/// Text from septets. An escape followed by a code the extension table
/// does not define shows that code's default character, as 23.038 asks.
pub fn decode(septets: &[u8]) -> String {
    let mut text = String::with_capacity(septets.len());
    let mut iter = septets.iter().map(|s| s & 0x7f);
    while let Some(s) = iter.next() {
        if s != ESC {
            text.push(DEFAULT[usize::from(s)]);
            continue;
        }
        match iter.next() {
            Some(e) => text.push(
                EXTENSION
                    .iter()
                    .find(|&&(code, _)| code == e)
                    .map_or(DEFAULT[usize::from(e)], |&(_, c)| c),
            ),
            None => text.push(' '),
        }
    }
    text
}

/// Packs septets into octets after `fill` zero bits (used to align text
/// after a user data header).
pub fn pack(septets: &[u8], fill: usize) -> Vec<u8> {
    let bits = fill + septets.len() * 7;
    let mut out = vec![0u8; bits.div_ceil(8)];
    for (i, &s) in septets.iter().enumerate() {
        let pos = fill + i * 7;
        let value = u16::from(s & 0x7f) << (pos % 8);
        out[pos / 8] |= value as u8;
        if let Some(next) = out.get_mut(pos / 8 + 1) {
            *next |= (value >> 8) as u8;
        }
    }
    out
}

/// Unpacks `count` septets from octets after `fill` bits; None if the
/// octets are too short.
pub fn unpack(octets: &[u8], count: usize, fill: usize) -> Option<Vec<u8>> {
    if (fill + count * 7).div_ceil(8) > octets.len() {
        return None;
    }
    Some(
        (0..count)
            .map(|i| {
                let pos = fill + i * 7;
                let low = u16::from(octets[pos / 8]);
                let high = u16::from(octets.get(pos / 8 + 1).copied().unwrap_or(0));
                (((high << 8 | low) >> (pos % 8)) & 0x7f) as u8
            })
            .collect(),
    )
}
