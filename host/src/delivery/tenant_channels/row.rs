//! The stored form of a tenant channel: config as JSON, secrets encrypted
//! and bound to the row (`channel:<tenant>:<name>`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ChannelSpec;
use crate::crypto::Keys;
use crate::delivery::kind::ChannelKind;
use crate::delivery::recipient::SendToType;
use crate::delivery::spec::KindSpec;
use crate::store::ChannelRow;

fn aad(tenant: &str, name: &str) -> String {
    format!("channel:{tenant}:{name}")
}

pub fn to_row(
    tenant: &str,
    name: &str,
    spec: &ChannelSpec,
    keys: &Keys,
    created_at: i64,
    now: i64,
) -> ChannelRow {
    let s = &spec.settings;
    let secret_json = serde_json::to_vec(&s.secrets).unwrap_or_default();
    ChannelRow {
        tenant: tenant.to_string(),
        name: name.to_string(),
        kind: spec.kind.as_str().to_string(),
        config: Value::Object(s.config.clone()).to_string(),
        secrets: Some(keys.seal(&aad(tenant, name), &secret_json)),
        secret_keys: serde_json::to_string(&s.secrets.keys().collect::<Vec<_>>())
            .unwrap_or_default(),
        plugin: s.plugin.clone(),
        allowed_hosts: serde_json::to_string(&s.allowed_hosts).unwrap_or_default(),
        send_to_type: spec.send_to_type.map(|t| t.as_str().to_string()),
        send_to_regex: spec.send_to_regex.clone(),
        fallback: spec.fallback.clone(),
        created_at,
        updated_at: now,
        templates: (!spec.templates.is_empty())
            .then(|| serde_json::to_string(&spec.templates).unwrap_or_default()),
    }
}

/// The secrets of a stored row, decrypted.
pub fn secrets(row: &ChannelRow, keys: &Keys) -> Result<BTreeMap<String, String>, String> {
    match &row.secrets {
        Some(sealed) => {
            let plain = keys
                .open(&aad(&row.tenant, &row.name), sealed)
                .map_err(|e| e.to_string())?;
            serde_json::from_slice(&plain).map_err(|e| format!("secrets: {e}"))
        }
        None => Ok(BTreeMap::new()),
    }
}

pub fn from_row(row: &ChannelRow, keys: &Keys) -> Result<ChannelSpec, String> {
    let config: Map<String, Value> =
        serde_json::from_str(&row.config).map_err(|e| format!("config: {e}"))?;
    let secrets = secrets(row, keys)?;
    let send_to_type = match row.send_to_type.as_deref() {
        None => None,
        Some("email") => Some(SendToType::Email),
        Some("regex") => Some(SendToType::Regex),
        Some(_) => Some(SendToType::None),
    };
    Ok(ChannelSpec {
        kind: ChannelKind::parse(&row.kind).map_err(|m| format!("kind: {m}"))?,
        settings: KindSpec {
            config,
            secrets,
            plugin: row.plugin.clone(),
            allowed_hosts: serde_json::from_str(&row.allowed_hosts).unwrap_or_default(),
        },
        send_to_type,
        send_to_regex: row.send_to_regex.clone(),
        fallback: row.fallback.clone(),
        templates: match &row.templates {
            Some(t) => serde_json::from_str(t).map_err(|e| format!("templates: {e}"))?,
            None => Default::default(),
        },
    })
}
