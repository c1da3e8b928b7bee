//! Consecutive failed second-factor checks, shared by every host using the
//! store (NIST SP 800-63B-4: a new code does not reset them). A key names
//! what is counted (a user's method, a Verify destination); the 2FA rules
//! build it, this file only counts.

use async_trait::async_trait;

use super::Result;
use super::backend::{Backend, Cols, SqlStore};

/// `locked_until` of a lock that only an operator lifts.
pub const LOCKED_UNTIL_UNLOCKED: i64 = i64::MAX;

/// A key's count as one failure left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    /// Consecutive failures since the last success (or the end of the last lock).
    pub failures: u32,
    /// Locks since the last success.
    pub locks: u32,
    /// Unix ms the lock ends; None: not locked.
    pub locked_until: Option<i64>,
}

impl FailureCount {
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
}

#[async_trait]
pub trait FailureStore: Send + Sync {
    /// The key's count, if it has one.
    async fn failure_count(&self, key: &str) -> Result<Option<FailureCount>>;
    /// Counts one failure. A lock that has run out is lifted first (its
    /// `locks` stay, so the next one lasts longer).
    async fn record_failure(&self, key: &str, tenant: &str, now: i64) -> Result<FailureCount>;
    /// Locks the key until `until` if it is not locked and still at
    /// `locks`: true for exactly one of several hosts racing to lock it.
    async fn lock_failures(&self, key: &str, locks: u32, until: i64, now: i64) -> Result<bool>;
    /// A success or an operator's unlock: the count is gone.
    async fn clear_failures(&self, key: &str) -> Result<bool>;
    /// Clears every key starting with `prefix`; how many were locked at `now`.
    async fn clear_failures_prefixed(&self, prefix: &str, now: i64) -> Result<u64>;
    /// Keys locked at `now`, by tenant.
    async fn locked_by_tenant(&self, now: i64) -> Result<Vec<(String, u64)>>;
}

fn count(r: &impl Cols) -> Result<FailureCount> {
    count_at(r, 0)
}

/// The count in columns `first..first + 3` (failures, locks, locked_until)
/// of a row that selected them, e.g. after a `LEFT JOIN failures`.
pub(super) fn count_at(r: &impl Cols, first: usize) -> Result<FailureCount> {
    Ok(FailureCount {
        failures: u32::try_from(r.int(first)?).unwrap_or(u32::MAX),
        locks: u32::try_from(r.int(first + 1)?).unwrap_or(u32::MAX),
        locked_until: r.opt_int(first + 2)?,
    })
}

#[async_trait]
impl<B: Backend> FailureStore for SqlStore<B> {
    async fn failure_count(&self, key: &str) -> Result<Option<FailureCount>> {
        let r = self
            .opt(
                "SELECT failures, locks, locked_until FROM failures WHERE key = $1",
                &[key.into()],
            )
            .await?;
        r.as_ref().map(count).transpose()
    }

    async fn record_failure(&self, key: &str, tenant: &str, now: i64) -> Result<FailureCount> {
        // The upsert locks the row: failures from every host are counted
        // one after another.
        let r = self
            .one(
                "INSERT INTO failures (key, tenant, failures, locks, locked_until, updated_at)
                 VALUES ($1, $2, 1, 0, NULL, $3)
                 ON CONFLICT (key) DO UPDATE SET
                    failures = CASE WHEN failures.locked_until <= $3 THEN 1
                        ELSE failures.failures + 1 END,
                    locked_until = CASE WHEN failures.locked_until <= $3 THEN NULL
                        ELSE failures.locked_until END,
                    updated_at = $3
                 RETURNING failures, locks, locked_until",
                &[key.into(), tenant.into(), now.into()],
            )
            .await?;
        count(&r)
    }

    async fn lock_failures(&self, key: &str, locks: u32, until: i64, now: i64) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE failures SET locked_until = $3, locks = locks + 1, updated_at = $4
                 WHERE key = $1 AND locks = $2 AND locked_until IS NULL",
                &[key.into(), locks.into(), until.into(), now.into()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn clear_failures(&self, key: &str) -> Result<bool> {
        let n = self
            .exec("DELETE FROM failures WHERE key = $1", &[key.into()])
            .await?;
        Ok(n == 1)
    }

    async fn clear_failures_prefixed(&self, prefix: &str, now: i64) -> Result<u64> {
        // `substr` rather than LIKE: tenant names may hold `_`.
        let len = i64::try_from(prefix.len()).unwrap_or(i64::MAX);
        let locked = self
            .one(
                "SELECT COUNT(*) FROM failures
                 WHERE substr(key, 1, CAST($2 AS INTEGER)) = $1 AND locked_until > $3",
                &[prefix.into(), len.into(), now.into()],
            )
            .await?
            .int(0)?;
        self.exec(
            "DELETE FROM failures WHERE substr(key, 1, CAST($2 AS INTEGER)) = $1",
            &[prefix.into(), len.into()],
        )
        .await?;
        Ok(u64::try_from(locked).unwrap_or(0))
    }

    async fn locked_by_tenant(&self, now: i64) -> Result<Vec<(String, u64)>> {
        let rows = self
            .all(
                "SELECT tenant, COUNT(*) FROM failures WHERE locked_until > $1
                 GROUP BY tenant ORDER BY tenant",
                &[now.into()],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.text(0)?, u64::try_from(r.int(1)?).unwrap_or(0))))
            .collect()
    }
}
