//! Tenant channels: `PUT|GET|DELETE /channels/{name}`, `GET /channels`.
//! Secrets are write-only: answers show `"***"`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, TenantAccess};
use crate::config::SendToType;
use crate::delivery::tenant_channels::{self, ChannelSpec};
use crate::domain::ChannelName;
use crate::store::{ChannelRow, rfc3339};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutChannel {
    /// smtp | pushover | url | sms-http | sms-smtp | plugin
    kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    config: Map<String, Value>,
    /// Write-only; omitted on an update keeps the stored secrets.
    #[schema(value_type = Option<Object>)]
    secrets: Option<BTreeMap<String, String>>,
    plugin: Option<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    /// none | email | regex
    send_to_type: Option<String>,
    send_to_regex: Option<String>,
    fallback: Option<String>,
}

fn view_row(row: &ChannelRow) -> Value {
    let secret_names: Vec<String> = serde_json::from_str(&row.secret_keys).unwrap_or_default();
    let secrets: Map<String, Value> = secret_names
        .into_iter()
        .map(|k| (k, json!("***")))
        .collect();
    json!({
        "name": row.name,
        "kind": row.kind,
        "source": "api",
        "config": serde_json::from_str::<Value>(&row.config).unwrap_or(json!({})),
        "secrets": secrets,
        "plugin": row.plugin,
        "allowedHosts": serde_json::from_str::<Value>(&row.allowed_hosts).unwrap_or(json!([])),
        "sendToType": row.send_to_type,
        "sendToRegex": row.send_to_regex,
        "fallback": row.fallback,
        "createdAt": rfc3339(row.created_at),
        "updatedAt": rfc3339(row.updated_at),
    })
}

fn parse_name(name: &str) -> Result<ChannelName, ApiError> {
    ChannelName::parse(name).map_err(|m| ApiError::invalid_params("name", m))
}

#[derive(Deserialize)]
pub struct NameParam {
    name: String,
}

#[utoipa::path(put, path = "/t/{tenant}/api/v1/channels/{name}", tag = "channels",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Channel name")),
    request_body = PutChannel, security(("bearer" = [])),
    responses((status = 200, description = "{success, channel}"), (status = 400, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "A config-file channel has this name")))]
pub async fn put(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
    ApiJson(b): ApiJson<PutChannel>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_name(&p.name)?;
    if state.registry.is_file_channel(&access.tenant, &name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "error-conflict",
            format!("`{name}` is defined in the config file"),
        )
        .with_details(json!({ "field": "name" })));
    }
    let existing = state
        .store
        .channels(Some(access.tenant.as_str()))
        .await?
        .into_iter()
        .find(|c| c.name == name.as_str());
    let secrets = match (b.secrets, &existing) {
        (Some(s), _) => s,
        (None, Some(row)) => {
            tenant_channels::from_row(row, &state.keys)
                .map_err(ApiError::internal)?
                .secrets
        }
        (None, None) => BTreeMap::new(),
    };
    let send_to_type = match b.send_to_type.as_deref() {
        None => None,
        Some("none") => Some(SendToType::None),
        Some("email") => Some(SendToType::Email),
        Some("regex") => Some(SendToType::Regex),
        Some(_) => {
            return Err(ApiError::invalid_params(
                "sendToType",
                "sendToType must be none, email or regex",
            ));
        }
    };
    if let Some(f) = &b.fallback {
        let Some(first) = state.registry.get(&access.tenant, f) else {
            return Err(ApiError::invalid_params(
                "fallback",
                format!("no channel named `{f}`"),
            ));
        };
        // Follow the chain: it must not lead back here.
        let mut next = first.fallback.clone();
        let mut chain = vec![name.to_string(), f.clone()];
        while let Some(n) = next {
            chain.push(n.to_string());
            if n == name || chain.len() > 64 {
                return Err(ApiError::invalid_params(
                    "fallback",
                    format!("fallbacks would form a cycle: {}", chain.join(" → ")),
                ));
            }
            next = state
                .registry
                .get(&access.tenant, n.as_str())
                .and_then(|c| c.fallback.clone());
        }
    }
    let spec = ChannelSpec {
        kind: b.kind,
        config: b.config,
        secrets,
        plugin: b.plugin,
        allowed_hosts: b.allowed_hosts,
        send_to_type,
        send_to_regex: b.send_to_regex,
        fallback: b.fallback,
    };
    let channel = tenant_channels::build(
        access.tenant.as_str(),
        &name,
        &spec,
        &state.config,
        &state.plugins,
    )
    .map_err(|e| ApiError::invalid_params(&e.field, format!("`{}`: {}", e.field, e.message)))?;
    let now = state.clock.now_ms();
    let row = tenant_channels::to_row(
        access.tenant.as_str(),
        name.as_str(),
        &spec,
        &state.keys,
        existing.as_ref().map(|r| r.created_at).unwrap_or(now),
        now,
    );
    state.store.put_channel(&row).await?;
    state.registry.set_tenant_channel(&access.tenant, channel);
    state
        .store
        .audit(
            access.tenant.as_str(),
            "api",
            "channel.put",
            Some(name.as_str()),
            Some(&format!("kind={}", spec.kind)),
            now,
        )
        .await?;
    Ok(Json(json!({ "success": true, "channel": view_row(&row) })))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/channels", tag = "channels",
    params(("tenant" = String, Path, description = "Tenant name")), security(("bearer" = [])),
    responses((status = 200, description = "{success, channels:[…]}; secrets shown as \"***\"")))]
