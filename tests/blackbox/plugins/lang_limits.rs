//! Limits that fit big guests, through the real server: a channel's own
//! `cpu_budget_ms` / `memory_limit_bytes` / `max_upload_bytes` within the
//! operator's `[plugins]` maxima (a typed 400 past them), a JavaScript busy
//! loop stopped by its CPU budget, and a Python guest over its memory limit
//! failing only its own delivery while others keep delivering.

use serde_json::{Value, json};

use super::lang::BIG_GUESTS;
use super::lang_build::{LangPlugin, MISBEHAVE_JS, MISBEHAVE_PYTHON, lang_wasm, start_lang};
use crate::support::api::{WASM, req, tenant, upload};
use crate::support::server::Postern;

async fn put_channel(
    p: &Postern,
    key: &str,
    name: &str,
    plugin: &str,
    config: Value,
) -> (u16, Value) {
    req(
        p,
        "PUT",
        &format!("/t/acme/api/v1/channels/{name}"),
        key,
        Some(json!({ "kind": "plugin", "plugin": plugin, "config": config })),
    )
    .await
}

/// A test delivery: 200 when delivered, 502 with the record when it failed.
async fn test_send(p: &Postern, key: &str, channel: &str) -> Value {
    let path = format!("/t/acme/api/v1/channels/{channel}/test");
    let (s, v) = req(p, "POST", &path, key, Some(json!({ "sendTo": "someone" }))).await;
    let delivered = v["delivery"]["status"] == "delivered";
    assert_eq!(s, if delivered { 200 } else { 502 }, "{v}");
    v["delivery"].clone()
}

async fn server_with(plugin: LangPlugin) -> (Postern, String) {
    let p = start_lang(BIG_GUESTS).await;
    let key = tenant(&p, "acme").await;
    let (s, v) = upload(&p, "acme", &key, plugin.name, WASM, lang_wasm(plugin)).await;
    assert_eq!(s, 200, "{v}");
    (p, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_cannot_exceed_the_operators_maxima() {
    let (p, key) = server_with(MISBEHAVE_JS).await;
    let plugin = MISBEHAVE_JS.name;
    for (k, v) in [
        ("cpu_budget_ms", json!(2_001)),
        ("memory_limit_bytes", json!(1u64 << 40)),
        ("cpu_budget_ms", json!("lots")),
        ("cpu_budget_ms", json!(0)),
        ("max_upload_bytes", json!(1024)),
    ] {
        let (s, body) = put_channel(&p, &key, "c", plugin, json!({ "mode": "ok", k: v })).await;
        assert_eq!(s, 400, "{k}={v}: {body}");
        assert_eq!(body["errorType"], "error-invalid-params", "{body}");
        assert_eq!(body["details"]["field"], format!("config.{k}"), "{body}");
    }
    let (s, body) = put_channel(
        &p,
        &key,
        "c",
        plugin,
        json!({ "mode": "ok", "cpu_budget_ms": 150 }),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let d = test_send(&p, &key, "c").await;
    assert_eq!(d["status"], "delivered", "{d}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_busy_loop_hits_the_channels_cpu_budget() {
    let (p, key) = server_with(MISBEHAVE_JS).await;
    let plugin = MISBEHAVE_JS.name;
    let cfg = json!({ "mode": "loop", "cpu_budget_ms": 300 });
    let (s, body) = put_channel(&p, &key, "spin", plugin, cfg).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = put_channel(&p, &key, "fine", plugin, json!({ "mode": "ok" })).await;
    assert_eq!(s, 200, "{body}");
    let d = test_send(&p, &key, "spin").await;
    assert_eq!(d["status"], "failed", "{d}");
    let attempt = &d["attempts"][0];
    assert_eq!(attempt["outcome"], "permanent", "{d}");
    let detail = attempt["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("CPU budget of 300 ms"), "{detail}");
    let cpu = attempt["cpuMs"]
        .as_f64()
        .expect("cpuMs on a plugin attempt");
    assert!(cpu >= 250.0, "the guest ran about its budget: {cpu} ms");
    let d = test_send(&p, &key, "fine").await;
    assert_eq!(
        d["status"], "delivered",
        "the same plugin still delivers: {d}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_guest_over_its_memory_limit_fails_only_its_own_delivery() {
    let (p, key) = server_with(MISBEHAVE_PYTHON).await;
    let plugin = MISBEHAVE_PYTHON.name;
    let cfg = json!({ "mode": "memory", "memory_limit_bytes": 48 << 20 });
    let (s, body) = put_channel(&p, &key, "hog", plugin, cfg).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = put_channel(&p, &key, "fine", plugin, json!({ "mode": "ok" })).await;
    assert_eq!(s, 200, "{body}");
    // The hog and well-behaved deliveries run at the same time.
    let (hog, fine) = tokio::join!(test_send(&p, &key, "hog"), async {
        let mut all = Vec::new();
        for _ in 0..3 {
            all.push(test_send(&p, &key, "fine").await);
        }
        all
    });
    assert_eq!(hog["status"], "failed", "{hog}");
    let detail = hog["attempts"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("memory limit of 50331648 bytes"),
        "{detail}"
    );
    for d in fine {
        assert_eq!(d["status"], "delivered", "{d}");
        let peak = d["attempts"][0]["peakMemoryBytes"].as_i64().unwrap_or(0);
        assert!(
            peak > 1 << 20,
            "a Python guest's peak memory is reported: {d}"
        );
    }
}
