//! Fixed-window rate limits over the store (shared by every host), timed
//! by the injected clock.

use super::{Caller, R, TwoFaError, TwoFactor};
use crate::store::UserRow;

/// The window of the per-minute limits.
pub(super) const MINUTE_MS: i64 = 60_000;

/// The window of `limits.sends_per_destination`.
pub(super) const SEND_WINDOW_MS: i64 = 600_000;

impl TwoFactor {
    /// Counts one hit against a fixed window; 429 past `max`.
    pub async fn limit(&self, key: &str, window_ms: i64, max: u32) -> R<()> {
        let now = self.now_ms();
        let (count, start) = self.store.rate_hit(key, now, window_ms).await?;
        if count > u64::from(max) {
            let retry_after = ((start + window_ms - now) as f64 / 1000.0).ceil().max(1.0) as u64;
            return Err(TwoFaError::TooManyRequests { retry_after });
        }
        Ok(())
    }

    /// The limits on code checks: per user and per address.
    pub(super) async fn limit_checks(&self, user: &UserRow, caller: &Caller) -> R<()> {
        let key = format!("check:user:{}:{}", user.tenant, user.id);
        self.limit_checks_of(&key, caller).await
    }

    /// The per-subject and per-address check limits; `subject_key` names
    /// what is checked (a user, a verification).
    pub(super) async fn limit_checks_of(&self, subject_key: &str, caller: &Caller) -> R<()> {
        let l = &self.config.limits;
        self.limit(subject_key, MINUTE_MS, l.checks_per_user_per_minute)
            .await?;
        self.limit(
            &format!("check:ip:{}", caller.ip),
            MINUTE_MS,
            l.checks_per_ip_per_minute,
        )
        .await
    }
}
