//! The `plugin` kind's keys: a `[[channel]]` of the config file (a plugin
//! file run by the operator). Tenants' plugin channels name an uploaded
//! plugin instead (see the adapter in `mod.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::check::{ConfigError, check_send_to, invalid};
use crate::delivery::recipient::SendToType;
use crate::secret::Secret;

/// A `[[channel]]`: a plugin channel run by the operator.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ChannelConfig {
    pub name: String,
    pub plugin: PathBuf,
    pub allowed_hosts: Vec<String>,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
    pub send_to_type: Option<SendToType>,
    pub send_to_regex: Option<String>,
    pub fallback: Option<String>,
    /// Own messages per locale (`crate::messages::TemplatesSpec`).
    pub templates: crate::messages::TemplatesSpec,
    /// This channel's own limits, each at most the `[plugins]` value.
    pub memory_limit_bytes: Option<u64>,
    pub cpu_budget_ms: Option<u64>,
    pub max_upload_bytes: Option<u64>,
}

impl ChannelConfig {
    /// The channel's own limits (`crate::plugin::ChannelLimits`).
    pub fn limits(&self) -> crate::plugin::ChannelLimits {
        crate::plugin::ChannelLimits {
            memory_limit_bytes: self.memory_limit_bytes,
            cpu_budget_ms: self.cpu_budget_ms,
            max_upload_bytes: self.max_upload_bytes,
        }
    }

    /// Keys in errors start with `prefix` (`channel[0]`). The plugin file
    /// itself is read when the channels are built.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if self.plugin.as_os_str().is_empty() {
            return Err(invalid(
                key("plugin"),
                "is required (a .wasm component file)",
            ));
        }
        for (j, h) in self.allowed_hosts.iter().enumerate() {
            crate::netguard::AllowedHost::parse(h)
                .map_err(|m| invalid(format!("{prefix}.allowed_hosts[{j}]"), m))?;
        }
        check_send_to(
            &key("send_to_type"),
            &key("send_to_regex"),
            self.send_to_type,
            self.send_to_regex.as_deref(),
        )
    }
}
