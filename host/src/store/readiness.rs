//! The answer `/readyz` gives about the store: the last write probe's,
//! reused for [`FRESH_FOR`] so probes cost nothing however often a load
//! balancer asks, and one probe at a time however many ask at once.

use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Store;

/// How long a probe's answer stands.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

pub struct Readiness {
    host: String,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
    /// `postern_store_up`.
    gauge: IntGauge,
}

impl Readiness {
    /// `host` keys this host's probe row.
    pub fn new(host: &str, gauge: IntGauge) -> Self {
        Self {
            host: host.to_string(),
            last: Mutex::new(None),
            gauge,
        }
    }

    /// Whether the store can write, as of at most [`FRESH_FOR`] ago; the
    /// error says why not. `now_ms` is the time written in the probe row.
    pub async fn check(&self, store: &dyn Store, now_ms: i64) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, r)) = last.as_ref()
            && at.elapsed() < FRESH_FOR
        {
            return r.clone();
        }
        let r = store
            .probe_write(&self.host, now_ms)
            .await
            .map_err(|e| e.to_string());
        let was_down = last.as_ref().is_some_and(|(_, p)| p.is_err());
        match (&r, was_down) {
            (Err(e), false) => tracing::error!(error = %e, "store cannot write"),
            (Ok(()), true) => tracing::info!("store writes again"),
            _ => {}
        }
        self.gauge.set(i64::from(r.is_ok()));
        *last = Some((Instant::now(), r.clone()));
        r
    }
}
