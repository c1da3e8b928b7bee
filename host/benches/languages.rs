//! Plugins per language, side by side in one run; prints a table.
//!
//!     cd plugins && cargo build --release && cd ..
//!     cargo test -p postern --test blackbox lang_   # builds plugins/target/lang/*.wasm
//!     cargo bench --bench languages
//!
//! Per language (Rust, JavaScript, Python): component size; compile time at
//! upload (`PluginRuntime::load` without a cache: compile + vet + link +
//! describe); first call and steady instantiate+call+drop (median, p99) of a
//! delivery that makes no request (Rust `noop`, the JS/Python fixtures in
//! mode `ok`); deliveries/s of an HTTP plugin to a loopback fake (Rust and
//! Python ntfy, the JS webhook), one at a time and 8 in flight.
//!
//! Environment: `BENCH_ITERS` (calls per steady row, default 300),
//! `BENCH_N` (deliveries per throughput row, default 200).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern::config::PluginsConfig;
use postern::delivery::{Message, OutcomeClass, Sender};
use postern::netguard::AllowList;
use postern::plugin::{ChannelSandbox, PluginRuntime};

struct Lang {
    name: &'static str,
    /// A plugin that delivers without a request, and its config.
    idle: (&'static str, &'static [(&'static str, &'static str)]),
    /// An HTTP plugin, its base-URL key and a recipient.
    http: (&'static str, &'static str, &'static str),
}

const LANGS: [Lang; 3] = [
    Lang {
        name: "Rust",
        idle: ("wasm32-wasip2/release/noop", &[]),
        http: ("wasm32-wasip2/release/ntfy", "api_base", "topic"),
    },
    Lang {
        name: "JavaScript",
        idle: ("lang/misbehave_js", &[("mode", "ok")]),
        http: ("lang/webhook_js", "url", "alice"),
    },
    Lang {
        name: "Python",
        idle: ("lang/misbehave_python", &[("mode", "ok")]),
        http: ("lang/ntfy_python", "api_base", "topic"),
    },
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wasm(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/target/{rel}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (see the header of this file)", path.display()))
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

fn sandbox(config: &[(&str, &str)], hosts: &[&str]) -> ChannelSandbox {
    ChannelSandbox {
        name: "bench".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        allow_list: AllowList::parse(hosts).expect("allow list"),
        ..ChannelSandbox::default()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

async fn send_ok(s: &Arc<dyn Sender>, to: &str) -> Duration {
    let t = Instant::now();
    let o = s.send(&message(to)).await;
    assert_eq!(
        o.class,
        OutcomeClass::Delivered,
        "{}\n{:?}",
        o.detail,
        o.log
    );
    t.elapsed()
}

/// Compile at upload, first call, steady median/p99 of the idle plugin.
async fn calls(cfg: &PluginsConfig, l: &Lang, iters: usize) -> String {
    let bytes = wasm(l.idle.0);
    let size = bytes.len();
    let rt = PluginRuntime::new(cfg, None).expect("runtime");
    let t = Instant::now();
    let plugin = rt.load(bytes).await.expect("load");
    let compile = t.elapsed();
    let s: Arc<dyn Sender> = rt.sender(plugin, sandbox(l.idle.1, &[]));
    let first = send_ok(&s, "x").await;
    let mut all = Vec::with_capacity(iters);
    for _ in 0..iters {
        all.push(send_ok(&s, "x").await);
    }
    all.sort();
    let o = s.send(&message("x")).await;
    let peak = o.resources.map_or(0, |r| r.peak_memory_bytes);
    format!(
        "| {} | {:.1} MB | {} | {} | {} | {} | {:.1} MiB |",
        l.name,
        size as f64 / 1e6,
        ms(compile),
        ms(first),
        ms(pct(&all, 0.5)),
        ms(pct(&all, 0.99)),
        peak as f64 / 1048576.0
    )
}

/// Deliveries/s of the HTTP plugin to a loopback fake, `workers` in flight.
async fn throughput(
    rt: &Arc<PluginRuntime>,
    l: &Lang,
    base: &str,
    n: usize,
    workers: usize,
) -> f64 {
    let plugin = rt.load(wasm(l.http.0)).await.expect("load");
    let url = if l.http.1 == "url" {
        format!("{base}/hook")
    } else {
        base.to_string()
    };
    let s: Arc<dyn Sender> = rt.sender(plugin, sandbox(&[(l.http.1, url.as_str())], &[base]));
    send_ok(&s, l.http.2).await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (s, to) = (s.clone(), l.http.2);
        let count = n / workers + usize::from(w < n % workers);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                send_ok(&s, to).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn fake() -> String {
    let app = axum::Router::new()
        .fallback(|| async { ([("content-type", "application/json")], r#"{"id":"b"}"#) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let (iters, n) = (env_usize("BENCH_ITERS", 300), env_usize("BENCH_N", 200));
        let cfg = PluginsConfig { allow_private_networks: true, cpu_budget_ms: 2_000, ..PluginsConfig::default() };
        println!("| language | size | compile at upload | first call | steady median | steady p99 | peak memory |");
        println!("|---|---|---|---|---|---|---|");
        for l in &LANGS {
            println!("{}", calls(&cfg, l, iters).await);
        }
        let base = fake().await;
        let rt = PluginRuntime::new(&cfg, None).expect("runtime");
        println!();
        println!("| language | HTTP plugin | deliveries/s one at a time | 8 in flight |");
        println!("|---|---|---|---|");
        for l in &LANGS {
            let one = throughput(&rt, l, &base, n, 1).await;
            let eight = throughput(&rt, l, &base, n, 8).await;
            println!("| {} | {} | {one:.0} | {eight:.0} |", l.name, l.http.0.rsplit('/').next().unwrap_or(""));
        }
    });
}
