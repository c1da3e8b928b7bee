//! The console in a real headless Chromium (support/browser.rs): a tenant
//! signs in, finds the deliveries a test just made with their attempts,
//! filters the failed ones, opens a plugin, sends a test through a channel
//! and signs out; it never sees another tenant; a form posted from another
//! site is refused. Screenshots of each page go to
//! `target/tmp/console-screenshots/`.

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::plugins::support::wasm;
use crate::support::api::{WASM, req, tenant, upload};
use crate::support::browser::Browser;
use crate::support::http::{Receiver, reply};
use crate::support::server::{ADMIN, Postern};

pub const CONFIG: &str =
    "[server]\nbase_url = \"http://127.0.0.1\"\n[plugins]\nallow_private_networks = true\n";

/// `acme` with a URL channel `hook` (to `rx`) and a plugin channel `flaky`
/// whose plugin traps; one delivery through each. Answers (key, delivered id, failed id).
pub async fn acme(p: &Postern, rx: &Receiver) -> (String, String, String) {
    let key = tenant(p, "acme").await;
    let (s, v) = upload(p, "acme", &key, "misbehave", WASM, wasm("misbehave")).await;
    assert_eq!(s, 200, "{v}");
    let channels = [
        (
            "hook",
            json!({ "kind": "url", "config": { "url": rx.url("/hook") }, "sendToType": "email" }),
        ),
        (
            "flaky",
            json!({ "kind": "plugin", "plugin": "misbehave", "config": { "mode": "trap" } }),
        ),
    ];
    for (name, body) in channels {
        let (s, v) = req(
            p,
            "PUT",
            &format!("/t/acme/api/v1/channels/{name}"),
            &key,
            Some(body),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let send = |ch: &'static str, to: &'static str| {
        let key = key.clone();
        async move {
            let path = format!("/t/acme/api/v1/channels/{ch}/test");
            req(p, "POST", &path, &key, Some(json!({ "sendTo": to }))).await
        }
    };
    let (s, ok) = send("hook", "ops@example.com").await;
    assert_eq!(
        (s, ok["delivery"]["status"].as_str()),
        (200, Some("delivered")),
        "{ok}"
    );
    let (s, bad) = send("flaky", "someone").await;
    assert_eq!(s, 502, "{bad}");
    let id = |v: &Value| v["delivery"]["id"].as_str().unwrap().to_string();
    (key, id(&ok), id(&bad))
}

async fn sign_in(b: &Browser, p: &Postern, key: &str) {
    b.goto(&p.url("/console")).await;
    assert_eq!(
        b.path().await,
        "/console/sign-in",
        "no session: the sign-in form"
    );
    b.css("#key").await.send_keys(key).await.unwrap();
    b.css("#sign-in").await.click().await.unwrap();
    b.css("#success-rate").await;
    assert_eq!(b.path().await, "/console");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_walks_through_the_console_in_a_real_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let rx = Receiver::start(vec![reply(200, "ok")]).await;
    let p = Postern::start(CONFIG).await;
    let (key, delivered, failed) = acme(&p, &rx).await;
    let other = tenant(&p, "globex").await;
    let (s, _) = req(
        &p,
        "PUT",
        "/t/globex/api/v1/channels/globexhook",
        &other,
        Some(json!({ "kind": "url", "config": { "url": rx.url("/g") } })),
    )
    .await;
    assert_eq!(s, 200);

    sign_in(&b, &p, &key).await;
    assert_eq!(b.text("#viewer-tenant").await, "acme");
    assert!(
        b.text("#success-rate").await.contains("50.0"),
        "one of two delivered"
    );
    b.css("#chart-hook svg rect.delivered").await;
    b.css("#chart-flaky svg rect.failed").await;
    let health = b.text("#health").await;
    assert!(
        health.contains("hook") && health.contains("flaky") && !health.contains("globexhook"),
        "every channel of this tenant, checked or not yet: {health}"
    );
    b.screenshot("overview").await;

    // The deliveries the test just made, newest first, each with its attempts.
    b.css("#nav-deliveries").await.click().await.unwrap();
    b.css(&format!("tr[data-id='{delivered}']")).await;
    b.css(&format!("tr[data-id='{failed}']")).await;
    b.screenshot("deliveries").await;
    b.css("#filter-status")
        .await
        .select_by_value("failed")
        .await
        .unwrap();
    b.css("#filter-apply").await.click().await.unwrap();
    b.wait_path("status=failed").await;
    b.css(&format!("tr[data-id='{failed}']")).await;
    let rows = b
        .client
        .find_all(Locator::Css("tr.delivery"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only the failed one");
    b.css(&format!("tr[data-id='{failed}'] a.open"))
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(b.text("#delivery-status").await, "failed");
    let attempts = b.text("#attempts").await;
    assert!(
        attempts.contains("permanent") && attempts.contains("trapped"),
        "{attempts}"
    );
    b.screenshot("delivery").await;

    // The plugin: its version, and why its attempts failed.
    b.css("#nav-plugins").await.click().await.unwrap();
    b.screenshot("plugins").await;
    b.css("#plugin-misbehave").await.click().await.unwrap();
    assert_eq!(b.text("#plugin-name").await, "misbehave");
    assert!(b.text("#plugin-reasons").await.contains("trapped"));
    b.screenshot("plugin").await;

    // A test through a channel opens its delivery.
    b.css("#nav-channels").await.click().await.unwrap();
    b.screenshot("channels").await;
    let form = b.css("#channel-hook form.send-test").await;
    form.find(Locator::Css("input[name=send_to]"))
        .await
        .unwrap()
        .send_keys("console@example.com")
        .await
        .unwrap();
    form.find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(b.text("#delivery-status").await, "delivered");
    assert_eq!(rx.requests().len(), 2, "the test reached the receiver");

    b.css("#nav-audit").await.click().await.unwrap();
    assert!(b.text("#audit").await.contains("console.sign-in"));
    b.screenshot("audit").await;

    // Another tenant's data is out of reach, by name or by id.
    b.goto(&p.url("/console/deliveries?tenant=globex")).await;
    assert!(
        b.text("#error-message")
            .await
            .contains("only its own tenant")
    );
    b.goto(&p.url("/console/tenants")).await;
    assert!(b.text("#error-message").await.contains("operator"));
    b.goto(&p.url("/console/channels")).await;
    assert!(!b.source().await.contains("globexhook"));

    b.css("#sign-out").await.click().await.unwrap();
    b.css("#key").await;
    b.goto(&p.url("/console/deliveries")).await;
    assert_eq!(
        b.path().await,
        "/console/sign-in",
        "signed out is signed out"
    );

    // The operator sees every tenant.
    sign_in(&b, &p, ADMIN).await;
    b.css("#nav-tenants").await.click().await.unwrap();
    let t = b.text("#tenants").await;
    assert!(t.contains("acme") && t.contains("globex"), "{t}");
    b.screenshot("tenants").await;
    b.close().await;
}

/// A page on another loopback port (another origin) with a form that posts
/// to the console, as a malicious site would.
async fn attacker(target: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let page = format!(
        "<!doctype html><form method=post action=\"{target}\"><input name=csrf value=guess>\
         <input name=send_to value=victim@example.com><button id=go>win a prize</button></form>"
    );
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_posted_from_another_site_is_refused() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let rx = Receiver::start(vec![reply(200, "ok")]).await;
    let p = Postern::start(CONFIG).await;
    let (key, _, _) = acme(&p, &rx).await;
    sign_in(&b, &p, &key).await;
    let evil = attacker(&p.url("/console/channels/hook/test")).await;
    b.goto(&evil).await;
    b.css("#go").await.click().await.unwrap();
    let msg = b.text("#error-message").await;
    assert!(
        msg.contains("refused") || msg.contains("another site"),
        "{msg}"
    );
    b.screenshot("cross-site-refused").await;
    let (_, v) = req(&p, "GET", "/t/acme/api/v1/deliveries", &key, None).await;
    assert_eq!(v["total"], 2, "no delivery was made: {v}");
    assert_eq!(rx.requests().len(), 1);
    b.close().await;
}
