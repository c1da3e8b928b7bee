//! Consecutive failed second-factor checks across codes (NIST SP 800-63B-4:
//! issuing a new code SHALL NOT reset the count; at most 100 in a row).
//! Counted in the store, so every host sees the same count, per user and
//! method (`user:<tenant>:<user id>:<method>`) or per Verify destination
//! (`verify:<tenant>:<channel>:<sha256 of the send-to>`): tenant and user id
//! are in the key, so no one can lock another tenant's or user's method.
//! Past `limits.max_consecutive_failures` the key is locked until an
//! operator unlocks it or, with `limits.lockout_minutes`, until the lock
//! runs out (each further lock since the last success lasts twice as long).

use super::{R, TwoFactor};
use crate::crypto::sha256_hex;
use crate::domain::{Method, TenantName};
use crate::store::{FailureCount, LOCKED_UNTIL_UNLOCKED, UserRow};

/// The longest a doubling lock lasts.
const MAX_LOCK_MS: i64 = 30 * 24 * 3_600_000;

/// The failure key of a user's method.
pub(super) fn user_key(user: &UserRow, method: &Method) -> String {
    format!("{}{method}", user_key_prefix(user))
}

/// The start every failure key of `user` shares.
fn user_key_prefix(user: &UserRow) -> String {
    format!("user:{}:{}:", user.tenant, user.id)
}

/// The failure key of a Verify destination.
pub(super) fn verify_key(tenant: &TenantName, channel: &str, to: &str) -> String {
    format!("verify:{tenant}:{channel}:{}", sha256_hex(to.as_bytes()))
}

/// How long lock number `locks + 1` lasts: `minutes`, doubled per earlier lock.
fn lock_ms(minutes: u32, locks: u32) -> i64 {
    let base = i64::from(minutes) * 60_000;
    base.saturating_mul(1_i64 << locks.min(20)).min(MAX_LOCK_MS)
}

/// A lock in force: it ends by itself after `retry_after` seconds, or,
/// when that is None, only when an operator unlocks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub retry_after: Option<u64>,
}

/// A failure key as a check found it, before looking at the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Standing {
    pub lock: Option<Lock>,
    /// A count is stored (possibly of zero failures, after a lock ran out).
    counted: bool,
}

impl Standing {
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }
}

/// What a check did to a failure key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counted {
    /// Still under the limit.
    Open,
    /// Locked now (by this failure or an earlier one).
    Locked,
}

impl TwoFactor {
    /// Whether checks under `key` are refused now, without looking at a code.
    pub(super) async fn is_locked(&self, key: &str) -> R<bool> {
        Ok(self.standing(key).await?.is_locked())
    }

    /// The lock on `key` now, if any.
    pub(super) async fn lock_of(&self, key: &str) -> R<Option<Lock>> {
        Ok(self.standing(key).await?.lock)
    }

    /// Where `key` stands before a check: its lock, and whether it has
    /// failures counted that a success must clear.
    pub(super) async fn standing(&self, key: &str) -> R<Standing> {
        let count = self.store.failure_count(key).await?;
        Ok(self.standing_of(count))
    }

    /// [`TwoFactor::standing`] from a count already read (None: none stored).
    pub(super) fn standing_of(&self, count: Option<FailureCount>) -> Standing {
        let now = self.now_ms();
        let lock = count
            .filter(|c| c.is_locked(now))
            .and_then(|c| c.locked_until)
            .map(|until| Lock {
                retry_after: (until != LOCKED_UNTIL_UNLOCKED).then(|| {
                    u64::try_from((until - now + 999) / 1000)
                        .unwrap_or(1)
                        .max(1)
                }),
            });
        Standing {
            lock,
            counted: count.is_some(),
        }
    }

