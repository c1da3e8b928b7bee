//! Tenant channels: `PUT|GET|DELETE /channels/{name}`, `GET /channels`.
//! Secrets are write-only: answers show `"***"`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, TenantAccess};
use crate::delivery::tenant_channels::save::{ChannelPut, TenantChannels};
use crate::domain::ChannelName;
use crate::messages::TemplatesSpec;
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
    /// The channel's own messages: `{defaultLocale?, text?, subject?, body?,
    /// html?: {<BCP 47 locale>: <MiniJinja template>}, webotp?}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    templates: TemplatesSpec,
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
        "templates": row.templates.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()).unwrap_or(json!({})),
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
    let put = ChannelPut {
        kind: b.kind,
        config: b.config,
        secrets: b.secrets,
        plugin: b.plugin,
        allowed_hosts: b.allowed_hosts,
        send_to_type: b.send_to_type,
        send_to_regex: b.send_to_regex,
        fallback: b.fallback,
        templates: b.templates,
    };
    let row = channels(&state).save(&access.tenant, &p.name, put).await?;
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
    channels(&state).remove(&access.tenant, &p.name).await?;
    Ok(Json(json!({ "success": true })))
}

fn channels(state: &AppState) -> TenantChannels<'_> {
    TenantChannels {
        store: state.store.as_ref(),
        keys: &state.keys,
        registry: &state.registry,
        config: &state.config,
        plugins: &state.plugins,
        clock: state.clock.as_ref(),
    }
}
