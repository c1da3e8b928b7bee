//! Prometheus metrics: deliveries by channel and outcome, attempt latency.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub attempts: IntCounterVec,
    pub deliveries: IntCounterVec,
    pub attempt_seconds: HistogramVec,
    pub http_requests: IntCounterVec,
    /// Responses 429 (a rate limit or quota turned the request away).
    pub http_rate_limited: IntCounter,
    /// Plugin runs that did not finish, by tenant, channel and reason
    /// (trap, cpu_budget, memory, wall_timeout, start, sandbox_denied).
    pub plugin_failures: IntCounterVec,
    pub realtime_connections: IntGauge,
    pub realtime_refused: IntCounterVec,
    pub realtime_closed: IntCounterVec,
    pub realtime_calls: IntCounterVec,
    pub handset_receipts: IntCounterVec,
    /// 1 while the store's last write probe succeeded, else 0.
    pub store_up: IntGauge,
    /// Deliveries queued or sending, and how long the earliest due one has
    /// waited (from the store, at scrape time).
    pub queue: QueueGauges,
    /// Failure locks and the pumping guard.
    pub abuse: AbuseMetrics,
    /// What each plugin's attempts cost.
    pub plugins: PluginMetrics,
    /// Staged plugin rollouts.
    pub rollout: RolloutMetrics,
}

/// Staged plugin rollouts.
pub struct RolloutMetrics {
    /// Canaries rolled back, by tenant, plugin and trigger (automatic | manual).
    pub rollbacks: IntCounterVec,
    /// Attempts counted for a rollout, by tenant, plugin, version
    /// (canary | stable) and outcome (ok | failed).
    pub attempts: IntCounterVec,
}

impl RolloutMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            rollbacks: counter(
                r,
                "plugin_rollbacks_total",
                "Plugin canaries rolled back, by trigger (automatic: the failure-rate check)",
                &["tenant", "plugin", "trigger"],
            ),
            attempts: counter(
                r,
                "plugin_rollout_attempts_total",
                "Attempts counted for a plugin rollout, by version (canary | stable) and outcome",
                &["tenant", "plugin", "version", "outcome"],
            ),
        }
    }
}

/// Per plugin (`tenant`, `plugin` = its describe() name): CPU time, peak
/// linear memory and outbound requests of each attempt.
pub struct PluginMetrics {
    pub cpu_seconds: HistogramVec,
    pub peak_memory_bytes: HistogramVec,
    pub http_requests: HistogramVec,
}

impl PluginMetrics {
    fn new(r: &Registry) -> Self {
        let ms = [
            0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
        ];
        let mib = [
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
        ];
        Self {
            cpu_seconds: histogram(
                r,
                "plugin_cpu_seconds",
                "Guest CPU time of one plugin attempt",
                ms.iter().map(|m| m / 1000.0).collect(),
            ),
            peak_memory_bytes: histogram(
                r,
                "plugin_peak_memory_bytes",
                "Peak linear memory of one plugin attempt",
                mib.iter().map(|m| m * 1048576.0).collect(),
            ),
            http_requests: histogram(
                r,
                "plugin_http_requests",
                "Outbound HTTP requests of one plugin attempt",
                vec![0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 16.0],
            ),
        }
    }

    /// Records one plugin attempt's figures.
    pub fn observe(&self, tenant: &str, r: &crate::delivery::Resources) {
        let labels = [tenant, r.plugin.as_str()];
        let cpu = r.cpu_us as f64 / 1e6;
        self.cpu_seconds.with_label_values(&labels).observe(cpu);
        let peak = r.peak_memory_bytes as f64;
        self.peak_memory_bytes
            .with_label_values(&labels)
            .observe(peak);
        let n = f64::from(r.http_requests);
        self.http_requests.with_label_values(&labels).observe(n);
    }
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets),
        &["tenant", "plugin"],
    )
    .unwrap_or_else(|e| panic!("static metric definition {name}: {e}"));
    let _ = registry.register(Box::new(h.clone()));
    h
}

pub struct QueueGauges {
    pub depth: IntGauge,
    pub oldest_due_age_seconds: IntGauge,
}

impl QueueGauges {
    fn new(r: &Registry) -> Self {
        Self {
            depth: gauge(
                r,
                "queue_depth",
                "Deliveries queued or sending (every tenant)",
            ),
            oldest_due_age_seconds: gauge(
                r,
                "queue_oldest_due_age_seconds",
                "Seconds the earliest due, unfinished delivery has waited past its due time (0: none overdue)",
            ),
        }
    }
}

