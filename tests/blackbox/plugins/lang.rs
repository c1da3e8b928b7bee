//! Plugins in JavaScript and Python, end to end through the real server:
//! upload over the API, a tenant channel, a test delivery reaching a
//! loopback fake of the provider with the code, and a user logging in with
//! a code the plugin delivered.

use serde_json::{Value, json};

use super::lang_build::{LangPlugin, NTFY_PYTHON, WEBHOOK_JS, lang_wasm, start_lang};
use crate::support::api::{WASM, req, tenant, upload};
use crate::support::http::{Receiver, Recorded, reply};
use crate::support::server::Postern;

/// Operator limits that fit interpreted guests (see plugins/README.md).
pub const BIG_GUESTS: &str = "[plugins]\nallow_private_networks = true\ncpu_budget_ms = 2000\n";

/// What differs between the languages' plugins in these tests.
struct Case {
    plugin: LangPlugin,
    /// The provider's answer to a delivery.
    answer: &'static str,
    config: fn(&Receiver) -> Value,
    secrets: Value,
    send_to: &'static str,
    /// The code as the provider received it.
    code_of: fn(&Recorded) -> String,
    /// The credential as the provider received it.
    auth: &'static str,
}

fn webhook_js() -> Case {
    Case {
        plugin: WEBHOOK_JS,
        answer: r#"{"id":"hook-1"}"#,
        config: |r| json!({ "url": r.url("/hooks/2fa?src=postern") }),
        secrets: json!({ "token": "s3cret-hook-token" }),
        send_to: "alice@example.com",
        code_of: |r| r.json()["code"].as_str().unwrap_or_default().to_string(),
        auth: "Bearer s3cret-hook-token",
    }
}

fn ntfy_python() -> Case {
    Case {
        plugin: NTFY_PYTHON,
        answer: r#"{"id":"ntfy-1","event":"message"}"#,
        config: |r| json!({ "api_base": r.url(""), "title": "Sign-in code" }),
        secrets: json!({ "access_token": "tk_ntfytoken" }),
        send_to: "alice-2fa",
        code_of: |r| code_in(std::str::from_utf8(&r.body).unwrap_or_default()),
        auth: "Bearer tk_ntfytoken",
    }
}

fn code_in(text: &str) -> String {
    regex::Regex::new(r"\d{6}")
        .unwrap()
        .find(text)
        .map(|m| m.as_str().to_string())
        .unwrap_or_default()
}

/// Uploads the plugin and makes channel `name` of tenant `t` use it.
async fn channel(p: &Postern, t: &str, key: &str, c: &Case, fake: &Receiver) {
    let (s, v) = upload(p, t, key, c.plugin.name, WASM, lang_wasm(c.plugin)).await;
    assert_eq!(s, 200, "upload {}: {v}", c.plugin.name);
    let (s, v) = req(
        p,
        "PUT",
        &format!("/t/{t}/api/v1/channels/{}", c.plugin.name),
        key,
        Some(json!({
            "kind": "plugin", "plugin": c.plugin.name,
            "allowedHosts": [format!("http://127.0.0.1:{}", fake.port)],
            "config": (c.config)(fake), "secrets": c.secrets,
        })),
    )
    .await;
    assert_eq!(s, 200, "channel {}: {v}", c.plugin.name);
}

async fn test_delivery_reaches_the_provider(c: Case) {
    let fake = Receiver::start(vec![reply(200, c.answer)]).await;
    let p = start_lang(BIG_GUESTS).await;
    let key = tenant(&p, "acme").await;
    channel(&p, "acme", &key, &c, &fake).await;
    let (s, v) = req(
        &p,
        "POST",
        &format!("/t/acme/api/v1/channels/{}/test", c.plugin.name),
        &key,
        Some(json!({ "sendTo": c.send_to })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let d = &v["delivery"];
    assert_eq!(d["status"], "delivered", "{v}");
    let seen = fake.requests();
    assert_eq!(seen.len(), 1, "one request: {seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].header("authorization").as_deref(), Some(c.auth));
    assert_eq!(
        (c.code_of)(&seen[0]).len(),
        6,
        "the code reached the provider"
    );
    assert!(
        d["log"]
            .as_str()
            .unwrap_or_default()
            .contains("answered HTTP 200"),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn js_webhook_plugin_delivers_through_a_tenant_channel() {
    test_delivery_reaches_the_provider(webhook_js()).await;
    let fake = Receiver::start(vec![reply(200, "{}")]).await;
    // The JSON the webhook gets, field by field.
    let p = start_lang(BIG_GUESTS).await;
    let key = tenant(&p, "acme").await;
    channel(&p, "acme", &key, &webhook_js(), &fake).await;
    let path = format!("/t/acme/api/v1/channels/{}/test", WEBHOOK_JS.name);
    let (s, v) = req(&p, "POST", &path, &key, Some(json!({ "sendTo": "bob" }))).await;
    assert_eq!((s, &v["delivery"]["status"]), (200, &json!("delivered")));
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/hooks/2fa");
    assert_eq!(r.query.as_deref(), Some("src=postern"));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let body = r.json();
    assert_eq!(body["to"], "bob");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains(body["code"].as_str().unwrap())
    );
    assert_eq!(body["ttlSeconds"], 600);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_ntfy_plugin_delivers_through_a_tenant_channel() {
    test_delivery_reaches_the_provider(ntfy_python()).await;
}

async fn user_logs_in_through(c: Case) {
    let fake = Receiver::start(vec![reply(200, c.answer)]).await;
    let p = start_lang(BIG_GUESTS).await;
    let key = tenant(&p, "acme").await;
    channel(&p, "acme", &key, &c, &fake).await;
    let api = |path: &str| format!("/t/acme/api/v1/{path}");
    let (s, v) = req(
        &p,
        "POST",
        &api("users.create"),
        &key,
        Some(json!({
            "username": "tom", "password": "pw-tom-long-enough"
        })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = req(
        &p,
        "POST",
        &api("users.setTwoFactor"),
        &key,
        Some(json!({
            "username": "tom", "method": c.plugin.name, "sendTo": c.send_to
        })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let login = |code: Option<String>| {
        let url = p.url(&api("login"));
        async move {
            let mut body = json!({ "user": "tom", "password": "pw-tom-long-enough" });
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
    let (s, v) = login(None).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["details"]["method"], c.plugin.name, "{v}");
    let seen = fake.requests();
    let code = (c.code_of)(seen.last().expect("the plugin sent the code"));
    assert_eq!(code.len(), 6);
    let (s, v) = login(Some(code)).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["data"]["authToken"].is_string(), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_logs_in_with_a_code_from_the_js_plugin() {
    user_logs_in_through(webhook_js()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_logs_in_with_a_code_from_the_python_plugin() {
    user_logs_in_through(ntfy_python()).await;
}
