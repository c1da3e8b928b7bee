//! Passwords: argon2id over the hex SHA-256 of the password, so the
//! Rocket.Chat `password` method (`x-2fa-code` = hex SHA-256 of the password)
//! and DDP's `{digest, algorithm: "sha-256"}` verify against the same hash.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::crypto::sha256_hex;

/// The digest clients send for a plain password.
pub fn digest(plain: &str) -> String {
    sha256_hex(plain.as_bytes())
}

pub fn hash(plain: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(digest(plain).as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

/// Checks a hex SHA-256 digest (any case) against a stored hash.
pub fn verify_digest(digest: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(digest.trim().to_ascii_lowercase().as_bytes(), &parsed)
        .is_ok()
}

/// [`verify_digest`] off the async threads: argon2 takes tens of milliseconds.
pub async fn verify_digest_blocking(digest: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match stored {
        Some(h) => verify_digest(&digest, &h),
        None => {
            burn();
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Spends the time of one verification, so unknown users cost as much as
/// known ones.
pub fn burn() {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("postern-timing-equaliser").unwrap_or_default());
    let _ = verify_digest(&digest("x"), stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_digest_verify_against_one_hash() {
        let h = hash("correct horse").unwrap();
        assert!(verify_digest(&digest("correct horse"), &h));
        assert!(verify_digest(&digest("correct horse").to_uppercase(), &h));
        assert!(!verify_digest(&digest("wrong"), &h));
        assert!(!verify_digest("", "not a hash"));
    }
}
