//! Channels tenants configure over the API (`PUT /channels/{name}`): the
//! same kinds and senders as the config file, with the file's key names
//! (SPEC §6), write-only secrets, and outbound traffic held to public
//! addresses unless the operator allows private networks.
//!
//! [`build`] holds the checks common to every kind and hands the rest to
//! the kind's folder; [`row`] is the stored form; [`save`] the domain side
//! of `PUT` and `DELETE /channels/{name}`.

pub mod row;
pub mod save;

use std::sync::Arc;

use serde_json::Value;

use super::kind::ChannelKind;
use super::recipient::{RecipientRule, SendToType};
use super::registry::Channel;
use super::spec::{KindAdapter, KindSpec, SpecError, TenantContext, err};
use super::{BuildContext, fallback};
use crate::config::Config;
use crate::domain::ChannelName;
use crate::messages::spec::CatchAll;
use crate::messages::{Kind, Messages, TemplatesSpec};
use crate::secret::Secret;

/// What a tenant sends in `PUT /channels/{name}`, parsed.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub kind: ChannelKind,
    pub settings: KindSpec,
    pub send_to_type: Option<SendToType>,
    pub send_to_regex: Option<String>,
    pub fallback: Option<String>,
    /// The channel's own messages; empty: the built-in ones.
    pub templates: TemplatesSpec,
}

/// Config keys a tenant may not set: they reach the host's files or bypass
/// the outbound address check.
const FORBIDDEN_CONFIG: &[&str] = &[
    "ca_file",
    "proxy",
    "kind",
    "name",
    "fallback",
    "send_to_type",
    "send_to_regex",
    "templates",
];

/// Builds a channel from a spec; every check a tenant can fail happens here
/// or in the kind's adapter.
pub fn build(
    tenant: &str,
    name: &ChannelName,
    spec: &ChannelSpec,
    cfg: &Config,
    plugins: &crate::plugin::TenantPlugins,
) -> Result<Channel, SpecError> {
    let adapter = spec.kind.adapter();
    check_keys(adapter, &spec.settings)?;
    let ctx = TenantContext {
        tenant,
        name,
        build: BuildContext {
            base_url: cfg.server.base_url.as_deref(),
            public_only: !cfg.plugins.allow_private_networks,
        },
        plugins,
    };
    let secrets: Vec<Secret> = spec
        .settings
        .secrets
        .values()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .collect();
    let sender = adapter.sender(&spec.settings, &ctx)?;
    let rule = recipient_rule(adapter, spec)?;
    let fallback = match &spec.fallback {
        Some(f) if f == name.as_str() => {
            return Err(err(
                "fallback",
                fallback::FallbackError::Itself.message(true),
            ));
        }
        Some(f) => Some(ChannelName::parse(f).map_err(|m| err("fallback", m))?),
        None => None,
    };
    let messages = messages(spec, cfg)?;
    Ok(Channel {
        name: name.clone(),
        sender,
        rule,
        fallback,
        secrets,
        messages: Arc::new(messages),
    })
}

/// The channel's `templates`, and for `smtp` its `config.subject/body`
/// (rport's `{code}` tags), over the built-in messages.
fn messages(spec: &ChannelSpec, cfg: &Config) -> Result<Messages, SpecError> {
    let mut catch = Vec::new();
    if spec.kind == ChannelKind::Smtp {
        for (kind, key) in [(Kind::Subject, "subject"), (Kind::Body, "body")] {
            if let Some(Value::String(source)) = spec.settings.config.get(key) {
                catch.push(CatchAll {
                    kind,
                    field: format!("config.{key}"),
                    source: source.clone(),
                });
            }
        }
    }
    let site = crate::config::templates::site(cfg);
    Messages::build(&spec.templates, &catch, site, "templates").map_err(|e| SpecError {
        position: e.line.zip(e.column),
        field: e.field.clone(),
        message: match (e.line, e.column) {
            (Some(l), Some(c)) => format!("{} (line {l}, column {c})", e.message),
            (Some(l), None) => format!("{} (line {l})", e.message),
            _ => e.message.clone(),
        },
    })
}

/// The keys every kind refuses: forbidden ones, one key in both `config`
/// and `secrets`, secrets the kind does not take, plugin fields elsewhere.
fn check_keys(adapter: &dyn KindAdapter, spec: &KindSpec) -> Result<(), SpecError> {
    for k in spec.config.keys() {
        if FORBIDDEN_CONFIG.contains(&k.as_str()) {
            return Err(err(
                format!("config.{k}"),
                format!("`{k}` cannot be set on a tenant channel"),
            ));
        }
        if spec.secrets.contains_key(k) {
            return Err(err(
                format!("config.{k}"),
                format!("`{k}` is given both in config and secrets"),
            ));
        }
    }
    if let Some(allowed) = adapter.secret_keys() {
        check_secret_keys(adapter.name(), allowed, spec)?;
    }
    if !adapter.runs_plugin() && spec.plugin.is_some() {
        return Err(err("plugin", "only plugin channels name a plugin"));
    }
    if !adapter.runs_plugin() && !spec.allowed_hosts.is_empty() {
        return Err(err(
            "allowedHosts",
            "only plugin channels take allowedHosts",
        ));
    }
    Ok(())
}

fn check_secret_keys(kind: &str, allowed: &[&str], spec: &KindSpec) -> Result<(), SpecError> {
    for k in spec.secrets.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(err(
                format!("secrets.{k}"),
                format!("kind `{kind}` takes the secrets {}", allowed.join(", ")),
            ));
        }
    }
    for k in spec.config.keys() {
        if allowed.contains(&k.as_str()) {
            return Err(err(
                format!("config.{k}"),
                format!("`{k}` is a secret: put it in `secrets`"),
            ));
        }
    }
    Ok(())
}

fn recipient_rule(
    adapter: &dyn KindAdapter,
    spec: &ChannelSpec,
) -> Result<RecipientRule, SpecError> {
    let rule = match (adapter.forced_rule(), spec.send_to_type) {
        (Some(forced), _) => forced,
        (None, Some(t)) => RecipientRule::from_config(t, spec.send_to_regex.as_deref())
            .map_err(|m| err("sendToRegex", m))?,
        (None, None) => RecipientRule::Any,
    };
    if spec.send_to_type == Some(SendToType::Regex)
        && spec.send_to_regex.as_deref().is_none_or(str::is_empty)
    {
        return Err(err("sendToRegex", "is required when sendToType is regex"));
    }
    Ok(rule)
}

/// Every stored tenant channel, built; the ones that no longer build (the
/// operator tightened a limit, say) are logged and left out.
pub async fn load_all(
    store: &dyn crate::store::Store,
    keys: &crate::crypto::Keys,
    cfg: &Config,
    plugins: &crate::plugin::TenantPlugins,
) -> Result<Vec<(crate::domain::TenantName, Channel)>, crate::store::StoreError> {
    let mut out = Vec::new();
    for r in store.channels(None).await? {
        let built = crate::domain::TenantName::parse(&r.tenant)
            .and_then(|t| ChannelName::parse(&r.name).map(|n| (t, n)))
            .and_then(|(t, n)| {
                let spec = row::from_row(&r, keys)?;
                build(t.as_str(), &n, &spec, cfg, plugins)
                    .map(|c| (t, c))
                    .map_err(|e| format!("{}: {}", e.field, e.message))
            });
        match built {
            Ok(pair) => out.push(pair),
            Err(e) => {
                tracing::warn!(tenant = %r.tenant, channel = %r.name, error = %e, "tenant channel not loaded")
            }
        }
    }
    Ok(out)
}
