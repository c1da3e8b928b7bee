//! Plugin runtime tests, in-process against the `postern` library: provider
//! fakes, misbehaving guests, loading and the CLI; `trust` runs the real
//! server and CLI for signatures. The guest plugins are
//! built once per test process (`support::wasm_dir`).

mod cli;
mod containment;
mod keepalive;
mod lang;
pub mod lang_build;
mod lang_cli;
mod lang_limits;
mod loading;
mod providers;
mod resident;
mod rollout;
pub mod support;
mod trust;
