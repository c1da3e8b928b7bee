//! The plugin runtime: one Engine (pooling allocator, epoch interruption, one
//! ticker thread), one Linker, a compile cache, and per delivery a fresh,
//! limited store.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

use super::allowed_hosts::AllowList;
use super::bindings::{
    Deliverer, DelivererPre, DeliveryError, Message, PluginInfo as WitInfo, Receipt,
};
use super::cache::CompileCache;
use super::host_api::{
    CaptureStream, ChannelVars, CpuMeter, Journal, MemoryLimiter, State, Stream,
};
use super::outbound::{Egress, EgressPolicy, tls_config};
use super::vet::{self, PluginError};
use crate::config::PluginsConfig;
use crate::secret::Secret;

/// Epoch tick: the granularity of the CPU budget.
pub(crate) const TICK: Duration = Duration::from_millis(5);
/// Plugin instances alive at once (deliveries in flight), for the pool.
const MAX_INSTANCES: u32 = 256;
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
/// Compiling one component may take at most this long.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// What `describe()` says, as the API shows it (camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub config_keys: Vec<ConfigKeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigKeyInfo {
    pub name: String,
    pub required: bool,
    pub secret: bool,
    pub description: String,
}

impl From<WitInfo> for PluginInfo {
    fn from(i: WitInfo) -> Self {
        Self {
            name: i.name,
            version: i.version,
            description: i.description,
            config_keys: i
                .config_keys
                .into_iter()
                .map(|k| ConfigKeyInfo {
                    name: k.name,
                    required: k.required,
                    secret: k.secret,
                    description: k.description,
                })
                .collect(),
        }
    }
}

/// A vetted, compiled, pre-instantiated plugin version. Cheap to share; one
/// per distinct component (sha256) per runtime.
pub struct LoadedPlugin {
    pub sha256: String,
    pub size: usize,
    pub info: PluginInfo,
    /// The instances the component imports, e.g. `wasi:http/types@0.2.12`.
    pub imports: Vec<String>,
    pub(crate) pre: DelivererPre<State>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What a channel grants its plugin: config and secrets (`config.get`) and
/// where it may send HTTP requests.
#[derive(Debug, Clone, Default)]
pub struct ChannelSandbox {
    /// The channel's name, for logs.
    pub name: String,
    pub config: std::collections::BTreeMap<String, String>,
    pub secrets: std::collections::BTreeMap<String, Secret>,
    pub allow_list: AllowList,
}

/// Per-delivery limits, from `[plugins]`.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) memory_bytes: usize,
    pub(crate) cpu_budget: Duration,
    pub(crate) wall: Duration,
    pub(crate) max_http_requests: u32,
    pub(crate) max_http_response_bytes: u64,
    pub(crate) max_log_bytes: usize,
    pub(crate) allow_private_networks: bool,
    pub(crate) max_upload_bytes: u64,
}

impl Limits {
    fn from_config(c: &PluginsConfig) -> Self {
        Self {
            memory_bytes: usize::try_from(c.memory_limit_bytes).unwrap_or(usize::MAX),
            cpu_budget: Duration::from_millis(c.cpu_budget_ms),
            wall: Duration::from_millis(c.wall_timeout_ms),
            max_http_requests: c.max_http_requests,
            max_http_response_bytes: c.max_http_response_bytes,
            max_log_bytes: usize::try_from(c.max_log_bytes).unwrap_or(usize::MAX),
            allow_private_networks: c.allow_private_networks,
            max_upload_bytes: c.max_upload_bytes,
        }
    }

    fn budget_ticks(&self) -> u64 {
        let tick = TICK.as_millis().max(1);
        (self.cpu_budget.as_millis().div_ceil(tick) as u64).max(1)
    }
}

