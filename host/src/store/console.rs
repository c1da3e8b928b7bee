//! What the operator console reads and keeps: its sign-in sessions, and
//! the summaries of the queue its pages and the queue gauges show. `tenant`
//! `None` means every tenant (the operator's view).

use async_trait::async_trait;

use super::backend::{Backend, Cols, SqlStore};
use super::queue::RECORD_COLUMNS;
use super::{DeliveryRecord, DeliveryStatus, Result};

/// A signed-in console session: the operator (`tenant: None`) or one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRow {
    pub tenant: Option<String>,
    pub expires_at: i64,
}

/// Deliveries of one channel, status (final or not) and retry class
/// created in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeBucket {
    pub channel: String,
    /// 0-based bucket index from `since`.
    pub bucket: i64,
    pub status: DeliveryStatus,
    /// Took more than one attempt.
    pub retried: bool,
    pub count: u64,
}

/// Delivered ones created in one time bucket, by send→delivered time
/// rounded down to two significant digits (ms): 0–99 exact, then 100, 110,
/// …, 1000, 1100, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TookBucket {
    pub bucket: i64,
    pub took_ms: i64,
    pub count: u64,
}

/// Deliveries not yet final, and the earliest time one of them is due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSummary {
    pub depth: u64,
    pub oldest_due_at: Option<i64>,
}

/// The console's delivery search; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct DeliverySearch {
    pub status: Option<DeliveryStatus>,
    pub channel: Option<String>,
    pub username: Option<String>,
    /// Created at or after (ms).
    pub since: Option<i64>,
    /// Created before (ms).
    pub until: Option<i64>,
    pub limit: u32,
}

/// How often attempts of one plugin version ended one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOutcome {
    pub plugin_sha256: String,
    pub outcome: String,
    pub detail: String,
    pub count: u64,
}

#[async_trait]
pub trait ConsoleStore: Send + Sync {
    async fn create_console_session(
        &self,
        token_hash: &str,
        tenant: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The live session with this token hash (expired ones are deleted).
    async fn console_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleSessionRow>>;
    async fn delete_console_session(&self, token_hash: &str) -> Result<()>;
    /// Deliveries created in `[since, until)`, counted per `bucket_ms`.
    async fn outcome_buckets(
        &self,
        tenant: Option<&str>,
        since: i64,
        until: i64,
        bucket_ms: i64,
    ) -> Result<Vec<OutcomeBucket>>;
    /// Delivered ones created in `[since, until)` by send→delivered time.
    async fn took_buckets(
        &self,
        tenant: Option<&str>,
        since: i64,
        until: i64,
        bucket_ms: i64,
    ) -> Result<Vec<TookBucket>>;
    async fn queue_summary(&self, tenant: Option<&str>) -> Result<QueueSummary>;
    /// Newest first, with attempts.
    async fn search_deliveries(
        &self,
        tenant: &str,
        search: &DeliverySearch,
    ) -> Result<Vec<DeliveryRecord>>;
    /// Attempts by plugin version, outcome and detail, most frequent first.
    async fn plugin_outcomes(&self, tenant: &str, limit: u32) -> Result<Vec<PluginOutcome>>;
}

/// `$1` is the tenant, or NULL for every tenant: two statements, so the
/// planner can use the `(tenant, created_at)` index for one tenant.
fn scope(tenant: Option<&str>) -> &'static str {
    match tenant {
        Some(_) => "tenant = $1",
        None => "CAST($1 AS TEXT) IS NULL",
    }
}

