//! Storage faults for the tests of `storage.rs`: a small tmpfs to fill up,
//! a steady stream of deliveries to watch through a fault, and the figures
//! an operator would ask about afterwards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::http::Receiver;
use super::server::Postern;

/// A tmpfs mounted on a directory for the life of the guard. Mounting
/// needs CAP_SYS_ADMIN (root in the CI container); without it, `None`.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self {
            path: path.to_path_buf(),
        })
    }

    /// Fills the file system to the last byte; returns the filler's path
    /// (remove it to end the fault).
    pub fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            if std::io::Write::write_all(&mut f, &block).is_err() {
                break;
            }
        }
        // The last partial block, byte by byte, so not one page is left.
        while std::io::Write::write_all(&mut f, &[0]).is_ok() {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the server may still hold files there for a moment.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// One test send of the workload: when it started, how long it took, what
/// it answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub to: String,
    pub started: Instant,
    pub took: Duration,
    pub status: u16,
}

/// Test sends through channel `url`, a new one every `every` whatever the
/// earlier ones are doing (so a stuck call never hides a fault), each to
/// a new address, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Call>>,
}

impl Load {
    pub fn start(p: &Postern, label: &str, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = p.url("/api/v1/channels/url/test");
        let (halt, label) = (stop.clone(), label.to_string());
        let task = tokio::spawn(async move {
            let client = Postern::client();
            let mut calls = Vec::new();
            for i in 0.. {
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                let (client, url) = (client.clone(), url.clone());
                let to = format!("{label}{i}@example.com");
                calls.push(tokio::spawn(async move { send(&client, &url, to).await }));
                tokio::time::sleep(every).await;
            }
            let mut done = Vec::new();
            for c in calls {
                done.extend(c.await.ok());
            }
            done
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

async fn send(client: &reqwest::Client, url: &str, to: String) -> Call {
    let started = Instant::now();
    let status = client
        .post(url)
        .bearer_auth(super::server::ADMIN)
        .json(&serde_json::json!({ "sendTo": to }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    Call {
        to,
        started,
        took: started.elapsed(),
        status,
    }
}

/// When `/readyz` first answers `want` at or after `since`, polled every
/// 100 ms for up to `within`; `None` if it never did.
pub async fn readyz_becomes(
    p: &Postern,
    want: u16,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    let client = Postern::client();
    while since.elapsed() < within {
        let status = client
            .get(p.url("/readyz"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == want {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// What a fault did, from the workload's calls and what the provider got.
#[derive(Debug)]
pub struct Report {
    pub calls: usize,
    pub refused: usize,
    pub acknowledged: usize,
    /// Sends the provider got more than once (at-least-once delivery).
    pub duplicates: usize,
    /// Acknowledged sends the provider never got.
    pub lost: Vec<String>,
    /// Sends answered 503 that reached the provider anyway.
    pub refused_but_sent: Vec<String>,
    /// Answers that were neither 200 nor 503, or took over 5 s.
    pub bad_answers: Vec<Call>,
    /// Sends started 5 s or more after the fault ended that failed.
    pub failed_after_recovery: Vec<Call>,
}

impl Report {
    pub fn new(calls: &[Call], rx: &Receiver, fault_ended: Instant) -> Self {
        let mut got: HashMap<String, usize> = HashMap::new();
        for r in rx.requests() {
            if let Some(e) = r.form_get("email") {
                *got.entry(e).or_default() += 1;
            }
        }
        let ok: Vec<&Call> = calls.iter().filter(|c| c.status == 200).collect();
        let refused: Vec<&Call> = calls.iter().filter(|c| c.status == 503).collect();
        Self {
            calls: calls.len(),
            refused: refused.len(),
            acknowledged: ok.len(),
            duplicates: got.values().map(|n| n.saturating_sub(1)).sum(),
            lost: ok
                .iter()
                .filter(|c| !got.contains_key(&c.to))
                .map(|c| c.to.clone())
                .collect(),
            refused_but_sent: refused
                .iter()
                .filter(|c| got.contains_key(&c.to))
                .map(|c| c.to.clone())
                .collect(),
            bad_answers: calls
                .iter()
                .filter(|c| !matches!(c.status, 200 | 503) || c.took > Duration::from_secs(5))
                .cloned()
                .collect(),
            failed_after_recovery: calls
                .iter()
                .filter(|c| c.started >= fault_ended + Duration::from_secs(5) && c.status != 200)
                .cloned()
                .collect(),
        }
    }
}