pub async fn list(
    State(state): State<AppState>,
    access: TenantAccess,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.channels(Some(access.tenant.as_str())).await?;
    let mut out: Vec<Value> = state
        .registry
        .list(&access.tenant)
        .iter()
        .filter(|c| state.registry.is_file_channel(&access.tenant, &c.name))
        .map(|c| json!({ "name": c.name, "kind": c.sender.kind(), "source": "config", "fallback": c.fallback }))
        .collect();
    out.extend(rows.iter().map(view_row));
    Ok(Json(json!({ "success": true, "channels": out })))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/channels/{name}", tag = "channels",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Channel name")),
    security(("bearer" = [])), responses((status = 200, description = "{success, channel}"), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_name(&p.name)?;
    if let Some(c) = state.registry.get(&access.tenant, name.as_str())
        && state.registry.is_file_channel(&access.tenant, &name)
    {
        return Ok(Json(
            json!({ "success": true, "channel": { "name": c.name, "kind": c.sender.kind(), "source": "config", "fallback": c.fallback } }),
        ));
    }
    let row = state
        .store
        .channels(Some(access.tenant.as_str()))
        .await?
        .into_iter()
        .find(|c| c.name == name.as_str())
        .ok_or_else(|| ApiError::not_found("No such channel"))?;
    Ok(Json(json!({ "success": true, "channel": view_row(&row) })))
}

#[utoipa::path(delete, path = "/t/{tenant}/api/v1/channels/{name}", tag = "channels",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Channel name")),
    security(("bearer" = [])), responses((status = 200, description = "Deleted"), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Another channel falls back to it, or it is a config-file channel")))]
pub async fn delete(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    let name = parse_name(&p.name)?;
    if state.registry.is_file_channel(&access.tenant, &name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "error-conflict",
            format!("`{name}` is defined in the config file"),
        ));
    }
    if let Some(user) = state
        .registry
        .list(&access.tenant)
        .iter()
        .find(|c| c.fallback.as_ref() == Some(&name))
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "error-conflict",
            format!("channel `{}` falls back to `{name}`", user.name),
        ));
    }
    if !state
        .store
        .delete_channel(access.tenant.as_str(), name.as_str())
        .await?
    {
        return Err(ApiError::not_found("No such channel"));
    }
    state.registry.remove_tenant_channel(&access.tenant, &name);
    state
        .store
        .audit(
            access.tenant.as_str(),
            "api",
            "channel.delete",
            Some(name.as_str()),
            None,
            state.clock.now_ms(),
        )
        .await?;
    Ok(Json(json!({ "success": true })))
}
