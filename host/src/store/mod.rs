//! Persistence. Callers see the [`Store`] trait and plain row types; only
//! this module knows SQL. SQLite is the embedded default; PostgreSQL lets
//! several hosts share one database. Both implement every method with the
//! same behaviour; each has its own migrations (`migrations/sqlite`,
//! `migrations/postgres`), so a schema change adds a file to both.

#[cfg(test)]
mod conformance;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use thiserror::Error;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Opens the store named by a `database_url`.
pub async fn open(database_url: &str) -> Result<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(database_url).await?))
    } else if is_postgres_url(database_url) {
        Ok(Arc::new(PgStore::open(database_url).await?))
    } else {
        Err(StoreError::Other(format!(
            "unsupported database_url scheme in `{}`",
            database_url.split(':').next().unwrap_or_default()
        )))
    }
}

/// `postgres://…` or `postgresql://…`: a database several hosts may share.
pub fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// Checks a PostgreSQL URL without connecting (for config validation).
pub fn check_postgres_url(database_url: &str) -> std::result::Result<(), String> {
    postgres::parse_url(database_url).map(|_| ())
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRow {
    pub name: String,
    pub created_at: i64,
}

/// A delivery about to be stored. When `lease_owner` is set the row is
/// stored as `sending`, leased to that worker (the inline first attempt).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub tenant: String,
    pub channel: String,
    pub send_to_masked: String,
    pub username: Option<String>,
    pub payload: Vec<u8>,
    pub next_attempt_at: i64,
    pub expires_at: i64,
    pub fallback_of: Option<String>,
    pub fallback_depth: u32,
    pub created_at: i64,
    pub lease: Option<(String, i64)>,
}

/// A delivery a worker holds a lease on.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub tenant: String,
    pub channel: String,
    pub send_to_masked: String,
    pub username: Option<String>,
    pub payload: Vec<u8>,
    pub attempt_count: u32,
    pub expires_at: i64,
    pub fallback_depth: u32,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Delivered,
    Failed,
    Expired,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub at: i64,
    pub outcome: String,
    pub detail: String,
    pub duration_ms: i64,
}

/// How a leased delivery leaves the worker's hands.
#[derive(Debug, Clone)]
pub struct Finish {
    pub attempt: Option<AttemptRow>,
    pub status: DeliveryStatus,
    /// For `Queued`: when the next attempt is due.
    pub next_attempt_at: Option<i64>,
    pub provider_id: Option<String>,
    pub log: Option<String>,
    /// Enqueued in the same transaction (the fallback channel's delivery).
    pub then_enqueue: Option<NewDelivery>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// RFC 3339 time of the attempt.
    pub at: String,
    /// delivered | transient | permanent
    pub outcome: String,
    pub detail: String,
    pub duration_ms: i64,
}

/// A delivery as the API shows it: never the code, the send-to masked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub id: String,
    pub channel: String,
    pub to: String,
    /// queued | sending | delivered | failed | expired
    pub status: String,
    pub attempts: Vec<AttemptRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_of: Option<String>,
    pub expires_at: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub username: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub tenant: String,
    pub id: String,
    pub username: String,
    pub password_hash: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub default_method: Option<String>,
    pub created_at: i64,
}

/// An enabled 2FA method of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodRow {
    pub method: String,
    pub send_to: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TotpRow {
    pub secret: Option<Vec<u8>>,
    pub temp_secret: Option<Vec<u8>>,
    pub last_step: i64,
}

