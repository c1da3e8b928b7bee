//! The `pushover` kind's keys: rport's `[pushover]`, and the `config` of a
//! tenant's `pushover` channel (same names).

use serde::Deserialize;

use crate::config::check::{ConfigError, check_http_url, check_range, invalid};
use crate::config::lenient::lenient_opt_string;
use crate::secret::Secret;

/// The secrets a tenant's `pushover` channel takes.
pub const SECRET_KEYS: &[&str] = &["api_token"];

pub const DEFAULT_PUSHOVER_URL: &str = "https://api.pushover.net/1/messages.json";

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PushoverConfig {
    pub api_token: Secret,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub user_key: Option<String>,
    pub api_url: String,
    pub title: String,
    pub timeout_seconds: u64,
}

impl Default for PushoverConfig {
    fn default() -> Self {
        Self {
            api_token: Secret::default(),
            user_key: None,
            api_url: DEFAULT_PUSHOVER_URL.into(),
            title: "Verification code".into(),
            timeout_seconds: 10,
        }
    }
}

impl PushoverConfig {
    /// The `[pushover]` section's checks.
    pub fn validate_file(&self) -> Result<(), ConfigError> {
        if self.api_token.is_empty() {
            return Err(invalid("pushover.api_token", "is required"));
        }
        check_http_url("pushover.api_url", &self.api_url)?;
        check_range("pushover.timeout_seconds", self.timeout_seconds, 1..=120)
    }
}
