//! What a channel grants its plugin ([`ChannelSandbox`], compiled once into
//! a [`Sandbox`]), and the fresh, limited store every call runs in.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

use super::channel_limits::ChannelLimits;
use super::host_api::{CaptureStream, ChannelVars, CpuMeter, MemoryLimiter, State};
use super::journal::{Journal, Stream};
use super::limits::Limits;
use super::outbound::{Egress, EgressPolicy, Tools};
use crate::netguard::AllowList;
use crate::secret::Secret;

/// Bytes a guest may hand the host in one call (strings, lists, body chunks).
const HOSTCALL_FUEL: usize = 2 << 20;
/// Live resource handles (streams, fields, requests…) per instance.
const MAX_HANDLES: usize = 1_000;
/// Host-side resource table entries per instance.
const MAX_TABLE_ENTRIES: usize = 1_000;
/// Largest `get-random-bytes` request.
const MAX_RANDOM: u64 = 64 * 1024;
/// Header fields (in-memory size) of one request or response.
const MAX_FIELDS: usize = 64 * 1024;

/// What a channel grants its plugin: config and secrets (`config.get`) and
/// where it may send HTTP requests.
#[derive(Debug, Clone, Default)]
pub struct ChannelSandbox {
    /// The channel's name, for logs.
    pub name: String,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
    pub allow_list: AllowList,
    /// The channel's own limits within `[plugins]` (checked before this
    /// is built: `ChannelLimits::check`).
    pub limits: ChannelLimits,
}

/// A channel's compiled view: its config/secrets and egress policy, shared
/// by all its deliveries.
pub(crate) struct Sandbox {
    /// `[plugins]` with the channel's own limits applied.
    pub(crate) limits: Limits,
    vars: Arc<ChannelVars>,
    egress: Arc<EgressPolicy>,
}

impl Sandbox {
    pub(crate) fn new(
        base: &Limits,
        tls: &Arc<tokio_rustls::rustls::ClientConfig>,
        s: &ChannelSandbox,
    ) -> Self {
        Self::with_tools(base, tls, s, None)
    }

    /// As [`Sandbox::new`], with `postern plugin test`'s recording/replay.
    pub(crate) fn with_tools(
        base: &Limits,
        tls: &Arc<tokio_rustls::rustls::ClientConfig>,
        s: &ChannelSandbox,
        tools: Option<Arc<Tools>>,
    ) -> Self {
        let limits = s.limits.apply(base);
        Self {
            vars: Arc::new(ChannelVars::new(&s.config, &s.secrets)),
            egress: Arc::new(EgressPolicy {
                allow: s.allow_list.clone(),
                allow_private: limits.allow_private_networks,
                max_requests: limits.max_http_requests,
                max_response_bytes: limits.max_http_response_bytes,
                wall: limits.wall,
                tls: tls.clone(),
                tools,
                keepalive: Default::default(),
            }),
            limits,
        }
    }

    /// A fresh store for one call, every limit set.
    pub(crate) fn new_store(&self, engine: &Engine) -> Store<State> {
        let limits = &self.limits;
        let journal = Journal::new(limits.max_log_bytes);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(CaptureStream::new(journal.clone(), Stream::Stdout))
            .stderr(CaptureStream::new(journal.clone(), Stream::Stderr))
            .max_random_size(MAX_RANDOM)
            // wasi:sockets imports link (see vet.rs) but can do nothing.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELDS);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_TABLE_ENTRIES);
        let state = State {
            wasi: wasi.build(),
            http,
            table,
            egress: Egress::new(self.egress.clone(), journal.clone()),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            vars: self.vars.clone(),
            journal,
            cpu: CpuMeter {
                ticks: 0,
                budget_ticks: limits.budget_ticks(),
                exhausted: false,
                yielded: Arc::new(AtomicBool::new(false)),
            },
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        store.set_max_component_handles(MAX_HANDLES);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let cpu = &mut ctx.data_mut().cpu;
            cpu.ticks += 1;
            if cpu.ticks >= cpu.budget_ticks {
                cpu.exhausted = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Let other deliveries run on this thread, then continue.
                cpu.yielded.store(true, Ordering::Relaxed);
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}
