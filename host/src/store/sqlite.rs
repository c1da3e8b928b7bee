//! The embedded default: one SQLite file in WAL mode. What is SQLite's own:
//! opening the file, binding [`Arg`]s, and the SQL fragments of [`Backend`].
//!
//! SQLite serialises writers (one write transaction at a time, the others
//! wait up to `busy_timeout`), so the single-statement check-and-change
//! queries need no row locks and claiming due deliveries needs no
//! `SKIP LOCKED`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Sqlite};

use super::backend::{Arg, Backend, SqlStore, run_bound};
use super::faults::transport_broken;
use super::health;
use super::{Result, StoreError};

pub type SqliteStore = SqlStore<Sqlite>;

/// Connections for long reads (console figures, searches, listings), which
/// WAL lets run beside the writer.
const READERS: u32 = 4;

impl SqlStore<Sqlite> {
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
        // Only start-up may create the file; a connection opened later (say
        // while the file is moved away) fails rather than start an empty one.
        let mut first = opts.connect().await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut first)
            .await?;
        let _ = first.close().await;
        let opts = opts.create_if_missing(false);
        let faults = Arc::default();
        // One connection for every statement on the request path: SQLite
        // runs one writer at a time anyway, and a single connection keeps
        // its page cache (another connection's write would reset it) and
        // its worker thread busy instead of sleeping and waking per
        // statement (`scripts/bench`: ~28 % less CPU per verify flow than
        // with 8). Long reads get connections of their own.
        let pool = health::pool_options::<Sqlite>(&faults)
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        let reads = health::pool_options::<Sqlite>(&faults)
            .max_connections(READERS)
            .min_connections(0)
            .connect_lazy_with(opts.clone().pragma("query_only", "ON"));
        Ok(Self {
            pool,
            reads,
            faults,
            fresh: opts,
        })
    }
}

impl Backend for Sqlite {
    type Rec = SqliteRow;

    run_bound!();

    const SKIP_LOCKED: &'static str = "";

    fn later_of(a: &str, b: &str) -> String {
        // Two-argument MAX is NULL if either is; fall back to `a`.
        format!("COALESCE(MAX({a}, {b}), {a})")
    }

    fn in_texts(column: &str, first: usize, n: usize) -> String {
        let list: Vec<String> = placeholders(first, n).collect();
        format!("{column} IN ({})", list.join(","))
    }

    fn texts_table(name: &str, first: usize, n: usize) -> String {
        let rows: Vec<String> = placeholders(first, n).map(|p| format!("({p})")).collect();
        format!(
            "(SELECT column1 AS {name} FROM (VALUES {}))",
            rows.join(", ")
        )
    }

    fn is_broken(e: &sqlx::Error) -> bool {
        let sqlx::Error::Database(d) = e else {
            return transport_broken(e);
        };
        // Primary result codes (the low byte of the extended code):
        // READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB.
        let primary = d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        matches!(primary, Some(8 | 10 | 11 | 13 | 14 | 26))
            || d.message().starts_with("no such table")
    }
}

/// SQLite has no boolean or array type: a bool is bound as 0/1, a list as
/// one argument per element.
fn bind<'q>(sql: &'q str, args: &[Arg<'q>]) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match *a {
            Arg::Text(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::OptInt(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
            Arg::OptBytes(v) => q.bind(v),
            Arg::Bool(v) => q.bind(i64::from(v)),
            Arg::Texts(list) => list.iter().fold(q, |q, v| q.bind(v.as_str())),
        };
    }
    q
}

/// `$first, $first+1, …` (`n` placeholders).
fn placeholders(first: usize, n: usize) -> impl Iterator<Item = String> {
    (first..first + n).map(|i| format!("${i}"))
}
