//! Throughput of whole 2FA flows: start a verification (the code goes to a
//! loopback URL receiver on the first attempt) and check it with the right
//! code. One SQLite host vs one and two hosts on PostgreSQL. Not part of
//! the suite: `scripts/bench` runs it (docs/postgres.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::pg::{self, TestDb};
use crate::support::server::{ADMIN, Postern};
use crate::support::sink::Sink;

const CLIENTS: usize = 32;

fn seconds() -> u64 {
    std::env::var("POSTERN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

fn config(sink: &Sink) -> String {
    format!(
        "[server]\nbase_url = \"https://2fa.example.com\"\n\
         [api]\ntwo_fa_token_delivery = \"{}\"\n\
         [limits]\nsends_per_destination = 10000\nchecks_per_ip_per_minute = 1000000\n\
         tenant_deliveries_per_minute = 1000000\n",
        sink.url()
    )
}

struct Row {
    setup: &'static str,
    hosts: usize,
    flows: u64,
    errors: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Option<Value> {
    let r = client
        .post(url)
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// Flows from `CLIENTS` concurrent clients for the configured time; a flow
/// starts on one host and is checked on the next (round robin).
async fn run(setup: &'static str, hosts: &[Postern], sink: &Sink) -> Row {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let bases: Arc<Vec<String>> = Arc::new(hosts.iter().map(|h| h.base.clone()).collect());
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let warmup = Duration::from_secs(2);
    let measure = Duration::from_secs(seconds());
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, bases, done, errors, codes) = (
                client.clone(),
                bases.clone(),
                done.clone(),
                errors.clone(),
                sink.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0usize;
                loop {
                    let t0 = Instant::now();
                    if t0 >= started + warmup + measure {
                        break;
                    }
                    let counted = t0 >= started + warmup;
                    let to = format!("c{c}-{n}@example.com");
                    let start_on = &bases[(c + n) % bases.len()];
                    let check_on = &bases[(c + n + 1) % bases.len()];
                    n += 1;
                    let ok = async {
                        let v = post(
                            &client,
                            format!("{start_on}/api/v1/verifications"),
                            json!({ "to": to, "channel": "url" }),
                        )
                        .await?;
                        let id = v["verification"]["id"].as_str()?.to_string();
                        let code = codes.code_for(&to)?;
                        let v = post(
                            &client,
                            format!("{check_on}/api/v1/verifications/check"),
                            json!({ "id": id, "code": code }),
                        )
                        .await?;
                        (v["verification"]["status"] == "approved").then_some(())
                    }
                    .await
                    .is_some();
                    if counted {
                        if ok {
                            done.fetch_add(1, Ordering::Relaxed);
                            latencies.push(t0.elapsed());
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Row {
        setup,
        hosts: hosts.len(),
        flows: done.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        secs: measure.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; run with scripts/bench"]
async fn bench_flows_per_second() {
    let quiet = [("POSTERN_LOG", "warn")];
    let sink = Sink::start(200).await;
    let cfg = config(&sink);
    let mut rows = Vec::new();

    let h = Postern::start_on(&cfg, None, &quiet).await;
    rows.push(run("SQLite", std::slice::from_ref(&h), &sink).await);
    drop(h);

    if pg::available("bench_flows_per_second (PostgreSQL rows)") {
        let db = TestDb::create().await;
        let h = Postern::start_on(&cfg, db, &quiet).await;
        rows.push(run("PostgreSQL", std::slice::from_ref(&h), &sink).await);
        drop(h);

        let db = TestDb::create().await;
        let hosts = [
            Postern::start_on(&cfg, db.clone(), &quiet).await,
            Postern::start_on(&cfg, db, &quiet).await,
        ];
        rows.push(run("PostgreSQL", &hosts, &sink).await);
    }

    println!(
        "\n{CLIENTS} concurrent clients, {} s per row after a 2 s warm-up; flow = start verification + check the right code\n",
        seconds()
    );
    println!("| backend    | hosts | flows | errors | flows/s | p50 ms | p99 ms |");
    println!("|------------|------:|------:|-------:|--------:|-------:|-------:|");
    for r in &rows {
        println!(
            "| {:<10} | {:>5} | {:>5} | {:>6} | {:>7.1} | {:>6.1} | {:>6.1} |",
            r.setup,
            r.hosts,
            r.flows,
            r.errors,
            r.flows as f64 / r.secs,
            r.p50.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0,
        );
    }
    assert!(
        rows.iter().all(|r| r.flows > 0),
        "a setup completed no flow"
    );
}
