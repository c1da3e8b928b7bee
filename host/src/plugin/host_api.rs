//! What a plugin instance sees of the host: the store state, the WIT imports
//! (`config.get`, `log.log`) and stdout/stderr, captured into the
//! per-delivery [`Journal`].

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{self, Level};
use super::journal::{Journal, Stream};
use super::outbound::Egress;
use crate::secret::Secret;

/// The channel's config and secrets as `config.get` serves them. Secrets win
/// over a config key of the same name.
#[derive(Default)]
pub(crate) struct ChannelVars(BTreeMap<String, Secret>);

impl ChannelVars {
    pub(crate) fn new(
        config: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, Secret>,
    ) -> Self {
        let mut vars: BTreeMap<String, Secret> = config
            .iter()
            .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
            .collect();
        vars.extend(secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self(vars)
    }
}

/// Everything one plugin instance owns. Dropped with the store after every
/// call: nothing survives from one delivery to the next.
pub(crate) struct State {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) egress: Egress,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) vars: Arc<ChannelVars>,
    pub(crate) journal: Journal,
    pub(crate) cpu: CpuMeter,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl bindings::postern::plugin::types::Host for State {}

impl bindings::postern::plugin::config::Host for State {
    fn get(&mut self, key: String) -> Option<String> {
        self.vars
            .0
            .get(&key)
            .filter(|v| !v.is_empty())
            .map(|v| v.expose().to_string())
    }
}

impl bindings::postern::plugin::log::Host for State {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.journal.guest_line(level, &message);
    }
}

/// Guest CPU time in epoch ticks; see `pool::TICK`.
pub(crate) struct CpuMeter {
    pub(crate) ticks: u64,
    pub(crate) budget_ticks: u64,
    pub(crate) exhausted: bool,
    /// Set at the first tick the guest is still running: it is CPU-bound,
    /// and the caller moves it to the guest pool (see `call::run`).
    pub(crate) yielded: Arc<std::sync::atomic::AtomicBool>,
}

/// Caps the sum of all linear memories of the instance (wasmtime's own
/// `StoreLimits` caps each memory separately), and the number of instances,
/// tables and memories.
pub(crate) struct MemoryLimiter {
    pub(crate) limit: usize,
    pub(crate) used: usize,
    /// The most `used` has been: the call's peak linear memory.
    pub(crate) peak: usize,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            peak: 0,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            self.exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded (wanted {total})",
                self.limit
            ));
        }
        self.used = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 20_000)
    }

    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        4
    }
}

/// stdout/stderr of the guest, captured into the journal. Writes never fail
/// (a full journal drops bytes), so `println!` in a plugin cannot trap it.
#[derive(Clone)]
pub(crate) struct CaptureStream {
    journal: Journal,
    stream: Stream,
}

impl CaptureStream {
    pub(crate) fn new(journal: Journal, stream: Stream) -> Self {
        Self { journal, stream }
    }
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.journal.stream_bytes(self.stream, &bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.journal.stream_bytes(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
