//! PostgreSQL: one database shared by several postern hosts.
//!
//! The same behaviour as [`super::SqliteStore`], made safe for concurrent
//! writers in other processes: due deliveries are leased with
//! `FOR UPDATE SKIP LOCKED`, and every check-and-change (consume a code,
//! count an attempt, finish a lease, advance a TOTP step, count a rate-limit
//! hit) is one statement whose condition PostgreSQL re-checks on the row it
//! locked, so two hosts can never both win.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres, Row};

use super::{
    AttemptRecord, AuditRow, ChannelRow, ClaimedDelivery, CodeRow, DeliveryFilter, DeliveryRecord,
    Finish, MethodRow, NewDelivery, PluginRow, Result, Store, StoreError, TenantRow, TotpRow,
    UserRow, VerificationRow, rfc3339,
};

/// Connections per host unless the URL says `?max_connections=N`. Each
/// request and each delivery attempt holds one only for a statement or a
/// short transaction, so this serves `delivery.workers = 16` plus API
/// traffic, and five hosts stay under PostgreSQL's default
/// `max_connections = 100`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
const POOL_PARAM: &str = "max_connections";
/// How long a request waits for a free connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long start-up waits for the server before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PgStore {
    pool: PgPool,
}

/// `host:port/database` of a URL, without user or password, for messages.
fn describe(opts: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("(default database)")
    )
}

/// Splits postern's own `max_connections` parameter off a PostgreSQL URL
/// and parses the rest: (connect options, pool size). The error names what
/// is wrong, never the password.
pub fn parse_url(url: &str) -> std::result::Result<(PgConnectOptions, u32), String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let mut max = DEFAULT_MAX_CONNECTIONS;
    let mut rest = Vec::new();
    for (k, v) in parsed.query_pairs() {
        if k == POOL_PARAM {
            max = v
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| format!("`{POOL_PARAM}={v}`: allowed 1..=1000"))?;
        } else {
            rest.push((k.into_owned(), v.into_owned()));
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let opts = PgConnectOptions::from_str(parsed.as_str())
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?
        .application_name("postern");
    Ok((opts, max))
}

