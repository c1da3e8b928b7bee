//! Tenants: the operator API, tenant channels with write-only secrets,
//! isolation between tenants, quotas.

use serde_json::{Value, json};

use crate::support::api::{req, tenant};
use crate::support::http::{Receiver, reply};
use crate::support::server::{ADMIN, Postern};
use crate::support::smtp::{SmtpOptions, SmtpServer};

const SECRET: &str = "tenant-a-signing-secret-42";

#[tokio::test(flavor = "multi_thread")]
async fn operator_api_manages_tenants() {
    let p = Postern::start("").await;
    let key = tenant(&p, "acme").await;
    assert!(key.starts_with("ptk_") && key.len() > 40);
    let (s, v) = req(
        &p,
        "POST",
        "/admin/v1/tenants",
        ADMIN,
        Some(json!({ "name": "acme" })),
    )
    .await;
    assert_eq!((s, v["errorType"].as_str()), (409, Some("error-conflict")));
    let (s, v) = req(
        &p,
        "POST",
        "/admin/v1/tenants",
        ADMIN,
        Some(json!({ "name": "../x" })),
    )
    .await;
    assert_eq!((s, v["details"]["field"].as_str()), (400, Some("name")));
    let (s, v) = req(&p, "GET", "/admin/v1/tenants", ADMIN, None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "default"]);
    assert!(!v.to_string().contains(&key), "the key is shown once");
    // A tenant key is not an operator key.
    let (s, _) = req(&p, "GET", "/admin/v1/tenants", &key, None).await;
    assert_eq!(s, 401);
    let (s, _) = req(&p, "DELETE", "/admin/v1/tenants/default", ADMIN, None).await;
    assert_eq!(s, 409);
    let (s, _) = req(&p, "DELETE", "/admin/v1/tenants/acme", ADMIN, None).await;
    assert_eq!(s, 200);
    let (s, _) = req(&p, "GET", "/t/acme/api/v1/deliveries", &key, None).await;
    assert_eq!(s, 404, "a deleted tenant is gone");
    let (s, _) = req(&p, "GET", "/admin/v1/tenants/acme", ADMIN, None).await;
    assert_eq!(s, 404);
}

