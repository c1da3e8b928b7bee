//! The durable queue: retries with backoff, permanent failures, fallback,
//! kill -9 and restart, graceful shutdown.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::eventually;
use crate::support::http::{Receiver, Reply, reply};
use crate::support::server::Postern;

fn url_channel(rx: &Receiver, extra: &str) -> String {
    format!(
        "[server]\nbase_url = \"https://2fa.example.com\"\n[api]\ntwo_fa_token_delivery = \"{}\"\n{extra}\n",
        rx.url("/hook")
    )
}

const FAST_RETRY: &str = "[delivery]\nretry_base_ms = 30\nretry_max_ms = 120\n";

#[tokio::test(flavor = "multi_thread")]
async fn two_503s_then_200_ends_delivered_after_three_attempts() {
    let rx = Receiver::start(vec![
        reply(503, "busy"),
        reply(503, "busy"),
        reply(200, "ok"),
    ])
    .await;
    let p = Postern::start(&url_channel(&rx, FAST_RETRY)).await;
    let (s, v) = p.test_send("url", "a@example.com").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "queued");
    let id = v["delivery"]["id"].as_str().unwrap();
    let d = p.settled(id, Duration::from_secs(15)).await;
    assert_eq!(d["status"], "delivered", "{d}");
    let outcomes: Vec<&str> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["transient", "transient", "delivered"]);
    assert!(d["attempts"][0]["detail"].as_str().unwrap().contains("503"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.requests().len(),
        3,
        "nothing is sent after a recorded success"
    );
    // Every request carried the same code.
    let codes: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.form_get("token").unwrap())
        .collect();
    assert!(codes.windows(2).all(|w| w[0] == w[1]));

    let metrics = p.metrics().await;
    assert!(metrics.contains(r#"postern_delivery_attempts_total{channel="url",outcome="transient",tenant="default"} 2"#), "{metrics}");
    assert!(
        metrics.contains(
            r#"postern_deliveries_total{channel="url",status="delivered",tenant="default"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("postern_delivery_attempt_duration_seconds_bucket"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_400_stops_after_one_attempt() {
    let rx = Receiver::start(vec![reply(400, "bad request")]).await;
    let p = Postern::start(&url_channel(&rx, FAST_RETRY)).await;
    let (s, v) = p.test_send("url", "b@example.com").await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["delivery"]["status"], "failed");
    assert_eq!(v["delivery"]["attempts"].as_array().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.requests().len(), 1);
    let (_, list) = p.get("/api/v1/deliveries?status=failed").await;
    assert_eq!(list["total"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_is_cut_at_the_timeout() {
    let rx = Receiver::start(vec![Reply {
        status: 200,
        body: String::new(),
        delay: Duration::from_secs(30),
    }])
    .await;
    let p = Postern::start(&url_channel(
        &rx,
        "url_timeout_seconds = 1\n[delivery]\nretry_base_ms = 60000",
    ))
    .await;
    let started = std::time::Instant::now();
    let (s, v) = p.test_send("url", "c@example.com").await;
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["attempts"][0]["outcome"], "transient");
    assert!(
        v["delivery"]["attempts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_gateway_hands_the_code_to_its_fallback() {
    let primary = Receiver::start(vec![reply(400, "number blocked")]).await;
    let backup = Receiver::start(vec![reply(200, "ok")]).await;
    let p = Postern::start(&format!(
        r#"[[sms_gateway]]
name = "primary"
kind = "http"
url = "{}"
options = {{ to = "{{phone}}", code = "{{otp}}" }}
fallback = "backup"
[[sms_gateway]]
name = "backup"
kind = "http"
url = "{}"
options = {{ to = "{{phone}}", code = "{{otp}}" }}
"#,
        primary.url("/a"),
        backup.url("/b")
    ))
    .await;
    let (s, v) = p.test_send("primary", "4917012345").await;
    assert_eq!(s, 502, "{v}");
    let first = v["delivery"]["id"].as_str().unwrap().to_string();
    let fb = eventually(Duration::from_secs(10), "the fallback delivery", || async {
        let (_, list) = p.get("/api/v1/deliveries").await;
        list["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["fallbackOf"] == first.as_str() && d["status"] == "delivered")
            .cloned()
    })
    .await;
    assert_eq!(fb["channel"], "backup");
    let code_a = primary.requests()[0].query_pairs();
    let code_b = backup.requests()[0].query_pairs();
    assert_eq!(
        code_a, code_b,
        "the fallback delivers the same code to the same phone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_queued_before_kill_9_are_delivered_after_restart_exactly_once() {
    let rx = Receiver::start(vec![reply(503, "down")]).await;
    let config = url_channel(
        &rx,
        "[delivery]\nretry_base_ms = 100\nretry_max_ms = 300\nlease_seconds = 5\n",
    );
    let mut p = Postern::start(&config).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let (s, v) = p.test_send("url", &format!("user{i}@example.com")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["delivery"]["status"], "queued");
        ids.push(v["delivery"]["id"].as_str().unwrap().to_string());
    }
    p.kill9();
    let before = rx.requests().len();
    rx.set_script(vec![reply(200, "ok")]);
    let p = p.restart().await;
    for id in &ids {
        let d = p.settled(id, Duration::from_secs(30)).await;
        assert_eq!(d["status"], "delivered", "{d}");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after: Vec<_> = rx.requests().into_iter().skip(before).collect();
    let mut per_address: HashMap<String, usize> = HashMap::new();
    for r in &after {
        *per_address.entry(r.form_get("email").unwrap()).or_default() += 1;
    }
    assert_eq!(per_address.len(), 12, "{per_address:?}");
    assert!(
        per_address.values().all(|n| *n == 1),
        "a delivery was sent twice after success: {per_address:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_delivery_finish() {
    let rx = Receiver::start(vec![Reply {
        status: 200,
        body: "ok".into(),
        delay: Duration::from_millis(1500),
    }])
    .await;
    let mut p = Postern::start(&url_channel(&rx, "")).await;
    let url = p.url("/api/v1/channels/url/test");
    let call = tokio::spawn(async move {
        Postern::client()
            .post(url)
            .bearer_auth(crate::support::server::ADMIN)
            .json(&serde_json::json!({ "sendTo": "d@example.com" }))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    eventually(
        Duration::from_secs(10),
        "the provider to be called",
        || async { (!rx.requests().is_empty()).then_some(()) },
    )
    .await;
    let clean = tokio::task::spawn_blocking(move || {
        let ok = p.terminate(Duration::from_secs(10));
        (ok, p)
    })
    .await
    .unwrap();
    assert!(
        clean.0,
        "postern did not exit cleanly on SIGTERM:\n{}",
        clean.1.logs()
    );
    assert_eq!(
        call.await.unwrap().unwrap(),
        200,
        "the in-flight request was answered"
    );
    let p = clean.1.restart().await;
    let (_, list) = p.get("/api/v1/deliveries").await;
    assert_eq!(list["deliveries"][0]["status"], "delivered", "{list}");
    assert_eq!(rx.requests().len(), 1);
}
