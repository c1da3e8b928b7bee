//! WebAssembly plugin channels. Only this module knows wasmtime.

pub mod allowed_hosts;
