//! Persistence. Callers see the [`Store`] trait and plain row types; only
//! this module knows SQL. SQLite is the embedded default; a PostgreSQL
//! implementation plugs in behind the same trait.

mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use thiserror::Error;

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
    } else {
        Err(StoreError::Other(format!(
            "unsupported database_url scheme in `{}`",
            database_url.split(':').next().unwrap_or_default()
        )))
    }
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
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
