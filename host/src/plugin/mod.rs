//! WebAssembly plugin channels. Only this module knows wasmtime.
//!
//! * [`allowed_hosts`] — a channel's `allowedHosts`, pure policy (no wasmtime).
//! * [`vet`] — is this a plugin at all? Typed refusals with a human reason.
//! * `runtime` — the one Engine (pooling allocator, epochs, ticker), the
//!   Linker, the compile cache, [`PluginRuntime::load`].
//! * `host_api` — the WIT imports (`config`, `log`), captured stdout/stderr,
//!   the per-delivery journal that becomes the delivery record's `log`.
//! * `outbound` — the single `send_request` policy hook (allow-list,
//!   SSRF-safe resolution, caps, timeouts).
//! * `sender` — [`PluginSender`]: a loaded plugin + a channel sandbox as a
//!   [`crate::delivery::Sender`], mapping every ending onto an outcome class.
//! * `startup` — `[[channel]]` plugins of the config file, loaded at start-up.
//! * `tenant` — plugins tenants upload, kept in line with the store.
//! * [`upload`] — one upload's checks (name, type, size, quota), compile and version swap.
//!
//! See `README.md` beside this file for the sandbox, limits and numbers.

pub mod allowed_hosts;
mod bindings;
mod cache;
mod host_api;
mod outbound;
mod runtime;
mod sender;
mod startup;
mod tenant;
pub mod upload;
pub mod vet;

pub use runtime::{ChannelSandbox, ConfigKeyInfo, LoadedPlugin, PluginInfo, PluginRuntime};
pub use sender::PluginSender;
pub use startup::{FileChannelPlugins, check_file};
pub use tenant::TenantPlugins;
pub use vet::PluginError;