#[async_trait]
impl<B: Backend> ConsoleStore for SqlStore<B> {
    async fn create_console_session(
        &self,
        token_hash: &str,
        tenant: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        self.exec(
            "DELETE FROM console_sessions WHERE expires_at <= $1",
            &[now.into()],
        )
        .await?;
        self.exec(
            "INSERT INTO console_sessions (token_hash, tenant, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
            &[
                token_hash.into(),
                tenant.into(),
                now.into(),
                expires_at.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn console_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleSessionRow>> {
        let row = self
            .opt(
                "SELECT tenant, expires_at FROM console_sessions
                 WHERE token_hash = $1 AND expires_at > $2",
                &[token_hash.into(), now.into()],
            )
            .await?;
        row.map(|r| {
            Ok(ConsoleSessionRow {
                tenant: r.opt_text(0)?,
                expires_at: r.int(1)?,
            })
        })
        .transpose()
    }

    async fn delete_console_session(&self, token_hash: &str) -> Result<()> {
        self.exec(
            "DELETE FROM console_sessions WHERE token_hash = $1",
            &[token_hash.into()],
        )
        .await?;
        Ok(())
    }

    async fn outcome_buckets(
        &self,
        tenant: Option<&str>,
        since: i64,
        until: i64,
        bucket_ms: i64,
    ) -> Result<Vec<OutcomeBucket>> {
        let sql = format!(
            "SELECT channel, CAST((created_at - $2) / $4 AS BIGINT) AS bucket, status,
                CAST(CASE WHEN attempt_count > 1 THEN 1 ELSE 0 END AS BIGINT) AS retried,
                CAST(COUNT(*) AS BIGINT)
             FROM deliveries
             WHERE {} AND created_at >= $2 AND created_at < $3
             GROUP BY channel, bucket, status, retried",
            scope(tenant)
        );
        let args = [tenant.into(), since.into(), until.into(), bucket_ms.into()];
        let rows = self.read_all(&sql, &args).await?;
        rows.iter()
            .map(|r| {
                Ok(OutcomeBucket {
                    channel: r.text(0)?,
                    bucket: r.int(1)?,
                    status: r.parsed(2, "delivery status", |s| {
                        DeliveryStatus::parse(s).ok_or("not a delivery status")
                    })?,
                    retried: r.int(3)? == 1,
                    count: r.int(4)? as u64,
                })
            })
            .collect()
    }

    async fn took_buckets(
        &self,
        tenant: Option<&str>,
        since: i64,
        until: i64,
        bucket_ms: i64,
    ) -> Result<Vec<TookBucket>> {
        // Two significant digits keep the groups few (≤ 90 per decade)
        // and a quantile within 10 % of the exact one.
        let sql = format!(
            "SELECT bucket, CAST(CASE WHEN t < 100 THEN t WHEN t < 1000 THEN t / 10 * 10
                    WHEN t < 10000 THEN t / 100 * 100 WHEN t < 100000 THEN t / 1000 * 1000
                    ELSE t / 10000 * 10000 END AS BIGINT) AS took,
                CAST(COUNT(*) AS BIGINT)
             FROM (SELECT CAST((created_at - $2) / $4 AS BIGINT) AS bucket,
                     CASE WHEN updated_at > created_at THEN updated_at - created_at ELSE 0 END AS t
                   FROM deliveries
                   WHERE {} AND created_at >= $2 AND created_at < $3 AND status = 'delivered') d
             GROUP BY bucket, took",
            scope(tenant)
        );
        let args = [tenant.into(), since.into(), until.into(), bucket_ms.into()];
        let rows = self.read_all(&sql, &args).await?;
        rows.iter()
            .map(|r| {
                Ok(TookBucket {
                    bucket: r.int(0)?,
                    took_ms: r.int(1)?,
                    count: r.int(2)? as u64,
                })
            })
            .collect()
    }

    async fn queue_summary(&self, tenant: Option<&str>) -> Result<QueueSummary> {
        // The due index `(status, next_attempt_at)` holds the few unfinished
        // rows; `(tenant || '')` keeps the planner off the tenant index,
        // which would walk every delivery the tenant ever had.
        let tenant_is = match tenant {
            Some(_) => "(tenant || '') = $1",
            None => "CAST($1 AS TEXT) IS NULL",
        };
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT), MIN(next_attempt_at) FROM deliveries
             WHERE status IN ('queued', 'sending') AND {tenant_is}"
        );
        let r = self.read_one(&sql, &[tenant.into()]).await?;
        Ok(QueueSummary {
            depth: r.int(0)? as u64,
            oldest_due_at: r.opt_int(1)?,
        })
    }

    async fn search_deliveries(
        &self,
        tenant: &str,
        s: &DeliverySearch,
    ) -> Result<Vec<DeliveryRecord>> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM deliveries
             WHERE tenant = $1 AND (CAST($2 AS TEXT) IS NULL OR status = $2)
                AND (CAST($3 AS TEXT) IS NULL OR channel = $3)
                AND (CAST($4 AS TEXT) IS NULL OR username = $4)
                AND created_at >= $5 AND created_at < $6
             ORDER BY created_at DESC, id LIMIT $7"
        );
        let args = [
            tenant.into(),
            s.status.map(|s| s.as_str()).into(),
            (&s.channel).into(),
            (&s.username).into(),
            s.since.unwrap_or(i64::MIN).into(),
            s.until.unwrap_or(i64::MAX).into(),
            s.limit.into(),
        ];
        let rows = self.read_all(&sql, &args).await?;
        self.records(rows).await
    }

    async fn plugin_outcomes(&self, tenant: &str, limit: u32) -> Result<Vec<PluginOutcome>> {
        let rows = self
            .read_all(
                // Attempts first (the partial index `delivery_attempts_by_plugin`
                // holds only plugin attempts), the tenant checked per attempt.
                "SELECT a.plugin_sha256, a.outcome, a.detail, CAST(COUNT(*) AS BIGINT) AS n
                 FROM delivery_attempts a
                 WHERE a.plugin_sha256 IS NOT NULL AND EXISTS
                    (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id AND d.tenant = $1)
                 GROUP BY a.plugin_sha256, a.outcome, a.detail
                 ORDER BY n DESC, a.outcome LIMIT $2",
                &[tenant.into(), limit.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PluginOutcome {
                    plugin_sha256: r.text(0)?,
                    outcome: r.text(1)?,
                    detail: r.text(2)?,
                    count: r.int(3)? as u64,
                })
            })
            .collect()
    }
}
