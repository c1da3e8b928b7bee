//! Test fixture `misbehave`: does what config key `mode` says, so host tests
//! can check that every kind of misbehaviour fails only its own delivery.
//!
//! | `mode`          | `deliver()` does                                                        |
//! |-----------------|-------------------------------------------------------------------------|
//! | `loop`          | spins forever (CPU budget / epoch interruption)                         |
//! | `memory`        | allocates and touches 1 MiB blocks until the memory limit traps         |
//! | `recursion`     | unbounded non-tail recursion (stack exhaustion trap)                    |
//! | `trap`          | executes `unreachable`                                                  |
//! | `panic`         | `panic!` (panic=abort: message on stderr, then a trap)                  |
//! | `http`          | one request to `url` (`method` GET or POST, default GET), see below     |
//! | `many-requests` | `count` (default 10) sequential GETs of `url`, see below                |
//! | `huge-response` | GETs `url` and reads the whole body, however large                      |
//! | `log-flood`     | 100 000 log calls of 1 KiB, plus 10 000 lines each to stdout and stderr |
//! | `slow`          | GETs `url` (a server that answers slowly), see below                    |
//! | `error`         | returns the delivery-error named by `kind`: invalid-recipient, rejected, unavailable, misconfigured |
//! | `ok`            | logs one line (info) and succeeds with provider-id `ok`                 |
//!
//! HTTP modes report what happened so a test can read it:
//! * a 2xx answer → `Ok`, provider-id `status <code>` (`many-requests`:
//!   `<n> requests`; `huge-response`: `read <bytes> bytes`);
//! * another status → `rejected("status <code>: <body snippet>")`;
//! * a transport error (denied host, prohibited IP, timeout, body too large…)
//!   → `unavailable("HTTP request failed: <wasi-http error>")`
//!   (`many-requests`: prefixed with `request <i> of <n>: `).
//!
//! No `mode` or an unknown one → `misconfigured`. `validate-recipient`
//! rejects the send-to `bad` and accepts anything else.

use std::hint::black_box;
use std::io::Write as _;

use postern_plugin_sdk::{
    DeliveryError, Guest, Message, PluginInfo, Receipt, config, config_key, http, log, snippet,
};

struct Misbehave;

impl Guest for Misbehave {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "misbehave".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Test fixture: misbehaves as config `mode` says".to_string(),
            config_keys: vec![
                config_key(
                    "mode",
                    true,
                    false,
                    "loop|memory|recursion|trap|panic|http|many-requests|huge-response|log-flood|slow|error|ok",
                ),
                config_key("url", false, false, "Target of the HTTP modes"),
                config_key(
                    "method",
                    false,
                    false,
                    "GET or POST for mode http (default GET)",
                ),
                config_key(
                    "count",
                    false,
                    false,
                    "Number of requests for mode many-requests (default 10)",
                ),
                config_key(
                    "kind",
                    false,
                    false,
                    "Error for mode error: invalid-recipient|rejected|unavailable|misconfigured",
                ),
            ],
        }
    }

    fn validate_recipient(send_to: String) -> Result<(), String> {
        if send_to == "bad" {
            Err("the send-to `bad` is refused by the misbehave fixture".to_string())
        } else {
            Ok(())
        }
    }

    fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
        let mode = config::required("mode")?;
        match mode.as_str() {
            "loop" => spin(),
            "memory" => exhaust_memory(),
            "recursion" => Ok(ok(format!("depth {}", recurse(black_box(0))))),
            "trap" => trap(),
            "panic" => panic!("misbehave fixture: deliberate panic"),
            "http" | "slow" => {
                let url = config::required("url")?;
                let resp = match config::get_or("method", "GET").as_str() {
                    "POST" => http::post_body(&url, "text/plain", message.text.into_bytes(), &[])?,
                    _ => http::get(&url, &[])?,
                };
                report(&resp)
            }
            "many-requests" => {
                let url = config::required("url")?;
                let count: u32 = config::get_or("count", "10").parse().map_err(|_| {
                    DeliveryError::Misconfigured("config key `count` must be a number".to_string())
                })?;
                for i in 1..=count {
                    let resp = http::get(&url, &[])
                        .map_err(|e| prefix(e, &format!("request {i} of {count}: ")))?;
                    report(&resp).map_err(|e| prefix(e, &format!("request {i} of {count}: ")))?;
                }
                Ok(ok(format!("{count} requests")))
            }
            "huge-response" => huge_response(&config::required("url")?),
            "log-flood" => {
                let line = "x".repeat(1024);
                for _ in 0..100_000 {
                    log::info(&line);
                }
                // Write errors (a capped pipe) are ignored: println! would panic.
                let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
                for _ in 0..10_000 {
                    let _ = writeln!(out, "{line}");
                    let _ = writeln!(err, "{line}");
                }
                Ok(ok("flooded".to_string()))
            }
            "error" => {
                let text = "misbehave fixture: requested error".to_string();
                Err(match config::get_or("kind", "").as_str() {
                    "invalid-recipient" => DeliveryError::InvalidRecipient(text),
                    "rejected" => DeliveryError::Rejected(text),
                    "unavailable" => DeliveryError::Unavailable(text),
                    "misconfigured" => DeliveryError::Misconfigured(text),
                    _ => DeliveryError::Misconfigured(
                        "config key `kind` must be invalid-recipient, rejected, unavailable or misconfigured"
                            .to_string(),
                    ),
                })
            }
            "ok" => {
                log::info("misbehave fixture: delivered");
                Ok(ok("ok".to_string()))
            }
            _ => Err(DeliveryError::Misconfigured(
                "unknown config key `mode` value".to_string(),
            )),
        }
    }
}

