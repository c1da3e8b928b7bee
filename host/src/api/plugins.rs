//! Plugin upload: `PUT /plugins/{name}` with the component as the body
//! (`Content-Type: application/wasm`); `GET /plugins`, `GET|DELETE
//! /plugins/{name}`. Compilation runs off the request threads, time-bounded,
//! inside the runtime; the name never reaches a path.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::TenantAccess;
use super::error::{ApiError, ApiPath};
use crate::domain::ChannelName;
use crate::plugin::PluginError;
use crate::store::{PluginRow, rfc3339};

#[derive(Deserialize)]
pub struct NameParam {
    name: String,
}

fn view(p: &PluginRow) -> Value {
    json!({
        "name": p.name,
        "sha256": p.sha256,
        "size": p.size,
        "info": serde_json::from_str::<Value>(&p.info).unwrap_or(json!({})),
        "uploadedAt": rfc3339(p.uploaded_at),
    })
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "error-too-large",
        format!("The plugin is over {limit} bytes (plugins.max_upload_bytes)"),
    )
    .with_details(json!({ "maxBytes": limit }))
}

#[utoipa::path(put, path = "/t/{tenant}/api/v1/plugins/{name}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Plugin name")),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "A WebAssembly component of world postern:plugin/deliverer"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{success, plugin:{name, sha256, size, info:{name, version, description, configKeys}, uploadedAt}}"),
        (status = 400, body = super::deliveries::ErrorBody, description = "error-invalid-plugin: not wasm, a core module, wrong world, an ungranted import; details.reason"),
        (status = 413, body = super::deliveries::ErrorBody), (status = 415, body = super::deliveries::ErrorBody),
        (status = 429, body = super::deliveries::ErrorBody, description = "limits.tenant_max_plugins reached")))]
pub async fn put(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let name = ChannelName::parse(&p.name)
        .map_err(|m| ApiError::invalid_params("name", m.replace("channel", "plugin")))?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.split(';').next().map(str::trim) != Some("application/wasm") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "error-unsupported-media-type",
            "Expected Content-Type: application/wasm",
        ));
    }
    let limit = state.config.plugins.max_upload_bytes;
    // Refuse by the announced size before reading anything.
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(too_large(limit));
    }
    let existing = state.store.plugins(Some(access.tenant.as_str())).await?;
    let replacing = existing.iter().any(|r| r.name == name.as_str());
    if !replacing && existing.len() as u64 >= u64::from(state.config.limits.tenant_max_plugins) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "error-too-many-requests",
            format!(
                "The tenant has {} plugins, the most allowed (limits.tenant_max_plugins)",
                existing.len()
            ),
        )
        .with_details(json!({ "limit": state.config.limits.tenant_max_plugins }));
        e.retry_after = Some(3600);
        return Err(e);
    }
    let bytes = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large(limit)
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "error-invalid-params",
                    "Cannot read the request body",
                )
            }
        })?
        .to_bytes()
        .to_vec();
    let loaded = state
        .plugins
        .runtime()
        .load(bytes.clone())
        .await
        .map_err(|e| match e {
            PluginError::TooLarge { limit, .. } => too_large(limit),
            e if e.is_invalid_plugin() => ApiError::new(
                StatusCode::BAD_REQUEST,
                "error-invalid-plugin",
                format!("Not a valid plugin: {e}"),
            )
            .with_details(json!({ "reason": e.reason() })),
            e => ApiError::unavailable(format!("The plugin could not be compiled now: {e}")),
        })?;
    let now = state.clock.now_ms();
    let row = PluginRow {
        tenant: access.tenant.to_string(),
        name: name.to_string(),
        sha256: loaded.sha256.clone(),
        size: loaded.size as i64,
        info: serde_json::to_string(&loaded.info).unwrap_or_default(),
        wasm: bytes,
        uploaded_at: now,
    };
    state.store.put_plugin(&row).await?;
    state
        .plugins
        .set(access.tenant.as_str(), name.as_str(), loaded);
    // Channels of this plugin move to the new version; running deliveries finish on the old one.
    state.reload_tenant_channels().await?;
    state
        .store
        .audit(
            access.tenant.as_str(),
            "api",
            "plugin.upload",
            Some(name.as_str()),
            Some(&format!("sha256={} size={}", row.sha256, row.size)),
            now,
        )
        .await?;
    Ok(Json(json!({ "success": true, "plugin": view(&row) })))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/plugins", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name")), security(("bearer" = [])),
    responses((status = 200, description = "{success, plugins:[…]}")))]
pub async fn list(
    State(state): State<AppState>,
    access: TenantAccess,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.plugins(Some(access.tenant.as_str())).await?;
    Ok(Json(
        json!({ "success": true, "plugins": rows.iter().map(view).collect::<Vec<_>>() }),
    ))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/plugins/{name}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Plugin name")),
    security(("bearer" = [])), responses((status = 200, description = "{success, plugin}"), (status = 404, body = super::deliveries::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    let row = state
        .store
        .plugins(Some(access.tenant.as_str()))
        .await?
        .into_iter()
        .find(|r| r.name == p.name)
        .ok_or_else(|| ApiError::not_found("No such plugin"))?;
    Ok(Json(json!({ "success": true, "plugin": view(&row) })))
}

#[utoipa::path(delete, path = "/t/{tenant}/api/v1/plugins/{name}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Plugin name")),
    security(("bearer" = [])), responses((status = 200, description = "Deleted"), (status = 404, body = super::deliveries::ErrorBody),
        (status = 409, body = super::deliveries::ErrorBody, description = "A channel uses the plugin")))]
pub async fn delete(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    let users: Vec<String> = state
        .store
        .channels(Some(access.tenant.as_str()))
        .await?
        .into_iter()
        .filter(|c| c.plugin.as_deref() == Some(p.name.as_str()))
        .map(|c| c.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "error-conflict",
            format!("channels use this plugin: {}", users.join(", ")),
        )
        .with_details(json!({ "channels": users })));
    }
    if !state
        .store
        .delete_plugin(access.tenant.as_str(), &p.name)
        .await?
    {
        return Err(ApiError::not_found("No such plugin"));
    }
    state.reload_tenant_channels().await?;
    state
        .store
        .audit(
            access.tenant.as_str(),
            "api",
            "plugin.delete",
            Some(&p.name),
            None,
            state.clock.now_ms(),
        )
        .await?;
    Ok(Json(json!({ "success": true })))
}
