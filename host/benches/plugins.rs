//! Plugin runtime benchmarks; prints a table.
//!
//!     cd plugins && cargo build --release && cd ..
//!     cargo bench --bench plugins
//!
//! * `plugin-overhead`: the noop plugin, fresh instance + `deliver` + drop,
//!   1 and 64 concurrent; median and p99 per delivery. Target: median ≤ 20 µs.
//! * `telegram-vs-script`: the telegram plugin delivering N messages to a
//!   loopback fake Bot API (one at a time, 8 and 64 in flight, with p50/p99
//!   per delivery), against an rport-style script (`sh -c 'curl -fs -X POST
//!   …'`, one process per message) delivering the same N to the same fake.
//!   Targets: the plugin one at a time ≥ 50× the script's deliveries/s; p99
//!   at 64 in flight < 5 ms.
//!
//! Environment: `BENCH_N` (telegram messages, default 300), `BENCH_ITERS`
//! (overhead iterations, default 5000). The process's CPU time per
//! delivery is printed for each telegram row (pin it: `taskset -c 0`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use postern::config::PluginsConfig;
use postern::delivery::{Message, OutcomeClass, Sender};
use postern::netguard::AllowList;
use postern::plugin::{ChannelSandbox, PluginRuntime};
use postern::secret::Secret;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wasm(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target/wasm32-wasip2/release");
    let path: PathBuf = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nbuild the plugins first: cd plugins && cargo build --release",
            path.display()
        )
    })
}

fn message(to: &str) -> Message {
    Message {
        send_to: to.into(),
        code: "493817".into(),
        ttl_seconds: 600,
        text: "Your verification code is 493817. It expires in 10 minutes.".into(),
        username: "alice".into(),
        user_agent: None,
        remote_address: None,
        locale: None,
        email: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn overhead(
    rt: &Arc<PluginRuntime>,
    concurrency: usize,
    iters: usize,
) -> (Duration, Duration, f64) {
    let plugin = rt.load(wasm("noop")).await.expect("noop");
    let sender: Arc<dyn Sender> = rt.sender(plugin, ChannelSandbox::default());
    // Warm up the pool and the caches.
    for _ in 0..200 {
        sender.send(&message("x")).await;
    }
    let per_task = iters / concurrency;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let s = sender.clone();
        tasks.push(tokio::spawn(async move {
            let m = message("x");
            let mut v = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = Instant::now();
                let o = s.send(&m).await;
                v.push(t.elapsed());
                assert_eq!(o.class, OutcomeClass::Delivered, "{}", o.detail);
            }
            v
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let wall = start.elapsed();
    all.sort();
    (
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.len() as f64 / wall.as_secs_f64(),
    )
}

/// A minimal fake Bot API: counts `sendMessage` calls, answers like Telegram.
async fn fake_bot_api() -> (SocketAddr, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new().fallback(move || {
        let c = c.clone();
        async move {
            let id = c.fetch_add(1, Ordering::Relaxed);
            (
                [("content-type", "application/json")],
                format!(r#"{{"ok":true,"result":{{"message_id":{id}}}}}"#),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, count)
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 (1-based), in clock ticks (100 Hz).
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

struct Rate {
    per_s: f64,
    p50: Duration,
    p99: Duration,
    cpu: Duration,
}

async fn telegram_plugin(rt: &Arc<PluginRuntime>, base: &str, n: usize, workers: usize) -> Rate {
    let plugin = rt.load(wasm("telegram")).await.expect("telegram");
    let sandbox = ChannelSandbox {
        name: "telegram".into(),
        config: BTreeMap::from([("api_base".to_string(), base.to_string())]),
        secrets: BTreeMap::from([("bot_token".to_string(), Secret::new("123:bench"))]),
        allow_list: AllowList::parse(&[base]).expect("allow list"),
        limits: Default::default(),
    };
    let sender: Arc<dyn Sender> = rt.sender(plugin, sandbox);
    sender.send(&message("123456789")).await;
    let cpu = cpu_time();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let s = sender.clone();
        let count = n / workers + usize::from(w < n % workers);
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::with_capacity(count);
            for _ in 0..count {
                let t = Instant::now();
                let o = s.send(&message("123456789")).await;
                took.push(t.elapsed());
                assert_eq!(o.class, OutcomeClass::Delivered, "{}", o.detail);
            }
            took
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    all.sort();
    Rate {
        per_s,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        cpu: (cpu_time() - cpu) / n as u32,
    }
}

/// rport's way: one shell + curl process per message.
async fn script(base: &str, n: usize) -> Option<f64> {
    let url = format!("{base}/bot123:bench/sendMessage");
    let body = r#"{"chat_id":123456789,"text":"Your verification code is 493817. It expires in 10 minutes."}"#;
    let cmd = format!(
        "curl -fs -X POST -H 'Content-Type: application/json' -d '{body}' '{url}' > /dev/null"
    );
    let probe = tokio::process::Command::new("sh")
        .args(["-c", &cmd])
        .status()
        .await
        .ok()?;
    if !probe.success() {
        return None;
    }
    let start = Instant::now();
    for _ in 0..n {
        let st = tokio::process::Command::new("sh")
            .args(["-c", &cmd])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .status()
            .await
            .ok()?;
        assert!(st.success());
    }
    Some(n as f64 / start.elapsed().as_secs_f64())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let iters = env_usize("BENCH_ITERS", 5_000);
        let n = env_usize("BENCH_N", 300);
        let cfg = PluginsConfig {
            allow_private_networks: true,
            ..PluginsConfig::default()
        };
        let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-plugin-cache");
        let runtime = PluginRuntime::new(&cfg, Some(&cache)).expect("runtime");

        println!("postern plugin benchmarks ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
        println!();
        println!("| benchmark | setting | median | p99 | throughput |");
        println!("|---|---|---|---|---|");
        for c in [1usize, 64] {
            let (median, p99, rate) = overhead(&runtime, c, iters).await;
            println!(
                "| plugin-overhead (noop: instantiate+call+drop) | {c} concurrent | {} | {} | {:.0} calls/s |",
                us(median),
                us(p99),
                rate
            );
        }

        let (addr, served) = fake_bot_api().await;
        let base = format!("http://{addr}");
        let one = telegram_plugin(&runtime, &base, n, 1).await;
        let eight = telegram_plugin(&runtime, &base, n, 8).await;
        let many = telegram_plugin(&runtime, &base, n.max(640), 64).await;
        let script_rate = script(&base, n).await;
        for (label, r) in [("one at a time", &one), ("8 in flight", &eight), ("64 in flight", &many)] {
            println!(
                "| telegram-vs-script | plugin, {label} (CPU {} per delivery, fake included) | {} | {} | {:.0} deliveries/s |",
                us(r.cpu),
                us(r.p50),
                us(r.p99),
                r.per_s
            );
        }
        let (plugin_rate, plugin_rate_8) = (one.per_s, eight.per_s);
        match script_rate {
            Some(s) => {
                println!("| telegram-vs-script | sh -c 'curl -fs -X POST …', {n} messages, one at a time | | | {s:.0} deliveries/s |");
                println!(
                    "| telegram-vs-script | ratio plugin / script (one at a time; 8 in flight) | | | **{:.1}×**; {:.1}× |",
                    plugin_rate / s,
                    plugin_rate_8 / s
                );
            }
            None => println!("| telegram-vs-script | script | | | skipped: `sh`/`curl` not available |"),
        }
        println!();
        println!("fake Bot API served {} requests", served.load(Ordering::Relaxed));
    });
}