fn ok(id: String) -> Receipt {
    Receipt {
        provider_id: Some(id),
    }
}

fn report(resp: &http::Response) -> Result<Receipt, DeliveryError> {
    if resp.is_success() {
        Ok(ok(format!("status {}", resp.status)))
    } else {
        Err(DeliveryError::Rejected(format!(
            "status {}: {}",
            resp.status,
            resp.snippet()
        )))
    }
}

fn prefix(e: DeliveryError, p: &str) -> DeliveryError {
    match e {
        DeliveryError::InvalidRecipient(m) => DeliveryError::InvalidRecipient(format!("{p}{m}")),
        DeliveryError::Rejected(m) => DeliveryError::Rejected(format!("{p}{m}")),
        DeliveryError::Unavailable(m) => DeliveryError::Unavailable(format!("{p}{m}")),
        DeliveryError::Misconfigured(m) => DeliveryError::Misconfigured(format!("{p}{m}")),
    }
}

/// The wasm `unreachable` instruction (abort elsewhere, so the crate also
/// compiles natively).
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn exhaust_memory() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        blocks.push(black_box(block));
    }
}

/// Each frame keeps a live local array and uses the callee's result, so the
/// recursion is neither a tail call nor removable. The exit condition is
/// opaque to the optimiser and never true in practice.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let frame = black_box([depth; 32]);
    let below = recurse(black_box(depth + 1));
    below.wrapping_add(frame[(depth % 32) as usize])
}

fn huge_response(url: &str) -> Result<Receipt, DeliveryError> {
    use wstd::http::{Body, Client, Request};
    let request = Request::get(url)
        .body(Body::empty())
        .map_err(|e| DeliveryError::Misconfigured(format!("invalid url: {e}")))?;
    let failed = |e: wstd::http::Error| {
        DeliveryError::Unavailable(format!(
            "HTTP request failed: {}",
            snippet(&format!("{e:#}"), 300)
        ))
    };
    wstd::runtime::block_on(async {
        let response = Client::new().send(request).await.map_err(failed)?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let len = body.contents().await.map_err(failed)?.len();
        if (200..300).contains(&status) {
            Ok(ok(format!("read {len} bytes")))
        } else {
            Err(DeliveryError::Rejected(format!(
                "status {status}: read {len} bytes"
            )))
        }
    })
}

postern_plugin_sdk::export!(Misbehave);
