//! `[plugins]`: the sandbox limits every plugin runs under, and which
//! signatures tenant uploads need.

use serde::Deserialize;

use super::check::{ConfigError, check_range};
use crate::plugin::trust::PublicKey;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PluginsConfig {
    pub max_upload_bytes: u64,
    pub memory_limit_bytes: u64,
    pub cpu_budget_ms: u64,
    pub wall_timeout_ms: u64,
    pub max_http_requests: u32,
    pub max_http_response_bytes: u64,
    pub max_log_bytes: u64,
    pub allow_private_networks: bool,
    /// Refuse tenant uploads without a signature by a trusted key.
    pub require_signature: bool,
    /// Public keys (`ed25519:<base64>`) trusted for every tenant.
    pub trusted_keys: Vec<PublicKey>,
    /// A canary's last this many deliveries (and the stable version's) are
    /// compared; none is rolled back before it has this many.
    pub rollout_window: u32,
    /// Roll a canary back when its failure rate over the window is more
    /// than this many percentage points above the stable version's.
    pub rollout_margin_percent: u32,
    /// Compiled plugins kept in memory; past this many the least recently
    /// used is dropped and mapped back from the compile cache on next use.
    pub resident_plugins: u32,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            // Fits interpreted guests (plugins/README.md, "Languages"):
            // components of JavaScript ~13 MB, Python ~18.5 MB, Rust
            // ~0.3 MB; one delivery's peak linear memory 9 / 12.4 / ~1 MiB.
            max_upload_bytes: 32 * 1024 * 1024,
            memory_limit_bytes: 64 * 1024 * 1024,
            cpu_budget_ms: 100,
            wall_timeout_ms: 10_000,
            max_http_requests: 8,
            max_http_response_bytes: 1024 * 1024,
            max_log_bytes: 64 * 1024,
            allow_private_networks: false,
            require_signature: false,
            trusted_keys: Vec::new(),
            rollout_window: 50,
            rollout_margin_percent: 10,
            resident_plugins: 32,
        }
    }
}

impl PluginsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "plugins.max_upload_bytes",
            self.max_upload_bytes,
            1024..=256 << 20,
        )?;
        check_range(
            "plugins.memory_limit_bytes",
            self.memory_limit_bytes,
            1 << 20..=4 << 30,
        )?;
        check_range("plugins.cpu_budget_ms", self.cpu_budget_ms, 1..=60_000)?;
        check_range(
            "plugins.wall_timeout_ms",
            self.wall_timeout_ms,
            100..=300_000,
        )?;
        check_range(
            "plugins.max_http_requests",
            self.max_http_requests as u64,
            0..=1000,
        )?;
        check_range(
            "plugins.max_http_response_bytes",
            self.max_http_response_bytes,
            1024..=256 << 20,
        )?;
        check_range("plugins.max_log_bytes", self.max_log_bytes, 256..=16 << 20)?;
        check_range(
            "plugins.rollout_window",
            u64::from(self.rollout_window),
            1..=10_000,
        )?;
        check_range(
            "plugins.rollout_margin_percent",
            u64::from(self.rollout_margin_percent),
            0..=99,
        )?;
        check_range(
            "plugins.resident_plugins",
            u64::from(self.resident_plugins),
            1..=100_000,
        )
    }
}
