//! The embedded default: one SQLite file in WAL mode.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{
    AttemptRecord, ClaimedDelivery, DeliveryFilter, DeliveryRecord, Finish, NewDelivery, Result,
    Store, StoreError, TenantRow, rfc3339,
};

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL survives a killed process; only an OS crash can
            // lose the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = opts.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

fn insert_delivery_query(
    d: &NewDelivery,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    let (status, owner, until) = match &d.lease {
        Some((owner, until)) => ("sending", Some(owner.as_str()), Some(*until)),
        None => ("queued", None, None),
    };
    sqlx::query(
        "INSERT INTO deliveries (id, tenant, channel, send_to_masked, username, payload, status,
            next_attempt_at, lease_owner, lease_until, expires_at, fallback_of, fallback_depth,
            created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(&d.id)
    .bind(&d.tenant)
    .bind(&d.channel)
    .bind(&d.send_to_masked)
    .bind(&d.username)
    .bind(&d.payload)
    .bind(status)
    .bind(d.next_attempt_at)
    .bind(owner)
    .bind(until)
    .bind(d.expires_at)
    .bind(&d.fallback_of)
    .bind(d.fallback_depth as i64)
    .bind(d.created_at)
}

/// Due, and not leased by a live worker (`$3` is now).
const CLAIMABLE: &str = "status IN ('queued', 'sending') AND next_attempt_at <= $3
    AND (lease_until IS NULL OR lease_until < $3)";

const CLAIMED_COLUMNS: &str =
    "id, tenant, channel, send_to_masked, username, payload, attempt_count,
    expires_at, fallback_depth, created_at";

fn claimed(r: &sqlx::sqlite::SqliteRow) -> ClaimedDelivery {
    ClaimedDelivery {
        id: r.get("id"),
        tenant: r.get("tenant"),
        channel: r.get("channel"),
        send_to_masked: r.get("send_to_masked"),
        username: r.get("username"),
        payload: r.get("payload"),
        attempt_count: r.get::<i64, _>("attempt_count") as u32,
        expires_at: r.get("expires_at"),
        fallback_depth: r.get::<i64, _>("fallback_depth") as u32,
        created_at: r.get("created_at"),
    }
}

const RECORD_COLUMNS: &str = "id, channel, send_to_masked, status, log, username, provider_id,
    fallback_of, expires_at, created_at";

impl SqliteStore {
    async fn attempts_of(&self, ids: &[String]) -> Result<Vec<(String, AttemptRecord)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT delivery_id, at, outcome, detail, duration_ms FROM delivery_attempts
             WHERE delivery_id IN ({placeholders}) ORDER BY delivery_id, n"
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    AttemptRecord {
                        at: rfc3339(r.get(1)),
                        outcome: r.get(2),
                        detail: r.get(3),
                        duration_ms: r.get(4),
                    },
                )
            })
            .collect())
    }

    async fn records(&self, rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<DeliveryRecord>> {
        let mut out: Vec<DeliveryRecord> = rows
            .into_iter()
            .map(|r| DeliveryRecord {
                id: r.get("id"),
                channel: r.get("channel"),
                to: r.get("send_to_masked"),
                status: r.get("status"),
                attempts: Vec::new(),
                log: r.get("log"),
                username: r.get("username"),
                provider_id: r.get("provider_id"),
                fallback_of: r.get("fallback_of"),
                expires_at: rfc3339(r.get("expires_at")),
                created_at: rfc3339(r.get("created_at")),
            })
            .collect();
        let ids: Vec<String> = out.iter().map(|d| d.id.clone()).collect();
        for (id, attempt) in self.attempts_of(&ids).await? {
            if let Some(d) = out.iter_mut().find(|d| d.id == id) {
                d.attempts.push(attempt);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_tenant(&self, name: &str, api_key_hash: Option<&str>, now: i64) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO tenants (name, api_key_hash, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(api_key_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn ensure_tenant(&self, name: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRow>> {
        let rows = sqlx::query("SELECT name, created_at FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| TenantRow {
                name: r.get(0),
                created_at: r.get(1),
            })
            .collect())
    }

    async fn tenant_key_hash(&self, name: &str) -> Result<Option<Option<String>>> {
        Ok(
            sqlx::query_scalar("SELECT api_key_hash FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn tenant_by_key_hash(&self, hash: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT name FROM tenants WHERE api_key_hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn insert_delivery(&self, d: &NewDelivery) -> Result<()> {
        insert_delivery_query(d).execute(&self.pool).await?;
        Ok(())
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        // One statement: SQLite serialises writers, so two workers can never
        // lease the same row.
        let sql = format!(
            "UPDATE deliveries SET status = 'sending', lease_owner = $1, lease_until = $2, updated_at = $3
             WHERE id IN (
                SELECT id FROM deliveries WHERE {CLAIMABLE}
                ORDER BY next_attempt_at LIMIT $4)
             RETURNING {CLAIMED_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(claimed).collect())
    }

    async fn claim_by_id(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<ClaimedDelivery>> {
        let sql = format!(
            "UPDATE deliveries SET status = 'sending', lease_owner = $1, lease_until = $2, updated_at = $3
             WHERE id = $4 AND {CLAIMABLE}
             RETURNING {CLAIMED_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(claimed))
    }

    async fn finish(&self, id: &str, owner: &str, now: i64, f: Finish) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let counted = f.attempt.is_some() as i64;
        let updated = sqlx::query(
            "UPDATE deliveries SET status = $1, attempt_count = attempt_count + $2,
                next_attempt_at = COALESCE($3, next_attempt_at), lease_owner = NULL, lease_until = NULL,
                provider_id = COALESCE($4, provider_id), log = COALESCE($5, log), updated_at = $6
             WHERE id = $7 AND lease_owner = $8 AND status = 'sending'",
        )
        .bind(f.status.as_str())
        .bind(counted)
        .bind(f.next_attempt_at)
        .bind(&f.provider_id)
        .bind(&f.log)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(a) = &f.attempt {
            sqlx::query(
                "INSERT INTO delivery_attempts (delivery_id, n, at, outcome, detail, duration_ms)
                 VALUES ($1, (SELECT attempt_count FROM deliveries WHERE id = $1), $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(a.at)
            .bind(&a.outcome)
            .bind(&a.detail)
            .bind(a.duration_ms)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(next) = &f.then_enqueue {
            insert_delivery_query(next).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn next_due_at(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(COALESCE(MAX(next_attempt_at, lease_until), next_attempt_at)) FROM deliveries
             WHERE status IN ('queued', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn get_delivery(&self, tenant: &str, id: &str) -> Result<Option<DeliveryRecord>> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM deliveries WHERE tenant = $1 AND id = $2");
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(self.records(rows).await?.into_iter().next())
    }

    async fn list_deliveries(
        &self,
        tenant: &str,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<DeliveryRecord>, u64)> {
        let status = filter.status.map(|s| s.as_str());
        let where_ =
            "WHERE tenant = $1 AND ($2 IS NULL OR username = $2) AND ($3 IS NULL OR status = $3)";
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM deliveries {where_}"))
            .bind(tenant)
            .bind(&filter.username)
            .bind(status)
            .fetch_one(&self.pool)
            .await?;
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM deliveries {where_} ORDER BY created_at DESC, id LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(&filter.username)
            .bind(status)
            .bind(filter.limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok((self.records(rows).await?, total as u64))
    }

    async fn count_pending(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE status IN ('queued', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }
}
