//! Plugin upload over REST, plugin channels of tenants, fairness between
//! tenants, and a 2FA method through an uploaded plugin.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::plugins::support::wasm;
use crate::support::api::{WASM, req, tenant, upload};
use crate::support::http::{Receiver, reply};
use crate::support::server::{ADMIN, Postern};

#[tokio::test(flavor = "multi_thread")]
async fn uploads_are_vetted_and_refusals_are_typed() {
    let p = Postern::start("[plugins]\nmax_upload_bytes = 200000\n").await;
    let k = tenant(&p, "acme").await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"definitely not wasm".to_vec(), "not-wasm"),
        (b"\0asm\x01\0\0\0".to_vec(), "core-module"),
        (wasm("bad_import"), "ungranted-import"),
        (wasm("wrong_world"), "wrong-world"),
    ];
    for (bytes, reason) in cases {
        let (s, v) = upload(&p, "acme", &k, "x", WASM, bytes).await;
        assert_eq!(s, 400, "{reason}: {v}");
        assert_eq!(v["errorType"], "error-invalid-plugin", "{v}");
        assert_eq!(v["details"]["reason"], reason, "{v}");
    }
    let (s, v) = upload(
        &p,
        "acme",
        &k,
        "x",
        "application/octet-stream",
        wasm("noop"),
    )
    .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (415, Some("error-unsupported-media-type"))
    );
    let big = wasm("telegram");
    assert!(big.len() > 200_000);
    let (s, v) = upload(&p, "acme", &k, "x", WASM, big).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (413, Some("error-too-large")),
        "{v}"
    );
    for bad in ["..%2Fx", "A", "a%2Fb", "x.wasm"] {
        let (s, _) = upload(&p, "acme", &k, bad, WASM, wasm("noop")).await;
        assert!(s == 400 || s == 404, "{bad}: {s}");
    }
    let (s, v) = req(&p, "GET", "/t/acme/api/v1/plugins", &k, None).await;
    assert_eq!(
        (s, v["plugins"].as_array().unwrap().len()),
        (200, 0),
        "nothing was stored"
    );
    // Nothing was written outside the data dir.
    let mut top: Vec<String> = std::fs::read_dir(p.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["data", "postern.toml"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn telegram_plugin_upload_channel_delivery_replace_and_delete() {
    let bot = Receiver::start(vec![reply(
        200,
        r#"{"ok":true,"result":{"message_id":77}}"#,
    )])
    .await;
    let p = Postern::start(
        "[plugins]\nallow_private_networks = true\n[limits]\ntenant_max_plugins = 2\n",
    )
    .await;
    let k = tenant(&p, "acme").await;
    let (s, v) = upload(&p, "acme", &k, "telegram", WASM, wasm("telegram")).await;
    assert_eq!(s, 200, "{v}");
    let first_sha = v["plugin"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(first_sha.len(), 64);
    assert_eq!(v["plugin"]["info"]["name"], "telegram");
    let keys: Vec<&str> = v["plugin"]["info"]["configKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"bot_token"), "{keys:?}");

    // A channel with a required secret missing names it.
    let channel = |secrets: Value| {
        json!({
            "kind": "plugin", "plugin": "telegram",
            "allowedHosts": [format!("http://127.0.0.1:{}", bot.port)],
            "config": { "api_base": bot.url("") }, "secrets": secrets,
        })
    };
    let (s, v) = req(
        &p,
        "PUT",
        "/t/acme/api/v1/channels/tg",
        &k,
        Some(channel(json!({}))),
    )
    .await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("secrets.bot_token")),
        "{v}"
    );
    let (s, v) = req(
        &p,
        "PUT",
        "/t/acme/api/v1/channels/tg",
        &k,
        Some(channel(json!({ "bot_token": "123:tg-secret-token" }))),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = req(
        &p,
        "POST",
        "/t/acme/api/v1/channels/tg/test",
        &k,
        Some(json!({ "sendTo": "not-a-chat" })),
    )
    .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (400, Some("error-invalid-send-to")),
        "validate-recipient runs: {v}"
    );
    let (s, v) = req(
        &p,
        "POST",
        "/t/acme/api/v1/channels/tg/test",
        &k,
        Some(json!({ "sendTo": "4242" })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["providerId"], "77");
    let r = &bot.requests()[0];
    assert_eq!(r.path, "/bot123:tg-secret-token/sendMessage");
    assert_eq!(r.json()["chat_id"], 4242);
    assert!(!v.to_string().contains("tg-secret-token"));

    // Re-upload under the same name replaces the version.
    let (s, v) = upload(&p, "acme", &k, "telegram", WASM, wasm("slack")).await;
    assert_eq!(s, 200, "{v}");
    assert_ne!(v["plugin"]["sha256"], first_sha.as_str());
    let (s, _) = upload(&p, "acme", &k, "noop", WASM, wasm("noop")).await;
    assert_eq!(s, 200);
    let (s, v) = upload(&p, "acme", &k, "third", WASM, wasm("noop")).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (429, Some("error-too-many-requests")),
        "quota: {v}"
    );

    let (s, v) = req(&p, "DELETE", "/t/acme/api/v1/plugins/telegram", &k, None).await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (409, Some("error-conflict")),
        "a channel uses it"
    );
    let (s, _) = req(&p, "DELETE", "/t/acme/api/v1/channels/tg", &k, None).await;
    assert_eq!(s, 200);
    let (s, _) = req(&p, "DELETE", "/t/acme/api/v1/plugins/telegram", &k, None).await;
    assert_eq!(s, 200);
    let (s, _) = req(&p, "GET", "/t/acme/api/v1/plugins/telegram", &k, None).await;
    assert_eq!(s, 404);
    // Another tenant cannot see or use the plugin.
    let other = tenant(&p, "globex").await;
    let (s, _) = req(&p, "GET", "/t/acme/api/v1/plugins/noop", &other, None).await;
    assert_eq!(s, 403);
    let (s, v) = req(
        &p,
        "PUT",
        "/t/globex/api/v1/channels/n",
        &other,
        Some(json!({ "kind": "plugin", "plugin": "noop" })),
    )
    .await;
    assert_eq!((s, v["details"]["field"].as_str()), (400, Some("plugin")));
    let (_, audit) = req(&p, "GET", "/t/acme/api/v1/audit", &k, None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"plugin.upload") && actions.contains(&"plugin.delete"),
        "{actions:?}"
    );
    assert!(!p.logs().contains("tg-secret-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_tenant_does_not_delay_another() {
    let p = Postern::start(
        "[plugins]\nallow_private_networks = true\ncpu_budget_ms = 3000\nwall_timeout_ms = 6000\n[delivery]\nretry_base_ms = 60000\n",
    )
    .await;
    let a = tenant(&p, "alpha").await;
    let b = tenant(&p, "beta").await;
    for (t, k) in [("alpha", &a), ("beta", &b)] {
        let (s, v) = upload(&p, t, k, "misbehave", WASM, wasm("misbehave")).await;
        assert_eq!(s, 200, "{v}");
    }
    let mode =
        |m: &str| json!({ "kind": "plugin", "plugin": "misbehave", "config": { "mode": m } });
    let (s, v) = req(
        &p,
        "PUT",
        "/t/alpha/api/v1/channels/spin",
        &a,
        Some(mode("loop")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = req(
        &p,
        "PUT",
        "/t/beta/api/v1/channels/fine",
        &b,
        Some(mode("ok")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut spinning = Vec::new();
    for i in 0..32 {
        let url = p.url("/t/alpha/api/v1/channels/spin/test");
        let a = a.clone();
        spinning.push(tokio::spawn(async move {
            Postern::client()
                .post(url)
                .bearer_auth(a)
                .json(&json!({ "sendTo": format!("x{i}") }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (s, v) = req(
        &p,
        "POST",
        "/t/beta/api/v1/channels/fine/test",
        &b,
        Some(json!({ "sendTo": "y" })),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "delivered");
    println!("beta's delivery took {took:?} while alpha ran 32 looping deliveries");
    assert!(took < Duration::from_secs(2), "beta waited {took:?}");
    for t in spinning {
        let status = t.await.unwrap().unwrap();
        // Cut by the CPU budget (permanent, 502) or the wall timeout (transient, queued).
        assert!(status == 502 || status == 200, "{status}");
    }
    let (_, v) = req(&p, "GET", "/t/alpha/api/v1/deliveries?limit=100", &a, None).await;
    let records = v["deliveries"].as_array().unwrap();
    assert_eq!(records.len(), 32);
    for d in records {
        assert_ne!(d["status"], "delivered", "{d}");
        let detail = d["attempts"][0]["detail"].as_str().unwrap().to_lowercase();
        assert!(
            detail.contains("cpu") || detail.contains("time"),
            "{detail}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_enrols_and_logs_in_through_the_telegram_plugin() {
    let bot = Receiver::start(vec![reply(200, r#"{"ok":true,"result":{"message_id":1}}"#)]).await;
    let p = Postern::start("[plugins]\nallow_private_networks = true\n").await;
    let (s, v) = upload(&p, "default", ADMIN, "telegram", WASM, wasm("telegram")).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = req(
        &p,
        "PUT",
        "/api/v1/channels/telegram",
        ADMIN,
        Some(json!({
            "kind": "plugin", "plugin": "telegram",
            "allowedHosts": [format!("http://127.0.0.1:{}", bot.port)],
            "config": { "api_base": bot.url("") }, "secrets": { "bot_token": "42:abc" },
        })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = p
        .post(
            "/api/v1/users.create",
            json!({ "username": "tom", "password": "pw-tom" }),
        )
        .await;
    assert_eq!(s, 200);
    let login = |code: Option<String>| {
        let url = p.url("/api/v1/login");
        async move {
            let mut body = json!({ "user": "tom", "password": "pw-tom" });
            if let Some(c) = code {
                body["code"] = json!(c);
            }
            let r = Postern::client()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (_, v) = login(None).await;
    let uid = v["data"]["userId"].as_str().unwrap().to_string();
    let tok = v["data"]["authToken"].as_str().unwrap().to_string();
    let enrol = |path: &str, body: Value| {
        let url = p.url(path);
        let (uid, tok) = (uid.clone(), tok.clone());
        async move {
            let r = Postern::client()
                .post(url)
                .header("x-user-id", uid)
                .header("x-auth-token", tok)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let last_code = || {
        let text = bot.requests().last().unwrap().json()["text"]
            .as_str()
            .unwrap()
            .to_string();
        regex::Regex::new(r"\d{6}")
            .unwrap()
            .find(&text)
            .unwrap()
            .as_str()
            .to_string()
    };
    let (s, v) = enrol(
        "/api/v1/users.2fa.enableChannel",
        json!({ "channel": "telegram", "sendTo": "@not valid" }),
    )
    .await;
    assert_eq!(
        (s, v["errorType"].as_str()),
        (400, Some("error-invalid-send-to")),
        "the plugin's validate-recipient: {v}"
    );
    let (s, v) = enrol(
        "/api/v1/users.2fa.enableChannel",
        json!({ "channel": "telegram", "sendTo": "987654" }),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(bot.requests()[0].json()["chat_id"], 987654);
    let (s, v) = enrol(
        "/api/v1/users.2fa.confirmChannel",
        json!({ "channel": "telegram", "code": last_code() }),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = login(None).await;
    assert_eq!(s, 401);
    assert_eq!(v["details"]["method"], "telegram");
    assert_eq!(v["details"]["availableMethods"], json!(["telegram"]));
    let (s, v) = login(Some(last_code())).await;
    assert_eq!(s, 200, "{v}");
}
