//! postern: delivery and checking of one-time 2FA codes.
//!
//! The binary (`main.rs`) is a thin CLI over these modules. Module map:
//! `config` (the TOML contract), `domain` (checked values), `crypto`
//! (server key, encryption), `store` (the only SQL), `delivery` (senders,
//! registry, durable queue), `plugin` (the only wasmtime), `api` (axum
//! routers and the error shape), `app` (wiring and shutdown).

pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod console;
pub mod crypto;
pub mod delivery;
pub mod domain;
pub mod host_id;
pub mod http_server;
pub mod messages;
pub mod metrics;
pub mod netguard;
pub mod plugin;
pub mod secret;
pub mod store;
pub mod twofa;

// Fuzz target bodies: `cargo test` replays their corpus; `fuzz/` drives them.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
