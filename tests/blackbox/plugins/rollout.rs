//! Staged plugin rollout, end to end against the real server: a canary that
//! traps on every call is rolled back by itself after `rollout_window`
//! deliveries while every user still gets their code from the stable
//! version; a good canary promoted; a rollback by hand; bad input; two
//! hosts on one PostgreSQL database agreeing on the rollout.

use std::time::Duration;

use serde_json::{Value, json};

use super::support::wasm;
use crate::support::api::{WASM, req, tenant, upload};
use crate::support::http::{Receiver, reply};
use crate::support::pg::{self, TestDb};
use crate::support::server::Postern;

/// Three canary deliveries decide.
const CONFIG: &str = "[plugins]\nallow_private_networks = true\nrollout_window = 3\n";

async fn put_channel(p: &Postern, key: &str, name: &str, channel: Value) {
    let path = format!("/t/acme/api/v1/channels/{name}");
    let (s, v) = req(p, "PUT", &path, key, Some(channel)).await;
    assert_eq!(s, 200, "{v}");
}

/// A stable `noop` plugin `x` behind channel `c` whose config tells the
/// `misbehave` canary what to do (`noop` ignores it).
async fn noop_channel(p: &Postern, key: &str, mode: &str) -> String {
    let (s, v) = upload(p, "acme", key, "x", WASM, wasm("noop")).await;
    assert_eq!(s, 200, "{v}");
    let channel = json!({ "kind": "plugin", "plugin": "x", "config": { "mode": mode } });
    put_channel(p, key, "c", channel).await;
    v["plugin"]["sha256"].as_str().unwrap().to_string()
}

/// `PUT /plugins/{name}?{query}` with `bytes`.
async fn stage(p: &Postern, key: &str, name: &str, query: &str, bytes: Vec<u8>) -> (u16, Value) {
    upload(p, "acme", key, &format!("{name}?{query}"), WASM, bytes).await
}

