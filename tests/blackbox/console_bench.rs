//! Console pages with 100,000 deliveries stored (SQLite, one week of
//! traffic over three channels): the server time of each page, read from
//! its `Server-Timing` header. A bench row, not a timed test:
//! `cargo test --release -p postern --test blackbox bench_console_pages -- --ignored --nocapture`
//! (`scripts/bench` runs it).

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::json;

use crate::support::api::{req, tenant};
use crate::support::server::Postern;

const DELIVERIES: i64 = 100_000;
const ROUNDS: usize = 20;

/// One statement each: the deliveries spread over the last week, one
/// attempt each; 1 in 20 failed, 1 in 20 expired, 1 in 7 retried.
async fn fill(p: &Postern, now: i64) {
    let url = format!(
        "sqlite://{}",
        p.dir.path().join("data/postern.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let step = 7 * 86_400_000 / DELIVERIES;
    sqlx::query(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO deliveries (id, tenant, channel, send_to_masked, username, payload, status,
            attempt_count, next_attempt_at, expires_at, created_at, updated_at)
         SELECT 'dlv_bench' || i, 'acme', CASE i % 3 WHEN 0 THEN 'hook' WHEN 1 THEN 'sms' ELSE 'mail' END,
            'u***@example.com', 'user' || (i % 500), x'00',
            CASE i % 20 WHEN 0 THEN 'failed' WHEN 1 THEN 'expired' ELSE 'delivered' END,
            CASE WHEN i % 7 = 0 THEN 2 ELSE 1 END, {now} - i * {step}, {now} - i * {step} + 600000,
            {now} - i * {step}, {now} - i * {step} + 150 + i % 900
         FROM n",
        last = DELIVERIES - 1
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, n, at, outcome, detail, duration_ms)
         SELECT id, 1, created_at, CASE status WHEN 'delivered' THEN 'delivered' ELSE 'permanent' END,
            CASE status WHEN 'delivered' THEN 'ok' ELSE 'provider said no' END, 120
         FROM deliveries WHERE id LIKE 'dlv_bench%'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

async fn session(p: &Postern, key: &str) -> String {
    let c = Postern::client();
    let form = c.get(p.url("/console/sign-in")).send().await.unwrap();
    let pre = form.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let nofollow = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = nofollow
        .post(p.url("/console/sign-in"))
        .header(COOKIE, pre)
        .form(&[("key", key), ("csrf", csrf)])
        .send()
        .await
        .unwrap();
    let set = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("postern_console="))
        .unwrap();
    set.split(';').next().unwrap().to_string()
}

/// The server time (ms) of `ROUNDS` requests: (first, median, max). The
/// first of an overview fills the console's cache of settled hours.
async fn time(p: &Postern, cookie: &str, path: &str) -> (f64, f64, f64) {
    let mut ms = Vec::new();
    for _ in 0..ROUNDS {
        let r = Postern::client()
            .get(p.url(path))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let t = r.headers()["server-timing"]
            .to_str()
            .unwrap()
            .trim_start_matches("app;dur=")
            .parse()
            .unwrap();
        ms.push(t);
        r.bytes().await.unwrap();
    }
    let first = ms[0];
    ms.sort_by(f64::total_cmp);
    (first, ms[ROUNDS / 2], ms[ROUNDS - 1])
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: scripts/bench"]
async fn bench_console_pages() {
    let p = Postern::start(crate::console::CONFIG).await;
    let key = tenant(&p, "acme").await;
    let (s, _) = req(
        &p,
        "PUT",
        "/t/acme/api/v1/channels/hook",
        &key,
        Some(json!({ "kind": "url", "config": { "url": "http://127.0.0.1:9/x" } })),
    )
    .await;
    assert_eq!(s, 200);
    let now = chrono::Utc::now().timestamp_millis();
    fill(&p, now).await;
    let tenant_cookie = session(&p, &key).await;
    let operator = session(&p, crate::support::server::ADMIN).await;
    println!(
        "\nconsole pages, {DELIVERIES} deliveries stored (SQLite), server time over {ROUNDS} requests"
    );
    println!(
        "{:<48} {:>10} {:>10} {:>10}",
        "page", "first ms", "median ms", "max ms"
    );
    let pages = [
        (&tenant_cookie, "/console"),
        (&tenant_cookie, "/console?window=hour"),
        (&tenant_cookie, "/console?window=week"),
        (&operator, "/console?window=week"),
        (&tenant_cookie, "/console/deliveries"),
        (
            &tenant_cookie,
            "/console/deliveries?status=failed&channel=sms",
        ),
        (&tenant_cookie, "/console/deliveries?user=user42"),
        (&tenant_cookie, "/console/deliveries/dlv_bench500"),
        (&tenant_cookie, "/console/channels"),
        (&tenant_cookie, "/console/plugins"),
        (&tenant_cookie, "/console/audit"),
        (&operator, "/console/tenants"),
    ];
    for (cookie, path) in pages {
        let (first, median, max) = time(&p, cookie, path).await;
        println!("{path:<48} {first:>10.1} {median:>10.1} {max:>10.1}");
    }
}
