//! PostgreSQL: one database shared by several postern hosts. What is
//! PostgreSQL's own: parsing the URL, opening the pool, binding [`Arg`]s,
//! and the SQL fragments of [`Backend`].
//!
//! The shared statements are made safe for concurrent writers in other
//! processes: due deliveries are leased with `FOR UPDATE SKIP LOCKED`, and
//! every check-and-change (consume a code, count an attempt, finish a lease,
//! advance a TOTP step, count a rate-limit hit) is one statement whose
//! condition PostgreSQL re-checks on the row it locked, so two hosts can
//! never both win.

use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgRow};
use sqlx::query::Query;
use sqlx::{ConnectOptions, Connection, Postgres};

use super::backend::{Arg, Backend, SqlStore, run_bound};
use super::faults::transport_broken;
use super::health;
use super::{Result, StoreError};

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

pub type PgStore = SqlStore<Postgres>;

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

impl SqlStore<Postgres> {
    pub async fn open(url: &str) -> Result<Self> {
        let (opts, max_connections) = parse_url(url).map_err(StoreError::Other)?;
        let target = describe(&opts);
        // One direct connection first: the pool would retry a refused
        // connection until its timeout and report only "timed out". It
        // applies the migrations (sqlx holds a PostgreSQL advisory lock while
        // it migrates, so hosts starting together apply each one once).
        let mut first = match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
            Ok(Ok(conn)) => conn,
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
        };
        sqlx::migrate!("./migrations/postgres")
            .run(&mut first)
            .await?;
        let _ = first.close().await;
        let faults = Arc::default();
        let pool = health::pool_options::<Postgres>(&faults)
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .connect_with(opts.clone())
            .await?;
        Ok(Self {
            reads: pool.clone(),
            pool,
            faults,
            fresh: opts,
        })
    }
}

impl Backend for Postgres {
    type Rec = PgRow;

    run_bound!();

    const SKIP_LOCKED: &'static str = "FOR UPDATE SKIP LOCKED";

    fn later_of(a: &str, b: &str) -> String {
        // GREATEST ignores NULL.
        format!("GREATEST({a}, {b})")
    }

    fn in_texts(column: &str, first: usize, _n: usize) -> String {
        format!("{column} = ANY(${first})")
    }

    fn texts_table(name: &str, first: usize, _n: usize) -> String {
        format!("UNNEST(${first}::text[]) AS {name}")
    }

    fn is_broken(e: &sqlx::Error) -> bool {
        let sqlx::Error::Database(d) = e else {
            return transport_broken(e);
        };
        // SQLSTATE classes: connection exception (08), operator
        // intervention (57: shutdown, crash, cannot connect now), system
        // error (58: I/O), internal error (XX: corruption); an undefined
        // table (42P01: not postern's schema); a read-only transaction
        // (25006: a standby). Not insufficient resources (53): a full disk
        // or too many clients leaves the connection itself sound.
        let code = d.code().unwrap_or_default();
        ["08", "57", "58", "XX"].iter().any(|c| code.starts_with(c))
            || code == "42P01"
            || code == "25006"
    }
}

/// A list is bound as one `text[]`: one statement text whatever its length.
fn bind<'q>(sql: &'q str, args: &[Arg<'q>]) -> Query<'q, Postgres, PgArguments> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match *a {
            Arg::Text(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::OptInt(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
            Arg::OptBytes(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
            Arg::Texts(list) => q.bind(list),
        };
    }
    q
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
