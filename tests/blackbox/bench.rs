//! What whole 2FA flows cost the server. Two flows, each on one SQLite
//! host and on PostgreSQL (one host, then two sharing the database):
//! - **verify**: start a verification (the code goes to a loopback URL
//!   receiver on the first attempt) and check it with the right code;
//! - **login**: password login → `totp-required` (a code is mailed to a
//!   real SMTP listener on loopback) → login with that code.
//!
//! The servers run on core 0 and this load generator on core 1 (when the
//! machine has two), so the server's CPU time over the measured window,
//! read from `/proc/<pid>/stat`, is its own. Not part of the suite:
//! `scripts/bench` runs it (docs/postgres.md, README "Performance").

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::cpu::{self, CpuTime};
use crate::support::pg::{self, Counters, TestDb};
use crate::support::server::{ADMIN, Postern};
use crate::support::sink::Sink;
use crate::support::smtp::{SmtpOptions, SmtpServer};

const CLIENTS: usize = 32;
const SERVER_CORE: usize = 0;
const LOAD_CORE: usize = 1;
const PASSWORD: &str = "bench-pw-1";

fn seconds() -> u64 {
    std::env::var("POSTERN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

fn config(sink: &Sink, smtp: &SmtpServer) -> String {
    format!(
        "[server]\nbase_url = \"https://2fa.example.com\"\n\
         [api]\ntwo_fa_token_delivery = \"{}\"\n\
         [smtp]\nserver = \"127.0.0.1:{}\"\nsender_email = \"2fa@example.com\"\nstarttls = \"off\"\n\
         [limits]\nsends_per_destination = 10000\nchecks_per_ip_per_minute = 1000000\n\
         checks_per_user_per_minute = 1000000\nlogins_per_ip_per_minute = 1000000\n\
         code_requests_per_minute = 1000000\ntenant_deliveries_per_minute = 1000000\n",
        sink.url(),
        smtp.port
    )
}

/// What one side used over the measured window.
#[derive(Default)]
struct Usage {
    server: CpuTime,
    postgres: Option<CpuTime>,
    statements: Option<i64>,
    commits: Option<i64>,
    /// Calls per statement in the window, most first.
    by_statement: Vec<(String, i64)>,
}

struct Snapshot {
    server: CpuTime,
    postgres: CpuTime,
    counters: Counters,
}

async fn snapshot(hosts: &[Postern], db: Option<&TestDb>) -> Snapshot {
    let server = hosts
        .iter()
        .filter_map(|h| cpu::of(h.pid()))
        .fold(CpuTime::default(), |a, b| a + b);
    let counters = match db {
        Some(db) => db.counters().await,
        None => Counters::default(),
    };
    Snapshot {
        server,
        postgres: cpu::of_all_named("postgres"),
        counters,
    }
}

fn usage(before: Snapshot, after: Snapshot, on_pg: bool) -> Usage {
    let diff = |a: Option<i64>, b: Option<i64>| Some(a? - b?);
    Usage {
        server: after.server.since(before.server),
        postgres: on_pg.then(|| after.postgres.since(before.postgres)),
        statements: diff(after.counters.statements, before.counters.statements),
        commits: diff(after.counters.commits, before.counters.commits),
        by_statement: calls_between(&before.counters, after.counters),
    }
}

fn calls_between(before: &Counters, after: Counters) -> Vec<(String, i64)> {
    let earlier: std::collections::HashMap<&str, i64> = before
        .by_statement
        .iter()
        .map(|(q, n)| (q.as_str(), *n))
        .collect();
    let mut calls: Vec<(String, i64)> = after
        .by_statement
        .into_iter()
        .map(|(q, n)| {
            let n = n - earlier.get(q.as_str()).copied().unwrap_or(0);
            (q, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.1));
    calls
}

struct Row {
    flow: &'static str,
    backend: &'static str,
    hosts: usize,
    flows: u64,
    errors: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
    usage: Usage,
}

/// Runs `flow(client, n)` from `CLIENTS` concurrent clients for the
/// configured time after a 2 s warm-up; counts and times the flows that
/// finish inside the measured window, and what the servers (and
/// PostgreSQL) spent in it.
async fn run<F, Fut>(
    (name, backend): (&'static str, &'static str),
    hosts: &[Postern],
    db: Option<&TestDb>,
    flow: F,
) -> Row
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<()>> + Send,
{
    if cpu::cores() > LOAD_CORE {
        assert!(
            cpu::pin(std::process::id(), LOAD_CORE),
            "cannot pin the load generator"
        );
        for h in hosts {
            assert!(cpu::pin(h.pid(), SERVER_CORE), "cannot pin the server");
        }
    }
    let flow = Arc::new(flow);
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let warmup = Duration::from_secs(2);
    let measure = Duration::from_secs(seconds());
    let started = Instant::now();
    let (from, until) = (started + warmup, started + warmup + measure);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (flow, done, errors) = (flow.clone(), done.clone(), errors.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for n in 0.. {
                    let t0 = Instant::now();
                    if t0 >= until {
                        break;
                    }
                    let ok = flow(c, n).await.is_some();
                    let t1 = Instant::now();
                    if t0 >= from && t1 <= until {
                        if ok {
                            done.fetch_add(1, Ordering::Relaxed);
                            latencies.push(t1 - t0);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let before = snapshot(hosts, db).await;
    tokio::time::sleep_until(until.into()).await;
    let after = snapshot(hosts, db).await;
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
        flow: name,
        backend,
        hosts: hosts.len(),
        flows: done.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        secs: measure.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        usage: usage(before, after, db.is_some()),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(
    client: &reqwest::Client,
    url: String,
    bearer: bool,
    body: Value,
) -> Option<(u16, Value)> {
    let mut r = client.post(url).json(&body);
    if bearer {
        r = r.bearer_auth(ADMIN);
    }
    let r = r.send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

fn bases(hosts: &[Postern]) -> Arc<Vec<String>> {
    Arc::new(hosts.iter().map(|h| h.base.clone()).collect())
}

/// Verify flows; a flow starts on one host and is checked on the next.
async fn verify(backend: &'static str, hosts: &[Postern], db: Option<&TestDb>, sink: &Sink) -> Row {
    let (client, bases, codes) = (client(), bases(hosts), sink.clone());
    let flow = move |c: usize, n: usize| {
        let (client, bases, codes) = (client.clone(), bases.clone(), codes.clone());
        async move {
            let to = format!("c{c}-{n}@example.com");
            let start_on = &bases[(c + n) % bases.len()];
            let check_on = &bases[(c + n + 1) % bases.len()];
            let body = json!({ "to": to, "channel": "url" });
            let (_, v) = post(
                &client,
                format!("{start_on}/api/v1/verifications"),
                true,
                body,
            )
            .await?;
            let id = v["verification"]["id"].as_str()?.to_string();
            let code = codes.code_for(&to)?;
            let body = json!({ "id": id, "code": code });
            let (_, v) = post(
                &client,
                format!("{check_on}/api/v1/verifications/check"),
                true,
                body,
            )
            .await?;
            (v["verification"]["status"] == "approved").then_some(())
        }
    };
    run(("verify", backend), hosts, db, flow).await
}

/// One user with email 2FA per client.
async fn create_users(host: &Postern, tag: &str) {
    for c in 0..CLIENTS {
        crate::support::api::email_2fa_user(host, &format!("{tag}{c}"), PASSWORD).await;
    }
}

/// Login flows: password → `totp-required` and a mailed code → password
/// and code; the first login on one host, the second on the next.
async fn login(
    backend: &'static str,
    hosts: &[Postern],
    db: Option<&TestDb>,
    smtp: &Arc<SmtpServer>,
    tag: &'static str,
) -> Row {
    create_users(&hosts[0], tag).await;
    let (client, bases, smtp) = (client(), bases(hosts), smtp.clone());
    let flow = move |c: usize, n: usize| {
        let (client, bases, smtp) = (client.clone(), bases.clone(), smtp.clone());
        async move {
            let user = format!("{tag}{c}");
            let rcpt = format!("{user}@example.com");
            let first = &bases[(c + n) % bases.len()];
            let second = &bases[(c + n + 1) % bases.len()];
            let seen = smtp.last_to(&rcpt).map(|(i, _)| i);
            let body = json!({ "user": user, "password": PASSWORD });
            let (s, v) = post(&client, format!("{first}/api/v1/login"), false, body).await?;
            (s == 401 && v["error"] == "totp-required").then_some(())?;
            let deadline = Instant::now() + Duration::from_secs(10);
            let mail = loop {
                match smtp.last_to(&rcpt) {
                    Some((i, m)) if Some(i) != seen => break m,
                    _ if Instant::now() > deadline => return None,
                    _ => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            };
            let body = json!({ "user": user, "password": PASSWORD, "code": mail.code(6) });
            let (s, v) = post(&client, format!("{second}/api/v1/login"), false, body).await?;
            (s == 200 && v["status"] == "success").then_some(())
        }
    };
    run(("login", backend), hosts, db, flow).await
}

/// CPU time of one argon2 password check with the server's parameters
/// (the crate's defaults), on the load generator's core: the login flow
/// checks the password twice.
fn argon2_ms() -> f64 {
    let a = argon2::Argon2::default();
    // The server reuses its working memory too (twofa/password.rs).
    let mut blocks = vec![argon2::Block::new(); argon2::Params::default().block_count()];
    let mut out = [0u8; 32];
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let t = cpu::this_thread();
            a.hash_password_into_with_memory(
                PASSWORD.as_bytes(),
                b"bench-salt-16byt",
                &mut out,
                &mut blocks,
            )
            .unwrap();
            (cpu::this_thread() - t).as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn per_flow(v: Option<i64>, flows: u64) -> String {
    v.map_or("–".into(), |v| {
        format!("{:.1}", v as f64 / flows.max(1) as f64)
    })
}

fn print(rows: &[Row]) {
    println!(
        "\n{CLIENTS} concurrent clients, {} s per row after a 2 s warm-up; servers pinned to core {SERVER_CORE}, load generator to core {LOAD_CORE}{}\n",
        seconds(),
        if cpu::cores() > LOAD_CORE {
            ""
        } else {
            " (one core here: not pinned)"
        }
    );
    println!(
        "| flow   | backend    | hosts | flows/s | errors | p50 ms | p99 ms | postern CPU ms/flow | system share | PostgreSQL CPU ms/flow | statements/flow | commits/flow |"
    );
    println!(
        "|--------|------------|------:|--------:|-------:|-------:|-------:|--------------------:|-------------:|-----------------------:|----------------:|-------------:|"
    );
    for r in rows {
        let flows = r.flows.max(1) as f64;
        let u = &r.usage;
        let ms = |t: CpuTime| format!("{:.3}", t.total().as_secs_f64() * 1000.0 / flows);
        println!(
            "| {:<6} | {:<10} | {:>5} | {:>7.1} | {:>6} | {:>6.1} | {:>6.1} | {:>19} | {:>11.0} % | {:>22} | {:>15} | {:>12} |",
            r.flow,
            r.backend,
            r.hosts,
            r.flows as f64 / r.secs,
            r.errors,
            r.p50.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0,
            ms(u.server),
            u.server.system.as_secs_f64() * 100.0 / u.server.total().as_secs_f64().max(1e-9),
            u.postgres.map_or("–".into(), ms),
            per_flow(u.statements, r.flows),
            per_flow(u.commits, r.flows),
        );
    }
    if std::env::var_os("POSTERN_BENCH_STATEMENTS").is_some() {
        for r in rows.iter().filter(|r| !r.usage.by_statement.is_empty()) {
            println!(
                "\nStatements per {} flow on {} ({} hosts):",
                r.flow, r.backend, r.hosts
            );
            for (q, n) in &r.usage.by_statement {
                let q: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
                let q: String = q.chars().take(150).collect();
                println!("{:>6.2}  {q}", *n as f64 / r.flows.max(1) as f64);
            }
        }
    }
    let a = argon2_ms();
    if let Some(l) = rows
        .iter()
        .find(|r| r.flow == "login" && r.backend == "SQLite")
    {
        let flow_ms = l.usage.server.total().as_secs_f64() * 1000.0 / l.flows.max(1) as f64;
        println!(
            "\nOne argon2 password check (the server's parameters) takes {a:.2} ms of CPU; the login flow checks twice: {:.0} % of its postern CPU on SQLite.",
            2.0 * a * 100.0 / flow_ms.max(1e-9)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; run with scripts/bench"]
async fn bench_flows_per_second() {
    let quiet = [("POSTERN_LOG", "warn")];
    let sink = Sink::start(200).await;
    let smtp = Arc::new(SmtpServer::start(SmtpOptions::default()).await);
    let cfg = config(&sink, &smtp);
    let mut rows = Vec::new();

    let h = Postern::start_on(&cfg, None, &quiet).await;
    rows.push(verify("SQLite", std::slice::from_ref(&h), None, &sink).await);
    rows.push(login("SQLite", std::slice::from_ref(&h), None, &smtp, "s").await);
    drop(h);

    if pg::available("bench_flows_per_second (PostgreSQL rows)") {
        let db = TestDb::create().await.unwrap();
        let h = Postern::start_on(&cfg, Some(db.clone()), &quiet).await;
        rows.push(verify("PostgreSQL", std::slice::from_ref(&h), Some(&db), &sink).await);
        rows.push(
            login(
                "PostgreSQL",
                std::slice::from_ref(&h),
                Some(&db),
                &smtp,
                "p",
            )
            .await,
        );
        drop(h);

        let db = TestDb::create().await.unwrap();
        let hosts = [
            Postern::start_on(&cfg, Some(db.clone()), &quiet).await,
            Postern::start_on(&cfg, Some(db.clone()), &quiet).await,
        ];
        rows.push(verify("PostgreSQL", &hosts, Some(&db), &sink).await);
    }
    print(&rows);
    assert!(
        rows.iter().all(|r| r.flows > 0),
        "a setup completed no flow"
    );
}