/// A stored code: only its MAC.
#[derive(Debug, Clone)]
pub struct CodeRow {
    pub code_mac: String,
    pub attempts: u32,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationRow {
    pub id: String,
    #[serde(skip)]
    pub tenant: String,
    pub channel: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub status: String,
    #[serde(skip)]
    pub expires_at: i64,
    #[serde(skip)]
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A channel a tenant configured over the API.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub tenant: String,
    pub name: String,
    pub kind: String,
    pub config: String,
    pub secrets: Option<Vec<u8>>,
    pub secret_keys: String,
    pub plugin: Option<String>,
    pub allowed_hosts: String,
    pub send_to_type: Option<String>,
    pub send_to_regex: Option<String>,
    pub fallback: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An uploaded plugin version.
#[derive(Debug, Clone)]
pub struct PluginRow {
    pub tenant: String,
    pub name: String,
    pub sha256: String,
    pub size: i64,
    pub info: String,
    /// Empty in listings; filled by [`Store::plugin_bytes`].
    pub wasm: Vec<u8>,
    pub uploaded_at: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn ping(&self) -> Result<()>;

    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` unless the key exists; returns whether it was stored.
    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool>;
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;

    async fn create_tenant(&self, name: &str, api_key_hash: Option<&str>, now: i64) -> Result<()>;
    async fn ensure_tenant(&self, name: &str, now: i64) -> Result<()>;
    async fn list_tenants(&self) -> Result<Vec<TenantRow>>;
    /// Deletes a tenant and everything it owns; false if there was none.
    async fn delete_tenant(&self, name: &str) -> Result<bool>;

    /// Inserts or replaces a tenant channel and bumps `channels_version`.
    async fn put_channel(&self, c: &ChannelRow) -> Result<()>;
    async fn delete_channel(&self, tenant: &str, name: &str) -> Result<bool>;
    /// One tenant's channels, or every tenant's with `None`.
    async fn channels(&self, tenant: Option<&str>) -> Result<Vec<ChannelRow>>;
    /// Changes whenever any tenant channel or plugin changes (for other
    /// hosts to notice).
    async fn channels_version(&self) -> Result<i64>;

    /// Inserts or replaces a plugin (bumps `channels_version`).
    async fn put_plugin(&self, p: &PluginRow) -> Result<()>;
    /// Without bytes; one tenant's or everyone's.
    async fn plugins(&self, tenant: Option<&str>) -> Result<Vec<PluginRow>>;
    async fn plugin_bytes(&self, tenant: &str, name: &str) -> Result<Option<Vec<u8>>>;
    async fn delete_plugin(&self, tenant: &str, name: &str) -> Result<bool>;
    /// `None`: no such tenant; `Some(None)`: a tenant without an API key.
    async fn tenant_key_hash(&self, name: &str) -> Result<Option<Option<String>>>;
    async fn tenant_by_key_hash(&self, hash: &str) -> Result<Option<String>>;

    async fn insert_delivery(&self, d: &NewDelivery) -> Result<()>;
    /// Leases up to `limit` due deliveries (queued, or sending with an
    /// expired lease) to `owner` until `lease_until`.
    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>>;
    /// Leases one delivery by id if it is due and not leased.
    async fn claim_by_id(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<ClaimedDelivery>>;
    /// Records the outcome if `owner` still holds the lease; returns false
    /// (and changes nothing) if it does not.
    async fn finish(&self, id: &str, owner: &str, now: i64, f: Finish) -> Result<bool>;
    /// Earliest `next_attempt_at` among deliveries that may be claimed.
    async fn next_due_at(&self) -> Result<Option<i64>>;
    async fn get_delivery(&self, tenant: &str, id: &str) -> Result<Option<DeliveryRecord>>;
    async fn list_deliveries(
        &self,
        tenant: &str,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<DeliveryRecord>, u64)>;
    /// Deliveries in `queued` or `sending`: for shutdown and metrics.
    async fn count_pending(&self) -> Result<u64>;

    // Users and their 2FA methods.
    async fn create_user(&self, u: &UserRow) -> Result<()>;
    async fn user_by_id(&self, tenant: &str, id: &str) -> Result<Option<UserRow>>;
    async fn user_by_username(&self, tenant: &str, username: &str) -> Result<Option<UserRow>>;
    async fn user_by_email(&self, tenant: &str, email: &str) -> Result<Option<UserRow>>;
    /// Writes name, email, email_verified, password_hash and default_method.
    async fn update_user(&self, u: &UserRow) -> Result<()>;
    async fn delete_user(&self, tenant: &str, id: &str) -> Result<bool>;
    async fn methods(&self, tenant: &str, user_id: &str) -> Result<Vec<MethodRow>>;
    async fn put_method(&self, tenant: &str, user_id: &str, m: &MethodRow, now: i64) -> Result<()>;
    async fn delete_method(&self, tenant: &str, user_id: &str, method: &str) -> Result<()>;

    async fn totp(&self, tenant: &str, user_id: &str) -> Result<Option<TotpRow>>;
    async fn set_totp_temp(&self, tenant: &str, user_id: &str, temp: &[u8]) -> Result<()>;
    /// Moves the temp secret to the confirmed one if it is still `temp`.
    async fn confirm_totp(
        &self,
        tenant: &str,
        user_id: &str,
        temp: &[u8],
        step: i64,
    ) -> Result<bool>;
    /// Accepts `step` only if it is newer than every accepted step (replay guard).
    async fn advance_totp_step(&self, tenant: &str, user_id: &str, step: i64) -> Result<bool>;
    async fn delete_totp(&self, tenant: &str, user_id: &str) -> Result<()>;
    async fn replace_backup_codes(
        &self,
        tenant: &str,
        user_id: &str,
        macs: &[String],
    ) -> Result<()>;
    async fn use_backup_code(&self, tenant: &str, user_id: &str, mac: &str) -> Result<bool>;
    async fn count_backup_codes(&self, tenant: &str, user_id: &str) -> Result<u64>;

    async fn create_session(
        &self,
        token_hash: &str,
        tenant: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The session's user id, if the session exists, is unexpired and belongs to `tenant`.
    async fn session_user(
        &self,
        token_hash: &str,
        tenant: &str,
        now: i64,
    ) -> Result<Option<String>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
    async fn delete_sessions(&self, tenant: &str, user_id: &str) -> Result<u64>;

    /// Stores a code, replacing the subject's live code for `purpose`.
    async fn put_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &str,
        mac: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<()>;
    async fn code(&self, tenant: &str, subject: &str, purpose: &str) -> Result<Option<CodeRow>>;
    /// Deletes the code if it is still the one with `mac`, live and under
    /// `max` attempts: true exactly once, even under concurrent checks.
    async fn consume_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &str,
        mac: &str,
        now: i64,
        max: u32,
    ) -> Result<bool>;
    /// Counts a wrong attempt on a live code; the new count, or None if
    /// there was no live code left to count against.
    async fn fail_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &str,
        now: i64,
        max: u32,
    ) -> Result<Option<u32>>;
    async fn delete_code(&self, tenant: &str, subject: &str, purpose: &str) -> Result<()>;

    async fn insert_verification(&self, v: &VerificationRow) -> Result<()>;
    async fn verification(&self, tenant: &str, id: &str) -> Result<Option<VerificationRow>>;
    /// `pending` → `status`; false if it was no longer pending.
    async fn finish_verification(
        &self,
        tenant: &str,
        id: &str,
        status: &str,
        now: i64,
    ) -> Result<bool>;

    /// Counts one hit in the fixed window of `key`; (count in window, window start).
    async fn rate_hit(&self, key: &str, now: i64, window_ms: i64) -> Result<(u64, i64)>;

    async fn audit(
        &self,
        tenant: &str,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&str>,
        now: i64,
    ) -> Result<()>;
    async fn list_audit(&self, tenant: &str, limit: u32) -> Result<Vec<AuditRow>>;
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
