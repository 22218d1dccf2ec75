//! Component signatures: minisign (Ed25519), carried inside the component.
//!
//! A signed component is the component's bytes followed by one custom
//! section, `larm-signature`, whose payload is a standard minisign
//! signature (the text of a `.minisig` file) of the bytes before it. Its
//! trusted comment, which the signature covers too, names the plugin it is
//! meant for (`larm-plugin name=NAME`), so a component signed for one
//! plugin cannot be installed as another, with the other's grants. A custom
//! section changes nothing for the runtime: the signed file is itself a
//! valid component, loadable as it is.
//!
//! Why minisign and not the WebAssembly signatures format (`wasmsign2`):
//! `wasmsign2` says it is a proof of concept for core modules, and its
//! component support is unsettled; minisign is a maintained format with a
//! stock CLI and crates for both signing and verifying, and nothing about
//! it depends on what the signed bytes are.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};
use sha2::{Digest, Sha256};

use crate::plugins::sections::{self, append_custom};

/// The name of the custom section that carries the signature.
pub const SECTION: &str = "larm-signature";
/// The trusted comment's prefix; the plugin's name follows.
const COMMENT: &str = "larm-plugin name=";
/// A signature is a few hundred bytes; a section this long is not one.
const MAX_SIGNATURE: usize = 4096;

/// Why a component's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not a WebAssembly component at all.
    #[error("not a WebAssembly component")]
    NotAComponent,
    /// The component carries no signature.
    #[error("the component is not signed")]
    Unsigned,
    /// The signature section is not a minisign signature for a plugin.
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    /// Signed with a key the unit does not trust.
    #[error("signed by key {0}, which is not among [updates] trusted_keys")]
    UntrustedKey(String),
    /// The bytes or the plugin name were changed after signing.
    #[error(
        "the signature does not match: the component, or the plugin name it was signed for, was changed after signing"
    )]
    Tampered,
    /// Signed for another plugin.
    #[error("signed for the plugin `{signed}`, not for `{wanted}`")]
    WrongName {
        /// The name in the signature.
        signed: String,
        /// The plugin it was offered as.
        wanted: String,
    },
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file is not a minisign key.
    #[error("{0}: not a minisign key: {1}")]
    Format(PathBuf, String),
}

/// A public key the unit trusts.
#[derive(Clone)]
pub struct TrustedKey {
    key: minisign_verify::PublicKey,
    id: String,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKey({})", self.id)
    }
}

impl TrustedKey {
    /// Reads a minisign public key file (`PREFIX.pub`, or the stock CLI's
    /// `minisign.pub`).
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text = read_key(path)?;
        let format = |e: &dyn std::fmt::Display| KeyError::Format(path.into(), e.to_string());
        let id = PublicKeyBox::from_string(&text)
            .and_then(PublicKeyBox::into_public_key)
            .map_err(|e| format(&e))?
            .keynum()
            .to_vec();
        let key = minisign_verify::PublicKey::decode(&text).map_err(|e| format(&e))?;
        Ok(Self {
            id: key_id(&id),
            key,
        })
    }

    /// The key's id, as minisign shows it (16 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A key file is a few hundred bytes of text; it is read with that bound.
fn read_key(path: &Path) -> Result<String, KeyError> {
    const MAX_KEY_BYTES: u64 = 4096;
    let bytes = crate::state::read_bounded(path, MAX_KEY_BYTES)
        .map_err(|e| KeyError::Io(path.into(), e))?;
    String::from_utf8(bytes).map_err(|_| KeyError::Format(path.into(), "not text".into()))
}

/// minisign's key id: 8 bytes, shown as hex of the little-endian number.
fn key_id(keynum: &[u8]) -> String {
    keynum.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// Writes a new key pair: `PREFIX.key` (secret, readable by its owner
/// only, not encrypted) and `PREFIX.pub`. Returns the key id.
pub fn keygen(prefix: &Path) -> Result<String, KeyError> {
    let KeyPair { pk, sk } = KeyPair::generate_unencrypted_keypair()
        .map_err(|e| KeyError::Format(prefix.into(), e.to_string()))?;
    let secret = sk
        .to_box(Some("larm plugin signing key"))
        .map_err(|e| KeyError::Format(prefix.into(), e.to_string()))?
        .to_string();
    let public = pk
        .to_box()
        .map_err(|e| KeyError::Format(prefix.into(), e.to_string()))?
        .to_string();
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", prefix.display()));
    let (key_file, pub_file) = (with("key"), with("pub"));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)
            .map_err(|e| KeyError::Io(key_file.clone(), e))?;
        file.write_all(secret.as_bytes())
            .map_err(|e| KeyError::Io(key_file.clone(), e))?;
    }
    std::fs::write(&pub_file, public).map_err(|e| KeyError::Io(pub_file, e))?;
    Ok(key_id(pk.keynum()))
}

