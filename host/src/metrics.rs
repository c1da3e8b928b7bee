//! Prometheus metrics: deliveries by channel and outcome, attempt latency.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub attempts: IntCounterVec,
    pub deliveries: IntCounterVec,
    pub attempt_seconds: HistogramVec,
    pub http_requests: IntCounterVec,
    pub realtime_connections: IntGauge,
    pub realtime_refused: IntCounterVec,
    pub realtime_closed: IntCounterVec,
    pub realtime_calls: IntCounterVec,
    pub handset_receipts: IntCounterVec,
    /// 1 while the store's last write probe succeeded, else 0.
    pub store_up: IntGauge,
    /// Failure locks and the pumping guard.
    pub abuse: AbuseMetrics,
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

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("postern".into()), None).unwrap_or_else(|_| Registry::new());
        let r = &registry;
        let attempt_seconds = HistogramVec::new(
            HistogramOpts::new("delivery_attempt_duration_seconds", "Time one attempt took")
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
            &["channel"],
        )
        .unwrap_or_else(|e| panic!("static metric definition: {e}"));
        let _ = registry.register(Box::new(attempt_seconds.clone()));
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
            abuse: AbuseMetrics::new(r),
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