/// Stages `misbehave` as a 100 % canary of plugin `x`; its sha256.
async fn stage_full_canary(p: &Postern, key: &str) -> String {
    let query = "canary=100&accept=permissions";
    let (s, v) = stage(p, key, "x", query, wasm("misbehave")).await;
    assert_eq!(s, 200, "{v}");
    v["plugin"]["rollout"]["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn rollout(p: &Postern, key: &str, name: &str) -> Value {
    let (s, v) = req(
        p,
        "GET",
        &format!("/t/acme/api/v1/plugins/{name}"),
        key,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["plugin"]["rollout"].clone()
}

/// One delivery through `POST /channels/{channel}/test`; answers the
/// record after its first attempt, which must have delivered.
async fn deliver(p: &Postern, key: &str, channel: &str, to: &str) -> Value {
    let path = format!("/t/acme/api/v1/channels/{channel}/test");
    let (s, v) = req(p, "POST", &path, key, Some(json!({ "sendTo": to }))).await;
    assert_eq!(
        (s, v["delivery"]["status"].as_str()),
        (200, Some("delivered")),
        "{v}"
    );
    v["delivery"].clone()
}

fn ran_on(delivery: &Value) -> &str {
    delivery["attempts"][0]["pluginSha256"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_canary_is_rolled_back_and_every_user_gets_their_code() {
    let ntfy = Receiver::start(vec![reply(200, r#"{"id":"n1","event":"message"}"#)]).await;
    let p = Postern::start(CONFIG).await;
    let key = tenant(&p, "acme").await;
    let (s, v) = upload(&p, "acme", &key, "push", WASM, wasm("ntfy")).await;
    assert_eq!(s, 200, "{v}");
    let stable = v["plugin"]["sha256"].as_str().unwrap().to_string();
    let channel = json!({
        "kind": "plugin", "plugin": "push",
        "allowedHosts": [format!("http://127.0.0.1:{}", ntfy.port)],
        // ntfy ignores `mode`; the misbehave canary traps on it.
        "config": { "api_base": ntfy.url(""), "mode": "trap" },
    });
    put_channel(&p, &key, "push", channel).await;

    let (s, v) = stage(
        &p,
        &key,
        "push",
        "canary=50&accept=permissions",
        wasm("misbehave"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let canary = v["plugin"]["rollout"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        v["plugin"]["sha256"],
        stable.as_str(),
        "the live version stays: {v}"
    );
    let r = &v["plugin"]["rollout"];
    assert_eq!(
        (r["state"].as_str(), r["percent"].as_u64()),
        (Some("canary"), Some(50)),
        "{r}"
    );
    assert_eq!(r["stableSha256"], stable.as_str());

    // Deliveries go on, each on the stable version in the end, until the
    // canary has failed three times and is gone.
    let mut users = Vec::new();
    let mut retried = 0;
    while rollout(&p, &key, "push").await["state"] == "canary" {
        assert!(users.len() < 80, "never rolled back");
        let user = format!("user{}", users.len());
        let d = deliver(&p, &key, "push", &user).await;
        assert_eq!(ran_on(&d), stable, "{d}");
        let detail = d["attempts"][0]["detail"].as_str().unwrap();
        if detail.contains("retried on the stable version") {
            assert!(detail.contains("plugin trapped"), "{detail}");
            retried += 1;
        }
        users.push(user);
    }
    assert_eq!(retried, 3, "three canary attempts, each retried on stable");
    for i in 0..3 {
        let d = deliver(&p, &key, "push", &format!("after{i}")).await;
        assert!(!d.to_string().contains("canary"), "{d}");
        users.push(format!("after{i}"));
    }
    // Every user's code reached the provider, once.
    let mut topics: Vec<String> = ntfy.requests().iter().map(|r| r.path.clone()).collect();
    topics.sort();
    let mut expected: Vec<String> = users.iter().map(|u| format!("/{u}")).collect();
    expected.sort();
    assert_eq!(topics, expected);

    let r = rollout(&p, &key, "push").await;
    assert_eq!(
        (r["state"].as_str(), r["sha256"].as_str()),
        (Some("rolled_back"), Some(canary.as_str())),
        "{r}"
    );
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("failed 3 of its last 3 deliveries (100 %)"),
        "{reason}"
    );
    assert_eq!(
        r["counts"]["canary"],
        json!({ "deliveries": 3, "failed": 3 }),
        "{r}"
    );
    let (_, audit) = req(&p, "GET", "/t/acme/api/v1/audit", &key, None).await;
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "plugin.rollback")
        .unwrap_or_else(|| panic!("no rollback in {audit}"));
    assert_eq!(entry["actor"], "postern");
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .contains("trigger=automatic"),
        "{entry}"
    );
    let metrics = p.metrics().await;
    let line =
        r#"postern_plugin_rollbacks_total{plugin="push",tenant="acme",trigger="automatic"} 1"#;
    assert!(metrics.contains(line), "{metrics}");
    assert!(metrics.contains(r#"postern_plugin_rollout_attempts_total{outcome="failed",plugin="push",tenant="acme",version="canary"} 3"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_canary_is_promoted_and_bad_requests_are_refused() {
    let p = Postern::start(CONFIG).await;
    let key = tenant(&p, "acme").await;
    let stable = noop_channel(&p, &key, "ok").await;
    for bad in ["0", "101", "abc", "-1", ""] {
        let (s, v) = stage(&p, &key, "x", &format!("canary={bad}"), wasm("misbehave")).await;
        assert_eq!(
            (s, v["errorType"].as_str()),
            (400, Some("error-invalid-params")),
            "{bad}: {v}"
        );
        assert_eq!(v["details"]["field"], "canary", "{v}");
    }
    let (s, v) = stage(&p, &key, "nothing", "canary=10", wasm("noop")).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (409, Some("error-conflict")),
        "{v}"
    );
    let (s, v) = stage(&p, &key, "x", "canary=10", wasm("noop")).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (409, Some("error-conflict")),
        "same version: {v}"
    );
    for action in ["promote", "rollback"] {
        let path = format!("/t/acme/api/v1/plugins/x/{action}");
        let (s, v) = req(&p, "POST", &path, &key, None).await;
        assert_eq!(
            (s, v["errorType"].as_str()),
            (409, Some("error-conflict")),
            "{v}"
        );
        let path = format!("/t/acme/api/v1/plugins/nothing/{action}");
        let (s, v) = req(&p, "POST", &path, &key, None).await;
        assert_eq!(
            (s, v["errorType"].as_str()),
            (404, Some("error-not-found")),
            "{v}"
        );
    }

    // The permission review holds for a canary as for a re-upload.
    let (s, v) = stage(&p, &key, "x", "canary=100", wasm("misbehave")).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (409, Some("error-conflict")),
        "{v}"
    );
    assert!(
        v["details"]["addedImports"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{v}"
    );
    assert_eq!(rollout(&p, &key, "x").await, Value::Null);
    let canary = stage_full_canary(&p, &key).await;
    for i in 0..4 {
        let d = deliver(&p, &key, "c", &format!("u{i}")).await;
        assert_eq!(
            (ran_on(&d), d["providerId"].as_str()),
            (canary.as_str(), Some("ok")),
            "{d}"
        );
    }
    // A plain upload while the canary is live is refused.
    let (s, v) = upload(&p, "acme", &key, "x", WASM, wasm("noop")).await;
    assert_eq!(
        (s, v["details"]["canarySha256"].as_str()),
        (409, Some(canary.as_str())),
        "{v}"
    );
    let r = rollout(&p, &key, "x").await;
    assert_eq!(
        r["counts"]["canary"],
        json!({ "deliveries": 3, "failed": 0 }),
        "the window: {r}"
    );

    let (s, v) = req(&p, "POST", "/t/acme/api/v1/plugins/x/promote", &key, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["plugin"]["sha256"], canary.as_str(), "{v}");
    assert_eq!(v["plugin"]["rollout"]["state"], "promoted", "{v}");
    assert_eq!(v["plugin"]["rollout"]["stableSha256"], stable.as_str());
    let d = deliver(&p, &key, "c", "after").await;
    assert_eq!(ran_on(&d), canary, "{d}");
    let (s, _) = req(&p, "POST", "/t/acme/api/v1/plugins/x/promote", &key, None).await;
    assert_eq!(s, 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_rolled_back_by_hand() {
    let p = Postern::start(CONFIG).await;
    let key = tenant(&p, "acme").await;
    let stable = noop_channel(&p, &key, "ok").await;
    let canary = stage_full_canary(&p, &key).await;
    assert_eq!(ran_on(&deliver(&p, &key, "c", "u1").await), canary);
    let (s, v) = req(&p, "POST", "/t/acme/api/v1/plugins/x/rollback", &key, None).await;
    assert_eq!(s, 200, "{v}");
    let r = &v["plugin"]["rollout"];
    assert_eq!(
        (r["state"].as_str(), r["reason"].as_str()),
        (Some("rolled_back"), Some("rolled back by hand")),
        "{r}"
    );
    assert_eq!(v["plugin"]["sha256"], stable.as_str());
    assert_eq!(ran_on(&deliver(&p, &key, "c", "u2").await), stable);
    let metrics = p.metrics().await;
    let line = r#"postern_plugin_rollbacks_total{plugin="x",tenant="acme",trigger="manual"} 1"#;
    assert!(metrics.contains(line), "{metrics}");
    // A new canary may follow an ended one.
    let (s, v) = stage(
        &p,
        &key,
        "x",
        "canary=5&accept=permissions",
        wasm("misbehave"),
    )
    .await;
    assert_eq!(
        (s, v["plugin"]["rollout"]["state"].as_str()),
        (200, Some("canary")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_agree_on_a_rollout() {
    if !pg::available("two_hosts_agree_on_a_rollout") {
        return;
    }
    let db = TestDb::create().await;
    let (a, b) = tokio::join!(
        Postern::start_on(CONFIG, db.clone(), &[]),
        Postern::start_on(CONFIG, db.clone(), &[]),
    );
    let key = tenant(&a, "acme").await;
    let stable = noop_channel(&a, &key, "trap").await;
    let canary = stage_full_canary(&a, &key).await;
    let r = rollout(&b, &key, "x").await;
    assert_eq!(
        (r["state"].as_str(), r["sha256"].as_str()),
        (Some("canary"), Some(canary.as_str())),
        "{r}"
    );

    let d = deliver(&a, &key, "c", "a1").await;
    assert_eq!(ran_on(&d), stable, "retried on stable: {d}");
    assert_eq!(rollout(&b, &key, "x").await["state"], "canary");
    // B delivers once it has loaded channel c; both hosts count in one window.
    let d = crate::support::eventually(Duration::from_secs(20), "B delivers on c", || async {
        let path = "/t/acme/api/v1/channels/c/test";
        let (s, v) = req(&b, "POST", path, &key, Some(json!({ "sendTo": "b1" }))).await;
        (s == 200).then(|| v["delivery"].clone())
    })
    .await;
    assert_eq!(
        (ran_on(&d), d["status"].as_str()),
        (stable.as_str(), Some("delivered")),
        "{d}"
    );
    assert_eq!(rollout(&a, &key, "x").await["state"], "canary");
    let d = deliver(&b, &key, "c", "b2").await;
    assert_eq!(ran_on(&d), stable, "{d}");
    let (ra, rb) = (rollout(&a, &key, "x").await, rollout(&b, &key, "x").await);
    assert_eq!(ra, rb, "both hosts answer alike");
    assert_eq!(ra["state"], "rolled_back", "{ra}");
    assert_eq!(
        ra["counts"]["canary"],
        json!({ "deliveries": 3, "failed": 3 })
    );
    // After it, A's deliveries stay on stable without a canary attempt.
    let d = deliver(&a, &key, "c", "a2").await;
    assert!(!d.to_string().contains("canary"), "{d}");
    let (_, audit) = req(&b, "GET", "/t/acme/api/v1/audit", &key, None).await;
    let rollbacks = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "plugin.rollback")
        .count();
    assert_eq!(rollbacks, 1, "{audit}");
}