impl PgStore {
    /// The tenant's first user (oldest) matching `condition` on `$2`.
    async fn one_user(
        &self,
        condition: &str,
        tenant: &str,
        value: &str,
    ) -> Result<Option<UserRow>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant = $1 AND {condition}
             ORDER BY created_at LIMIT 1"
        );
        let r = sqlx::query(&sql)
            .bind(tenant)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.as_ref().map(user_row))
    }

    pub async fn open(url: &str) -> Result<Self> {
        let (opts, max_connections) = parse_url(url).map_err(StoreError::Other)?;
        let target = describe(&opts);
        // One direct connection first: the pool would retry a refused
        // connection until its timeout and report only "timed out".
        match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(e)) => {
                return Err(StoreError::Other(format!(
                    "cannot connect to PostgreSQL at {target}: {e}"
                )));
            }
            Err(_) => {
                return Err(StoreError::Other(format!(
                    "cannot connect to PostgreSQL at {target}: no answer within {CONNECT_TIMEOUT:?}"
                )));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .connect_with(opts)
            .await?;
        // sqlx holds a PostgreSQL advisory lock while it migrates, so hosts
        // starting together apply each migration once.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn insert_delivery_query(d: &NewDelivery) -> PgQuery<'_> {
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

fn claimed(r: &PgRow) -> ClaimedDelivery {
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

const USER_COLUMNS: &str = "tenant, id, username, password_hash, email, email_verified, name,
    default_method, created_at";

fn user_row(r: &PgRow) -> UserRow {
    UserRow {
        tenant: r.get("tenant"),
        id: r.get("id"),
        username: r.get("username"),
        password_hash: r.get("password_hash"),
        email: r.get("email"),
        email_verified: r.get("email_verified"),
        name: r.get("name"),
        default_method: r.get("default_method"),
        created_at: r.get("created_at"),
    }
}

fn verification_row(r: &PgRow) -> VerificationRow {
    VerificationRow {
        id: r.get("id"),
        tenant: r.get("tenant"),
        channel: r.get("channel"),
        to: r.get("to_masked"),
        username: r.get("username"),
        status: r.get("status"),
        expires_at: r.get("expires_at"),
        created_at: r.get("created_at"),
    }
}

/// Other hosts poll this to reload tenant channels; bumped in the same
/// transaction as the change, so they never see the change without it.
async fn bump_channels_version(tx: &mut sqlx::Transaction<'_, Postgres>) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ('channels_version', '1')
         ON CONFLICT (key) DO UPDATE SET value = (settings.value::bigint + 1)::text",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

const RECORD_COLUMNS: &str = "id, channel, send_to_masked, status, log, username, provider_id,
    fallback_of, expires_at, created_at";

impl PgStore {
    async fn attempts_of(&self, ids: &[String]) -> Result<Vec<(String, AttemptRecord)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT delivery_id, at, outcome, detail, duration_ms FROM delivery_attempts
             WHERE delivery_id = ANY($1) ORDER BY delivery_id, n",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
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

    async fn records(&self, rows: Vec<PgRow>) -> Result<Vec<DeliveryRecord>> {
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
impl Store for PgStore {
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

    async fn delete_tenant(&self, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE tenant = $1)",
            "deliveries WHERE tenant = $1",
            "sessions WHERE tenant = $1",
            "codes WHERE tenant = $1",
            "backup_codes WHERE tenant = $1",
            "user_totp WHERE tenant = $1",
            "user_methods WHERE tenant = $1",
            "users WHERE tenant = $1",
            "verifications WHERE tenant = $1",
            "tenant_channels WHERE tenant = $1",
            "plugins WHERE tenant = $1",
            "audit WHERE tenant = $1",
        ] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        bump_channels_version(&mut tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn put_channel(&self, c: &ChannelRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tenant_channels (tenant, name, kind, config, secrets, secret_keys, plugin,
                allowed_hosts, send_to_type, send_to_regex, fallback, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (tenant, name) DO UPDATE SET kind = excluded.kind, config = excluded.config,
                secrets = excluded.secrets, secret_keys = excluded.secret_keys, plugin = excluded.plugin,
                allowed_hosts = excluded.allowed_hosts, send_to_type = excluded.send_to_type,
                send_to_regex = excluded.send_to_regex, fallback = excluded.fallback,
                updated_at = excluded.updated_at",
        )
        .bind(&c.tenant)
        .bind(&c.name)
        .bind(&c.kind)
        .bind(&c.config)
        .bind(&c.secrets)
        .bind(&c.secret_keys)
        .bind(&c.plugin)
        .bind(&c.allowed_hosts)
        .bind(&c.send_to_type)
        .bind(&c.send_to_regex)
        .bind(&c.fallback)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await?;
        bump_channels_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_channel(&self, tenant: &str, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM tenant_channels WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        bump_channels_version(&mut tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn channels(&self, tenant: Option<&str>) -> Result<Vec<ChannelRow>> {
        let rows = sqlx::query(
            "SELECT tenant, name, kind, config, secrets, secret_keys, plugin, allowed_hosts,
                send_to_type, send_to_regex, fallback, created_at, updated_at
             FROM tenant_channels WHERE ($1::text IS NULL OR tenant = $1) ORDER BY tenant, name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ChannelRow {
                tenant: r.get(0),
                name: r.get(1),
                kind: r.get(2),
                config: r.get(3),
                secrets: r.get(4),
                secret_keys: r.get(5),
                plugin: r.get(6),
                allowed_hosts: r.get(7),
                send_to_type: r.get(8),
                send_to_regex: r.get(9),
                fallback: r.get(10),
                created_at: r.get(11),
                updated_at: r.get(12),
            })
            .collect())
    }

    async fn channels_version(&self) -> Result<i64> {
        let v: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'channels_version'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    async fn put_plugin(&self, p: &PluginRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO plugins (tenant, name, sha256, size, info, wasm, uploaded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant, name) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
                info = excluded.info, wasm = excluded.wasm, uploaded_at = excluded.uploaded_at",
        )
        .bind(&p.tenant)
        .bind(&p.name)
        .bind(&p.sha256)
        .bind(p.size)
        .bind(&p.info)
        .bind(&p.wasm)
        .bind(p.uploaded_at)
        .execute(&mut *tx)
        .await?;
        bump_channels_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn plugins(&self, tenant: Option<&str>) -> Result<Vec<PluginRow>> {
        let rows = sqlx::query(
            "SELECT tenant, name, sha256, size, info, uploaded_at FROM plugins
             WHERE ($1::text IS NULL OR tenant = $1) ORDER BY tenant, name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| PluginRow {
                tenant: r.get(0),
                name: r.get(1),
                sha256: r.get(2),
                size: r.get(3),
                info: r.get(4),
                wasm: Vec::new(),
                uploaded_at: r.get(5),
            })
            .collect())
    }

    async fn plugin_bytes(&self, tenant: &str, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT wasm FROM plugins WHERE tenant = $1 AND name = $2")
                .bind(tenant)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn delete_plugin(&self, tenant: &str, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM plugins WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        bump_channels_version(&mut tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
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
        // Rows another host is leasing right now are locked; SKIP LOCKED
        // passes over them instead of waiting, so hosts never lease the same
        // row and never queue behind each other.
        let sql = format!(
            "UPDATE deliveries SET status = 'sending', lease_owner = $1, lease_until = $2, updated_at = $3
             WHERE id IN (
                SELECT id FROM deliveries WHERE {CLAIMABLE}
                ORDER BY next_attempt_at LIMIT $4
                FOR UPDATE SKIP LOCKED)
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
        // A concurrent claimer waits for the row lock and then re-checks the
        // lease on the row it sees: at most one of them matches.
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
        // RETURNING the new count: the attempt row's number, read under the
        // row lock this UPDATE holds until commit.
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE deliveries SET status = $1, attempt_count = attempt_count + $2,
                next_attempt_at = COALESCE($3, next_attempt_at), lease_owner = NULL, lease_until = NULL,
                provider_id = COALESCE($4, provider_id), log = COALESCE($5, log), updated_at = $6
             WHERE id = $7 AND lease_owner = $8 AND status = 'sending'
             RETURNING attempt_count",
        )
        .bind(f.status.as_str())
        .bind(counted)
        .bind(f.next_attempt_at)
        .bind(&f.provider_id)
        .bind(&f.log)
        .bind(now)
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(n) = n else {
            tx.rollback().await?;
            return Ok(false);
        };
        if let Some(a) = &f.attempt {
            sqlx::query(
                "INSERT INTO delivery_attempts (delivery_id, n, at, outcome, detail, duration_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(n)
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
        // GREATEST ignores NULL: an unleased row is due at next_attempt_at.
        Ok(sqlx::query_scalar(
            "SELECT MIN(GREATEST(next_attempt_at, lease_until)) FROM deliveries
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
        let where_ = "WHERE tenant = $1 AND ($2::text IS NULL OR username = $2)
            AND ($3::text IS NULL OR status = $3)";
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

    async fn create_user(&self, u: &UserRow) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO users (tenant, id, username, password_hash, email, email_verified, name,
                default_method, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&u.tenant)
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(&u.email)
        .bind(u.email_verified)
        .bind(&u.name)
        .bind(&u.default_method)
        .bind(u.created_at)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    async fn user_by_id(&self, tenant: &str, id: &str) -> Result<Option<UserRow>> {
        self.one_user("id = $2", tenant, id).await
    }

    async fn user_by_username(&self, tenant: &str, username: &str) -> Result<Option<UserRow>> {
        self.one_user("username = $2", tenant, username).await
    }

    async fn user_by_email(&self, tenant: &str, email: &str) -> Result<Option<UserRow>> {
        self.one_user("lower(email) = lower($2)", tenant, email)
            .await
    }

    async fn update_user(&self, u: &UserRow) -> Result<()> {
        sqlx::query(
            "UPDATE users SET password_hash = $3, email = $4, email_verified = $5, name = $6,
                default_method = $7 WHERE tenant = $1 AND id = $2",
        )
        .bind(&u.tenant)
        .bind(&u.id)
        .bind(&u.password_hash)
        .bind(&u.email)
        .bind(u.email_verified)
        .bind(&u.name)
        .bind(&u.default_method)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_user(&self, tenant: &str, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let subject = format!("user:{id}");
        sqlx::query("DELETE FROM codes WHERE tenant = $1 AND subject = $2")
            .bind(tenant)
            .bind(&subject)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM users WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn methods(&self, tenant: &str, user_id: &str) -> Result<Vec<MethodRow>> {
        let rows = sqlx::query(
            "SELECT method, send_to FROM user_methods WHERE tenant = $1 AND user_id = $2 ORDER BY method",
        )
        .bind(tenant)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| MethodRow {
                method: r.get(0),
                send_to: r.get(1),
            })
            .collect())
    }

    async fn put_method(&self, tenant: &str, user_id: &str, m: &MethodRow, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_methods (tenant, user_id, method, send_to, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant, user_id, method) DO UPDATE SET send_to = excluded.send_to",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(&m.method)
        .bind(&m.send_to)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_method(&self, tenant: &str, user_id: &str, method: &str) -> Result<()> {
        sqlx::query("DELETE FROM user_methods WHERE tenant = $1 AND user_id = $2 AND method = $3")
            .bind(tenant)
            .bind(user_id)
            .bind(method)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn totp(&self, tenant: &str, user_id: &str) -> Result<Option<TotpRow>> {
        let r = sqlx::query(
            "SELECT secret, temp_secret, last_step FROM user_totp WHERE tenant = $1 AND user_id = $2",
        )
        .bind(tenant)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.map(|r| TotpRow {
            secret: r.get(0),
            temp_secret: r.get(1),
            last_step: r.get(2),
        }))
    }

    async fn set_totp_temp(&self, tenant: &str, user_id: &str, temp: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_totp (tenant, user_id, temp_secret) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, user_id) DO UPDATE SET temp_secret = excluded.temp_secret",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(temp)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn confirm_totp(
        &self,
        tenant: &str,
        user_id: &str,
        temp: &[u8],
        step: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE user_totp SET secret = temp_secret, temp_secret = NULL, last_step = $4
             WHERE tenant = $1 AND user_id = $2 AND temp_secret = $3",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(temp)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn advance_totp_step(&self, tenant: &str, user_id: &str, step: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE user_totp SET last_step = $3 WHERE tenant = $1 AND user_id = $2 AND last_step < $3",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_totp(&self, tenant: &str, user_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM user_totp WHERE tenant = $1 AND user_id = $2",
            "DELETE FROM backup_codes WHERE tenant = $1 AND user_id = $2",
        ] {
            sqlx::query(sql)
                .bind(tenant)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn replace_backup_codes(
        &self,
        tenant: &str,
        user_id: &str,
        macs: &[String],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM backup_codes WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO backup_codes (tenant, user_id, code_mac)
             SELECT $1, $2, mac FROM UNNEST($3::text[]) AS mac",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(macs)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn use_backup_code(&self, tenant: &str, user_id: &str, mac: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM backup_codes WHERE tenant = $1 AND user_id = $2 AND code_mac = $3",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(mac)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn count_backup_codes(&self, tenant: &str, user_id: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM backup_codes WHERE tenant = $1 AND user_id = $2",
        )
        .bind(tenant)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    async fn create_session(
        &self,
        token_hash: &str,
        tenant: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, tenant, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(tenant)
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session_user(
        &self,
        token_hash: &str,
        tenant: &str,
        now: i64,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM sessions WHERE token_hash = $1 AND tenant = $2 AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(tenant)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_sessions(&self, tenant: &str, user_id: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn put_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &str,
        mac: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO codes (tenant, subject, purpose, code_mac, attempts, expires_at, created_at)
             VALUES ($1, $2, $3, $4, 0, $5, $6)
             ON CONFLICT (tenant, subject, purpose) DO UPDATE SET code_mac = excluded.code_mac,
                attempts = 0, expires_at = excluded.expires_at, created_at = excluded.created_at",
        )
        .bind(tenant)
        .bind(subject)
        .bind(purpose)
        .bind(mac)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn code(&self, tenant: &str, subject: &str, purpose: &str) -> Result<Option<CodeRow>> {
        let r = sqlx::query(
            "SELECT code_mac, attempts, expires_at FROM codes WHERE tenant = $1 AND subject = $2 AND purpose = $3",
        )
        .bind(tenant)
        .bind(subject)
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.map(|r| CodeRow {
            code_mac: r.get(0),
            attempts: r.get::<i64, _>(1) as u32,
            expires_at: r.get(2),
        }))
    }

    async fn consume_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &str,
        mac: &str,
        now: i64,
        max: u32,
    ) -> Result<bool> {
        // A second DELETE racing this one waits for the row lock and then
        // finds the row gone: one of them deletes it.
        let r = sqlx::query(
            "DELETE FROM codes WHERE tenant = $1 AND subject = $2 AND purpose = $3 AND code_mac = $4
                AND expires_at > $5 AND attempts < $6",
        )
        .bind(tenant)
        .bind(subject)
        .bind(purpose)
        .bind(mac)
        .bind(now)
        .bind(max as i64)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn fail_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &str,
        now: i64,
        max: u32,
    ) -> Result<Option<u32>> {
        // Concurrent increments serialise on the row lock, and each re-checks
        // `attempts < max` against the count the previous one committed.
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE codes SET attempts = attempts + 1
             WHERE tenant = $1 AND subject = $2 AND purpose = $3 AND expires_at > $4 AND attempts < $5
             RETURNING attempts",
        )
        .bind(tenant)
        .bind(subject)
        .bind(purpose)
        .bind(now)
        .bind(max as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(n.map(|n| n as u32))
    }

    async fn delete_code(&self, tenant: &str, subject: &str, purpose: &str) -> Result<()> {
        sqlx::query("DELETE FROM codes WHERE tenant = $1 AND subject = $2 AND purpose = $3")
            .bind(tenant)
            .bind(subject)
            .bind(purpose)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_verification(&self, v: &VerificationRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO verifications (id, tenant, channel, to_masked, username, status, expires_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&v.id)
        .bind(&v.tenant)
        .bind(&v.channel)
        .bind(&v.to)
        .bind(&v.username)
        .bind(&v.status)
        .bind(v.expires_at)
        .bind(v.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn verification(&self, tenant: &str, id: &str) -> Result<Option<VerificationRow>> {
        let r = sqlx::query(
            "SELECT id, tenant, channel, to_masked, username, status, expires_at, created_at
             FROM verifications WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.as_ref().map(verification_row))
    }

    async fn finish_verification(
        &self,
        tenant: &str,
        id: &str,
        status: &str,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE verifications SET status = $3, updated_at = $4
             WHERE tenant = $1 AND id = $2 AND status = 'pending'",
        )
        .bind(tenant)
        .bind(id)
        .bind(status)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn rate_hit(&self, key: &str, now: i64, window_ms: i64) -> Result<(u64, i64)> {
        // INSERT … ON CONFLICT DO UPDATE locks the counter row: hits from
        // every host are counted one after another.
        let (count, start): (i64, i64) = sqlx::query_as(
            "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
             ON CONFLICT (key) DO UPDATE SET
                count = CASE WHEN rate_limits.window_start <= $2 - $3 THEN 1 ELSE rate_limits.count + 1 END,
                window_start = CASE WHEN rate_limits.window_start <= $2 - $3 THEN $2 ELSE rate_limits.window_start END
             RETURNING count, window_start",
        )
        .bind(key)
        .bind(now)
        .bind(window_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok((count as u64, start))
    }

    async fn audit(
        &self,
        tenant: &str,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (tenant, at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(now)
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_audit(&self, tenant: &str, limit: u32) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, subject, detail FROM audit WHERE tenant = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                id: r.get(0),
                at: rfc3339(r.get(1)),
                actor: r.get(2),
                action: r.get(3),
                subject: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_size_comes_off_the_url() {
        let (o, n) =
            parse_url("postgres://u:pw@db:6432/postern?max_connections=40&sslmode=disable")
                .unwrap();
        assert_eq!(
            (o.get_host(), o.get_port(), o.get_database(), n),
            ("db", 6432, Some("postern"), 40)
        );
        let (_, n) = parse_url("postgresql://db/postern").unwrap();
        assert_eq!(n, DEFAULT_MAX_CONNECTIONS);
        let e = parse_url("postgres://u:secret@db/p?max_connections=0").unwrap_err();
        assert!(e.contains("1..=1000") && !e.contains("secret"), "{e}");
        assert!(parse_url("postgres://db/p?sslmode=bogus").is_err());
    }
}
