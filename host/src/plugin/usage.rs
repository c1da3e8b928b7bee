//! What one call cost: CPU time (time spent polling the guest, which is
//! the guest's compute plus the host's synchronous work on its behalf;
//! waiting on I/O is not counted), peak linear memory and outbound HTTP
//! requests. Delivery records carry it (`cpuMs`, `peakMemoryBytes`,
//! `httpRequests`), so are the per-plugin histograms.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The resources one plugin call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu: Duration,
    pub peak_memory_bytes: u64,
    pub http_requests: u32,
}

impl Usage {
    /// The record's figures for plugin `plugin`.
    pub fn resources(&self, plugin: &str) -> crate::delivery::Resources {
        let u = self;
        crate::delivery::Resources {
            plugin: plugin.to_string(),
            cpu_us: u64::try_from(u.cpu.as_micros()).unwrap_or(u64::MAX),
            peak_memory_bytes: u.peak_memory_bytes,
            http_requests: u.http_requests,
            failure: None,
        }
    }
}

/// Adds the time spent in each `poll` of the inner future to `spent`
/// (nanoseconds), wherever it is polled (caller's thread or guest pool).
pub(crate) struct Metered<F> {
    inner: Pin<Box<F>>,
    spent: Arc<AtomicU64>,
}

impl<F> Metered<F> {
    pub(crate) fn new(inner: F, spent: Arc<AtomicU64>) -> Self {
        Self {
            inner: Box::pin(inner),
            spent,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = Instant::now();
        let r = self.inner.as_mut().poll(cx);
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.spent.fetch_add(nanos, Ordering::Relaxed);
        r
    }
}
