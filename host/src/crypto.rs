//! The server's secret key and what is derived from it: encryption of
//! stored secrets (XChaCha20-Poly1305) and keyed hashes.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::secret::Secret;

#[derive(Debug, Error)]
pub enum CryptoError {
    #[error("server.secret_key must be 32 bytes as 64 hex digits or base64")]
    BadKey,
    #[error("cannot read or create {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("stored data cannot be decrypted (wrong server.secret_key?)")]
    Decrypt,
}

/// Keys derived from the 32-byte server secret.
#[derive(Clone)]
pub struct Keys {
    cipher: XChaCha20Poly1305,
    mac_key: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

fn derive(master: &[u8; 32], label: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

fn parse_key(s: &str) -> Result<[u8; 32], CryptoError> {
    let s = s.trim();
    let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(s).map_err(|_| CryptoError::BadKey)?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
            .map_err(|_| CryptoError::BadKey)?
    };
    bytes.try_into().map_err(|_| CryptoError::BadKey)
}

impl Keys {
    pub fn from_master(master: &[u8; 32]) -> Self {
        let enc = derive(master, "postern/v1/encryption");
        Self {
            cipher: XChaCha20Poly1305::new(&enc.into()),
            mac_key: derive(master, "postern/v1/mac"),
        }
    }

    /// The configured key, else `data_dir/secret.key`, created (mode 0600)
    /// on first start.
    pub fn load_or_create(
        configured: Option<&Secret>,
        data_dir: &Path,
    ) -> Result<Self, CryptoError> {
        if let Some(s) = configured {
            return Ok(Self::from_master(&parse_key(s.expose())?));
        }
        let path = data_dir.join("secret.key");
        let io_err = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Self::from_master(&parse_key(&text)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io_err)?;
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&path).map_err(io_err)?;
                f.write_all(hex::encode(key).as_bytes()).map_err(io_err)?;
                f.sync_all().map_err(io_err)?;
                Ok(Self::from_master(&key))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// Encrypts `plain`, bound to `context` (e.g. the row id) so a ciphertext
    /// cannot be moved to another row. Output: nonce ‖ ciphertext.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("encryption of in-memory data does not fail"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 24 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }

    /// HMAC-SHA256 under the server's MAC key (codes are stored only as this).
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

/// Hex SHA-256, for API keys and tokens (high-entropy, so no slow hash needed).
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Constant-time comparison of two hex digests.
pub fn digest_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A random token: `prefix` + 32 bytes base64url.
pub fn random_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_context_binding() {
        let k = Keys::from_master(&[7; 32]);
        let sealed = k.seal("row-1", b"123456");
        assert!(!sealed.windows(6).any(|w| w == b"123456"));
        assert_eq!(k.open("row-1", &sealed).unwrap(), b"123456");
        assert!(k.open("row-2", &sealed).is_err());
        let other = Keys::from_master(&[8; 32]);
        assert!(other.open("row-1", &sealed).is_err());
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keys::load_or_create(None, dir.path()).unwrap();
        let b = Keys::load_or_create(None, dir.path()).unwrap();
        assert_eq!(a.mac(b"x"), b.mac(b"x"));
        assert!(Keys::load_or_create(Some(&Secret::new("short")), dir.path()).is_err());
        let hex_key = "ab".repeat(32);
        Keys::load_or_create(Some(&Secret::new(hex_key)), dir.path()).unwrap();
    }
}
