//! Whether the store can still write, and recovery from storage faults.
//!
//! Two mechanisms, one per concern:
//! - **Connection hygiene**: a statement that fails with an error of the
//!   broken class ([`Backend::is_broken`]: I/O, read-only, full disk,
//!   corruption, a missing table, a dropped server connection) marks the
//!   time in a [`FaultMark`]. The pool's `before_acquire` / `after_release`
//!   hooks then close every connection opened before that mark instead of
//!   handing it out again, so connections that saw the fault (or were
//!   opened read-only, or against an empty file, while it lasted) are
//!   replaced by fresh ones once it ends. New connections never create a
//!   database file and must see postern's schema (each backend's `open`).
//! - **Readiness**: [`SqlStore::probe_write`] proves a write works, on a
//!   pooled connection and on a freshly opened one, in a row of its own per
//!   host (`store_probe`), so hosts sharing PostgreSQL never contend.

use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::{ConnectOptions, Connection};

use super::backend::{Backend, SqlStore};
use super::faults::FaultMark;
use super::{Result, StoreError};

/// How long one probe may take before the store counts as not writable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

const PROBE_WRITE: &str = "INSERT INTO store_probe (host, at) VALUES ($1, $2)
    ON CONFLICT (host) DO UPDATE SET at = excluded.at";

impl<B: Backend> SqlStore<B> {
    /// Notes a broken-class error so the pool retires the connections that
    /// may have seen it; passes the result on unchanged.
    pub(super) fn watch<T>(&self, r: Result<T>) -> Result<T> {
        self.faults.watch(r, B::is_broken)
    }

    /// One tiny write through the pool and one through a connection opened
    /// just for it: together they prove that requests can write now and
    /// that a replacement connection would work too.
    pub(super) async fn probe_write(&self, host: &str, now: i64) -> Result<()> {
        let args = [host.into(), now.into()];
        let pooled = async { self.exec(PROBE_WRITE, &args).await.map(|_| ()) };
        let fresh = async {
            // A replacement connection that cannot be opened (the file moved
            // away, the server gone) is a fault too: the pooled connections
            // may be writing somewhere that no longer is the database.
            let mut conn = self.watch(self.fresh.connect().await.map_err(StoreError::Db))?;
            let r = B::execute(&mut conn, PROBE_WRITE, &args).await;
            let _ = conn.close().await;
            self.watch(r).map(|_| ())
        };
        match tokio::time::timeout(PROBE_TIMEOUT, async { tokio::try_join!(pooled, fresh) }).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(StoreError::Other(format!(
                "no write completed within {PROBE_TIMEOUT:?}"
            ))),
        }
    }
}

/// A pooled connection idle this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Pool options every backend shares: connections opened before the last
/// fault are closed instead of reused, and a new connection must see
/// postern's schema (an empty database where postern's used to be is
/// refused, never silently used).
pub fn pool_options<B: Backend>(faults: &Arc<FaultMark>) -> PoolOptions<B> {
    let (on_acquire, on_release) = (faults.clone(), faults.clone());
    PoolOptions::<B>::new()
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                match B::execute(conn, SCHEMA_CHECK, &[]).await {
                    Ok(_) => Ok(()),
                    Err(StoreError::Db(e)) => Err(e),
                    Err(e) => Err(sqlx::Error::Protocol(e.to_string())),
                }
            })
        })
        // sqlx pings every connection it hands out by default: a second
        // round trip (a thread hand-off on SQLite) per statement. Only one
        // that sat idle a while is pinged; one in steady use that broke
        // fails its statement, which marks the fault above.
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            let fresh = !on_acquire.predates_fault(&meta);
            Box::pin(async move {
                if fresh && meta.idle_for >= PING_IF_IDLE_FOR {
                    return Ok(conn.ping().await.is_ok());
                }
                Ok(fresh)
            })
        })
        .after_release(move |_conn, meta| {
            let fresh = !on_release.predates_fault(&meta);
            Box::pin(async move { Ok(fresh) })
        })
}

/// Fails on a database without postern's schema.
const SCHEMA_CHECK: &str = "SELECT 1 FROM store_probe LIMIT 1";