fn url_channel(rx: &Receiver) -> Value {
    json!({
        "kind": "url",
        "config": { "url": rx.url("/hook") },
        "secrets": { "signing_secret": SECRET },
        "sendToType": "email",
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_channels_keep_secrets_write_only_and_survive_restart() {
    let rx = Receiver::start(vec![reply(200, "ok")]).await;
    let p = Postern::start("[server]\nbase_url = \"https://2fa.example.com\"\n[plugins]\nallow_private_networks = true\n").await;
    let key = tenant(&p, "acme").await;
    let (s, v) = req(
        &p,
        "PUT",
        "/t/acme/api/v1/channels/hook",
        &key,
        Some(url_channel(&rx)),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["channel"]["secrets"], json!({ "signing_secret": "***" }));
    let (s, v) = req(&p, "GET", "/t/acme/api/v1/channels/hook", &key, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["channel"]["config"]["url"], rx.url("/hook"));
    assert_eq!(v["channel"]["secrets"]["signing_secret"], "***");
    let (s, v) = req(
        &p,
        "POST",
        "/t/acme/api/v1/channels/hook/test",
        &key,
        Some(json!({ "sendTo": "a@example.com" })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(rx.requests()[0].header("x-postern-signature").is_some());

    // An update without secrets keeps them.
    let mut update = url_channel(&rx);
    update.as_object_mut().unwrap().remove("secrets");
    update["config"]["timeout_seconds"] = json!(5);
    let (s, v) = req(
        &p,
        "PUT",
        "/t/acme/api/v1/channels/hook",
        &key,
        Some(update),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["channel"]["secrets"]["signing_secret"], "***");

    // Secrets are encrypted at rest and come back after a restart.
    let db = p.stored_bytes().await;
    assert!(
        !db.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "secret stored in clear"
    );
    let p = p.restart().await;
    let (s, v) = req(
        &p,
        "POST",
        "/t/acme/api/v1/channels/hook/test",
        &key,
        Some(json!({ "sendTo": "b@example.com" })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let sig = rx.requests()[1].header("x-postern-signature").unwrap();
    let (t, v1) = sig.split_once(',').unwrap();
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.", t.trim_start_matches("t=")).as_bytes());
    mac.update(&rx.requests()[1].body);
    assert_eq!(
        hex::encode(mac.finalize().into_bytes()),
        v1.trim_start_matches("v1=")
    );

    let (s, _) = req(&p, "DELETE", "/t/acme/api/v1/channels/hook", &key, None).await;
    assert_eq!(s, 200);
    let (s, _) = req(
        &p,
        "POST",
        "/t/acme/api/v1/channels/hook/test",
        &key,
        Some(json!({ "sendTo": "c@example.com" })),
    )
    .await;
    assert_eq!(s, 404);
    let (_, audit) = req(&p, "GET", "/t/acme/api/v1/audit", &key, None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"channel.put") && actions.contains(&"channel.delete"),
        "{actions:?}"
    );
    assert!(!audit.to_string().contains(SECRET));
    assert!(!p.logs().contains(SECRET), "secret in the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn channel_validation_names_the_field() {
    let p = Postern::start("[plugins]\nallow_private_networks = false\n").await;
    let key = tenant(&p, "acme").await;
    let cases = [
        (json!({ "kind": "fax" }), "kind"),
        (
            json!({ "kind": "url", "config": { "url": "http://127.0.0.1:9/x" } }),
            "config.url",
        ),
        (
            json!({ "kind": "url", "config": { "url": "https://localhost/x" } }),
            "config.url",
        ),
        (
            json!({ "kind": "url", "config": { "url": "https://169.254.169.254/latest" } }),
            "config.url",
        ),
        (
            json!({ "kind": "url", "config": { "url": "https://hook.example.com", "colour": "red" } }),
            "config.colour",
        ),
        (
            json!({ "kind": "pushover", "config": { "api_token": "x" } }),
            "config.api_token",
        ),
        (
            json!({ "kind": "pushover", "secrets": { "password": "x" } }),
            "secrets.password",
        ),
        (
            json!({ "kind": "smtp", "config": { "server": "smtp.example.com", "sender_email": "a@b.co" } }),
            "config.server",
        ),
        (
            json!({ "kind": "smtp", "config": { "server": "10.0.0.5:25", "sender_email": "a@b.co" } }),
            "config.server",
        ),
        (
            json!({ "kind": "smtp", "config": { "server": "smtp.example.com:25", "sender_email": "a@b.co", "ca_file": "/etc/passwd" } }),
            "config.ca_file",
        ),
        (
            json!({ "kind": "sms-http", "config": { "url": "https://sms.example.com", "proxy": "http://10.0.0.1:3128" } }),
            "config.proxy",
        ),
        (
            json!({ "kind": "sms-http", "config": { "url": "https://sms.example.com", "http_method": "PATCH" } }),
            "config.http_method",
        ),
        (
            json!({ "kind": "url", "config": { "url": "https://hook.example.com" }, "sendToType": "regex" }),
            "sendToRegex",
        ),
        (
            json!({ "kind": "url", "config": { "url": "https://hook.example.com" }, "fallback": "nowhere" }),
            "fallback",
        ),
        (
            json!({ "kind": "pushover", "config": { "timeout_seconds": u64::MAX }, "secrets": { "api_token": "pushover-app-token" } }),
            "config.timeout_seconds",
        ),
        (
            json!({ "kind": "smtp", "config": { "server": "[::1", "sender_email": "a@b.co" } }),
            "config.server",
        ),
        (
            json!({ "kind": "smtp", "config": { "server": "smtp example com:25", "sender_email": "a@b.co" } }),
            "config.server",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = req(
            &p,
            "PUT",
            "/t/acme/api/v1/channels/c1",
            &key,
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 400, "{body} → {v}");
        assert_eq!(v["errorType"], "error-invalid-params");
        assert_eq!(v["details"]["field"], field, "{body} → {v}");
    }
    let (s, _) = req(&p, "GET", "/t/acme/api/v1/channels/c1", &key, None).await;
    assert_eq!(s, 404, "nothing was stored");
    let (s, v) = req(
        &p,
        "PUT",
        "/t/acme/api/v1/channels/Bad%20Name",
        &key,
        Some(json!({ "kind": "url" })),
    )
    .await;
    assert_eq!((s, v["details"]["field"].as_str()), (400, Some("name")));
    // Channel names double as 2FA method names.
    let (s, v) = req(
        &p,
        "PUT",
        "/t/acme/api/v1/channels/totp",
        &key,
        Some(json!({ "kind": "url", "config": { "url": "https://hook.example.com" } })),
    )
    .await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("name")),
        "{v}"
    );

    // Fallbacks may chain but never loop: a ← b ← c, then a → c is refused.
    let hook = |fallback: Option<&str>| json!({ "kind": "url", "config": { "url": "https://hook.example.com" }, "fallback": fallback });
    for (name, fallback) in [("a", None), ("b", Some("a")), ("c", Some("b"))] {
        let path = format!("/t/acme/api/v1/channels/{name}");
        let (s, v) = req(&p, "PUT", &path, &key, Some(hook(fallback))).await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = req(
        &p,
        "PUT",
        "/t/acme/api/v1/channels/a",
        &key,
        Some(hook(Some("c"))),
    )
    .await;
    assert_eq!(
        (s, v["details"]["field"].as_str()),
        (400, Some("fallback")),
        "{v}"
    );
    assert!(
        v["error"].as_str().unwrap().contains("a → c → b → a"),
        "{v}"
    );
    let (_, v) = req(&p, "GET", "/t/acme/api/v1/channels/a", &key, None).await;
    assert_eq!(v["channel"]["fallback"], Value::Null, "unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_key_gets_nothing() {
    let rx = Receiver::start(vec![reply(200, "ok")]).await;
    let p = Postern::start("[plugins]\nallow_private_networks = true\n").await;
    let a = tenant(&p, "alpha").await;
    let b = tenant(&p, "beta").await;
    let (s, v) = req(
        &p,
        "PUT",
        "/t/alpha/api/v1/channels/hook",
        &a,
        Some(url_channel(&rx)),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = req(&p, "POST", "/t/alpha/api/v1/users.create", &a, Some(json!({ "username": "ann", "password": "pw-ann", "email": "ann@example.com", "emailVerified": true }))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = req(
        &p,
        "POST",
        "/t/alpha/api/v1/channels/hook/test",
        &a,
        Some(json!({ "sendTo": "ann@example.com" })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let delivery = v["delivery"]["id"].as_str().unwrap().to_string();
    let (s, v) = req(
        &p,
        "POST",
        "/t/alpha/api/v1/verifications",
        &a,
        Some(json!({ "to": "ann@example.com", "channel": "hook" })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let ver = v["verification"]["id"].as_str().unwrap().to_string();
    let snapshot = |p: &Postern, a: String| {
        let p = p.url("");
        async move {
            let mut out = Vec::new();
            for path in [
                "/t/alpha/api/v1/channels",
                "/t/alpha/api/v1/deliveries",
                "/t/alpha/api/v1/users.info?username=ann",
            ] {
                let v: Value = Postern::client()
                    .get(format!("{p}{path}"))
                    .bearer_auth(&a)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                out.push(v);
            }
            out
        }
    };
    let before = snapshot(&p, a.clone()).await;
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/t/alpha/api/v1/channels".into(), None),
        ("GET", "/t/alpha/api/v1/channels/hook".into(), None),
        (
            "PUT",
            "/t/alpha/api/v1/channels/hook".into(),
            Some(url_channel(&rx)),
        ),
        ("DELETE", "/t/alpha/api/v1/channels/hook".into(), None),
        (
            "POST",
            "/t/alpha/api/v1/channels/hook/test".into(),
            Some(json!({ "sendTo": "x@example.com" })),
        ),
        (
            "POST",
            "/t/alpha/api/v1/users.create".into(),
            Some(json!({ "username": "mallory" })),
        ),
        (
            "GET",
            "/t/alpha/api/v1/users.info?username=ann".into(),
            None,
        ),
        (
            "POST",
            "/t/alpha/api/v1/users.delete".into(),
            Some(json!({ "username": "ann" })),
        ),
        (
            "POST",
            "/t/alpha/api/v1/users.setTwoFactor".into(),
            Some(json!({ "username": "ann", "method": "hook", "sendTo": "m@example.com" })),
        ),
        ("GET", "/t/alpha/api/v1/deliveries".into(), None),
        (
            "GET",
            format!("/t/alpha/api/v1/deliveries/{delivery}"),
            None,
        ),
        (
            "POST",
            "/t/alpha/api/v1/verifications".into(),
            Some(json!({ "to": "x@example.com", "channel": "hook" })),
        ),
        (
            "POST",
            "/t/alpha/api/v1/verifications/check".into(),
            Some(json!({ "id": ver, "code": "123456" })),
        ),
        ("GET", format!("/t/alpha/api/v1/verifications/{ver}"), None),
        (
            "POST",
            format!("/t/alpha/api/v1/verifications/{ver}/cancel"),
            None,
        ),
        ("GET", "/t/alpha/api/v1/audit".into(), None),
    ];
    for (method, path, body) in calls {
        let (s, v) = req(&p, method, &path, &b, body).await;
        assert_eq!(s, 403, "{method} {path} with beta's key → {v}");
        assert!(!v.to_string().contains("ann@"), "{v}");
    }
    // Through beta's own base path alpha's things do not exist.
    let (s, _) = req(
        &p,
        "GET",
        &format!("/t/beta/api/v1/deliveries/{delivery}"),
        &b,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = req(
        &p,
        "GET",
        &format!("/t/beta/api/v1/verifications/{ver}"),
        &b,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = req(
        &p,
        "POST",
        "/t/beta/api/v1/channels/hook/test",
        &b,
        Some(json!({ "sendTo": "x@example.com" })),
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = req(&p, "GET", "/t/beta/api/v1/deliveries", &b, None).await;
    assert_eq!((s, v["total"].as_u64()), (200, Some(0)));
    // Logging in as alpha's user through beta's base path fails.
    let r = Postern::client()
        .post(p.url("/t/beta/api/v1/login"))
        .json(&json!({ "user": "ann", "password": "pw-ann" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = Postern::client()
        .post(p.url("/t/alpha/api/v1/login"))
        .json(&json!({ "user": "ann", "password": "pw-ann" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Alpha's data is unchanged.
    assert_eq!(before, snapshot(&p, a.clone()).await);
    assert_eq!(rx.requests().len(), 2, "beta caused no delivery");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_delivery_quota_answers_429() {
    let rx = Receiver::start(vec![reply(200, "ok")]).await;
    let p = Postern::start(
        "[plugins]\nallow_private_networks = true\n[limits]\ntenant_deliveries_per_minute = 3\n",
    )
    .await;
    let a = tenant(&p, "alpha").await;
    let b = tenant(&p, "beta").await;
    for (t, k) in [("alpha", &a), ("beta", &b)] {
        let (s, v) = req(
            &p,
            "PUT",
            &format!("/t/{t}/api/v1/channels/hook"),
            k,
            Some(url_channel(&rx)),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    for i in 0..3 {
        let (s, v) = req(
            &p,
            "POST",
            "/t/alpha/api/v1/channels/hook/test",
            &a,
            Some(json!({ "sendTo": format!("u{i}@example.com") })),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let r = Postern::client()
        .post(p.url("/t/alpha/api/v1/channels/hook/test"))
        .bearer_auth(&a)
        .json(&json!({ "sendTo": "u9@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorType"], "error-too-many-requests");
    // The other tenant is not affected.
    let (s, _) = req(
        &p,
        "POST",
        "/t/beta/api/v1/channels/hook/test",
        &b,
        Some(json!({ "sendTo": "b@example.com" })),
    )
    .await;
    assert_eq!(s, 200);
}

/// A relay name that resolves inside (here the machine's own name, which
/// /etc/hosts points at a loopback or private address) passes the literal
/// check at save time; the address is checked when the mail is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_smtp_relay_named_inside_is_never_dialled() {
    use std::net::ToSocketAddrs;
    let relay = SmtpServer::start(SmtpOptions::default()).await;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let inside = (name.as_str(), relay.port)
        .to_socket_addrs()
        .map(|a| a.collect::<Vec<_>>())
        .unwrap_or_default();
    if inside.is_empty() || !inside.iter().any(|a| a.ip().is_loopback()) {
        eprintln!("skipped: host name `{name}` does not resolve to loopback here ({inside:?})");
        return;
    }
    let channel = json!({
        "kind": "smtp",
        "config": {
            "server": format!("{name}:{}", relay.port),
            "sender_email": "2fa@example.com",
            "starttls": "off",
        },
    });
    for (allow_private, expect) in [(false, 502), (true, 200)] {
        let p = Postern::start(&format!(
            "[plugins]\nallow_private_networks = {allow_private}\n"
        ))
        .await;
        let key = tenant(&p, "acme").await;
        let (s, v) = req(
            &p,
            "PUT",
            "/t/acme/api/v1/channels/mail",
            &key,
            Some(channel.clone()),
        )
        .await;
        assert_eq!(s, 200, "a name passes the save-time check: {v}");
        let (s, v) = req(
            &p,
            "POST",
            "/t/acme/api/v1/channels/mail/test",
            &key,
            Some(json!({ "sendTo": "user@example.com" })),
        )
        .await;
        assert_eq!(s, expect, "allow_private_networks = {allow_private}: {v}");
        if allow_private {
            assert_eq!(relay.mails().len(), 1, "the control reaches the relay");
        } else {
            assert_eq!(v["delivery"]["status"], "failed", "{v}");
            let detail = v["delivery"]["attempts"][0]["detail"].as_str().unwrap();
            assert!(detail.contains("no public address"), "{detail}");
            assert!(relay.mails().is_empty(), "the relay was dialled");
        }
    }
}
