//! Plugins compiled ahead of time, for the board they run on: what a
//! `runtime-only` larmd (built without Cranelift) loads, and what spares a
//! small board the compile.
//!
//! A precompiled plugin is itself a component file, with no contents of
//! its own: the component preamble and one custom section,
//! `larm-precompiled`, whose body is the board it was compiled for, a
//! SHA-256 of that and the code, and wasmtime's serialized component. Being a
//! component file, it is signed (`larmd plugin sign`), installed and
//! listed like any other, and a larmd that cannot run it says why.
//!
//! Machine code is trusted as it is, so it is loaded only from what the
//! unit trusts: the config's own files (like the binary itself), and field
//! updates with a good signature (never an unsigned one, even with
//! `[updates] allow_unsigned`). The checksum catches a file damaged on
//! flash before its code runs.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::sections::{self, COMPONENT_PREAMBLE};

/// The name of the custom section that carries the compiled code.
pub const SECTION: &str = "larm-precompiled";

/// A board larmd runs on, as `larmd plugin compile --target` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// 64-bit x86 Linux: native code.
    X86_64,
    /// 64-bit ARM Linux: native code.
    Aarch64,
    /// 32-bit ARM Linux (hard float): Cranelift has no backend for it, so
    /// plugins run on Pulley, wasmtime's interpreter.
    Armv7,
}

impl Target {
    /// Every board target.
    pub const ALL: [Self; 3] = [Self::X86_64, Self::Aarch64, Self::Armv7];

    /// The target this larmd was built for, if it is a board target.
    pub fn host() -> Option<Self> {
        if cfg!(target_arch = "x86_64") {
            Some(Self::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Self::Aarch64)
        } else if cfg!(target_arch = "arm") {
            Some(Self::Armv7)
        } else {
            None
        }
    }

    /// This machine's board target, or its architecture if it is none.
    pub fn host_name() -> &'static str {
        Self::host().map_or(std::env::consts::ARCH, Self::triple)
    }

    /// Its Rust target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-unknown-linux-gnu",
            Self::Aarch64 => "aarch64-unknown-linux-gnu",
            Self::Armv7 => "armv7-unknown-linux-gnueabihf",
        }
    }

    /// What wasmtime compiles for when plugins run there.
    pub fn engine_target(self) -> &'static str {
        match self {
            Self::Armv7 => "pulley32",
            other => other.triple(),
        }
    }

    /// Whether its addresses are 32 bits (memories are laid out tighter).
    pub fn is_32_bit(self) -> bool {
        self == Self::Armv7
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.triple())
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.triple() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|t| t.triple()).collect();
                format!(
                    "no board target `{}`: one of {}",
                    s.escape_debug(),
                    all.join(", ")
                )
            })
    }
}

/// Why a precompiled plugin's file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecompiledError {
    /// Its section is cut short or its code does not match its checksum.
    #[error("the precompiled plugin is damaged (its code does not match its checksum)")]
    Damaged,
    /// It names a target this larmd does not know.
    #[error("the precompiled plugin names an unknown target `{0}`")]
    UnknownTarget(String),
    /// It holds two `larm-precompiled` sections.
    #[error("a precompiled plugin holds one `larm-precompiled` section")]
    Misplaced,
}

/// The code in a precompiled plugin's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precompiled<'a> {
    /// The board it was compiled for.
    pub target: Target,
    /// wasmtime's serialized component.
    pub code: &'a [u8],
}

/// The file of a precompiled plugin for `target`.
pub fn wrap(target: Target, code: &[u8]) -> Vec<u8> {
    let triple = target.triple().as_bytes();
    let mut body = Vec::with_capacity(1 + triple.len() + 32 + code.len());
    body.push(triple.len() as u8);
    body.extend_from_slice(triple);
    body.extend_from_slice(&checksum(triple, code));
    body.extend_from_slice(code);
    let mut file = COMPONENT_PREAMBLE.to_vec();
    sections::append_custom(&mut file, SECTION, &body);
    file
}

