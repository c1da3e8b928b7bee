//! SMPP deliveries/s: one postern host on SQLite, one SMPP session to the
//! loopback SMSC of `support::smsc`, `window` 1 vs 10, with the SMSC
//! answering at once and after 5 ms (a nearby SMSC's turnaround). A
//! delivery is a `POST /channels/smpp/test` answered after its attempt.
//! Not part of the suite: `scripts/bench` runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::smpp::{PASSWORD, SYSTEM_ID, gateway};
use crate::support::server::{ADMIN, Postern};
use crate::support::smsc::Smsc;

const CLIENTS: usize = 32;

fn deliveries() -> usize {
    std::env::var("POSTERN_BENCH_SMPP_DELIVERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

async fn row(window: u32, latency: Duration) -> (f64, usize) {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    smsc.set_latency(latency);
    let config = format!(
        "[delivery]\nworkers = 64\n[limits]\nsends_per_destination = 10000\n\
         tenant_deliveries_per_minute = 1000000\ntenant_max_concurrent_deliveries = 64\n{}",
        gateway(
            "smpp",
            &smsc,
            PASSWORD,
            &format!("window = {window}\ntimeout_seconds = 30")
        )
    );
    let p = Postern::start(&config).await;
    let client = Arc::new(Postern::client());
    let url = Arc::new(p.url("/api/v1/channels/smpp/test"));
    let send = move |i: usize| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client
                .post(url.as_str())
                .bearer_auth(ADMIN)
                .json(&json!({ "sendTo": format!("+4916{i:08}") }))
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            (v["delivery"]["status"] == "delivered").then_some(())
        }
    };
    // Warm-up: the bind, connections, the first pages of the database.
    for i in 0..CLIENTS {
        send(i).await;
    }
    let n = deliveries();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(CLIENTS));
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, send) = (next.clone(), send.clone());
            tokio::spawn(async move {
                let mut ok = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= CLIENTS + n {
                        return ok;
                    }
                    ok += usize::from(send(i).await.is_some());
                }
            })
        })
        .collect();
    let mut ok = 0;
    for w in workers {
        ok += w.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(smsc.counts().0, 1, "one session");
    (ok as f64 / secs, n - ok)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: scripts/bench"]
async fn bench_smpp_deliveries_per_second() {
    println!(
        "\nSMPP deliveries/s, one session, {CLIENTS} concurrent API clients, {} deliveries per row",
        deliveries()
    );
    println!("| SMSC answers after | window | deliveries/s | failed |");
    println!("|---|---|---|---|");
    for latency in [Duration::ZERO, Duration::from_millis(5)] {
        for window in [1, 10] {
            let (rate, failed) = row(window, latency).await;
            println!(
                "| {} ms | {window} | {rate:.1} | {failed} |",
                latency.as_millis()
            );
        }
    }
}
