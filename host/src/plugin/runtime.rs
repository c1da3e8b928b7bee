//! The plugin runtime: one Engine (pooling allocator, epoch interruption, one
//! ticker thread), one Linker, a compile cache, the guest pool, and
//! [`PluginRuntime::load`], the one door plugins come in by.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{Deliverer, DelivererPre};
use super::cache::CompileCache;
use super::call::{self, Call, Returned, Run, first_line};
use super::host_api::State;
use super::info::PluginInfo;
use super::limits::Limits;
use super::outbound::tls_config;
use super::pool::{GuestPool, spawn_ticker};
use super::resident::Resident;
use super::sandbox::{ChannelSandbox, Sandbox};
use super::vet::{self, PluginError};
use crate::config::PluginsConfig;

/// Plugin instances alive at once (deliveries in flight), for the pool.
const MAX_INSTANCES: u32 = 256;
/// Compiling one component may take at most this long.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// A vetted plugin version: what it is, not its compiled code, which is
/// mapped from the compile cache on first use and dropped when it has not
/// been used among the last `plugins.resident_plugins` ([`Resident`]).
/// Cheap to share; one per distinct component (sha256) per runtime.
pub struct LoadedPlugin {
    pub sha256: String,
    pub size: usize,
    pub info: PluginInfo,
    /// The instances the component imports, e.g. `wasi:http/types@0.2.12`.
    pub imports: Vec<String>,
    /// Kept when the runtime has no compile cache to map it back from
    /// (`postern plugin check`, a runtime without a data dir).
    pinned: Option<DelivererPre<State>>,
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

/// One per process (or per test): owns the Engine and everything compiled.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<State>,
    pub(crate) limits: Limits,
    cache: Option<CompileCache>,
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    resident: Resident,
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

fn runtime_error(e: wasmtime::Error) -> PluginError {
    PluginError::Runtime(format!("{e:#}"))
}

/// The Engine: pooling allocator sized for [`MAX_INSTANCES`], epoch
/// interruption, copy-on-write memory images, a 512 KiB wasm stack.
fn engine(limits: &Limits) -> Result<Engine, PluginError> {
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
    Engine::new(&config).map_err(runtime_error)
}

/// WASI 0.2 (sockets inert: no network is granted), wasi:http (outgoing only) and postern's imports.
fn linker(engine: &Engine) -> Result<Linker<State>, PluginError> {
    let mut linker: Linker<State> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(runtime_error)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(runtime_error)?;
    Deliverer::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |s| s)
        .map_err(runtime_error)?;
    Ok(linker)
}

impl PluginRuntime {
    /// `data_dir`: where compiled plugins are cached (`plugin-cache/`);
    /// `None` compiles in memory only (`postern plugin check`).
    pub fn new(cfg: &PluginsConfig, data_dir: Option<&Path>) -> Result<Arc<Self>, PluginError> {
        let limits = Limits::from_config(cfg);
        let engine = engine(&limits)?;
        let linker = linker(&engine)?;
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
            resident: Resident::new(cfg.resident_plugins),
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

        let (pre, imports) = self.compile_off_thread(&sha256, Some(wasm)).await?;
        let info = self.describe(&pre).await?;
        let plugin = Arc::new(LoadedPlugin {
            sha256: sha256.clone(),
            size,
            info,
            imports,
            // Loaded on first use (a call), not now: vetting an upload or a
            // stored version at start-up leaves nothing compiled resident.
            pinned: self.cache.is_none().then_some(pre),
        });
        Ok(self.lock_loaded().entry(sha256).or_insert(plugin).clone())
    }

    /// Compiles (or maps from the cache) and links on a blocking thread,
    /// time-bounded. `wasm`: the component, when the caller has it (else
    /// the cache's copy).
    async fn compile_off_thread(
        self: &Arc<Self>,
        sha256: &str,
        wasm: Option<Vec<u8>>,
    ) -> Result<(DelivererPre<State>, Vec<String>), PluginError> {
        let this = self.clone();
        let digest = sha256.to_string();
        let compile = tokio::task::spawn_blocking(move || {
            let wasm = match wasm {
                Some(w) => w,
                None => this.cached_source(&digest)?,
            };
            this.compile_and_link(&digest, &wasm)
        });
        match tokio::time::timeout(COMPILE_TIMEOUT, compile).await {
            Err(_) => Err(PluginError::CompileTimeout(COMPILE_TIMEOUT.as_secs())),
            Ok(Err(join)) => Err(PluginError::Runtime(format!("compiler task: {join}"))),
            Ok(Ok(r)) => r,
        }
    }