/// Reads a secret key: one from [`keygen`], or the stock CLI's (encrypted:
/// its password is asked for on the terminal).
pub fn read_secret_key(path: &Path) -> Result<SecretKey, KeyError> {
    let text = read_key(path)?;
    let format = |e: minisign::PError| KeyError::Format(path.into(), e.to_string());
    let secret = SecretKeyBox::from_string(&text).map_err(format)?;
    let unencrypted = secret.clone().into_unencrypted_secret_key();
    match unencrypted {
        Ok(key) if !key.is_encrypted() => Ok(key),
        _ => secret.into_secret_key(None).map_err(format),
    }
}

/// Signs `component` for the plugin `name`: the result is what the unit
/// accepts for that plugin.
pub fn sign(component: &[u8], name: &str, key: &SecretKey) -> Result<Vec<u8>, SignatureError> {
    let (bytes, signature) = split(component)?;
    if signature.is_some() {
        return Err(SignatureError::Malformed(
            "the component is signed already".into(),
        ));
    }
    if !crate::config::is_plugin_name(name) {
        return Err(SignatureError::Malformed(format!(
            "`{}` is not a plugin name",
            name.escape_debug()
        )));
    }
    let signature = minisign::sign(
        None,
        key,
        Cursor::new(bytes),
        Some(&format!("{COMMENT}{name}")),
        Some(&format!("larm component signature for plugin {name}")),
    )
    .map_err(|e| SignatureError::Malformed(e.to_string()))?
    .to_string();
    let mut signed = bytes.to_vec();
    append_custom(&mut signed, SECTION, signature.as_bytes());
    Ok(signed)
}

/// What a valid signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The plugin it was signed for.
    pub name: String,
    /// The id of the key that signed it.
    pub key_id: String,
}

/// Checks `signed` against the trusted keys, for the plugin `name` when
/// given. Returns what the signature says.
pub fn verify(
    signed: &[u8],
    keys: &[TrustedKey],
    name: Option<&str>,
) -> Result<Verified, SignatureError> {
    let (bytes, signature) = split(signed)?;
    let signature = signature.ok_or(SignatureError::Unsigned)?;
    let text =
        std::str::from_utf8(signature).map_err(|_| SignatureError::Malformed("not text".into()))?;
    // Both parsers read the text; the verify-only one checks every length.
    let key_id = key_id(
        SignatureBox::from_string(text)
            .map_err(|e| SignatureError::Malformed(e.to_string()))?
            .keynum(),
    );
    let signature = minisign_verify::Signature::decode(text)
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let key = keys
        .iter()
        .find(|k| k.id == key_id)
        .ok_or_else(|| SignatureError::UntrustedKey(key_id.clone()))?;
    // Pre-hashed signatures only (what minisign makes): a legacy one would
    // have the whole component signed as it is.
    key.key
        .verify(bytes, &signature, false)
        .map_err(|_| SignatureError::Tampered)?;
    let signed_name = signature
        .trusted_comment()
        .strip_prefix(COMMENT)
        .map(str::to_string)
        .ok_or_else(|| SignatureError::Malformed("it names no plugin".into()))?;
    if let Some(wanted) = name
        && wanted != signed_name
    {
        return Err(SignatureError::WrongName {
            signed: signed_name,
            wanted: wanted.into(),
        });
    }
    Ok(Verified {
        name: signed_name,
        key_id,
    })
}

