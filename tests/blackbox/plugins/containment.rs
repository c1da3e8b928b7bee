//! Misbehaving plugins fail only their own delivery, with the reason in the
//! record, and the runtime keeps serving.

use std::time::{Duration, Instant};

use postern::config::PluginsConfig;
use postern::delivery::OutcomeClass;

use super::support::*;

async fn misbehave(
    cfg: &PluginsConfig,
    config: &[(&str, &str)],
    hosts: &[&str],
) -> (
    postern::delivery::SendOutcome,
    std::sync::Arc<postern::plugin::PluginRuntime>,
) {
    let rt = runtime(cfg);
    let s = sender(&rt, "misbehave", config, &[], hosts).await;
    let o = s.send(&message("someone")).await;
    (o, rt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_by_the_cpu_budget() {
    let cfg = PluginsConfig {
        cpu_budget_ms: 50,
        ..test_limits()
    };
    let start = Instant::now();
    let (o, rt) = misbehave(&cfg, &[("mode", "loop")], &[]).await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.contains("CPU budget of 50 ms"), "{}", o.detail);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_hits_the_memory_limit() {
    let cfg = PluginsConfig {
        memory_limit_bytes: 16 << 20,
        cpu_budget_ms: 2_000,
        ..test_limits()
    };
    let (o, rt) = misbehave(&cfg, &[("mode", "memory")], &[]).await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(
        o.detail.contains("memory limit of 16777216 bytes"),
        "{}",
        o.detail
    );
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_traps_on_stack_exhaustion() {
    let (o, rt) = misbehave(&test_limits(), &[("mode", "recursion")], &[]).await;

    // Rust guests overflow their shadow stack in linear memory first (an
    // out-of-bounds access); other guests hit wasmtime's stack limit.
    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.starts_with("plugin trapped: "), "{}", o.detail);
    assert!(
        o.detail.contains("stack") || o.detail.contains("out of bounds"),
        "{}",
        o.detail
    );
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_is_permanent() {
    let (o, rt) = misbehave(&test_limits(), &[("mode", "trap")], &[]).await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.starts_with("plugin trapped: "), "{}", o.detail);
    assert!(o.detail.contains("unreachable"), "{}", o.detail);
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_permanent_and_its_message_is_in_the_log() {
    let (o, rt) = misbehave(&test_limits(), &[("mode", "panic")], &[]).await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.starts_with("plugin trapped: "), "{}", o.detail);
    let log = o.log.unwrap_or_default();
    assert!(
        log.contains("[stderr]") && log.contains("deliberate panic"),
        "{log}"
    );
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_not_in_allowed_hosts_is_denied_before_any_traffic() {
    let fake = Fake::start(|_| text(200, "should not be reached")).await;
    let (o, rt) = misbehave(
        &test_limits(),
        &[("mode", "http"), ("url", &format!("{}/steal", fake.base()))],
        &["http://api.example.com"],
    )
    .await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.contains("refused by the sandbox"), "{}", o.detail);
    assert!(
        o.detail.contains("not in the channel's allowedHosts"),
        "{}",
        o.detail
    );
    assert!(
        o.detail.contains("HttpRequestDenied"),
        "guest saw a typed error: {}",
        o.detail
    );
    let log = o.log.unwrap_or_default();
    assert!(
        log.contains(&format!(
            "[postern] denied: request to {}: not in the channel's allowedHosts",
            fake.base()
        )),
        "{log}"
    );
    assert!(!log.contains("/steal"), "paths are not logged: {log}");
    assert!(fake.requests().is_empty());
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_needs_an_http_entry() {
    let fake = Fake::start(|_| text(200, "should not be reached")).await;
    // Allowed for https only (no http:// prefix).
    let entry = fake.addr.to_string();
    let (o, _rt) = misbehave(
        &test_limits(),
        &[("mode", "http"), ("url", &fake.base())],
        &[&entry],
    )
    .await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(
        o.detail.contains("plain http needs an `http://` entry"),
        "{}",
        o.detail
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_listed_name_resolving_to_loopback_is_refused() {
    let fake = Fake::start(|_| text(200, "should not be reached")).await;
    let cfg = PluginsConfig {
        allow_private_networks: false,
        ..test_limits()
    };
    let port = fake.addr.port();
    let (o, rt) = misbehave(
        &cfg,
        &[
            ("mode", "http"),
            ("url", &format!("http://localhost:{port}/")),
        ],
        &[&format!("http://localhost:{port}")],
    )
    .await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.contains("is a loopback address"), "{}", o.detail);
    assert!(o.detail.contains("DestinationIpProhibited"), "{}", o.detail);
    assert!(
        o.log
            .unwrap_or_default()
            .contains("plugins.allow_private_networks = false")
    );
    assert!(fake.requests().is_empty());
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_address_is_refused_even_with_private_networks_allowed() {
    for allow_private in [false, true] {
        let cfg = PluginsConfig {
            allow_private_networks: allow_private,
            ..test_limits()
        };
        let (o, rt) = misbehave(
            &cfg,
            &[
                ("mode", "http"),
                ("url", "http://169.254.169.254/latest/meta-data/"),
            ],
            &["http://169.254.169.254"],
        )
        .await;

        assert_class(&o, OutcomeClass::Permanent);
        assert!(
            o.detail
                .contains("169.254.169.254 is a cloud metadata address"),
            "{}",
            o.detail
        );
        assert!(o.detail.contains("DestinationIpProhibited"), "{}", o.detail);
        assert_still_serves(&rt).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_cap_are_refused() {
    let fake = Fake::start(|_| text(200, "ok")).await;
    let cfg = PluginsConfig {
        max_http_requests: 3,
        ..test_limits()
    };
    let (o, rt) = misbehave(
        &cfg,
        &[
            ("mode", "many-requests"),
            ("count", "10"),
            ("url", &fake.base()),
        ],
        &[&fake.base()],
    )
    .await;

    assert_class(&o, OutcomeClass::Permanent);
    assert!(o.detail.contains("request 4 of 10"), "{}", o.detail);
    assert!(
        o.detail.contains("over the limit of 3 requests"),
        "{}",
        o.detail
    );
    assert_eq!(fake.requests().len(), 3);
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_response_is_cut_at_the_cap() {
    let fake = Fake::start(|_| streamed(8 << 20)).await;
    let cfg = PluginsConfig {
        max_http_response_bytes: 256 * 1024,
        ..test_limits()
    };
    let (o, rt) = misbehave(
        &cfg,
        &[("mode", "huge-response"), ("url", &fake.base())],
        &[&fake.base()],
    )
    .await;

    // What came back is the provider's doing: the plugin's own class holds.
    assert_class(&o, OutcomeClass::Transient);
    assert!(
        o.detail.contains("body size exceeds limit: 262144 bytes"),
        "{}",
        o.detail
    );
    let log = o.log.unwrap_or_default();
    assert!(
        log.contains("cut after 262144 bytes (plugins.max_http_response_bytes = 262144)"),
        "{log}"
    );
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_flood_is_capped_with_a_marker() {
    let cfg = PluginsConfig {
        max_log_bytes: 4096,
        cpu_budget_ms: 10_000,
        wall_timeout_ms: 20_000,
        ..test_limits()
    };
    let (o, rt) = misbehave(&cfg, &[("mode", "log-flood")], &[]).await;

    assert_class(&o, OutcomeClass::Delivered);
    let log = o.log.expect("a log");
    let (kept, marker) = log.split_once("[postern] log truncated: ").expect("marker");
    assert!(kept.len() <= 4096 + 1, "kept {} bytes", kept.len());
    assert!(kept.starts_with("[info] xxxx"), "{}", &kept[..40]);
    assert!(
        marker.contains("more bytes dropped (plugins.max_log_bytes = 4096)"),
        "{marker}"
    );
    assert!(log.len() < 4096 + 200, "log is {} bytes", log.len());
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_provider_past_the_wall_timeout_is_transient() {
    let fake = Fake::start_slow(Duration::from_secs(10), |_| text(200, "too late")).await;
    let cfg = PluginsConfig {
        wall_timeout_ms: 700,
        ..test_limits()
    };
    let start = Instant::now();
    let (o, rt) = misbehave(
        &cfg,
        &[("mode", "slow"), ("url", &fake.base())],
        &[&fake.base()],
    )
    .await;

    assert_class(&o, OutcomeClass::Transient);
    assert!(
        o.detail.contains("wall-clock timeout of 700 ms"),
        "{}",
        o.detail
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(fake.requests().len(), 1);
    assert_still_serves(&rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_errors_map_onto_outcome_classes() {
    let rt = runtime(&test_limits());
    for (kind, class, word) in [
        ("unavailable", OutcomeClass::Transient, "unavailable: "),
        ("rejected", OutcomeClass::Permanent, "rejected: "),
        (
            "invalid-recipient",
            OutcomeClass::Permanent,
            "invalid recipient: ",
        ),
        ("misconfigured", OutcomeClass::Permanent, "misconfigured: "),
    ] {
        let s = sender(
            &rt,
            "misbehave",
            &[("mode", "error"), ("kind", kind)],
            &[],
            &[],
        )
        .await;
        let o = s.send(&message("someone")).await;
        assert_class(&o, class);
        assert!(o.detail.contains(word), "{kind}: {}", o.detail);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_looping_delivery_does_not_stall_others() {
    let cfg = PluginsConfig {
        cpu_budget_ms: 300,
        ..test_limits()
    };
    let rt = runtime(&cfg);
    let looping = sender(&rt, "misbehave", &[("mode", "loop")], &[], &[]).await;
    let ok = sender(&rt, "misbehave", &[("mode", "ok")], &[], &[]).await;
    let spin = tokio::spawn(async move { looping.send(&message("a")).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let start = Instant::now();
    for _ in 0..20 {
        assert_class(&ok.send(&message("b")).await, OutcomeClass::Delivered);
    }
    let served = start.elapsed();
    let o = spin.await.unwrap();
    assert_class(&o, OutcomeClass::Permanent);
    assert!(
        served < Duration::from_millis(1_000),
        "20 deliveries took {served:?}"
    );
}