impl QueueGauges {
    /// Reads the queue from the store (at scrape time); on a store error
    /// the gauges keep their last values and the error is logged.
    pub async fn refresh(&self, store: &dyn crate::store::Store, now_ms: i64) {
        match store.queue_summary(None).await {
            Ok(q) => {
                self.depth.set(i64::try_from(q.depth).unwrap_or(i64::MAX));
                let overdue = q.oldest_due_at.map_or(0, |at| (now_ms - at).max(0) / 1000);
                self.oldest_due_age_seconds.set(overdue);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the queue for its gauges"),
        }
    }
}

/// Failure locks and the pumping guard.
pub struct AbuseMetrics {
    /// Second-factor locks (consecutive failures), by tenant and kind (user | verify).
    pub twofa_locks: IntCounterVec,
    /// Sends the pumping guard refused, by tenant and reason (denied | blocked).
    pub fraud_refused: IntCounterVec,
    /// Prefixes the pumping guard flagged, by tenant and mode (blocked | monitor).
    pub fraud_flagged: IntCounterVec,
    /// Methods and Verify destinations locked now (from the store, at scrape time).
    pub twofa_locked: IntGaugeVec,
    /// Prefixes blocked now (from the store, at scrape time).
    pub fraud_blocked_prefixes: IntGaugeVec,
}

impl AbuseMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            twofa_locks: counter(
                r,
                "twofa_locks_total",
                "Second factors locked after limits.max_consecutive_failures failed checks",
                &["tenant", "kind"],
            ),
            fraud_refused: counter(
                r,
                "fraud_refused_total",
                "Code sends refused by the destination policy or the pumping guard",
                &["tenant", "reason"],
            ),
            fraud_flagged: counter(
                r,
                "fraud_flagged_total",
                "Destination prefixes the pumping guard blocked or (monitor) reported",
                &["tenant", "mode"],
            ),
            twofa_locked: gauge_vec(
                r,
                "twofa_locked",
                "Second factors (user methods, Verify destinations) locked now",
                &["tenant"],
            ),
            fraud_blocked_prefixes: gauge_vec(
                r,
                "fraud_blocked_prefixes",
                "Destination prefixes the pumping guard blocks now",
                &["tenant"],
            ),
        }
    }
}

/// A gauge family registered in `registry` (see [`counter`]).
fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("static metric definition {name}: {e}"));
    let _ = registry.register(Box::new(g.clone()));
    g
}

/// A counter family registered in `registry`. The definitions are static,
/// so a failure here is a programming error caught by every test run.
fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("static metric definition {name}: {e}"));
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help)
        .unwrap_or_else(|e| panic!("static metric definition {name}: {e}"));
    let _ = registry.register(Box::new(g.clone()));
    g
}

fn attempt_histogram(registry: &Registry) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new("delivery_attempt_duration_seconds", "Time one attempt took").buckets(
            vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
        ),
        &["channel"],
    )
    .unwrap_or_else(|e| panic!("static metric definition: {e}"));
    let _ = registry.register(Box::new(h.clone()));
    h
}

fn plain_counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help)
        .unwrap_or_else(|e| panic!("static metric definition {name}: {e}"));
    let _ = registry.register(Box::new(c.clone()));
    c
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("postern".into()), None).unwrap_or_else(|_| Registry::new());
        let r = &registry;
        let attempt_seconds = attempt_histogram(r);
        let realtime_connections = gauge(
            r,
            "realtime_connections",
            "Open realtime (WebSocket) connections",
        );
        Self {
            attempts: counter(
                r,
                "delivery_attempts_total",
                "Delivery attempts by channel and outcome",
                &["tenant", "channel", "outcome"],
            ),
            deliveries: counter(
                r,
                "deliveries_total",
                "Deliveries that reached a final status, by channel",
                &["tenant", "channel", "status"],
            ),
            http_requests: counter(
                r,
                "http_responses_total",
                "HTTP responses by status class",
                &["class"],
            ),
            http_rate_limited: plain_counter(
                r,
                "http_rate_limited_total",
                "HTTP responses 429 (rate limits and quotas)",
            ),
            plugin_failures: counter(
                r,
                "plugin_failures_total",
                "Plugin runs that trapped, hit a limit or were refused by the sandbox, by reason",
                &["tenant", "channel", "reason"],
            ),
            realtime_refused: counter(
                r,
                "realtime_refused_total",
                "Realtime connections turned away, by the limit that did it",
                &["reason"],
            ),
            realtime_closed: counter(
                r,
                "realtime_closed_total",
                "Realtime connections ended, by why (gone, idle, too_big, flood, ...)",
                &["reason"],
            ),
            realtime_calls: counter(
                r,
                "realtime_calls_total",
                "Realtime method calls by method and outcome (ok or the error id)",
                &["method", "outcome"],
            ),
            handset_receipts: counter(
                r,
                "handset_receipts_total",
                "Delivery receipts from SMSCs by handset state (matched: a delivery carries the id)",
                &["tenant", "channel", "state", "matched"],
            ),
            store_up: gauge(
                r,
                "store_up",
                "1 while the store accepts writes (the readiness probe), else 0",
            ),
            queue: QueueGauges::new(r),
            abuse: AbuseMetrics::new(r),
            plugins: PluginMetrics::new(r),
            rollout: RolloutMetrics::new(r),
            attempt_seconds,
            realtime_connections,
            registry,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
