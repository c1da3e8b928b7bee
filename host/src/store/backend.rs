//! The seam between the SQL, written once, and the two sqlx drivers.
//!
//! The area modules (`queue`, `users`, …) are generic over a [`Backend`]
//! and talk to it only through [`SqlStore`] / [`Tx`]: a statement, and its
//! arguments as [`Arg`] values. Each backend binds those with its own
//! concrete sqlx types and supplies the few SQL fragments that differ
//! (`sqlite.rs`, `postgres.rs`); rows come back as the driver's own row type,
//! read through [`Cols`].

use std::future::Future;
use std::sync::Arc;

use sqlx::{ColumnIndex, Connection, Decode, Pool, Row, Transaction, Type};

use super::faults::FaultMark;
use super::{Result, StoreError};

/// One bound argument. Borrowed: binding copies nothing the driver does not.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    OptInt(Option<i64>),
    Bytes(&'a [u8]),
    OptBytes(Option<&'a [u8]>),
    Bool(bool),
    /// A list of texts: one array argument on PostgreSQL, one argument per
    /// element on SQLite (so it must come last; see [`Backend::in_texts`]).
    Texts(&'a [String]),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::OptText(v.as_deref())
    }
}
impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Int(v.into())
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a> From<&'a Option<Vec<u8>>> for Arg<'a> {
    fn from(v: &'a Option<Vec<u8>>) -> Self {
        Arg::OptBytes(v.as_deref())
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// Everything that differs between SQLite and PostgreSQL, apart from
/// opening the pool. Statements use `$N` placeholders on both: sqlx-sqlite
/// maps `$N` to the N-th bound argument, as PostgreSQL does.
pub trait Backend: sqlx::Database {
    /// The driver's row type.
    type Rec: Cols + Send + Sync;

    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        args: &'c [Arg<'c>],
    ) -> impl Future<Output = Result<u64>> + Send + 'c;
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        args: &'c [Arg<'c>],
    ) -> impl Future<Output = Result<Vec<Self::Rec>>> + Send + 'c;
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        args: &'c [Arg<'c>],
    ) -> impl Future<Output = Result<Option<Self::Rec>>> + Send + 'c;

    /// Ends the sub-select that picks due deliveries: a lock that other
    /// hosts skip instead of waiting for (empty where writers serialise).
    const SKIP_LOCKED: &'static str;
    /// The later of `a` (never NULL) and `b`, or `a` when `b` is NULL.
    fn later_of(a: &str, b: &str) -> String;
    /// `column` is one of the `n` texts bound as one [`Arg::Texts`] at `$first`.
    fn in_texts(column: &str, first: usize, n: usize) -> String;
    /// A table of one text column `name`, its rows the `n` (> 0) texts
    /// bound as one [`Arg::Texts`] at `$first`.
    fn texts_table(name: &str, first: usize, n: usize) -> String;
    /// Whether an error means the connection that saw it may be broken
    /// (I/O, read-only, full disk, corruption, a missing table, a lost
    /// server), so the pool should replace it rather than reuse it.
    fn is_broken(e: &sqlx::Error) -> bool;
}

/// Implements [`Backend`]'s `execute`, `fetch_all` and `fetch_optional`
/// with the backend module's own `bind(sql, args)`. A macro because the
/// two drivers differ here only in their concrete types, which generic
/// code could name only through a long list of sqlx bounds.
macro_rules! run_bound {
    () => {
        async fn execute<'c>(
            conn: &'c mut Self::Connection,
            sql: &'c str,
            args: &'c [Arg<'c>],
        ) -> Result<u64> {
            let done = sqlx::Executor::execute(conn, bind(sql, args)).await?;
            Ok(done.rows_affected())
        }

        async fn fetch_all<'c>(
            conn: &'c mut Self::Connection,
            sql: &'c str,
            args: &'c [Arg<'c>],
        ) -> Result<Vec<Self::Rec>> {
            Ok(sqlx::Executor::fetch_all(conn, bind(sql, args)).await?)
        }

        async fn fetch_optional<'c>(
            conn: &'c mut Self::Connection,
            sql: &'c str,
            args: &'c [Arg<'c>],
        ) -> Result<Option<Self::Rec>> {
            Ok(sqlx::Executor::fetch_optional(conn, bind(sql, args)).await?)
        }
    };
}
pub(super) use run_bound;

/// Typed reads of a result row by column position. A value of the wrong
/// type is an error, never a panic.
pub trait Cols {
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn bytes(&self, i: usize) -> Result<Vec<u8>>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>>;
    /// A boolean column (`BOOLEAN` on PostgreSQL, a 0/1 `INTEGER` on SQLite).
    fn flag(&self, i: usize) -> Result<bool>;