/// SHA-256 of a component's bytes without its signature, in hex: the same
/// component signed twice has one hash.
pub fn component_sha256(signed: &[u8]) -> Result<String, SignatureError> {
    let (bytes, _) = split(signed)?;
    Ok(Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Splits a component into the bytes that were signed and the signature
/// section's payload, if it ends with one. A signature section anywhere
/// but last is refused: bytes after it would be unsigned.
fn split(component: &[u8]) -> Result<(&[u8], Option<&[u8]>), SignatureError> {
    let mut signature = None;
    for section in sections::walk(component) {
        let section = section.map_err(|_| SignatureError::NotAComponent)?;
        if let Some((name, body)) = section.custom
            && name == SECTION.as_bytes()
        {
            if signature.is_some() || section.end != component.len() {
                return Err(SignatureError::Malformed(
                    "the signature must be the component's last section".into(),
                ));
            }
            if body.len() > MAX_SIGNATURE {
                return Err(SignatureError::Malformed("too long".into()));
            }
            signature = Some((section.start, body));
        }
    }
    Ok(match signature {
        Some((start, body)) => (&component[..start], Some(body)),
        None => (component, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::sections::COMPONENT_PREAMBLE;

    /// The smallest component: the preamble and one custom section.
    fn component() -> Vec<u8> {
        let mut c = COMPONENT_PREAMBLE.to_vec();
        append_custom(&mut c, "name", b"\x00\x04test");
        c
    }

    fn keys(dir: &Path) -> (SecretKey, TrustedKey) {
        let prefix = dir.join("k");
        let id = keygen(&prefix).unwrap();
        let public = TrustedKey::read(&dir.join("k.pub")).unwrap();
        assert_eq!(public.id(), id);
        (read_secret_key(&dir.join("k.key")).unwrap(), public)
    }

    #[test]
    fn a_signed_component_verifies_for_its_name_only() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keys(dir.path());
        let signed = sign(&component(), "rules", &secret).unwrap();
        let verified = verify(&signed, std::slice::from_ref(&public), Some("rules")).unwrap();
        assert_eq!(verified.name, "rules");
        assert_eq!(verified.key_id, public.id());
        assert_eq!(
            verify(&signed, std::slice::from_ref(&public), Some("other")),
            Err(SignatureError::WrongName {
                signed: "rules".into(),
                wanted: "other".into()
            })
        );
        assert_eq!(
            component_sha256(&signed).unwrap(),
            component_sha256(&component()).unwrap()
        );
    }

    #[test]
    fn tampered_unsigned_and_foreign_components_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keys(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (_, stranger) = keys(other.path());
        let signed = sign(&component(), "rules", &secret).unwrap();
        let trusted = std::slice::from_ref(&public);
        // Any byte of the component flipped.
        for i in 8..component().len() {
            let mut bad = signed.clone();
            bad[i] ^= 0x01;
            assert!(verify(&bad, trusted, None).is_err(), "byte {i}");
        }
        assert_eq!(
            verify(&component(), trusted, None),
            Err(SignatureError::Unsigned)
        );
        assert_eq!(
            verify(&signed, std::slice::from_ref(&stranger), None),
            Err(SignatureError::UntrustedKey(public.id().into()))
        );
        // Bytes appended after the signature are not signed.
        let mut longer = signed.clone();
        append_custom(&mut longer, "extra", b"x");
        assert!(matches!(
            verify(&longer, trusted, None),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            verify(b"not wasm", trusted, None),
            Err(SignatureError::NotAComponent)
        );
        assert!(sign(&signed, "rules", &secret).is_err(), "signed twice");
    }

    /// A signature whose fields have the wrong lengths is refused, not a
    /// panic (minisign's own verify indexes a short global signature).
    #[test]
    fn a_signature_of_the_wrong_shape_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keys(dir.path());
        let signed = sign(&component(), "rules", &secret).unwrap();
        let (bytes, signature) = split(&signed).unwrap();
        let text = String::from_utf8(signature.unwrap().to_vec()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[3] = "AAAA";
        let mut short = bytes.to_vec();
        append_custom(&mut short, SECTION, lines.join("\n").as_bytes());
        assert!(matches!(
            verify(&short, &[public], Some("rules")),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn the_name_in_the_signature_cannot_be_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keys(dir.path());
        let signed = sign(&component(), "rules", &secret).unwrap();
        let (bytes, signature) = split(&signed).unwrap();
        let forged_sig = String::from_utf8(signature.unwrap().to_vec())
            .unwrap()
            .replace("name=rules", "name=evilx");
        let mut forged = bytes.to_vec();
        append_custom(&mut forged, SECTION, forged_sig.as_bytes());
        assert_eq!(
            verify(&forged, &[public], Some("evilx")),
            Err(SignatureError::Tampered)
        );
    }
}
