//! Channels tenants configure over the API (`PUT /channels/{name}`): the
//! same built-in senders as the config file, with the file's key names
//! (SPEC §6), write-only secrets, and outbound traffic held to public
//! addresses unless the operator allows private networks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Sender;
use super::pushover::PushoverSender;
use super::recipient::RecipientRule;
use super::registry::Channel;
use super::sms_http::SmsHttpSender;
use super::sms_smtp::SmsSmtpSender;
use super::smtp::{Mailer, SmtpSender};
use super::url::UrlSender;
use crate::config::{
    Config, ConfigError, PushoverConfig, SendToType, SmsGatewayConfig, SmtpConfig,
};
use crate::domain::ChannelName;
use crate::secret::Secret;

pub const KINDS: &[&str] = &["smtp", "pushover", "url", "sms-http", "sms-smtp", "plugin"];

/// What a tenant sends in `PUT /channels/{name}`.
#[derive(Debug, Clone, Default)]
pub struct ChannelSpec {
    pub kind: String,
    pub config: Map<String, Value>,
    pub secrets: BTreeMap<String, String>,
    pub plugin: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub send_to_type: Option<SendToType>,
    pub send_to_regex: Option<String>,
    pub fallback: Option<String>,
}

/// A rejected spec, naming the field (`config.server`, `secrets.api_token`, …).
#[derive(Debug)]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

impl From<ConfigError> for SpecError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { key, message } => err(key, message),
            other => err("config", other.to_string()),
        }
    }
}

/// Secret names each kind accepts (plugins take any).
fn secret_keys(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "smtp" | "sms-smtp" => Some(&["auth_username", "auth_password"]),
        "pushover" => Some(&["api_token"]),
        "url" => Some(&["signing_secret"]),
        "sms-http" => Some(&["password"]),
        _ => None,
    }
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
];

/// Deserialises `config` + `secrets` into a config struct; unknown keys are errors.
fn typed<T: DeserializeOwned>(spec: &ChannelSpec, extra: &[(&str, Value)]) -> Result<T, SpecError> {
    let mut merged = spec.config.clone();
    for (k, v) in &spec.secrets {
        merged.insert(k.clone(), Value::String(v.clone()));
    }
    for (k, v) in extra {
        merged.insert((*k).to_string(), v.clone());
    }
    let mut unknown = Vec::new();
    let t: T = serde_ignored::deserialize(Value::Object(merged), |p| unknown.push(p.to_string()))
        .map_err(|e| err("config", e.to_string()))?;
    if let Some(k) = unknown.first() {
        return Err(err(
            format!("config.{k}"),
            format!("unknown key `{k}` for kind `{}`", spec.kind),
        ));
    }
    Ok(t)
}

fn check_host(host: &str, field: &str, public_only: bool) -> Result<(), SpecError> {
    if public_only {
        crate::netguard::check_literal(host).map_err(|m| err(field, m))?;
    }
    Ok(())
}

fn check_url(url: &str, field: &str, public_only: bool) -> Result<(), SpecError> {
    let u = url::Url::parse(url).map_err(|e| err(field, format!("not a URL: {e}")))?;
    let host = u
        .host_str()
        .ok_or_else(|| err(field, "the URL has no host"))?;
    match u.scheme() {
        "https" => {}
        "http" if !public_only => {}
        "http" => {
            return Err(err(
                field,
                "must be https:// (plain http only when private networks are allowed)",
            ));
        }
        _ => return Err(err(field, "must be an https:// URL")),
    }
    check_host(host, field, public_only)
}

