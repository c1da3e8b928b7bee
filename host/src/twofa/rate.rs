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
        self.limits(&[(key, max)], window_ms).await
    }

    /// Counts one hit against each key's fixed window (one statement); 429
    /// past any key's max, to retry when every refusing window has ended.
    pub async fn limits(&self, keys: &[(&str, u32)], window_ms: i64) -> R<()> {
        let now = self.now_ms();
        let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        let hits = self.store.rate_hits(&names, now, window_ms).await?;
        let retry_after = keys
            .iter()
            .zip(hits)
            .filter(|((_, max), (count, _))| *count > u64::from(*max))
            .map(|(_, (_, start))| {
                ((start + window_ms - now) as f64 / 1000.0).ceil().max(1.0) as u64
            })
            .max();
        match retry_after {
            Some(retry_after) => Err(TwoFaError::TooManyRequests { retry_after }),
            None => Ok(()),
        }
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
        let ip_key = format!("check:ip:{}", caller.ip);
        self.limits(
            &[
                (subject_key, l.checks_per_user_per_minute),
                (&ip_key, l.checks_per_ip_per_minute),
            ],
            MINUTE_MS,
        )
        .await
    }
}
