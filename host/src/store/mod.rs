//! Persistence. Callers see the area traits ([`QueueStore`], [`UserStore`],
//! [`CodeStore`], [`TenantStore`], [`RateStore`], [`AuditStore`]), gathered
//! in [`Store`], and plain row types; only this module knows SQL. SQLite is
//! the embedded default; PostgreSQL lets several hosts share one database.
//! Through `Arc<dyn Store>` every area's methods are callable as they are;
//! code holding a concrete store imports [`prelude`].
//!
//! # One SQL layer
//!
//! Every statement is written once, in the area module it belongs to
//! (`queue.rs`, `users.rs`, `codes.rs`, `tenants.rs`, `rate.rs`, `audit.rs`),
//! as generic code over a [`Backend`]; [`SqliteStore`] and [`PgStore`] are
//! that code on `sqlx::Sqlite` and `sqlx::Postgres`. What differs lives in
//! one file per backend, `sqlite.rs` and `postgres.rs`: opening the pool,
//! binding arguments (SQLite has no boolean or array type), and four SQL
//! fragments: `FOR UPDATE SKIP LOCKED`, `GREATEST` vs a two-argument `MAX`,
//! `= ANY($1)` vs `IN ($1, …)`, and `UNNEST` vs a `VALUES` table. The rest
//! needs no dialect: `$N` placeholders (sqlx-sqlite maps `$N` to the N-th
//! argument), upserts (`ON CONFLICT … DO UPDATE SET x = excluded.x`),
//! `RETURNING`, standard `CAST(… AS TEXT)` rather than `::text`,
//! unique-violation detection (sqlx's `is_unique_violation`), blobs
//! (`Vec<u8>` on both) and transactions (a plain `BEGIN`: SQLite serialises
//! writers, and each transaction here starts with a write).
//!
//! Why this mechanism: generic code over `sqlx::Database` itself needs a
//! long list of higher-ranked `Encode`/`Decode`/`Executor` bounds that Rust
//! makes every generic impl repeat; a macro stamping the store out per
//! backend would put a thousand lines where the compiler's messages and
//! rustfmt serve badly; sqlx's `Any` driver (a feature this build does not
//! enable) has no arrays (no `ANY`/`UNNEST`), decodes SQLite's 0/1 integers
//! as integers where PostgreSQL has booleans, copies every row into its own
//! value type, and takes its connect options through a URL. Here the
//! generic code needs the single bound `B: Backend`: arguments are a small
//! [`Arg`] enum each backend binds with its concrete sqlx types, rows are
//! the driver's own, read through [`Cols`]. Statements stay plain text, so
//! sqlx's per-connection prepared-statement cache works as with direct
//! binding; the cost is one enum match per argument. The only macro is
//! `run_bound!` (`backend.rs`), the three run functions both backends
//! share but for their concrete types.
//!
//! Each backend has its own migrations (`migrations/sqlite`,
//! `migrations/postgres`), so a schema change adds a file to both.

#[cfg(test)]
mod abuse_conformance;
mod audit;
mod backend;
mod codes;
#[cfg(test)]
mod codes_conformance;
#[cfg(test)]
mod conformance;
mod console;
mod failures;
mod faults;
mod fraud;
mod health;
mod plugin_keys;
mod postgres;
mod queue;
mod rate;
mod readiness;
mod receipts;
mod rollout;
mod rows;
mod sqlite;
#[cfg(test)]
mod stored_strings;
mod tenants;
mod users;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

pub use audit::AuditStore;
pub use backend::{Arg, Backend, Cols, SqlStore};
pub use codes::CodeStore;
pub use console::{
    ConsoleSessionRow, ConsoleStore, DeliverySearch, OutcomeBucket, PluginOutcome, QueueSummary,
    TookBucket,
};
pub use failures::{FailureCount, FailureStore, LOCKED_UNTIL_UNLOCKED};
pub use fraud::{FlaggedPrefix, FraudStore};
pub use postgres::PgStore;
pub use queue::QueueStore;
pub use rate::RateStore;
pub use readiness::{FRESH_FOR as READINESS_FRESH_FOR, Readiness};
pub use receipts::{HandsetRecord, HandsetState, NewReceipt, ReceiptStore};
pub use rollout::{RolloutRow, RolloutState, RolloutStore, RolloutWindow};
pub use rows::*;
pub use sqlite::SqliteStore;
pub use tenants::TenantStore;
pub use users::UserStore;

/// The store traits, for callers: `use crate::store::prelude::*;`.
pub mod prelude {
    pub use super::{
        AuditStore, CodeStore, ConsoleStore, FailureStore, FraudStore, QueueStore, RateStore,
        ReceiptStore, RolloutStore, Store, TenantStore, UserStore,
    };
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value postern would not have written (a 2FA method, code
    /// purpose or status that does not parse): the row is refused, not guessed at.
    #[error("stored {what} `{value}` is not valid: {reason}")]
    Corrupt {
        what: &'static str,
        value: String,
        reason: String,
    },
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

/// Everything a host keeps, by area; `Arc<dyn Store>` is what callers hold.
#[async_trait]
pub trait Store:
    QueueStore
    + UserStore
    + CodeStore
    + TenantStore
    + RateStore
    + AuditStore
    + ReceiptStore
    + FailureStore
    + FraudStore
    + RolloutStore
    + ConsoleStore
    + Send
    + Sync
{
    /// One tiny write in this host's `store_probe` row, through the pool
    /// and through a new connection; an error says why the store cannot
    /// write (see `health.rs`).
    async fn probe_write(&self, host: &str, now: i64) -> Result<()>;
}

#[async_trait]
impl<B: backend::Backend> Store for SqlStore<B> {
    async fn probe_write(&self, host: &str, now: i64) -> Result<()> {
        SqlStore::probe_write(self, host, now).await
    }
}