/// Builds a channel from a spec; every check a tenant can fail happens here.
pub fn build(
    tenant: &str,
    name: &ChannelName,
    spec: &ChannelSpec,
    cfg: &Config,
    plugins: &crate::plugin::TenantPlugins,
) -> Result<Channel, SpecError> {
    if !KINDS.contains(&spec.kind.as_str()) {
        return Err(err(
            "kind",
            format!("`{}`: allowed kinds are {}", spec.kind, KINDS.join(", ")),
        ));
    }
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
    if let Some(allowed) = secret_keys(&spec.kind) {
        for k in spec.secrets.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(err(
                    format!("secrets.{k}"),
                    format!(
                        "kind `{}` takes the secrets {}",
                        spec.kind,
                        allowed.join(", ")
                    ),
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
    }
    if spec.kind != "plugin" && spec.plugin.is_some() {
        return Err(err("plugin", "only plugin channels name a plugin"));
    }
    if spec.kind != "plugin" && !spec.allowed_hosts.is_empty() {
        return Err(err(
            "allowedHosts",
            "only plugin channels take allowedHosts",
        ));
    }
    let public_only = !cfg.plugins.allow_private_networks;
    let secrets: Vec<Secret> = spec
        .secrets
        .values()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .collect();
    let sender: Arc<dyn Sender> = match spec.kind.as_str() {
        "smtp" => {
            let smtp: SmtpConfig = typed(spec, &[])?;
            smtp.validate("config")?;
            let (host, _) = smtp.host_port().map_err(|m| err("config.server", m))?;
            check_host(&host, "config.server", public_only)?;
            Arc::new(
                SmtpSender::new(&smtp, cfg.server.base_url.as_deref(), public_only)
                    .map_err(|m| err("config", m))?,
            )
        }
        "pushover" => {
            let p: PushoverConfig = typed(spec, &[])?;
            if p.api_token.is_empty() {
                return Err(err("secrets.api_token", "is required"));
            }
            check_url(&p.api_url, "config.api_url", public_only)?;
            if !(1..=120).contains(&p.timeout_seconds) {
                return Err(err("config.timeout_seconds", "allowed 1..=120"));
            }
            Arc::new(PushoverSender::new(&p, public_only).map_err(|m| err("config", m))?)
        }
        "url" => {
            #[derive(serde::Deserialize)]
            struct UrlChannel {
                url: String,
                signing_secret: Option<Secret>,
                #[serde(default = "ten")]
                timeout_seconds: u64,
            }
            fn ten() -> u64 {
                10
            }
            let u: UrlChannel = typed(spec, &[])?;
            check_url(&u.url, "config.url", public_only)?;
            if !(1..=120).contains(&u.timeout_seconds) {
                return Err(err("config.timeout_seconds", "allowed 1..=120"));
            }
            Arc::new(
                UrlSender::new(
                    &u.url,
                    cfg.server.base_url.as_deref().unwrap_or_default(),
                    u.signing_secret,
                    Duration::from_secs(u.timeout_seconds),
                    public_only,
                )
                .map_err(|m| err("config", m))?,
            )
        }
        "sms-http" => {
            let g: SmsGatewayConfig = typed(
                spec,
                &[
                    ("kind", Value::String("http".into())),
                    ("name", Value::String(name.to_string())),
                ],
            )?;
            g.validate("config", false)?;
            check_url(&g.url, "config.url", public_only)?;
            Arc::new(SmsHttpSender::new(&g, public_only).map_err(|m| err("config", m))?)
        }
        "sms-smtp" => {
            let mut smtp_part = spec.clone();
            let mut gw_part = spec.clone();
            let gw_keys = ["mailto", "subject", "body", "regexp"];
            smtp_part
                .config
                .retain(|k, _| !gw_keys.contains(&k.as_str()));
            gw_part.config.retain(|k, _| gw_keys.contains(&k.as_str()));
            gw_part.secrets.clear();
            for k in ["subject", "body"] {
                smtp_part.config.remove(k);
            }
            let smtp: SmtpConfig = typed(&smtp_part, &[])?;
            smtp.validate("config")?;
            let (host, _) = smtp.host_port().map_err(|m| err("config.server", m))?;
            check_host(&host, "config.server", public_only)?;
            let g: SmsGatewayConfig = typed(
                &gw_part,
                &[
                    ("kind", Value::String("smtp".into())),
                    ("name", Value::String(name.to_string())),
                ],
            )?;
            g.validate("config", true)?;
            let mailer = Mailer::new(&smtp, public_only).map_err(|m| err("config", m))?;
            Arc::new(
                SmsSmtpSender::new(mailer, &g.mailto, &g.subject, &g.body, &g.regexp)
                    .map_err(|m| err("config", m))?,
            )
        }
        _ => {
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
            let plugin = plugins.get(tenant, pname).ok_or_else(|| {
                err(
                    "plugin",
                    format!("no plugin named `{pname}`; upload it with PUT /plugins/{pname}"),
                )
            })?;
            let config: BTreeMap<String, String> = spec
                .config
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                    _ => Err(err(
                        format!("config.{k}"),
                        "plugin config values are strings, numbers or booleans",
                    )),
                })
                .collect::<Result<_, _>>()?;
            plugins
                .channel_sender(
                    plugin,
                    name.as_str(),
                    &config,
                    &spec.secrets,
                    &spec.allowed_hosts,
                )
                .map_err(|(f, m)| err(f, m))?
        }
    };
    let rule = match (spec.kind.as_str(), spec.send_to_type) {
        ("smtp", _) => RecipientRule::Email,
        (_, Some(t)) => RecipientRule::from_config(t, spec.send_to_regex.as_deref())
            .map_err(|m| err("sendToRegex", m))?,
        (_, None) => RecipientRule::Any,
    };
    if spec.send_to_type == Some(SendToType::Regex)
        && spec.send_to_regex.as_deref().is_none_or(str::is_empty)
    {
        return Err(err("sendToRegex", "is required when sendToType is regex"));
    }
    let fallback = match &spec.fallback {
        Some(f) if f == name.as_str() => {
            return Err(err("fallback", "a channel cannot fall back to itself"));
        }
        Some(f) => Some(ChannelName::parse(f).map_err(|m| err("fallback", m))?),
        None => None,
    };
    Ok(Channel {
        name: name.clone(),
        sender,
        rule,
        fallback,
        secrets,
    })
}

