//! A tenant channel's kind-specific settings (the `config`, `secrets`,
//! `plugin` and `allowedHosts` of `PUT /channels/{name}`), the checks every
//! kind uses on them, and [`KindAdapter`], what each kind folder implements.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::recipient::RecipientRule;
use super::{BuildContext, Sender};
use crate::config::check::ConfigError;
use crate::domain::ChannelName;

/// The part of a tenant's channel its kind reads.
#[derive(Debug, Clone, Default)]
pub struct KindSpec {
    pub config: Map<String, Value>,
    pub secrets: BTreeMap<String, String>,
    pub plugin: Option<String>,
    pub allowed_hosts: Vec<String>,
}

/// A rejected spec, naming the field (`config.server`, `secrets.api_token`, …).
#[derive(Debug)]
pub struct SpecError {
    pub field: String,
    pub message: String,
    /// Line and column in a template, when a template is to blame.
    pub position: Option<(usize, usize)>,
}

pub fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
        position: None,
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

impl KindSpec {
    /// `config` + `secrets` (+ `extra`) as a kind's config struct; keys the
    /// struct does not know are errors naming `kind`.
    pub fn typed<T: DeserializeOwned>(
        &self,
        kind: &str,
        extra: &[(&str, Value)],
    ) -> Result<T, SpecError> {
        let mut merged = self.config.clone();
        for (k, v) in &self.secrets {
            merged.insert(k.clone(), Value::String(v.clone()));
        }
        for (k, v) in extra {
            merged.insert((*k).to_string(), v.clone());
        }
        let mut unknown = Vec::new();
        let t: T =
            serde_ignored::deserialize(Value::Object(merged), |p| unknown.push(p.to_string()))
                .map_err(|e| err("config", e.to_string()))?;
        if let Some(k) = unknown.first() {
            return Err(err(
                format!("config.{k}"),
                format!("unknown key `{k}` for kind `{kind}`"),
            ));
        }
        Ok(t)
    }
}

/// A host a tenant channel dials must be public unless private networks are allowed.
pub fn check_host(host: &str, field: &str, public_only: bool) -> Result<(), SpecError> {
    if public_only {
        crate::netguard::check_literal(host).map_err(|m| err(field, m))?;
    }
    Ok(())
}

/// A tenant channel's URL: https (plain http only where private networks
/// are allowed) to a host [`check_host`] accepts.
pub fn check_url(url: &str, field: &str, public_only: bool) -> Result<(), SpecError> {
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

/// `config.timeout_seconds` of a tenant's HTTP channel.
pub fn check_timeout(seconds: u64) -> Result<(), SpecError> {
    if (1..=120).contains(&seconds) {
        Ok(())
    } else {
        Err(err("config.timeout_seconds", "allowed 1..=120"))
    }
}

/// What a tenant channel's sender is built with.
pub struct TenantContext<'a> {
    pub tenant: &'a str,
    pub name: &'a ChannelName,
    pub build: BuildContext<'a>,
    pub plugins: &'a crate::plugin::TenantPlugins,
}

/// What a channel kind's folder gives the tenant path; `ChannelKind`
/// (`delivery/kind.rs`) maps each kind onto one.
pub trait KindAdapter: Sync {
    /// The wire name: `smtp`, `sms-http`, …
    fn name(&self) -> &'static str;

    /// The secret names the kind takes; `None` takes any (plugins).
    fn secret_keys(&self) -> Option<&'static [&'static str]>;

    /// Whether the kind runs an uploaded plugin (`plugin`, `allowedHosts`).
    fn runs_plugin(&self) -> bool {
        false
    }

    /// A recipient rule the kind always applies, whatever `sendToType` says.
    fn forced_rule(&self) -> Option<RecipientRule> {
        None
    }

    /// Checks the spec and builds the sender; every kind-specific check a
    /// tenant can fail happens here.
    fn sender(
        &self,
        spec: &KindSpec,
        ctx: &TenantContext<'_>,
    ) -> Result<Arc<dyn Sender>, SpecError>;
}

impl SpecError {
    /// An unknown `kind`.
    pub fn kind(message: String) -> Self {
        err("kind", message)
    }
}
