//! `[delivery]`: the queue's retry backoff, lease and worker count.

use serde::Deserialize;

use super::check::{ConfigError, check_range};

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DeliveryConfig {
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub lease_seconds: u64,
    /// Deliveries one host works on at once (postern addition).
    pub workers: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            lease_seconds: 30,
            workers: 64,
        }
    }
}

impl DeliveryConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("delivery.retry_base_ms", self.retry_base_ms, 10..=600_000)?;
        check_range(
            "delivery.retry_max_ms",
            self.retry_max_ms,
            self.retry_base_ms..=3_600_000,
        )?;
        check_range("delivery.lease_seconds", self.lease_seconds, 5..=3600)?;
        check_range("delivery.workers", self.workers as u64, 1..=1024)
    }
}
