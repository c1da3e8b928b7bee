//! The per-delivery limits, from `[plugins]`.

use std::time::Duration;

use super::pool::TICK;
use crate::config::PluginsConfig;

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
    pub(crate) fn from_config(c: &PluginsConfig) -> Self {
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

    /// The CPU budget in epoch ticks (at least one).
    pub(crate) fn budget_ticks(&self) -> u64 {
        let tick = TICK.as_millis().max(1);
        (self.cpu_budget.as_millis().div_ceil(tick) as u64).max(1)
    }
}
