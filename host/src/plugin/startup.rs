//! `[[channel]]` plugins of the config file, loaded at start-up, and
//! `postern plugin check FILE.wasm`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use super::runtime::{LoadedPlugin, PluginRuntime};
use super::sandbox::ChannelSandbox;
use crate::config::{ChannelConfig, Config, PluginsConfig};
use crate::delivery::Sender;
use crate::netguard::AllowList;

/// The senders of the config file's plugin channels, by channel name.
pub struct FileChannelPlugins {
    runtime: Option<Arc<PluginRuntime>>,
    senders: HashMap<String, Arc<dyn Sender>>,
}

impl FileChannelPlugins {
    /// Loads every `[[channel]]` plugin file. Errors name the config key:
    /// `channel[0].plugin: cannot read plugins/telegram.wasm: …`.
    pub async fn load(cfg: &Config, runtime: &Arc<PluginRuntime>) -> Result<Self, String> {
        let mut senders = HashMap::new();
        for (i, c) in cfg.channel.iter().enumerate() {
            let key = format!("channel[{i}].plugin");
            let path = c.plugin.display();
            let bytes = tokio::fs::read(&c.plugin)
                .await
                .map_err(|e| format!("{key}: cannot read {path}: {e}"))?;
            let plugin = runtime
                .load(bytes)
                .await
                .map_err(|e| format!("{key}: {path} is not a valid postern plugin: {e}"))?;
            let allow_list = AllowList::parse(&c.allowed_hosts)
                .map_err(|e| format!("channel[{i}].allowed_hosts: {e}"))?;
            check_required_keys(&plugin, &c.config, &c.secrets)
                .map_err(|e| format!("channel[{i}]: {e}"))?;
            c.limits()
                .check(&runtime.limits, plugin.size)
                .map_err(|(k, m)| format!("channel[{i}].{k}: {m}"))?;
            let sender = runtime.sender(
                plugin,
                ChannelSandbox {
                    name: c.name.clone(),
                    config: c.config.clone(),
                    secrets: c.secrets.clone(),
                    allow_list,
                    limits: c.limits(),
                },
            );
            senders.insert(c.name.clone(), sender as Arc<dyn Sender>);
        }
        Ok(Self {
            runtime: Some(runtime.clone()),
            senders,
        })
    }

    /// The factory `delivery::file_channels::file_channels` takes.
    pub fn sender(&self, c: &ChannelConfig) -> Result<Arc<dyn Sender>, String> {
        self.senders
            .get(&c.name)
            .cloned()
            .ok_or_else(|| format!("plugin channel `{}` was not loaded", c.name))
    }

    /// The runtime, if any plugin channel exists (for later tenant uploads).
    pub fn runtime(&self) -> Option<&Arc<PluginRuntime>> {
        self.runtime.as_ref()
    }
}

/// A required config key the plugin declares must be present in `config` or
/// `secrets`; a secret key must not sit in plain `config`.
pub(crate) fn check_required_keys(
    plugin: &LoadedPlugin,
    config: &std::collections::BTreeMap<String, String>,
    secrets: &std::collections::BTreeMap<String, crate::secret::Secret>,
) -> Result<(), String> {
    for k in &plugin.info.config_keys {
        let in_config = config.get(&k.name).is_some_and(|v| !v.is_empty());
        let in_secrets = secrets.get(&k.name).is_some_and(|v| !v.is_empty());
        if k.secret && in_config {
            return Err(format!(
                "config.{}: plugin {} declares this key secret; put it under secrets",
                k.name, plugin.info.name
            ));
        }
        if k.required && !in_config && !in_secrets {
            let section = if k.secret { "secrets" } else { "config" };
            return Err(format!(
                "{section}.{}: is required by plugin {} ({})",
                k.name, plugin.info.name, k.description
            ));
        }
    }
    Ok(())
}

/// `postern plugin check`: a report to print, or the reason it is refused.
pub async fn check_file(cfg: &PluginsConfig, path: &Path) -> Result<String, String> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let runtime = PluginRuntime::new(cfg, None).map_err(|e| e.to_string())?;
    let p = runtime
        .load(bytes)
        .await
        .map_err(|e| format!("{} is not a valid postern plugin: {e}", path.display()))?;
    let mut out = String::new();
    let i = &p.info;
    let _ = writeln!(out, "plugin:      {} {}", i.name, i.version);
    let _ = writeln!(out, "description: {}", i.description);
    let _ = writeln!(out, "sha256:      {}", p.sha256);
    let _ = writeln!(out, "size:        {} bytes", p.size);
    let _ = writeln!(out, "config keys:");
    if i.config_keys.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    let width = i
        .config_keys
        .iter()
        .map(|k| k.name.len())
        .max()
        .unwrap_or(0);
    for k in &i.config_keys {
        let mut flags = vec![if k.required { "required" } else { "optional" }];
        if k.secret {
            flags.push("secret");
        }
        let _ = writeln!(
            out,
            "  {:width$}  {:17}  {}",
            k.name,
            flags.join(", "),
            k.description
        );
    }
    let _ = writeln!(out, "imports:");
    for name in &p.imports {
        let _ = writeln!(out, "  {name}");
    }
    let _ = writeln!(out, "OK: {} is a valid postern plugin", path.display());
    Ok(out)
}