/// One per process (or per test): owns the Engine and everything compiled.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<State>,
    pub(crate) limits: Limits,
    cache: Option<CompileCache>,
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
    pool: GuestPool,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PluginRuntime {
    /// `data_dir`: where compiled plugins are cached (`plugin-cache/`);
    /// `None` compiles in memory only (`postern plugin check`).
    pub fn new(cfg: &PluginsConfig, data_dir: Option<&Path>) -> Result<Arc<Self>, PluginError> {
        let limits = Limits::from_config(cfg);
        let rt = |e: wasmtime::Error| PluginError::Runtime(format!("{e:#}"));

        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(MAX_INSTANCES)
            .total_core_instances(MAX_INSTANCES * 8)
            .total_memories(MAX_INSTANCES * 2)
            .total_tables(MAX_INSTANCES * 8)
            .total_stacks(MAX_INSTANCES)
            .max_core_instances_per_component(32)
            .max_memories_per_component(2)
            .max_tables_per_component(16)
            .max_memories_per_module(1)
            .max_tables_per_module(2)
            .max_memory_size(limits.memory_bytes)
            .linear_memory_keep_resident(0);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(true)
            .max_wasm_stack(512 * 1024);
        let engine = Engine::new(&config).map_err(rt)?;

        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(rt)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(rt)?;
        Deliverer::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |s| s)
            .map_err(rt)?;

        let cache = match data_dir {
            Some(dir) => Some(CompileCache::open(dir, &engine).map_err(PluginError::Runtime)?),
            None => None,
        };
        let tls = tls_config().map_err(PluginError::Runtime)?;
        spawn_ticker(&engine)
            .map_err(|e| PluginError::Runtime(format!("cannot start the epoch ticker: {e}")))?;
        let pool = GuestPool::start()
            .map_err(|e| PluginError::Runtime(format!("cannot start the plugin threads: {e}")))?;
        Ok(Arc::new(Self {
            engine,
            linker,
            limits,
            cache,
            loaded: Mutex::new(HashMap::new()),
            tls,
            pool,
        }))
    }

    /// Vets, compiles (or takes from the cache), pre-instantiates and
    /// describes a component. Takes bytes, not a path: file channels and
    /// uploads use the same door. The same bytes load once per runtime.
    pub async fn load(self: &Arc<Self>, wasm: Vec<u8>) -> Result<Arc<LoadedPlugin>, PluginError> {
        let size = wasm.len();
        if size as u64 > self.limits.max_upload_bytes {
            return Err(PluginError::TooLarge {
                size: size as u64,
                limit: self.limits.max_upload_bytes,
            });
        }
        vet::check_header(&wasm)?;
        let sha256 = hex::encode(Sha256::digest(&wasm));
        if let Some(p) = self.lock_loaded().get(&sha256) {
            return Ok(p.clone());
        }

        let this = self.clone();
        let digest = sha256.clone();
        let compile = tokio::task::spawn_blocking(move || this.compile_and_link(&digest, &wasm));
        let (pre, imports) = match tokio::time::timeout(COMPILE_TIMEOUT, compile).await {
            Err(_) => return Err(PluginError::CompileTimeout(COMPILE_TIMEOUT.as_secs())),
            Ok(Err(join)) => return Err(PluginError::Runtime(format!("compiler task: {join}"))),
            Ok(Ok(r)) => r?,
        };

        let sandbox = Arc::new(Sandbox::new(self, &ChannelSandbox::default()));
        let info = match self.call(&pre, &sandbox, Call::Describe).await.result {
            Ok(Returned::Info(info)) => PluginInfo::from(info),
            Ok(_) => return Err(PluginError::Describe("unexpected answer".into())),
            Err(f) => return Err(PluginError::Describe(f.detail(&self.limits))),
        };
        if info.name.trim().is_empty() {
            return Err(PluginError::Describe("the plugin has an empty name".into()));
        }
        let plugin = Arc::new(LoadedPlugin {
            sha256: sha256.clone(),
            size,
            info,
            imports,
            pre,
        });
        Ok(self.lock_loaded().entry(sha256).or_insert(plugin).clone())
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LoadedPlugin>>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocking: compile (or read the cache), vet imports and exports, link.
    fn compile_and_link(
        &self,
        sha256: &str,
        wasm: &[u8],
    ) -> Result<(DelivererPre<State>, Vec<String>), PluginError> {
        let cached = self.cache.as_ref().and_then(|c| c.get(sha256));
        let artifact = match cached {
            Some(a) => a,
            None => {
                let a = self
                    .engine
                    .precompile_component(wasm)
                    .map_err(|e| PluginError::Invalid(first_line(&e)))?;
                if let Some(c) = &self.cache
                    && let Err(e) = c.put(sha256, &a)
                {
                    tracing::warn!(error = %e, "cannot write the plugin compile cache");
                }
                a
            }
        };
        // SAFETY: `artifact` was produced by `precompile_component` of this
        // engine just now, or read back from our cache after its HMAC (keyed
        // by a secret only this host holds) verified: the host wrote it.
        let component =
            unsafe { Component::deserialize(&self.engine, &artifact) }.map_err(|e| {
                PluginError::Runtime(format!("loading compiled plugin: {}", first_line(&e)))
            })?;

        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        if let Some(bad) = imports.iter().find(|n| !vet::is_granted_import(n)) {
            return Err(PluginError::UngrantedImport(bad.clone()));
        }
        if let Some(why) = vet::missing_exports(ty.exports(&self.engine).map(|(n, _)| n)) {
            return Err(PluginError::WrongWorld(why));
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            PluginError::WrongWorld(format!(
                "imports do not match what postern provides: {}",
                first_line(&e)
            ))
        })?;
        let pre = DelivererPre::new(pre).map_err(|e| {
            PluginError::WrongWorld(format!(
                "exports do not match postern:plugin/deliverer: {}",
                first_line(&e)
            ))
        })?;
        Ok((pre, imports))
    }

    /// A channel's view of this runtime.
    pub(crate) fn sandbox(self: &Arc<Self>, s: &ChannelSandbox) -> Sandbox {
        Sandbox::new(self, s)
    }

    fn new_store(&self, sandbox: &Sandbox) -> Store<State> {
        let journal = Journal::new(self.limits.max_log_bytes);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(CaptureStream::new(journal.clone(), Stream::Stdout))
            .stderr(CaptureStream::new(journal.clone(), Stream::Stderr))
            .max_random_size(MAX_RANDOM);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELDS);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_TABLE_ENTRIES);
        let state = State {
            wasi: wasi.build(),
            http,
            table,
            egress: Egress::new(sandbox.egress.clone(), journal.clone()),
            limiter: MemoryLimiter::new(self.limits.memory_bytes),
            vars: sandbox.vars.clone(),
            journal,
            cpu: CpuMeter {
                ticks: 0,
                budget_ticks: self.limits.budget_ticks(),
                exhausted: false,
                yielded: Arc::new(AtomicBool::new(false)),
            },
        };
        let mut store = Store::new(&self.engine, state);
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

    /// One call in a fresh instance, bounded by every limit.
    ///
    /// The guest starts on the caller's thread: most calls finish (or wait
    /// on I/O) well within one epoch tick, and a hop to another thread pool
    /// would cost more than the call (two cross-thread wake-ups, ~60 µs
    /// here). A guest still computing at its first tick is CPU-bound; the
    /// rest of its run moves to the guest pool, so spinning guests compete
    /// with each other, never with request handling.
    pub(crate) async fn call(
        &self,
        pre: &DelivererPre<State>,
        sandbox: &Sandbox,
        call: Call,
    ) -> Run {
        let store = self.new_store(sandbox);
        let yielded = store.data().cpu.yielded.clone();
        let mut guest = Box::pin(run_guest(store, pre.clone(), call, self.limits.wall));
        let inline = std::future::poll_fn(|cx| match guest.as_mut().poll(cx) {
            std::task::Poll::Ready(done) => std::task::Poll::Ready(Some(done)),
            std::task::Poll::Pending if yielded.load(Ordering::Relaxed) => {
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        })
        .await;
        let finished = match inline {
            Some(done) => Ok(done),
            None => self.pool.spawn(guest).await,
        };
        let (outcome, store) = match finished {
            Ok(done) => done,
            // The pool is shutting down (or the call panicked in the host).
            Err(e) => {
                return Run {
                    result: Err(Failure::Start(format!("plugin pool: {e}"))),
                    journal: Journal::new(self.limits.max_log_bytes),
                };
            }
        };
        let state = store.data();
        let result = match outcome {
            Err(_) => Err(Failure::WallTimeout),
            Ok(Ok(r)) => Ok(r),
            Ok(Err((starting, e))) => Err(if state.cpu.exhausted {
                Failure::CpuBudget
            } else if state.limiter.exceeded {
                Failure::Memory
            } else if starting {
                Failure::Start(first_line(&e))
            } else {
                Failure::Trap(describe_trap(&e))
            }),
        };
        Run {
            result,
            journal: state.journal.clone(),
        }
    }
}