/// The precompiled code in `file`, if it is a precompiled plugin's file
/// (`None` for a component to compile, or bytes that are no component at
/// all: compiling them says why).
pub fn parse(file: &[u8]) -> Result<Option<Precompiled<'_>>, PrecompiledError> {
    let mut found = None;
    for (i, section) in sections::walk(file).enumerate() {
        let Ok(section) = section else {
            // Cut short: it is damaged if it began as a precompiled plugin.
            return match found.is_some() || begins_precompiled(file) {
                true => Err(PrecompiledError::Damaged),
                false => Ok(None),
            };
        };
        match section.custom {
            Some((name, body)) if name == SECTION.as_bytes() => {
                if found.is_some() {
                    return Err(PrecompiledError::Misplaced);
                }
                found = Some(body);
            }
            _ if i == 0 => return Ok(None),
            _ => {}
        }
    }
    let Some(body) = found else {
        return Ok(None);
    };
    let (&len, rest) = body.split_first().ok_or(PrecompiledError::Damaged)?;
    let (triple, rest) = rest
        .split_at_checked(usize::from(len))
        .ok_or(PrecompiledError::Damaged)?;
    let (digest, code) = rest.split_at_checked(32).ok_or(PrecompiledError::Damaged)?;
    if *digest != checksum(triple, code) {
        return Err(PrecompiledError::Damaged);
    }
    let triple = std::str::from_utf8(triple).map_err(|_| PrecompiledError::Damaged)?;
    let target = triple
        .parse()
        .map_err(|_| PrecompiledError::UnknownTarget(triple.escape_debug().to_string()))?;
    Ok(Some(Precompiled { target, code }))
}

/// Whether `file` begins as a precompiled plugin's file does: the preamble,
/// then a custom section of our name (its size being at most 5 bytes).
fn begins_precompiled(file: &[u8]) -> bool {
    file.get(..8) == Some(&COMPONENT_PREAMBLE[..])
        && file.get(8) == Some(&0)
        && file
            .get(9..9 + 6 + SECTION.len())
            .is_some_and(|head| head.windows(SECTION.len()).any(|w| w == SECTION.as_bytes()))
}

/// SHA-256 of the target's name and the code.
fn checksum(triple: &[u8], code: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(triple);
    hash.update(code);
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_file_gives_back_its_target_and_code() {
        let file = wrap(Target::Aarch64, b"machine code");
        assert_eq!(
            parse(&file),
            Ok(Some(Precompiled {
                target: Target::Aarch64,
                code: b"machine code"
            }))
        );
        // Signed, it is still the same plugin.
        let mut signed = file.clone();
        sections::append_custom(&mut signed, "larm-signature", b"sig");
        assert_eq!(parse(&signed).unwrap().unwrap().code, b"machine code");
    }

    #[test]
    fn a_component_is_not_precompiled() {
        let mut component = COMPONENT_PREAMBLE.to_vec();
        component.extend_from_slice(&[7, 1, 0]);
        assert_eq!(parse(&component), Ok(None));
        assert_eq!(parse(b"\x7fELF"), Ok(None));
    }

    #[test]
    fn a_damaged_or_misplaced_section_is_refused() {
        let file = wrap(Target::X86_64, b"code");
        for i in 8..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert_ne!(
                parse(&bad).ok().flatten().map(|p| (p.target, p.code)),
                Some((Target::X86_64, &b"code"[..])),
                "byte {i} flipped went unnoticed"
            );
        }
        // Cut short anywhere once its section's name is in.
        for cut in 9 + 6 + SECTION.len()..file.len() {
            assert!(parse(&file[..cut]).is_err(), "cut at {cut} went unnoticed");
        }
        let mut twice = file.clone();
        sections::append_custom(&mut twice, SECTION, b"again");
        assert_eq!(parse(&twice), Err(PrecompiledError::Misplaced));
    }

    #[test]
    fn targets_are_named_by_their_triples() {
        for target in Target::ALL {
            assert_eq!(target.triple().parse(), Ok(target));
        }
        assert!("riscv64gc-unknown-linux-gnu".parse::<Target>().is_err());
        assert_eq!(Target::Armv7.engine_target(), "pulley32");
    }
}
