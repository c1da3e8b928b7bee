//! The PostgreSQL side of the suite. When `POSTERN_TEST_DATABASE_URL` names
//! a server (an admin connection, e.g. `postgres://postgres@127.0.0.1:5432/postgres`),
//! every [`super::server::Postern`] gets a fresh database of its own there,
//! dropped with it; without it the suite runs on SQLite.

use std::sync::Arc;

use sqlx::Connection;

pub const ENV: &str = "POSTERN_TEST_DATABASE_URL";

/// Hosts sharing a PostgreSQL database must share the secret key.
pub const SECRET_KEY: &str = "5f1c0a9e3b7d4c2a8e6f0b1d3c5a7e9f2b4d6c8a0e1f3b5d7c9a2e4f6b8d0c1a";

pub fn admin_url() -> Option<String> {
    std::env::var(ENV).ok().filter(|s| !s.trim().is_empty())
}

/// Whether this run is the PostgreSQL pass; tests that need PostgreSQL call
/// this and print why they skip otherwise.
pub fn available(test: &str) -> bool {
    if admin_url().is_some() {
        return true;
    }
    eprintln!("SKIPPED {test}: needs PostgreSQL; set {ENV} (scripts/test does)");
    false
}

/// Cumulative counts for one database; `None` where the server cannot say.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub statements: Option<i64>,
    pub commits: Option<i64>,
    /// Calls per statement text (`pg_stat_statements`' normalised query).
    pub by_statement: Vec<(String, i64)>,
}

/// One database on the test server, dropped when the last holder goes.
pub struct TestDb {
    pub url: String,
    name: String,
    admin: String,
}

impl TestDb {
    /// A new empty database, if this is the PostgreSQL pass.
    pub async fn create() -> Option<Arc<TestDb>> {
        let admin = admin_url()?;
        let name = format!("postern_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{ENV}: cannot connect to {admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).expect("the admin URL is a URL");
        url.set_path(&format!("/{name}"));
        Some(Arc::new(TestDb {
            url: url.to_string(),
            name,
            admin,
        }))
    }

    /// Every row of every table as text, followed by the decoded bytes of
    /// every BYTEA value (which text shows as `\x` + hex).
    pub async fn dump(&self) -> Vec<u8> {
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT quote_ident(table_name) FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut text = String::new();
        for t in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT CAST(t AS text) FROM {t} t"))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            for r in rows {
                text.push_str(&r);
                text.push('\n');
            }
        }
        let mut out = text.clone().into_bytes();
        for run in text.split("\\x").skip(1) {
            let hex: String = run.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            out.extend(hex::decode(&hex[..hex.len() / 2 * 2]).unwrap_or_default());
        }
        out
    }

    /// Statements run in this database (`pg_stat_statements`, if the server
    /// preloads it: scripts/bench does) and transactions committed in it.
    pub async fn counters(&self) -> Counters {
        let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await else {
            return Counters::default();
        };
        let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut conn)
            .await;
        let statements = sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(SUM(s.calls), 0)::bigint FROM pg_stat_statements s
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
        )
        .bind(&self.name)
        .fetch_one(&mut conn)
        .await
        .ok();
        let commits = sqlx::query_scalar::<_, i64>(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
        )
        .bind(&self.name)
        .fetch_one(&mut conn)
        .await
        .ok();
        let by_statement = sqlx::query_as::<_, (String, i64)>(
            "SELECT s.query, s.calls FROM pg_stat_statements s
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
        )
        .bind(&self.name)
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        let _ = conn.close().await;
        Counters {
            statements,
            commits,
            by_statement,
        }
    }

    /// The environment a `postern` process needs to use this database.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("POSTERN_SERVER__DATABASE_URL".into(), self.url.clone()),
            ("POSTERN_SERVER__SECRET_KEY".into(), SECRET_KEY.into()),
        ]
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime: use a thread with its own.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
