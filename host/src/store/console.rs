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

/// Finished deliveries of one channel, status and retry class, in one time bucket.
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
    /// Finished deliveries created since `since`, counted per `bucket_ms`.
    async fn outcome_buckets(
        &self,
        tenant: Option<&str>,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<OutcomeBucket>>;
    /// Send→delivered time (ms) at the given quantiles (0..=1) of the
    /// deliveries delivered that were created since `since`.
    async fn delivered_quantiles(
        &self,
        tenant: Option<&str>,
        since: i64,
        quantiles: &[f64],
    ) -> Result<Vec<Option<i64>>>;
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
        bucket_ms: i64,
    ) -> Result<Vec<OutcomeBucket>> {
        let sql = format!(
            "SELECT channel, CAST((created_at - $2) / $3 AS BIGINT) AS bucket, status,
                CAST(CASE WHEN attempt_count > 1 THEN 1 ELSE 0 END AS BIGINT) AS retried,
                CAST(COUNT(*) AS BIGINT)
             FROM deliveries
             WHERE {} AND created_at >= $2 AND status IN ('delivered', 'failed', 'expired')
             GROUP BY channel, bucket, status, retried",
            scope(tenant)
        );
        let args = [tenant.into(), since.into(), bucket_ms.into()];
        let rows = self.all(&sql, &args).await?;
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

    async fn delivered_quantiles(
        &self,
        tenant: Option<&str>,
        since: i64,
        quantiles: &[f64],
    ) -> Result<Vec<Option<i64>>> {
        let filter = format!(
            "WHERE {} AND created_at >= $2 AND status = 'delivered'",
            scope(tenant)
        );
        let count = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries {filter}");
        let n = self
            .one(&count, &[tenant.into(), since.into()])
            .await?
            .int(0)?;
        let nth = format!(
            "SELECT CAST(updated_at - created_at AS BIGINT) AS took FROM deliveries {filter}
             ORDER BY took LIMIT 1 OFFSET $3"
        );
        let mut out = Vec::with_capacity(quantiles.len());
        for q in quantiles {
            if n == 0 {
                out.push(None);
                continue;
            }
            // Nearest rank: the smallest value with at least q of them at or below it.
            let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as i64).clamp(1, n) - 1;
            let row = self
                .one(&nth, &[tenant.into(), since.into(), rank.into()])
                .await?;
            out.push(Some(row.int(0)?));
        }
        Ok(out)
    }

    async fn queue_summary(&self, tenant: Option<&str>) -> Result<QueueSummary> {
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT), MIN(next_attempt_at) FROM deliveries
             WHERE {} AND status IN ('queued', 'sending')",
            scope(tenant)
        );
        let r = self.one(&sql, &[tenant.into()]).await?;
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
        let rows = self.all(&sql, &args).await?;
        self.records(rows).await
    }

    async fn plugin_outcomes(&self, tenant: &str, limit: u32) -> Result<Vec<PluginOutcome>> {
        let rows = self
            .all(
                "SELECT a.plugin_sha256, a.outcome, a.detail, CAST(COUNT(*) AS BIGINT) AS n
                 FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
                 WHERE d.tenant = $1 AND a.plugin_sha256 IS NOT NULL
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