    fn cached_source(&self, sha256: &str) -> Result<Vec<u8>, PluginError> {
        self.cache
            .as_ref()
            .and_then(|c| c.source(sha256))
            .ok_or_else(|| {
                PluginError::Runtime("the plugin's copy in the compile cache is gone".into())
            })
    }

    /// The compiled plugin: pinned, resident, or mapped back from the
    /// compile cache (recompiled from the cache's copy of the component if
    /// its artifact is missing or does not verify) and made resident.
    pub(crate) async fn pre(
        self: &Arc<Self>,
        plugin: &LoadedPlugin,
    ) -> Result<DelivererPre<State>, PluginError> {
        if let Some(pre) = plugin.pinned.as_ref() {
            return Ok(pre.clone());
        }
        if let Some(pre) = self.resident.get(&plugin.sha256) {
            return Ok(pre);
        }
        let (pre, _) = self.compile_off_thread(&plugin.sha256, None).await?;
        self.resident.insert(&plugin.sha256, pre.clone());
        Ok(pre)
    }

    /// Compiled plugins resident now (for tests and metrics).
    pub fn resident_count(&self) -> usize {
        self.resident.len()
    }

    /// `describe()` in a sandbox that grants nothing.
    async fn describe(&self, pre: &DelivererPre<State>) -> Result<PluginInfo, PluginError> {
        let sandbox = Sandbox::new(&self.limits, &self.tls, &ChannelSandbox::default());
        let info = match self.call_pre(pre, &sandbox, Call::Describe).await.result {
            Ok(Returned::Info(info)) => PluginInfo::from(info),
            Ok(_) => return Err(PluginError::Describe("unexpected answer".into())),
            Err(f) => return Err(PluginError::Describe(f.detail(&self.limits))),
        };
        if info.name.trim().is_empty() {
            return Err(PluginError::Describe("the plugin has an empty name".into()));
        }
        Ok(info)
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
        if let Some(c) = &self.cache
            && let Err(e) = c.put_source(sha256, wasm)
        {
            tracing::warn!(error = %e, "cannot write the plugin compile cache");
        }
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.component(&self.engine, sha256));
        let component = match cached {
            Some(c) => c,
            None => self.compile(sha256, wasm)?,
        };
        self.link(&component)
    }

    /// Cranelift, then into the cache and mapped back from it (so the code
    /// is file-backed memory), or, without a cache, copied into memory.
    fn compile(&self, sha256: &str, wasm: &[u8]) -> Result<Component, PluginError> {
        let artifact = self
            .engine
            .precompile_component(wasm)
            .map_err(|e| PluginError::Invalid(first_line(&e)))?;
        if let Some(c) = &self.cache {
            match c.put(sha256, &artifact) {
                Ok(()) => {
                    if let Some(component) = c.component(&self.engine, sha256) {
                        return Ok(component);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot write the plugin compile cache"),
            }
        }
        // SAFETY: `artifact` was produced by `precompile_component` of this
        // engine just now.
        unsafe { Component::deserialize(&self.engine, &artifact) }.map_err(|e| {
            PluginError::Runtime(format!("loading compiled plugin: {}", first_line(&e)))
        })
    }

    /// Imports ⊆ granted, the world's exports, then type-checked linking.
    fn link(
        &self,
        component: &Component,
    ) -> Result<(DelivererPre<State>, Vec<String>), PluginError> {
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
        let pre = self.linker.instantiate_pre(component).map_err(|e| {
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
        Sandbox::new(&self.limits, &self.tls, s)
    }

    /// As [`Self::sandbox`], recording (or replaying) every exchange.
    pub(crate) fn sandbox_with_tools(
        &self,
        s: &ChannelSandbox,
        tools: Arc<super::outbound::Tools>,
    ) -> Sandbox {
        Sandbox::with_tools(&self.limits, &self.tls, s, Some(tools))
    }

    /// One call in a fresh instance, bounded by every limit; see
    /// [`call::run`].
    pub(crate) async fn call(
        self: &Arc<Self>,
        plugin: &LoadedPlugin,
        sandbox: &Sandbox,
        call: Call,
    ) -> Run {
        let pre = match self.pre(plugin).await {
            Ok(pre) => pre,
            Err(e) => {
                tracing::warn!(plugin = %plugin.info.name, error = %e, "cannot load a plugin");
                return Run::not_started(e.to_string(), &sandbox.limits);
            }
        };
        self.call_pre(&pre, sandbox, call).await
    }

    async fn call_pre(&self, pre: &DelivererPre<State>, sandbox: &Sandbox, call: Call) -> Run {
        let store = sandbox.new_store(&self.engine);
        call::run(store, pre, call, &sandbox.limits, &self.pool).await
    }
}