    /// A text column read as a domain type through its `parse`; a value
    /// that does not parse is [`StoreError::Corrupt`] (`what` names it).
    fn parsed<T, E: std::fmt::Display>(
        &self,
        i: usize,
        what: &'static str,
        parse: impl FnOnce(&str) -> std::result::Result<T, E>,
    ) -> Result<T> {
        decode(what, self.text(i)?, parse)
    }
}

/// Parses a stored text with a domain type's `parse`: one that does not
/// parse is [`StoreError::Corrupt`], never a panic or a guess.
pub(super) fn decode<T, E: std::fmt::Display>(
    what: &'static str,
    value: String,
    parse: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> Result<T> {
    parse(&value).map_err(|e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
        value,
    })
}

impl<R> Cols for R
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.try_get(i)?)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.try_get(i)?)
    }
}

/// The store on one backend: [`super::SqliteStore`] or [`super::PgStore`].
pub struct SqlStore<B: Backend> {
    pub(super) pool: Pool<B>,
    /// For long reads ([`SqlStore::read_all`]): on SQLite, connections
    /// beside the one writer, so a console page never holds up a login; on
    /// PostgreSQL the same pool.
    pub(super) reads: Pool<B>,
    /// Shared with the pool's hooks (see `health.rs`).
    pub(super) faults: Arc<FaultMark>,
    /// How a connection outside the pool is opened (the write probe's).
    pub(super) fresh: <B::Connection as Connection>::Options,
}

impl<B: Backend> SqlStore<B> {
    /// Runs one statement on a pooled connection; the rows it changed.
    pub(super) async fn exec(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let mut conn = self.pool.acquire().await?;
        self.watch(B::execute(&mut conn, sql, args).await)
    }

    pub(super) async fn all(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<B::Rec>> {
        let mut conn = self.pool.acquire().await?;
        self.watch(B::fetch_all(&mut conn, sql, args).await)
    }

    pub(super) async fn opt(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<B::Rec>> {
        let mut conn = self.pool.acquire().await?;
        self.watch(B::fetch_optional(&mut conn, sql, args).await)
    }

    /// A read that may take a while (console figures and searches,
    /// listings), on the reader connections. It sees every write committed
    /// before it started.
    pub(super) async fn read_all(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<B::Rec>> {
        let mut conn = self.reads.acquire().await?;
        self.watch(B::fetch_all(&mut conn, sql, args).await)
    }

    /// [`SqlStore::read_all`] for exactly one row (an aggregate).
    pub(super) async fn read_one(&self, sql: &str, args: &[Arg<'_>]) -> Result<B::Rec> {
        let mut conn = self.reads.acquire().await?;
        self.watch(B::fetch_optional(&mut conn, sql, args).await)?
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    /// Exactly one row (an aggregate, an upsert's `RETURNING`).
    pub(super) async fn one(&self, sql: &str, args: &[Arg<'_>]) -> Result<B::Rec> {
        self.opt(sql, args)
            .await?
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    /// A transaction (a plain `BEGIN` on both: on SQLite every transaction
    /// here starts with a write, so it takes the write lock up front and
    /// never has to upgrade a read lock).
    pub(super) async fn begin(&self) -> Result<Tx<B>> {
        let tx = self.watch(self.pool.begin().await.map_err(StoreError::Db))?;
        Ok(Tx {
            tx,
            faults: self.faults.clone(),
        })
    }
}

/// An open transaction; dropped without [`Tx::commit`], it rolls back.
pub struct Tx<B: Backend> {
    tx: Transaction<'static, B>,
    faults: Arc<FaultMark>,
}

impl<B: Backend> Tx<B> {
    fn watch<T>(&self, r: Result<T>) -> Result<T> {
        self.faults.watch(r, B::is_broken)
    }

    pub(super) async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let r = B::execute(&mut self.tx, sql, args).await;
        self.watch(r)
    }

    pub(super) async fn opt(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<B::Rec>> {
        let r = B::fetch_optional(&mut self.tx, sql, args).await;
        self.watch(r)
    }

    pub(super) async fn commit(self) -> Result<()> {
        let faults = self.faults.clone();
        faults.watch(self.tx.commit().await.map_err(StoreError::Db), B::is_broken)
    }

    pub(super) async fn rollback(self) -> Result<()> {
        Ok(self.tx.rollback().await?)
    }
}

/// A unique-key violation becomes [`StoreError::Conflict`].
pub(super) fn conflict_on_unique<T>(r: Result<T>) -> Result<T> {
    match r {
        Err(StoreError::Db(sqlx::Error::Database(d))) if d.is_unique_violation() => {
            Err(StoreError::Conflict)
        }
        other => other,
    }
}
