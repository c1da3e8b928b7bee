//! Plugin signatures: Ed25519 (`ed25519-dalek`) over the component's
//! SHA-256, detached. No primitive is written here; this file is the text
//! formats and which refusal is which.
//!
//! * Signed message: `postern-plugin-signature-v1\0` ‖ SHA-256(component)
//!   (32 raw bytes). The context string keeps a plugin signature from ever
//!   being valid for anything else signed with the same key.
//! * Public key: `ed25519:<base64 of 32 bytes>`; the `ed25519:` prefix is
//!   optional when reading. Its key id is the first 8 bytes of SHA-256(key),
//!   in hex (16 characters).
//! * Secret key file: `ed25519-secret:<base64 of the 32-byte seed>`.
//! * Signature (`FILE.wasm.sig`, or the `X-Postern-Plugin-Signature`
//!   header): `ed25519:<key id>:<base64 of 64 bytes>`. The key id says which
//!   trusted key must verify it, so "signed by a key we do not trust" and
//!   "the bytes changed after signing" are told apart.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

const CONTEXT: &[u8] = b"postern-plugin-signature-v1\0";
const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

/// Why a signature does not let a component in.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TrustError {
    #[error("unsigned: a signature is required (X-Postern-Plugin-Signature)")]
    Unsigned,
    #[error("the signature is not `ed25519:<key id>:<base64>`: {0}")]
    Malformed(String),
    #[error("signed by key {0}, which is not a trusted key")]
    UntrustedKey(String),
    #[error("the signature by key {0} does not match these bytes (changed after signing?)")]
    BadSignature(String),
}

impl TrustError {
    /// The API's `details.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            TrustError::Unsigned => "unsigned",
            TrustError::Malformed(_) => "malformed-signature",
            TrustError::UntrustedKey(_) => "untrusted-key",
            TrustError::BadSignature(_) => "bad-signature",
        }
    }
}

/// A public key that may sign plugins.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct PublicKey(VerifyingKey);

impl TryFrom<String> for PublicKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl PublicKey {
    /// `ed25519:<base64>` or the bare base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let b64 = text.strip_prefix(PUBLIC_PREFIX).unwrap_or(text);
        let bytes: [u8; 32] = B64
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("a public key is `ed25519:` and the base64 of 32 bytes")?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| "not an Ed25519 public key".to_string())
    }

    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }
}

/// A signing key (the operator's or a plugin author's, never the server's).
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the OS random source.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        Self(SigningKey::from_bytes(&seed))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let seed: [u8; 32] = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or("a secret key file holds `ed25519-secret:` and the base64 of 32 bytes")?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature text for a component.
    pub fn sign(&self, wasm: &[u8]) -> String {
        let sig = self.0.sign(&message(&Sha256::digest(wasm)));
        let id = self.public().key_id();
        format!("{PUBLIC_PREFIX}{id}:{}", B64.encode(sig.to_bytes()))
    }
}

fn message(sha256: &[u8]) -> Vec<u8> {
    [CONTEXT, sha256].concat()
}

/// A signature that verified: the key that made it and the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key_id: String,
    pub signature: String,
}

/// Checks `signature` (if any) of a component whose SHA-256 is `sha256`
/// against `trusted`. A signature that is present must verify even when
/// none is required; `Ok(None)`: unsigned and not required.
pub fn check(
    sha256: &[u8],
    signature: Option<&str>,
    trusted: &[PublicKey],
    required: bool,
) -> Result<Option<Verified>, TrustError> {
    let Some(text) = signature.map(str::trim).filter(|s| !s.is_empty()) else {
        return if required {
            Err(TrustError::Unsigned)
        } else {
            Ok(None)
        };
    };
    let (key_id, sig) = parse_signature(text)?;
    let key = trusted
        .iter()
        .find(|k| k.key_id() == key_id)
        .ok_or_else(|| TrustError::UntrustedKey(key_id.clone()))?;
    key.0
        .verify_strict(&message(sha256), &sig)
        .map_err(|_| TrustError::BadSignature(key_id.clone()))?;
    Ok(Some(Verified {
        key_id,
        signature: text.to_string(),
    }))
}

fn parse_signature(text: &str) -> Result<(String, Signature), TrustError> {
    let malformed = |m: &str| TrustError::Malformed(m.to_string());
    let rest = text
        .strip_prefix(PUBLIC_PREFIX)
        .ok_or_else(|| malformed("no `ed25519:` prefix"))?;
    let (key_id, b64) = rest.split_once(':').ok_or_else(|| malformed("no key id"))?;
    if key_id.len() != 16 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("the key id is not 16 hex digits"));
    }
    let bytes: [u8; 64] = B64
        .decode(b64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("the signature is not the base64 of 64 bytes"))?;
    Ok((key_id.to_ascii_lowercase(), Signature::from_bytes(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> Vec<u8> {
        Sha256::digest(b).to_vec()
    }

    #[test]
    fn sign_then_check() {
        let k = SecretKey::generate();
        let wasm = b"\0asm component bytes".to_vec();
        let sig = k.sign(&wasm);
        let trusted = [k.public()];
        let v = check(&sha(&wasm), Some(&sig), &trusted, true)
            .unwrap()
            .unwrap();
        assert_eq!(v.key_id, k.public().key_id());

        let mut tampered = wasm.clone();
        tampered[3] ^= 1;
        let e = check(&sha(&tampered), Some(&sig), &trusted, true).unwrap_err();
        assert_eq!(e.reason(), "bad-signature");

        let other = SecretKey::generate().public();
        let e = check(&sha(&wasm), Some(&sig), &[other], false).unwrap_err();
        assert_eq!(e.reason(), "untrusted-key");

        assert_eq!(check(&sha(&wasm), None, &trusted, false), Ok(None));
        assert_eq!(
            check(&sha(&wasm), None, &trusted, true),
            Err(TrustError::Unsigned)
        );
        for bad in ["nope", "ed25519:abc:xyz", "ed25519:0011223344556677:AAAA"] {
            let e = check(&sha(&wasm), Some(bad), &trusted, true).unwrap_err();
            assert_eq!(e.reason(), "malformed-signature", "{bad}");
        }
    }

    #[test]
    fn key_texts_round_trip() {
        let k = SecretKey::generate();
        let again = SecretKey::parse(&k.to_text()).unwrap();
        assert_eq!(again.public(), k.public());
        let p = PublicKey::parse(&k.public().to_text()).unwrap();
        assert_eq!(p, k.public());
        let bare = k.public().to_text().replace("ed25519:", "");
        assert_eq!(PublicKey::parse(&bare).unwrap(), p);
        assert!(PublicKey::parse("ed25519:AAAA").is_err());
        assert!(SecretKey::parse(&k.public().to_text()).is_err());
        assert_eq!(p.key_id().len(), 16);
    }
}
