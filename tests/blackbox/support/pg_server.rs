//! A PostgreSQL server of the test's own (initdb into a temp dir), for a
//! test that restarts the server under a running postern without
//! disturbing the shared one every other test uses.

use std::path::PathBuf;
use std::process::Command;

pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl PgServer {
    /// `None` when PostgreSQL's server binaries are not installed.
    pub fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("pg_ctl").exists())
            .max()?;
        let dir = tempfile::tempdir().unwrap();
        let root = is_root();
        if root {
            std::os::unix::fs::chown(dir.path(), Some(uid_of("postgres")), None).unwrap();
        }
        let port = free_port();
        let server = Self { bin, dir, port };
        server.run(&[
            "initdb",
            "-D",
            "DATA",
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        server.pg_ctl_start();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl stop -m fast`: every client connection is cut.
    pub fn stop(&self) {
        self.run(&["pg_ctl", "-D", "DATA", "-m", "fast", "-w", "stop"]);
    }

    pub fn pg_ctl_start(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(&[
            "pg_ctl", "-D", "DATA", "-l", &log, "-w", "-t", "30", "-o", &opts, "start",
        ]);
    }

    /// Runs a server binary (`DATA` stands for the data directory) as a
    /// user PostgreSQL accepts: never root.
    fn run(&self, args: &[&str]) {
        let data = self.dir.path().join("data").display().to_string();
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if *a == "DATA" {
                    data.clone()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let out = as_server_user(&self.bin.join(&args[0]))
            .args(&args[1..])
            .output()
            .expect("run a PostgreSQL binary");
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// `program` run as `postgres` when this is root (PostgreSQL refuses root).
fn as_server_user(program: &std::path::Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
