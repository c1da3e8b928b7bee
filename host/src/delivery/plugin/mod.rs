//! The `plugin` kind: a channel whose sender is a WebAssembly plugin. This
//! folder is the kind's config, secrets and checks; the runtime that loads
//! and runs plugins is `crate::plugin`, called from here.

pub mod config;

/// The kind's wire name.
pub const NAME: &str = "plugin";

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use self::config::ChannelConfig;
use super::Sender;
use super::recipient::RecipientRule;
use super::registry::Channel;
use super::spec::{KindAdapter, KindSpec, SpecError, TenantContext, err};
use crate::domain::ChannelName;

/// Builds a `[[channel]]`'s sender; supplied by the plugin runtime
/// (`crate::plugin::FileChannelPlugins`), or a stand-in for `config check`.
pub type PluginSenderFactory<'a> = &'a dyn Fn(&ChannelConfig) -> Result<Arc<dyn Sender>, String>;

/// The channel of `[[channel]]` number `i`.
pub fn file_channel(
    i: usize,
    c: &ChannelConfig,
    rule: RecipientRule,
    plugin_sender: PluginSenderFactory<'_>,
) -> Result<Channel, String> {
    Ok(Channel {
        name: ChannelName::parse(&c.name)?,
        sender: plugin_sender(c).map_err(|e| format!("channel[{i}]: {e}"))?,
        rule,
        fallback: c.fallback.as_deref().map(ChannelName::parse).transpose()?,
        secrets: c.secrets.values().cloned().collect(),
        messages: Default::default(),
    })
}

/// A tenant's plugin config values are strings; numbers and booleans are
/// written out.
fn string_config(
    config: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, String>, SpecError> {
    config
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
            _ => Err(err(
                format!("config.{k}"),
                "plugin config values are strings, numbers or booleans",
            )),
        })
        .collect()
}

/// The tenant adapter of the `plugin` kind: `plugin` names an upload.
pub struct Kind;

impl KindAdapter for Kind {
    fn name(&self) -> &'static str {
        NAME
    }

    fn secret_keys(&self) -> Option<&'static [&'static str]> {
        // The plugin declares its keys; `channel_sender` checks them.
        None
    }

    fn runs_plugin(&self) -> bool {
        true
    }

    fn sender(
        &self,
        spec: &KindSpec,
        ctx: &TenantContext<'_>,
    ) -> Result<Arc<dyn Sender>, SpecError> {
        let pname = spec
            .plugin
            .as_deref()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                err(
                    "plugin",
                    "is required for kind `plugin`: the name of an uploaded plugin",
                )
            })?;
        let plugin = ctx.plugins.get(ctx.tenant, pname).ok_or_else(|| {
            err(
                "plugin",
                format!("no plugin named `{pname}`; upload it with PUT /plugins/{pname}"),
            )
        })?;
        let config = string_config(&spec.config)?;
        ctx.plugins
            .channel_sender(
                (ctx.tenant, pname),
                plugin,
                ctx.name.as_str(),
                &config,
                &spec.secrets,
                &spec.allowed_hosts,
            )
            .map_err(|(f, m)| err(f, m))
    }
}
