//! The real `postern` binary, started in a temp dir on a random port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::pg::TestDb;
use super::secrets;

pub const ADMIN: &str = "test-admin-token-0123456789";

/// The binary under test; `POSTERN_TEST_BIN` names another build (a
/// benchmark's baseline).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("POSTERN_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_postern").into())
    })
}

pub struct Postern {
    pub dir: Arc<tempfile::TempDir>,
    pub base: String,
    child: Child,
    output: Arc<Mutex<String>>,
    config: String,
    env: Vec<(String, String)>,
    /// The PostgreSQL database, in the PostgreSQL pass (see `support::pg`).
    db: Option<Arc<TestDb>>,
    /// The user id the process runs as, if not the test's own.
    uid: Option<u32>,
}

impl Drop for Postern {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking()
            && let Some(secret) = secrets::leaked_in(&self.logs())
        {
            panic!(
                "a secret handed to postern in this test suite (`{secret}`) is in this server's log:\n{}",
                self.logs()
            );
        }
    }
}

impl Postern {
    /// Starts postern with `config` (TOML without `[server] listen/data_dir`,
    /// which the harness sets through environment overrides).
    pub async fn start(config: &str) -> Self {
        Self::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        let db = TestDb::create().await;
        Self::start_on(config, db, env).await
    }

    /// Starts postern on `db` (PostgreSQL; `None`: SQLite in its own data
    /// dir). Several hosts started on one database share it.
    pub async fn start_on(config: &str, db: Option<Arc<TestDb>>, env: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn(dir, config.to_string(), env, db, None).await
    }

    /// Starts postern in `dir` (its data in `dir/data`, which the test may
    /// have prepared, e.g. as a mount point) on SQLite, or as `env` says.
    pub async fn start_in(dir: Arc<tempfile::TempDir>, config: &str, env: &[(&str, &str)]) -> Self {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn(dir, config.to_string(), env, None, None).await
    }

    /// As [`Self::start`], in `dir` (its data in `dir/data`, which the test
    /// may have prepared, e.g. with a warm plugin compile cache).
    pub async fn start_prepared(dir: Arc<tempfile::TempDir>, config: &str) -> Self {
        let db = TestDb::create().await;
        Self::spawn(dir, config.to_string(), Vec::new(), db, None).await
    }

    /// Starts postern on SQLite in `dir` as user `uid` (the test must be
    /// root), so that file permissions bind it.
    pub async fn start_as(dir: Arc<tempfile::TempDir>, config: &str, uid: u32) -> Self {
        Self::spawn(dir, config.to_string(), Vec::new(), None, Some(uid)).await
    }

    /// The environment a CLI command needs to work on this server's store.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "POSTERN_SERVER__DATA_DIR".to_string(),
            self.dir.path().join("data").display().to_string(),
        )];
        env.extend(self.db.iter().flat_map(|db| db.env()));
        env
    }

    pub fn config_path(dir: &Path) -> PathBuf {
        dir.join("postern.toml")
    }

    async fn spawn(
        dir: Arc<tempfile::TempDir>,
        config: String,
        env: Vec<(String, String)>,
        db: Option<Arc<TestDb>>,
        uid: Option<u32>,
    ) -> Self {
        let cfg_path = Self::config_path(dir.path());
        std::fs::write(&cfg_path, &config).unwrap();
        secrets::remember_in_config(&config);
        secrets::remember(ADMIN);
        let mut cmd = Command::new(runnable_bin(dir.path(), uid));
        cmd.arg("serve")
            .arg("-c")
            .arg(&cfg_path)
            .current_dir(dir.path())
            .env("POSTERN_SERVER__LISTEN", "127.0.0.1:0")
            .env("POSTERN_SERVER__DATA_DIR", dir.path().join("data"))
            .env("POSTERN_SERVER__ADMIN_TOKEN", ADMIN)
            .env("POSTERN_SERVER__SHUTDOWN_GRACE_SECONDS", "5")
            .env("POSTERN_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in db.iter().flat_map(|db| db.env()) {
            cmd.env(k, v);
        }
        for (k, v) in &env {
            cmd.env(k, v);
        }
        if let Some(uid) = uid {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, uid);
        }
        let mut child = cmd.spawn().expect("start postern");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            if let Some(addr) = output
                .lock()
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("postern listening on ").map(str::to_string))
            {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "postern exited with {status} before listening:\n{}",
                    output.lock().unwrap()
                );
            }
            if Instant::now() > deadline {
                panic!("postern did not start:\n{}", output.lock().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Self {
            dir,
            base,
            child,
            output,
            config,
            env,
            db,
            uid,
        }
    }

    /// Everything the store holds, as bytes: the SQLite files, or every
    /// row of every table on PostgreSQL (BYTEA values decoded), for tests
    /// that prove a secret is not stored in clear.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        match &self.db {
            Some(db) => db.dump().await,
            None => ["postern.db", "postern.db-wal"]
                .iter()
                .filter_map(|f| std::fs::read(self.dir.path().join("data").join(f)).ok())
                .flatten()
                .collect(),
        }
    }

    /// The server's process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed (stdout and stderr).
    pub fn logs(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// `kill -9`: no graceful anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Starts a new process on the same data dir and config.
    pub async fn restart(mut self) -> Self {
        self.kill9();
        let dir = self.dir.clone();
        let config = self.config.clone();
        let env = self.env.clone();
        let db = self.db.clone();
        let previous = self.logs();
        let next = Self::spawn(dir, config, env, db, self.uid).await;
        next.output.lock().unwrap().insert_str(0, &previous);
        next
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .unwrap()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        Self::client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = Self::client()
            .get(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        secrets::checked_json(r).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        secrets::remember_in_json(&body);
        let r = Self::client()
            .post(self.url(path))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        secrets::checked_json(r).await
    }

    /// One test delivery through `channel`; returns (status, body).
    pub async fn test_send(&self, channel: &str, to: &str) -> (u16, Value) {
        self.post(
            &format!("/api/v1/channels/{channel}/test"),
            serde_json::json!({ "sendTo": to }),
        )
        .await
    }

    pub async fn delivery(&self, id: &str) -> Value {
        let (s, v) = self.get(&format!("/api/v1/deliveries/{id}")).await;
        assert_eq!(s, 200, "{v}");
        v["delivery"].clone()
    }

    /// Waits until the delivery reaches a final status.
    pub async fn settled(&self, id: &str, timeout: Duration) -> Value {
        super::eventually(timeout, &format!("delivery {id} to settle"), || async {
            let d = self.delivery(id).await;
            match d["status"].as_str() {
                Some("queued") | Some("sending") => None,
                _ => Some(d),
            }
        })
        .await
    }
}

/// The binary to start: for another user, a copy in the test's dir, as
/// the build's own path may be in a directory that user cannot enter.
fn runnable_bin(dir: &Path, uid: Option<u32>) -> PathBuf {
    if uid.is_none() {
        return PathBuf::from(bin());
    }
    let copy = dir.join("postern-bin");
    if !copy.exists() {
        std::fs::copy(bin(), &copy).expect("copy the postern binary");
    }
    copy
}

/// Runs a CLI command to completion: (exit code, stdout, stderr).
pub fn run_cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run postern");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