    /// Counts one failed check; locks the key when the count reaches
    /// `limits.max_consecutive_failures` (audited and counted once, even
    /// when several hosts count the last failures at once).
    /// `what` names the method or channel for the audit record.
    pub(super) async fn count_failure(
        &self,
        key: &str,
        tenant: &str,
        actor: &str,
        what: &str,
    ) -> R<Counted> {
        let now = self.now_ms();
        let count = self.store.record_failure(key, tenant, now).await?;
        if count.is_locked(now) {
            return Ok(Counted::Locked);
        }
        if count.failures < self.config.limits.max_consecutive_failures {
            return Ok(Counted::Open);
        }
        let until = match self.config.limits.lockout_minutes {
            Some(m) => now.saturating_add(lock_ms(m, count.locks)),
            None => LOCKED_UNTIL_UNLOCKED,
        };
        if self
            .store
            .lock_failures(key, count.locks, until, now)
            .await?
        {
            let ends = if until == LOCKED_UNTIL_UNLOCKED {
                "until unlocked".to_string()
            } else {
                format!("until {}", crate::store::rfc3339(until))
            };
            let detail = format!("{what} failures={} {ends}", count.failures);
            self.audit(tenant, actor, "check.locked", Some(actor), Some(&detail))
                .await;
            self.queue
                .metrics()
                .abuse
                .twofa_locks
                .with_label_values(&[tenant, key_kind(key)])
                .inc();
        }
        Ok(Counted::Locked)
    }

    /// A successful check: the count starts again. `before` is the key's
    /// standing when the check began; with nothing counted then there is
    /// nothing to clear (a failure counted since by a concurrent check
    /// is ordered after this success), so no write is made.
    pub(super) async fn count_success(&self, key: &str, before: Standing) -> R<()> {
        if before.counted {
            self.store.clear_failures(key).await?;
        }
        Ok(())
    }

    /// `users.2fa.unlock`: clears the failure count of one method of the
    /// user, or of all of them; how many were locked.
    pub async fn unlock(&self, user: &UserRow, method: Option<&Method>) -> R<u64> {
        let now = self.now_ms();
        let unlocked = match method {
            Some(m) => {
                let key = user_key(user, m);
                let locked = self.is_locked(&key).await?;
                self.store.clear_failures(&key).await?;
                u64::from(locked)
            }
            None => {
                self.store
                    .clear_failures_prefixed(&user_key_prefix(user), now)
                    .await?
            }
        };
        let detail = match method {
            Some(m) => format!("method={m} locked={unlocked}"),
            None => format!("method=all locked={unlocked}"),
        };
        self.audit(
            &user.tenant,
            "api",
            "check.unlocked",
            Some(&user.username),
            Some(&detail),
        )
        .await;
        Ok(unlocked)
    }
}

impl TwoFactor {
    /// `POST /verifications/unlock`: clears the failure count of a Verify
    /// destination; whether it was locked.
    pub async fn unlock_destination(
        &self,
        tenant: &TenantName,
        channel: &str,
        to: &str,
    ) -> R<bool> {
        let key = verify_key(tenant, channel, to);
        let locked = self.is_locked(&key).await?;
        self.store.clear_failures(&key).await?;
        let detail = format!("verification channel={channel} locked={}", u8::from(locked));
        self.audit(
            tenant.as_str(),
            "api",
            "check.unlocked",
            None,
            Some(&detail),
        )
        .await;
        Ok(locked)
    }
}

/// `user:<method>` or `verify:<channel>`: what the audit and metrics show
/// of a key (no ids, no destination hash).
fn key_kind(key: &str) -> &'static str {
    if key.starts_with("verify:") {
        "verify"
    } else {
        "user"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_doubles_with_each_lock_up_to_a_cap() {
        assert_eq!(lock_ms(15, 0), 15 * 60_000);
        assert_eq!(lock_ms(15, 1), 30 * 60_000);
        assert_eq!(lock_ms(15, 3), 120 * 60_000);
        assert_eq!(lock_ms(15, 40), MAX_LOCK_MS);
        assert_eq!(lock_ms(7 * 24 * 60, 5), MAX_LOCK_MS);
    }

    #[test]
    fn keys_hold_tenant_and_user_and_hide_the_destination() {
        let t = TenantName::parse("acme").unwrap();
        let k = verify_key(&t, "sms", "+15551234567");
        assert!(k.starts_with("verify:acme:sms:"), "{k}");
        assert!(!k.contains("5551234567"), "{k}");
        assert_ne!(
            k,
            verify_key(&TenantName::default_tenant(), "sms", "+15551234567")
        );
    }
}
