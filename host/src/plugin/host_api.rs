//! What a plugin instance sees of the host: the store state, the WIT imports
//! (`config.get`, `log.log`), captured stdout/stderr, and the per-delivery
//! [`Journal`] that becomes the delivery record's `log`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
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
use super::outbound::Egress;
use crate::secret::Secret;

/// At most this many host lines (`[postern] …`) per delivery.
const MAX_HOST_LINES: usize = 64;
/// Longest single guest log line kept; the rest of the line is dropped.
const MAX_LINE_BYTES: usize = 4096;

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

/// Guest CPU time in epoch ticks; see `runtime::TICK`.
pub(crate) struct CpuMeter {
    pub(crate) ticks: u64,
    pub(crate) budget_ticks: u64,
    pub(crate) exhausted: bool,
    /// Set at the first tick the guest is still running: it is CPU-bound,
    /// and the caller moves it to the guest pool (see `runtime::call`).
    pub(crate) yielded: Arc<std::sync::atomic::AtomicBool>,
}

/// Caps the sum of all linear memories of the instance (wasmtime's own
/// `StoreLimits` caps each memory separately), and the number of instances,
/// tables and memories.
pub(crate) struct MemoryLimiter {
    pub(crate) limit: usize,
    pub(crate) used: usize,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
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

#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Stdout = 0,
    Stderr = 1,
}

/// The per-delivery capture: guest log lines and stdout/stderr share one cap
/// (`max_log_bytes`); past it bytes are counted and dropped and a marker
/// says how many. Host lines (denials, limits) are kept apart, so they are
/// never crowded out by a flood, and come last.
#[derive(Clone)]
pub(crate) struct Journal(Arc<Mutex<JournalInner>>);

struct JournalInner {
    text: String,
    cap: usize,
    dropped: u64,
    at_line_start: [bool; 2],
    host_lines: Vec<String>,
    denial: Option<String>,
}

impl Journal {
    pub(crate) fn new(cap: usize) -> Self {
        Self(Arc::new(Mutex::new(JournalInner {
            text: String::new(),
            cap,
            dropped: 0,
            at_line_start: [true; 2],
            host_lines: Vec::new(),
            denial: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, JournalInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A `log.log` call: one line, `[level] message`.
    pub(crate) fn guest_line(&self, level: &str, message: &str) {
        let mut j = self.lock();
        let message = message.trim_end_matches(['\n', '\r']);
        let (message, cut) = match message.len() > MAX_LINE_BYTES {
            true => (
                floor_str(message, MAX_LINE_BYTES),
                message.len() - MAX_LINE_BYTES,
            ),
            false => (message, 0),
        };
        j.push(&format!("[{level}] {message}"));
        if cut > 0 {
            j.push(&format!(" [… {cut} bytes of this line dropped]"));
        }
        j.push("\n");
    }

    /// Bytes the guest wrote to stdout or stderr, prefixed per line.
    pub(crate) fn stream_bytes(&self, stream: Stream, bytes: &[u8]) {
        let mut j = self.lock();
        if j.dropped > 0 {
            j.dropped += bytes.len() as u64;
            return;
        }
        let text = String::from_utf8_lossy(bytes);
        let prefix = match stream {
            Stream::Stdout => "[stdout] ",
            Stream::Stderr => "[stderr] ",
        };
        for piece in text.split_inclusive('\n') {
            if j.at_line_start[stream as usize] {
                j.push(prefix);
            }
            j.push(piece);
            j.at_line_start[stream as usize] = piece.ends_with('\n');
        }
    }

    /// A line written by postern itself (a denial, a limit).
    pub(crate) fn host_line(&self, line: impl Into<String>) {
        let mut j = self.lock();
        if j.host_lines.len() < MAX_HOST_LINES {
            j.host_lines.push(line.into());
        }
    }

    /// A request the sandbox refused to send: logged, and remembered so the
    /// delivery is classified permanent (retrying cannot change a policy).
    pub(crate) fn deny(&self, line: String) {
        let mut j = self.lock();
        if j.denial.is_none() {
            j.denial = Some(line.clone());
        }
        if j.host_lines.len() < MAX_HOST_LINES {
            j.host_lines.push(format!("denied: {line}"));
        }
    }

    pub(crate) fn denial(&self) -> Option<String> {
        self.lock().denial.clone()
    }

    /// The delivery record's `log`, or `None` if nothing was captured.
    pub(crate) fn render(&self) -> Option<String> {
        let j = self.lock();
        let mut out = j.text.clone();
        if j.dropped > 0 {
            if !out.ends_with('\n') && !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!(
                "[postern] log truncated: {} more bytes dropped (plugins.max_log_bytes = {})\n",
                j.dropped, j.cap
            ));
        }
        for line in &j.host_lines {
            if !out.ends_with('\n') && !out.is_empty() {
                out.push('\n');
            }
            out.push_str("[postern] ");
            out.push_str(line);
            out.push('\n');
        }
        (!out.is_empty()).then_some(out)
    }
}

impl JournalInner {
    fn push(&mut self, s: &str) {
        if self.dropped > 0 {
            self.dropped += s.len() as u64;
            return;
        }
        let room = self.cap.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
        } else {
            let head = floor_str(s, room);
            self.text.push_str(head);
            self.dropped += (s.len() - head.len()) as u64;
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn floor_str(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_caps_with_marker_and_keeps_host_lines() {
        let j = Journal::new(64);
        j.guest_line("info", "hello");
        for _ in 0..10 {
            j.guest_line("info", "0123456789");
        }
        j.deny("request to http://evil.example:80: not in allowedHosts".into());
        let log = j.render().unwrap();
        assert!(log.starts_with("[info] hello\n"), "{log}");
        assert!(log.contains("[postern] log truncated: "), "{log}");
        assert!(log.contains("(plugins.max_log_bytes = 64)"), "{log}");
        assert!(log.ends_with(
            "[postern] denied: request to http://evil.example:80: not in allowedHosts\n"
        ));
        assert!(j.denial().is_some());
    }

    #[test]
    fn streams_are_prefixed_per_line() {
        let j = Journal::new(1024);
        j.stream_bytes(Stream::Stdout, b"a\nb");
        j.stream_bytes(Stream::Stdout, b"c\n");
        j.stream_bytes(Stream::Stderr, "é\n".as_bytes());
        assert_eq!(j.render().unwrap(), "[stdout] a\n[stdout] bc\n[stderr] é\n");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let j = Journal::new(10);
        j.guest_line("info", "ééééé");
        let log = j.render().unwrap();
        assert!(log.starts_with("[info] é"), "{log}");
    }
}
