//! WebAssembly plugin channels. Only this module knows wasmtime; the
//! address policy and `allowedHosts` parsing it applies are
//! [`crate::netguard`]'s (no wasmtime there).
//!
//! * [`vet`] — is this a plugin at all? Typed refusals with a human reason.
//! * `runtime` — the one Engine (pooling allocator, epochs), the Linker, the
//!   compile cache, [`PluginRuntime::load`]; `info` — what `describe()` says.
//! * `sandbox` — what a channel grants ([`ChannelSandbox`]) and the fresh,
//!   limited store of every call; `limits` — the `[plugins]` limits.
//! * [`channel_limits`] — a channel's own memory/CPU/upload limits within `[plugins]`.
//! * `usage` — what a call cost (CPU time, peak memory, HTTP requests).
//! * `call` — one call in a fresh instance and how it ended; `pool` — the
//!   epoch ticker and the guest pool CPU-bound guests run on.
//! * `host_api` — the WIT imports (`config`, `log`), captured stdout/stderr;
//!   `journal` — the per-delivery log that becomes the delivery record's `log`.
//! * `outbound/` — the single `send_request` policy hook: `admit`
//!   (allow-list, request cap), `connect` (resolve once, vet, TLS, timeouts),
//!   `body` (caps).
//! * `sender` — [`PluginSender`]: a loaded plugin + a channel sandbox as a
//!   [`crate::delivery::Sender`], mapping every ending onto an outcome class.
//! * `startup` — `[[channel]]` plugins of the config file, loaded at start-up.
//! * `tenant` — plugins tenants upload, kept in line with the store.
//! * [`keys`] — which keys a tenant's uploads are checked against.
//! * [`permissions`] — what a version can do and what a re-upload adds.
//! * [`sign_cli`] — `postern plugin keygen | sign | verify` on files.
//! * [`trust`] — Ed25519 plugin signatures: key, signature texts, the check.
//! * [`rollout`] — staged rollout: canary routing, the rollback rule, promote.
//! * [`upload`] — one upload's checks (name, type, size, quota), compile and version swap.
//!
//! See `README.md` beside this file for the sandbox, limits and numbers.

pub mod author;
mod bindings;
mod cache;
mod call;
pub mod channel_limits;
mod host_api;
mod info;
mod journal;
pub mod keys;
mod limits;
pub mod outbound;
pub mod permissions;
mod pool;
mod resident;
pub mod rollout;
mod runtime;
mod sandbox;
mod sender;
pub mod sign_cli;
pub(crate) mod startup;
mod tenant;
pub mod trust;
pub mod upload;
mod usage;
pub mod vet;

pub use channel_limits::ChannelLimits;
pub use info::{ConfigKeyInfo, PluginInfo};
pub use runtime::{LoadedPlugin, PluginRuntime};
pub use sandbox::ChannelSandbox;
pub use sender::PluginSender;
pub use startup::{FileChannelPlugins, check_file};
pub use tenant::TenantPlugins;
pub use usage::Usage;
pub use vet::PluginError;
