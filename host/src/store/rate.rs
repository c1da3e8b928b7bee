//! Fixed-window rate counters shared by every host using the store.

use async_trait::async_trait;

use super::backend::{Arg, Backend, Cols, SqlStore};
use super::{Result, StoreError};

#[async_trait]
pub trait RateStore: Send + Sync {
    /// Counts one hit in the fixed window of `key`; (count in window, window start).
    async fn rate_hit(&self, key: &str, now: i64, window_ms: i64) -> Result<(u64, i64)> {
        let hits = self.rate_hits(&[key], now, window_ms).await?;
        hits.into_iter()
            .next()
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    /// Counts one hit in the windows of several distinct keys at once (one
    /// statement); their (count, window start) in the order of `keys`.
    async fn rate_hits(&self, keys: &[&str], now: i64, window_ms: i64) -> Result<Vec<(u64, i64)>>;
}

#[async_trait]
impl<B: Backend> RateStore for SqlStore<B> {
    async fn rate_hits(&self, keys: &[&str], now: i64, window_ms: i64) -> Result<Vec<(u64, i64)>> {
        // INSERT … ON CONFLICT DO UPDATE locks each counter row: hits from
        // every host are counted one after another. The rows are locked in
        // key order, so two calls sharing keys cannot deadlock.
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<String> = (0..sorted.len())
            .map(|i| format!("(${}, $1, 1)", i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO rate_limits (key, window_start, count) VALUES {}
             ON CONFLICT (key) DO UPDATE SET
                count = CASE WHEN rate_limits.window_start <= $1 - $2 THEN 1
                    ELSE rate_limits.count + 1 END,
                window_start = CASE WHEN rate_limits.window_start <= $1 - $2 THEN $1
                    ELSE rate_limits.window_start END
             RETURNING key, count, window_start",
            values.join(", ")
        );
        let mut args: Vec<Arg<'_>> = vec![now.into(), window_ms.into()];
        args.extend(sorted.iter().map(|k| Arg::Text(k)));
        let rows = self.all(&sql, &args).await?;
        let mut counted = Vec::with_capacity(rows.len());
        for r in &rows {
            counted.push((r.text(0)?, (r.int(1)? as u64, r.int(2)?)));
        }
        keys.iter()
            .map(|k| {
                counted
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, hit)| *hit)
                    .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
            })
            .collect()
    }
}
