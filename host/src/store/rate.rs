//! Fixed-window rate counters shared by every host using the store.

use async_trait::async_trait;

use super::Result;
use super::backend::{Backend, Cols, SqlStore};

#[async_trait]
pub trait RateStore: Send + Sync {
    /// Counts one hit in the fixed window of `key`; (count in window, window start).
    async fn rate_hit(&self, key: &str, now: i64, window_ms: i64) -> Result<(u64, i64)>;
}

#[async_trait]
impl<B: Backend> RateStore for SqlStore<B> {
    async fn rate_hit(&self, key: &str, now: i64, window_ms: i64) -> Result<(u64, i64)> {
        // INSERT … ON CONFLICT DO UPDATE locks the counter row: hits from
        // every host are counted one after another.
        let r = self
            .one(
                "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
                 ON CONFLICT (key) DO UPDATE SET
                    count = CASE WHEN rate_limits.window_start <= $2 - $3 THEN 1
                        ELSE rate_limits.count + 1 END,
                    window_start = CASE WHEN rate_limits.window_start <= $2 - $3 THEN $2
                        ELSE rate_limits.window_start END
                 RETURNING count, window_start",
                &[key.into(), now.into(), window_ms.into()],
            )
            .await?;
        Ok((r.int(0)? as u64, r.int(1)?))
    }
}
