//! Real parts for black-box tests: the `postern` binary in a temp dir, an
//! SMTP server and HTTP receivers on loopback, a test CA.

pub mod api;
pub mod browser;
pub mod cpu;
pub mod faults;
pub mod http;
pub mod pg;
pub mod pg_server;
pub mod secrets;
pub mod server;
pub mod sink;
pub mod smsc;
pub mod smtp;
pub mod tls;

use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
