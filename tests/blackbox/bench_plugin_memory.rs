//! Resident memory of an idle host with many uploaded plugins, and what the
//! first delivery through a plugin that is not resident costs. Not part of
//! the suite: `scripts/bench` runs it (README "Performance").
//!
//! Each row starts the real binary, uploads N distinct ~290 KB components
//! (the telegram plugin with a distinct custom section each, spread over ten
//! tenants), waits `POSTERN_BENCH_IDLE_SECONDS` (default 20) and reads VmRSS
//! from `/proc/<pid>/status`. Compiled artifacts are kept across runs in
//! `$CARGO_TARGET_TMPDIR/bench-plugin-cache` (hard-linked into each host's
//! data dir), so only the first run pays for 1,000 compilations.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::plugins::support::wasm;
use crate::support::api::{WASM, req, tenant, upload};
use crate::support::server::Postern;

const TENANTS: usize = 10;
/// Channels the latency rows cycle through: more than the default number
/// of resident components, so every delivery of the second pass follows a
/// drop.
const CYCLE: usize = 48;

fn idle() -> Duration {
    let s = std::env::var("POSTERN_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(s)
}

/// `base` with a custom section `bench` holding `i`: a distinct component
/// (distinct sha256, compiled and cached on its own) that behaves the same.
fn variant(base: &[u8], i: usize) -> Vec<u8> {
    let name = b"bench";
    let payload = format!("variant-{i:06}");
    let body_len = 1 + name.len() + payload.len();
    assert!(body_len < 128, "one-byte LEB128 sizes");
    let mut out = base.to_vec();
    out.extend_from_slice(&[0, body_len as u8, name.len() as u8]);
    out.extend_from_slice(name);
    out.extend_from_slice(payload.as_bytes());
    out
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Hard-links every file of `from` missing in `to` (compile cache in and out).
fn link_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("cache dir");
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    for e in entries.flatten() {
        let dst = to.join(e.file_name());
        let name = e.file_name().to_string_lossy().to_string();
        if !dst.exists() && !name.ends_with(".tmp") {
            let _ = std::fs::hard_link(e.path(), &dst);
        }
    }
}

/// A minimal Bot API on loopback answering every `sendMessage`.
async fn fake_bot_api() -> String {
    let app = axum::Router::new().fallback(|| async {
        (
            [("content-type", "application/json")],
            r#"{"ok":true,"result":{"message_id":1}}"#,
        )
    });
    let addr = crate::support::http::serve_loopback(app).await;
    format!("http://{addr}")
}

struct Host {
    p: Postern,
    keys: Vec<String>,
    uploaded: usize,
}

async fn host(plugins: usize) -> Host {
    let shared = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-plugin-cache");
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let cache = dir.path().join("data/plugin-cache");
    link_files(&shared, &cache);
    let config = format!(
        "[plugins]\nallow_private_networks = true\n\
         [limits]\ntenant_max_plugins = {}\nsends_per_destination = 10000\n\
         tenant_deliveries_per_minute = 1000000\n",
        plugins.div_ceil(TENANTS).max(1)
    );
    let p = Postern::start_prepared(dir, &config).await;
    let mut keys = Vec::new();
    for t in 0..TENANTS {
        keys.push(tenant(&p, &format!("bench{t}")).await);
    }
    let base = wasm("telegram");
    for i in 0..plugins {
        let t = i % TENANTS;
        let (s, v) = upload(
            &p,
            &format!("bench{t}"),
            &keys[t],
            &format!("p{i}"),
            WASM,
            variant(&base, i),
        )
        .await;
        assert_eq!(s, 200, "upload {i}: {v}");
    }
    link_files(&cache, &shared);
    Host {
        p,
        keys,
        uploaded: plugins,
    }
}

/// One test delivery through tenant `t`'s channel `c`; its wall time.
async fn deliver(h: &Host, i: usize) -> Duration {
    let t = i % TENANTS;
    let path = format!("/t/bench{t}/api/v1/channels/c{i}/test");
    let start = Instant::now();
    let (s, v) = req(
        &h.p,
        "POST",
        &path,
        &h.keys[t],
        Some(json!({ "sendTo": "4242" })),
    )
    .await;
    let took = start.elapsed();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "delivered", "{v}");
    took
}

async fn channels(h: &Host, bot: &str, n: usize) {
    for i in 0..n {
        let t = i % TENANTS;
        let body = json!({
            "kind": "plugin", "plugin": format!("p{i}"),
            "allowedHosts": [bot], "config": { "api_base": bot },
            "secrets": { "bot_token": "123:bench" },
        });
        let path = format!("/t/bench{t}/api/v1/channels/c{i}");
        let (s, v) = req(&h.p, "PUT", &path, &h.keys[t], Some(body)).await;
        assert_eq!(s, 200, "{v}");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Warm: the same channel again and again. After a drop: `CYCLE` channels
/// in turn, twice; in the second pass each plugin was last used `CYCLE - 1`
/// deliveries ago (dropped if the bound is below `CYCLE`).
async fn latency(h: &Host) -> (Duration, Duration) {
    let bot = fake_bot_api().await;
    channels(h, &bot, CYCLE).await;
    for i in 0..CYCLE {
        deliver(h, i).await;
    }
    let mut after_drop = Vec::new();
    for i in 0..CYCLE {
        after_drop.push(deliver(h, i).await);
    }
    let mut warm = Vec::new();
    for _ in 0..CYCLE {
        warm.push(deliver(h, 0).await);
    }
    (median(warm), median(after_drop))
}

#[tokio::test]
#[ignore = "benchmark: scripts/bench"]
async fn bench_idle_memory_with_many_plugins() {
    let mut rows = Vec::new();
    let mut base_kib = 0;
    let mut lat = None;
    for n in [0usize, 100, 1000] {
        let h = host(n).await;
        tokio::time::sleep(idle()).await;
        let kib = rss_kib(h.p.pid());
        if n == 0 {
            base_kib = kib;
        }
        if n == 1000 {
            lat = Some(latency(&h).await);
        }
        rows.push((h.uploaded, kib));
    }
    println!();
    println!(
        "| uploaded plugins | idle RSS | per plugin over 0 (idle {} s) |",
        idle().as_secs()
    );
    println!("|---|---|---|");
    for (n, kib) in rows {
        let per = match n {
            0 => "—".to_string(),
            n => format!("{:.0} KiB", (kib as f64 - base_kib as f64) / n as f64),
        };
        println!("| {n} | {:.1} MiB | {per} |", kib as f64 / 1024.0);
    }
    if let Some((warm, after_drop)) = lat {
        println!();
        println!("| test delivery (telegram plugin, 1,000 uploaded) | median |");
        println!("|---|---|");
        println!("| warm (same channel again) | {} |", ms(warm));
        println!(
            "| first after a drop ({CYCLE} channels in turn) | {} |",
            ms(after_drop)
        );
    }
}
