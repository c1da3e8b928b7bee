//! Two `postern` processes on one PostgreSQL database: a shared delivery
//! queue that survives `kill -9` of one host, and attempt counters that
//! hold across hosts. Runs in the PostgreSQL pass (`scripts/test`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::plugins::support::wasm;
use crate::support::api::{WASM, req, tenant, upload};
use crate::support::eventually;
use crate::support::http::{Receiver, reply};
use crate::support::pg::{self, TestDb};
use crate::support::server::{Postern, run_cli};
use crate::support::sink::Sink;

const DELIVERIES: usize = 1000;
/// Concurrent attempts per host.
const WORKERS: usize = 8;

/// `limits` lines go under `[limits]`.
fn config(sink: &Sink, limits: &str) -> String {
    format!(
        "[server]\nbase_url = \"https://2fa.example.com\"\n\
         [api]\ntwo_fa_token_delivery = \"{}\"\n\
         [delivery]\nretry_base_ms = 200\nretry_max_ms = 1500\nlease_seconds = 5\nworkers = {WORKERS}\n\
         [limits]\ntenant_deliveries_per_minute = 1000000\n{limits}\n",
        sink.url()
    )
}

/// Both hosts start at once on an empty database: the migrations run once.
async fn two_hosts(config: &str) -> (Postern, Postern, Arc<TestDb>) {
    let db = TestDb::create().await.expect("the PostgreSQL pass");
    let (a, b) = tokio::join!(
        Postern::start_on(config, Some(db.clone()), &[]),
        Postern::start_on(config, Some(db.clone()), &[]),
    );
    (a, b, db)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_settings_are_checked_at_start_up() {
    // No PostgreSQL needed: nothing listens on port 1.
    let dir = tempfile::tempdir().unwrap();
    let url = (
        "POSTERN_SERVER__DATABASE_URL",
        "postgres://postern:pw@127.0.0.1:1/postern",
    );
    let (code, _, err) = run_cli(dir.path(), &["serve"], &[url]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("server.secret_key") && err.contains("every host"),
        "{err}"
    );
    let key = ("POSTERN_SERVER__SECRET_KEY", pg::SECRET_KEY);
    let listen = ("POSTERN_SERVER__LISTEN", "127.0.0.1:0");
    let (code, out, err) = run_cli(dir.path(), &["serve"], &[url, key, listen]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("server.database_url")
            && err.contains("cannot connect to PostgreSQL at 127.0.0.1:1/postern"),
        "{err}"
    );
    assert!(!err.contains(":pw@"), "the password leaked: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_share_the_queue_and_a_killed_hosts_deliveries_arrive_once() {
    if !pg::available("two_hosts_share_the_queue_and_a_killed_hosts_deliveries_arrive_once") {
        return;
    }
    // The provider is down while the deliveries are enqueued through both
    // hosts, so they queue up and both hosts' workers retry them.
    let sink = Sink::start(503).await;
    let (mut a, b, _db) = two_hosts(&config(&sink, "")).await;
    let hosts = [&a, &b];
    let ids: Vec<String> = futures::stream::iter(0..DELIVERIES)
        .map(|i| {
            let host = hosts[i % 2];
            async move {
                let (s, v) = host.test_send("url", &format!("u{i}@example.com")).await;
                assert_eq!(s, 200, "{v}");
                // Answered as the first attempt left it, even when the other
                // host's worker has already started the retry.
                let d = &v["delivery"];
                assert_eq!(d["status"], "queued", "{v}");
                assert_eq!(d["attempts"].as_array().map(Vec::len), Some(1), "{v}");
                assert_eq!(d["attempts"][0]["outcome"], "transient", "{v}");
                v["delivery"]["id"].as_str().unwrap().to_string()
            }
        })
        .buffered(16)
        .collect()
        .await;
    assert_eq!(ids.len(), DELIVERIES);

    // Provider back (a little slow, so delivery takes a while); kill -9
    // host A half-way through.
    sink.answer(200, Duration::from_millis(40));
    eventually(
        Duration::from_secs(120),
        "half the deliveries to arrive",
        || async { (sink.delivered() >= DELIVERIES as u64 / 2).then_some(()) },
    )
    .await;
    a.kill9();
    let killed_at = chrono::Utc::now().timestamp_millis();
    let at_kill = sink.delivered();
    assert!(
        at_kill < DELIVERIES as u64,
        "everything arrived before the kill; the test proves nothing"
    );

    // Host B finishes every delivery, including the ones A held leases on.
    let records: Vec<Value> = eventually(
        Duration::from_secs(180),
        "every delivery to be recorded as delivered",
        || async {
            let mut out = Vec::new();
            for chunk in ids.chunks(50) {
                for id in chunk {
                    let d = b.delivery(id).await;
                    if d["status"] != "delivered" {
                        return None;
                    }
                    out.push(d);
                }
            }
            Some(out)
        },
    )
    .await;
    // Let any stray second send show up.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let hits = sink.hits();
    let mut ok_per_address: HashMap<&str, usize> = HashMap::new();
    let mut first_ok: HashMap<&str, i64> = HashMap::new();
    for h in hits.iter().filter(|h| h.status == 200) {
        *ok_per_address.entry(&h.email).or_default() += 1;
        first_ok.entry(&h.email).or_insert(h.at_ms);
    }
    for i in 0..DELIVERIES {
        assert!(
            ok_per_address.contains_key(format!("u{i}@example.com").as_str()),
            "u{i}@example.com never got its code"
        );
    }
    // Only a send A had in flight when it was killed (the provider took it,
    // the record did not) may arrive twice: at most one per worker slot.
    let duplicates: usize = ok_per_address.values().map(|n| n - 1).sum();
    for (email, n) in &ok_per_address {
        assert!(
            *n == 1 || first_ok[email] <= killed_at,
            "{email} got {n} sends, the first after the kill: not A's in-flight attempt"
        );
    }
    assert!(
        duplicates <= WORKERS,
        "{duplicates} duplicate sends; at most {WORKERS} (A's in-flight attempts) are possible"
    );
    // Nothing is sent for a delivery once its success is recorded.
    let mut by_address: HashMap<&str, Vec<i64>> = HashMap::new();
    for h in &hits {
        by_address.entry(&h.email).or_default().push(h.at_ms);
    }
    for d in &records {
        let to = d["to"].as_str().unwrap();
        let done = d["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["outcome"] == "delivered")
            .unwrap_or_else(|| panic!("no delivered attempt: {d}"));
        let recorded = chrono::DateTime::parse_from_rfc3339(done["at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
            + done["durationMs"].as_i64().unwrap();
        // `to` is masked; `ids` is in address order (`buffered` keeps it).
        let i = ids.iter().position(|id| id == &d["id"]).unwrap();
        let email = format!("u{i}@example.com");
        assert!(to.ends_with("@example.com"), "{d}");
        let late: Vec<_> = by_address[email.as_str()]
            .iter()
            .filter(|at| **at > recorded + 50)
            .collect();
        assert!(
            late.is_empty(),
            "{email} was sent again after its success was recorded at {recorded}: {late:?}"
        );
    }
    eprintln!(
        "multi-host: {DELIVERIES} deliveries, {} requests in all, host A killed after {at_kill} had arrived, {duplicates} duplicate(s) from A's in-flight sends",
        hits.len()
    );
}

async fn start(host: &Postern, to: &str) -> String {
    let body = json!({ "to": to, "channel": "url" });
    let (s, v) = host.post("/api/v1/verifications", body).await;
    assert_eq!(s, 201, "{v}");
    v["verification"]["id"].as_str().unwrap().to_string()
}

async fn check(host: &Postern, id: &str, code: &str) -> (u16, Value) {
    let body = json!({ "id": id, "code": code });
    host.post("/api/v1/verifications/check", body).await
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| if c == '9' { '0' } else { (c as u8 + 1) as char })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_check_attempt_cap_holds_across_hosts() {
    if !pg::available("the_check_attempt_cap_holds_across_hosts") {
        return;
    }
    let sink = Sink::start(200).await;
    let (a, b, _db) = two_hosts(&config(
        &sink,
        "max_check_attempts = 5\nchecks_per_user_per_minute = 1000\nchecks_per_ip_per_minute = 1000\n",
    ))
    .await;
    // Started on A, the code checks on B: the hosts share codes and the key.
    let id = start(&a, "ok@example.com").await;
    let code = sink.code_for("ok@example.com").expect("code delivered");
    let (s, v) = check(&b, &id, &code).await;
    assert_eq!(v["verification"]["status"], "approved", "{s} {v}");

    // Wrong codes alternating between the hosts: four leave it pending, the
    // fifth ends it, and the right code is refused afterwards on either host.
    let id = start(&b, "brute@example.com").await;
    let code = sink.code_for("brute@example.com").expect("code delivered");
    for n in 1..=5 {
        let host = if n % 2 == 1 { &a } else { &b };
        let (s, v) = check(host, &id, &wrong(&code)).await;
        let want = if n < 5 {
            "pending"
        } else {
            "max_attempts_reached"
        };
        assert_eq!(
            (s, v["verification"]["status"].as_str()),
            (200, Some(want)),
            "wrong code #{n}: {v}"
        );
    }
    for host in [&a, &b] {
        let (s, v) = check(host, &id, &code).await;
        assert_eq!(
            (s, v["errorType"].as_str()),
            (404, Some("error-not-found")),
            "{v}"
        );
    }

    // Twenty wrong codes at once, ten through each host: exactly four are
    // judged plain wrong before the code dies, whatever the interleaving.
    let id = start(&a, "burst@example.com").await;
    let code = sink.code_for("burst@example.com").expect("code delivered");
    let bad = wrong(&code);
    let answers: Vec<(u16, Value)> = futures::future::join_all(
        (0..20).map(|n| check(if n % 2 == 0 { &a } else { &b }, &id, &bad)),
    )
    .await;
    let pending = answers
        .iter()
        .filter(|(_, v)| v["verification"]["status"] == "pending")
        .count();
    assert_eq!(pending, 4, "{answers:?}");
    let (s, v) = check(&b, &id, &code).await;
    assert_ne!(v["verification"]["status"], "approved", "{s} {v}");
    let (_, v) = a.get(&format!("/api/v1/verifications/{id}")).await;
    assert_eq!(v["verification"]["status"], "max_attempts_reached", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_uploaded_through_one_host_delivers_through_the_other() {
    if !pg::available("a_plugin_uploaded_through_one_host_delivers_through_the_other") {
        return;
    }
    let bot = Receiver::start(vec![reply(
        200,
        r#"{"ok":true,"result":{"message_id":77}}"#,
    )])
    .await;
    let db = TestDb::create().await;
    let cfg = "[plugins]\nallow_private_networks = true\n";
    let (a, b) = tokio::join!(
        Postern::start_on(cfg, db.clone(), &[]),
        Postern::start_on(cfg, db.clone(), &[]),
    );
    // The tenant, the plugin bytes and the channel go in through A …
    let key = tenant(&a, "acme").await;
    let (s, v) = upload(&a, "acme", &key, "telegram", WASM, wasm("telegram")).await;
    assert_eq!(s, 200, "{v}");
    let channel = json!({
        "kind": "plugin", "plugin": "telegram",
        "allowedHosts": [format!("http://127.0.0.1:{}", bot.port)],
        "config": { "api_base": bot.url("") },
        "secrets": { "bot_token": "123:tg-secret-token" },
    });
    let (s, v) = req(&a, "PUT", "/t/acme/api/v1/channels/tg", &key, Some(channel)).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = req(&b, "GET", "/t/acme/api/v1/plugins/telegram", &key, None).await;
    assert_eq!(
        (s, v["plugin"]["sha256"].as_str().map(str::len)),
        (200, Some(64)),
        "{v}"
    );

    // … and B, which compiles the plugin from the stored bytes into its own
    // cache, delivers through it within a few seconds.
    let send = |host: &Postern| {
        let url = host.url("/t/acme/api/v1/channels/tg/test");
        let key = key.clone();
        async move {
            let r = Postern::client()
                .post(url)
                .bearer_auth(key)
                .json(&json!({ "sendTo": "4242" }))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let picked_up = std::time::Instant::now();
    let v = eventually(
        Duration::from_secs(10),
        "host B to know the channel",
        || async {
            let (s, v) = send(&b).await;
            (s == 200).then_some(v)
        },
    )
    .await;
    assert_eq!(v["delivery"]["providerId"], "77", "{v}");
    assert_eq!(
        bot.requests().last().unwrap().path,
        "/bot123:tg-secret-token/sendMessage"
    );
    eprintln!("host B picked up the upload in {:?}", picked_up.elapsed());

    // Deleted through A: gone on B within a few seconds too.
    let (s, _) = req(&a, "DELETE", "/t/acme/api/v1/channels/tg", &key, None).await;
    assert_eq!(s, 200);
    let (s, _) = req(&a, "DELETE", "/t/acme/api/v1/plugins/telegram", &key, None).await;
    assert_eq!(s, 200);
    eventually(
        Duration::from_secs(10),
        "host B to drop the channel",
        || async {
            let (s, _) = send(&b).await;
            (s == 404).then_some(())
        },
    )
    .await;
    let (s, _) = req(&b, "GET", "/t/acme/api/v1/plugins/telegram", &key, None).await;
    assert_eq!(s, 404);
}