/// The stored form: config as JSON, secrets encrypted and bound to the row.
pub fn to_row(
    tenant: &str,
    name: &str,
    spec: &ChannelSpec,
    keys: &crate::crypto::Keys,
    created_at: i64,
    now: i64,
) -> crate::store::ChannelRow {
    let secret_json = serde_json::to_vec(&spec.secrets).unwrap_or_default();
    crate::store::ChannelRow {
        tenant: tenant.to_string(),
        name: name.to_string(),
        kind: spec.kind.clone(),
        config: Value::Object(spec.config.clone()).to_string(),
        secrets: Some(keys.seal(&format!("channel:{tenant}:{name}"), &secret_json)),
        secret_keys: serde_json::to_string(&spec.secrets.keys().collect::<Vec<_>>())
            .unwrap_or_default(),
        plugin: spec.plugin.clone(),
        allowed_hosts: serde_json::to_string(&spec.allowed_hosts).unwrap_or_default(),
        send_to_type: spec.send_to_type.map(|t| match t {
            SendToType::None => "none".to_string(),
            SendToType::Email => "email".to_string(),
            SendToType::Regex => "regex".to_string(),
        }),
        send_to_regex: spec.send_to_regex.clone(),
        fallback: spec.fallback.clone(),
        created_at,
        updated_at: now,
    }
}

pub fn from_row(
    row: &crate::store::ChannelRow,
    keys: &crate::crypto::Keys,
) -> Result<ChannelSpec, String> {
    let config: Map<String, Value> =
        serde_json::from_str(&row.config).map_err(|e| format!("config: {e}"))?;
    let secrets: BTreeMap<String, String> = match &row.secrets {
        Some(sealed) => {
            let plain = keys
                .open(&format!("channel:{}:{}", row.tenant, row.name), sealed)
                .map_err(|e| e.to_string())?;
            serde_json::from_slice(&plain).map_err(|e| format!("secrets: {e}"))?
        }
        None => BTreeMap::new(),
    };
    let send_to_type = match row.send_to_type.as_deref() {
        None => None,
        Some("email") => Some(SendToType::Email),
        Some("regex") => Some(SendToType::Regex),
        Some(_) => Some(SendToType::None),
    };
    Ok(ChannelSpec {
        kind: row.kind.clone(),
        config,
        secrets,
        plugin: row.plugin.clone(),
        allowed_hosts: serde_json::from_str(&row.allowed_hosts).unwrap_or_default(),
        send_to_type,
        send_to_regex: row.send_to_regex.clone(),
        fallback: row.fallback.clone(),
    })
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
    for row in store.channels(None).await? {
        let built = crate::domain::TenantName::parse(&row.tenant)
            .and_then(|t| ChannelName::parse(&row.name).map(|n| (t, n)))
            .and_then(|(t, n)| {
                let spec = from_row(&row, keys)?;
                build(t.as_str(), &n, &spec, cfg, plugins)
                    .map(|c| (t, c))
                    .map_err(|e| format!("{}: {}", e.field, e.message))
            });
        match built {
            Ok(pair) => out.push(pair),
            Err(e) => {
                tracing::warn!(tenant = %row.tenant, channel = %row.name, error = %e, "tenant channel not loaded")
            }
        }
    }
    Ok(out)
}
