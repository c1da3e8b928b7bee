//! Passwords: argon2id over the hex SHA-256 of the password, so the
//! Rocket.Chat `password` method (`x-2fa-code` = hex SHA-256 of the password)
//! and DDP's `{digest, algorithm: "sha-256"}` verify against the same hash.

use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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
    verify(digest.trim().to_ascii_lowercase().as_bytes(), &parsed).unwrap_or(false)
}

/// What `PasswordVerifier::verify_password` does, but in a scratch buffer
/// from [`SCRATCH`]: with a fresh 19 MiB allocation per check, most of a
/// login's CPU went to the kernel zeroing new pages (README "Performance").
fn verify(password: &[u8], parsed: &PasswordHash) -> Option<bool> {
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(parsed).ok()?;
    let expected = parsed.hash?;
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let hashed = SCRATCH.with(blocks, |memory| {
        argon2.hash_password_into_with_memory(password, salt, &mut out, memory)
    });
    hashed.ok()?;
    // Output's equality is constant-time.
    Some(Output::new(&out).ok()? == expected)
}

/// argon2's working memory, reused: at most one buffer per core, and as
/// many checks at a time, so concurrent logins cannot allocate
/// `m_cost` each (32 at once were 608 MiB). Once logins have run, the
/// buffers stay resident: one `m_cost` (19 MiB by default) per core.
static SCRATCH: Scratch = Scratch {
    free: Mutex::new((Vec::new(), 0)),
    returned: Condvar::new(),
};

struct Scratch {
    /// Idle buffers, and how many exist in all.
    free: Mutex<(Vec<Vec<Block>>, usize)>,
    returned: Condvar,
}

impl Scratch {
    /// Runs `f` with a buffer of at least `blocks` blocks; blocks the
    /// (blocking-pool) thread while every buffer is in use.
    fn with<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        // Read once: `available_parallelism` reads cgroup files each call.
        static LIMIT: OnceLock<usize> = OnceLock::new();
        let limit =
            *LIMIT.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut lent = Lent {
            pool: self,
            buf: self.take(limit),
        };
        if lent.buf.len() < blocks {
            lent.buf.resize(blocks, Block::new());
        }
        f(&mut lent.buf[..blocks])
    }

    fn take(&self, limit: usize) -> Vec<Block> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(b) = free.0.pop() {
                return b;
            }
            if free.1 < limit {
                free.1 += 1;
                return Vec::new();
            }
            free = self
                .returned
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A buffer out of [`Scratch`]; goes back on drop, so even a panic in the
/// hash cannot leak one and leave later checks waiting.
struct Lent<'a> {
    pool: &'a Scratch,
    buf: Vec<Block>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut free = self
            .pool
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        free.0.push(buf);
        drop(free);
        self.pool.returned.notify_one();
    }
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

    #[test]
    fn the_pooled_check_agrees_with_the_crate_and_survives_concurrent_use() {
        use argon2::password_hash::PasswordVerifier;
        let h = hash("pw").unwrap();
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(digest("pw").as_bytes(), &parsed)
                .is_ok()
        );
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || {
                    let pw = if i % 2 == 0 { "pw" } else { "nope" };
                    verify_digest(&digest(pw), &h) == (i % 2 == 0)
                })
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
        // Smaller parameters than the buffers the pool holds still verify.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let h = small
            .hash_password(digest("pw").as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert!(verify_digest(&digest("pw"), &h));
        assert!(!verify_digest(&digest("px"), &h));
    }
}