/// What [`run_guest`] hands back: `Err(Elapsed)` for the wall clock, then
/// `(instantiating?, error)` for a failed call, and the store to read the
/// meters from.
type GuestOutcome = (
    Result<Result<Returned, (bool, wasmtime::Error)>, tokio::time::error::Elapsed>,
    Store<State>,
);

/// Instantiates and calls: on the caller's thread, then (if CPU-bound) on
/// the guest pool; see [`PluginRuntime::call`].
async fn run_guest(
    mut store: Store<State>,
    pre: DelivererPre<State>,
    call: Call,
    wall: Duration,
) -> GuestOutcome {
    let work = async {
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| (true, e))?;
        let r = match &call {
            Call::Describe => instance.call_describe(&mut store).await.map(Returned::Info),
            Call::Validate(to) => instance
                .call_validate_recipient(&mut store, to)
                .await
                .map(Returned::Validated),
            Call::Deliver(m) => instance
                .call_deliver(&mut store, m)
                .await
                .map(Returned::Delivered),
        };
        r.map_err(|e| (false, e))
    };
    let outcome = tokio::time::timeout(wall, work).await;
    (outcome, store)
}

/// A channel's compiled view: its config/secrets and egress policy, shared
/// by all its deliveries.
pub(crate) struct Sandbox {
    vars: Arc<ChannelVars>,
    egress: Arc<EgressPolicy>,
}

