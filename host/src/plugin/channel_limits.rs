//! A plugin channel's own limits (`memory_limit_bytes`, `cpu_budget_ms`,
//! `max_upload_bytes`), each at most the operator's `[plugins]` value:
//! interpreted guests (JavaScript, Python) need more memory and CPU than a
//! Rust plugin, and an operator can raise the maxima while channels that do
//! not need it stay small.
//!
//! Tenant channels set them as reserved keys of the channel's `config` (the
//! plugin does not see them); `[[channel]]` tables as keys of their own.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::limits::Limits;

/// The reserved config keys of a plugin channel.
pub const KEYS: [&str; 3] = ["memory_limit_bytes", "cpu_budget_ms", "max_upload_bytes"];

/// Unset keys take the operator's `[plugins]` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ChannelLimits {
    pub memory_limit_bytes: Option<u64>,
    pub cpu_budget_ms: Option<u64>,
    pub max_upload_bytes: Option<u64>,
}

/// A refused value: `(key, message)`; the key is one of [`KEYS`].
pub type LimitError = (String, String);

impl ChannelLimits {
    /// Takes the reserved keys out of a tenant channel's config (they are
    /// postern's, not the plugin's) and parses them.
    pub fn take_from(config: &mut BTreeMap<String, String>) -> Result<Self, LimitError> {
        let mut take = |key: &str| -> Result<Option<u64>, LimitError> {
            match config.remove(key) {
                None => Ok(None),
                Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                    (
                        key.to_string(),
                        "must be a whole number (bytes or milliseconds)".to_string(),
                    )
                }),
            }
        };
        Ok(Self {
            memory_limit_bytes: take(KEYS[0])?,
            cpu_budget_ms: take(KEYS[1])?,
            max_upload_bytes: take(KEYS[2])?,
        })
    }

    /// Each value must be within `1..=` the operator's maximum.
    pub(crate) fn check(&self, max: &Limits, plugin_size: usize) -> Result<(), LimitError> {
        let within = |key: &str, v: Option<u64>, max: u64| match v {
            Some(v) if v == 0 || v > max => Err((
                key.to_string(),
                format!("allowed 1..={max} (the operator's plugins.{key})"),
            )),
            _ => Ok(()),
        };
        within(KEYS[0], self.memory_limit_bytes, max.memory_bytes as u64)?;
        within(
            KEYS[1],
            self.cpu_budget_ms,
            max.cpu_budget.as_millis() as u64,
        )?;
        within(KEYS[2], self.max_upload_bytes, max.max_upload_bytes)?;
        match self.max_upload_bytes {
            Some(cap) if plugin_size as u64 > cap => Err((
                KEYS[2].to_string(),
                format!("the plugin is {plugin_size} bytes, over this channel's {cap}"),
            )),
            _ => Ok(()),
        }
    }

    /// The limits a call of this channel runs under.
    pub(crate) fn apply(&self, base: &Limits) -> Limits {
        let mut l = base.clone();
        if let Some(m) = self.memory_limit_bytes {
            l.memory_bytes = usize::try_from(m)
                .unwrap_or(usize::MAX)
                .min(base.memory_bytes);
        }
        if let Some(ms) = self.cpu_budget_ms {
            l.cpu_budget = Duration::from_millis(ms).min(base.cpu_budget);
        }
        if let Some(b) = self.max_upload_bytes {
            l.max_upload_bytes = b.min(base.max_upload_bytes);
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginsConfig;

    fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reserved_keys_are_taken_out_and_bounded() {
        let max = Limits::from_config(&PluginsConfig::default());
        let mut c = cfg(&[("url", "https://x"), ("cpu_budget_ms", "50")]);
        let l = ChannelLimits::take_from(&mut c).unwrap();
        assert_eq!(c.len(), 1, "the plugin sees only its own keys");
        assert_eq!(l.cpu_budget_ms, Some(50));
        assert!(l.check(&max, 1000).is_ok());
        assert_eq!(l.apply(&max).cpu_budget, Duration::from_millis(50));

        let over = ChannelLimits {
            memory_limit_bytes: Some(max.memory_bytes as u64 + 1),
            ..Default::default()
        };
        let (key, msg) = over.check(&max, 1000).unwrap_err();
        assert_eq!(key, "memory_limit_bytes");
        assert!(msg.contains("plugins.memory_limit_bytes"), "{msg}");

        let small = ChannelLimits {
            max_upload_bytes: Some(100),
            ..Default::default()
        };
        assert_eq!(small.check(&max, 1000).unwrap_err().0, "max_upload_bytes");
        let mut bad = cfg(&[("cpu_budget_ms", "lots")]);
        assert_eq!(
            ChannelLimits::take_from(&mut bad).unwrap_err().0,
            "cpu_budget_ms"
        );
    }
}
