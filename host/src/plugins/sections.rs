//! The section layout of a component file, as far as larm reads it: the
//! preamble and each section's bounds, and custom sections' names and
//! bodies. Signatures (`updates::signature`) and precompiled plugins
//! (`plugins::precompiled`) are custom sections.
//!
//! Written here rather than taken from `wasmparser`: only the outer frame
//! is read (no section's contents are parsed), and a file of untrusted
//! bytes must be walked without allocating per section.

/// The component binary's preamble: magic, version 13, layer 1.
pub const COMPONENT_PREAMBLE: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 0x01, 0];

/// The bytes are not a component's frame (no preamble, or a section runs
/// past the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a WebAssembly component")]
pub struct NotAComponent;

/// One section of a component file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    /// Where its id byte is.
    pub start: usize,
    /// Just past its last byte.
    pub end: usize,
    /// For a custom section (id 0): its name and body.
    pub custom: Option<(&'a [u8], &'a [u8])>,
}

/// The sections of `component`, in order; an error ends the walk.
pub fn walk(component: &[u8]) -> impl Iterator<Item = Result<Section<'_>, NotAComponent>> {
    let mut at = if component.get(..8) == Some(&COMPONENT_PREAMBLE[..]) {
        Some(8)
    } else {
        None
    };
    let mut failed = at.is_none();
    std::iter::from_fn(move || {
        if failed {
            failed = false;
            return Some(Err(NotAComponent));
        }
        let start = at.filter(|&a| a < component.len())?;
        let section = section_at(component, start);
        at = section.ok().map(|s| s.end);
        Some(section)
    })
}

fn section_at(component: &[u8], start: usize) -> Result<Section<'_>, NotAComponent> {
    let id = component[start];
    let (size, used) = leb128(&component[start + 1..]).ok_or(NotAComponent)?;
    let body_at = start + 1 + used;
    let end = body_at
        .checked_add(size)
        .filter(|&end| end <= component.len())
        .ok_or(NotAComponent)?;
    let custom = if id == 0 {
        let payload = &component[body_at..end];
        let (len, used) = leb128(payload).ok_or(NotAComponent)?;
        let name_end = used.checked_add(len).ok_or(NotAComponent)?;
        let name = payload.get(used..name_end).ok_or(NotAComponent)?;
        Some((name, &payload[name_end..]))
    } else {
        None
    };
    Ok(Section { start, end, custom })
}

/// Appends a custom section `name` holding `body`.
pub fn append_custom(out: &mut Vec<u8>, name: &str, body: &[u8]) {
    let mut header = Vec::with_capacity(name.len() + 5);
    push_leb128(&mut header, name.len());
    header.extend_from_slice(name.as_bytes());
    out.push(0);
    push_leb128(out, header.len() + body.len());
    out.extend(header);
    out.extend_from_slice(body);
}

/// An unsigned LEB128 of at most 5 bytes (a u32): its value and length.
fn leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().take(5).enumerate() {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn push_leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_sections_are_walked_in_order_with_their_bounds() {
        let mut file = COMPONENT_PREAMBLE.to_vec();
        append_custom(&mut file, "first", b"one");
        let second_at = file.len();
        append_custom(&mut file, "second", &[7; 300]);
        let sections: Vec<Section> = walk(&file).collect::<Result<_, _>>().unwrap();
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].custom, Some((&b"first"[..], &b"one"[..])));
        assert_eq!(
            (sections[1].start, sections[1].end),
            (second_at, file.len())
        );
        assert_eq!(sections[1].custom.unwrap().1, &[7; 300][..]);
    }

    #[test]
    fn a_truncated_or_foreign_file_is_not_a_component() {
        let mut file = COMPONENT_PREAMBLE.to_vec();
        append_custom(&mut file, "name", b"body");
        for cut in 9..file.len() {
            assert!(
                walk(&file[..cut]).any(|s| s.is_err()),
                "cut at {cut} walked cleanly"
            );
        }
        assert_eq!(walk(b"\x7fELF....").next(), Some(Err(NotAComponent)));
        assert_eq!(walk(&COMPONENT_PREAMBLE).count(), 0);
    }
}