impl Sandbox {
    fn new(rt: &PluginRuntime, s: &ChannelSandbox) -> Self {
        Self {
            vars: Arc::new(ChannelVars::new(&s.config, &s.secrets)),
            egress: Arc::new(EgressPolicy {
                allow: s.allow_list.clone(),
                allow_private: rt.limits.allow_private_networks,
                max_requests: rt.limits.max_http_requests,
                max_response_bytes: rt.limits.max_http_response_bytes,
                wall: rt.limits.wall,
                tls: rt.tls.clone(),
            }),
        }
    }
}

pub(crate) enum Call {
    Describe,
    Validate(String),
    Deliver(Message),
}

pub(crate) enum Returned {
    Info(WitInfo),
    Validated(Result<(), String>),
    Delivered(Result<Receipt, DeliveryError>),
}

/// How a call ended when it did not return.
#[derive(Debug)]
pub(crate) enum Failure {
    WallTimeout,
    CpuBudget,
    Memory,
    /// Instantiation failed (e.g. every pool slot busy).
    Start(String),
    Trap(String),
}

impl Failure {
    pub(crate) fn detail(&self, limits: &Limits) -> String {
        match self {
            Failure::WallTimeout => format!(
                "plugin exceeded the wall-clock timeout of {} ms (plugins.wall_timeout_ms)",
                limits.wall.as_millis()
            ),
            Failure::CpuBudget => format!(
                "plugin exceeded its CPU budget of {} ms (plugins.cpu_budget_ms)",
                limits.cpu_budget.as_millis()
            ),
            Failure::Memory => format!(
                "plugin exceeded its memory limit of {} bytes (plugins.memory_limit_bytes)",
                limits.memory_bytes
            ),
            Failure::Start(e) => format!("plugin could not start: {e}"),
            Failure::Trap(e) => format!("plugin trapped: {e}"),
        }
    }
}

pub(crate) struct Run {
    pub(crate) result: Result<Returned, Failure>,
    pub(crate) journal: Journal,
}

fn describe_trap(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "call stack exhausted (stack overflow)".to_string(),
        Some(t) => t.to_string(),
        None => first_line(e),
    }
}

/// The first line of the innermost cause: wasmtime errors carry multi-line
/// backtraces that do not belong in a delivery record.
fn first_line(e: &wasmtime::Error) -> String {
    let text = e.root_cause().to_string();
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// One thread per engine advances the epoch every [`TICK`]; it stops when
/// the engine is dropped.
fn spawn_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("postern-plugin-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
}

/// The threads CPU-bound guest code runs on: a tokio runtime of its own, one
/// worker per core. Guests yield every [`TICK`], so plugins share these
/// threads fairly among themselves, and a tenant's spinning plugin takes CPU
/// from other plugins only, never from request handling, database replies or
/// built-in senders on the main runtime (on a shared runtime each of those
/// waited behind every spinning guest's slice).
struct GuestPool {
    handle: tokio::runtime::Handle,
    /// `Some` until dropped; shut down without waiting, as this may be dropped
    /// inside the main runtime.
    runtime: Option<tokio::runtime::Runtime>,
}

impl GuestPool {
    fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("postern-plugin")
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Runs `work` on the pool. Dropping the returned future cancels it (a
    /// cancelled delivery stops its guest at the next yield).
    fn spawn<F>(&self, work: F) -> AbortOnDrop<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        AbortOnDrop(self.handle.spawn(work))
    }
}

impl Drop for GuestPool {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
