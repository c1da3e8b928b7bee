//! Plugin upload: `PUT /plugins/{name}` with the component as the body
//! (`Content-Type: application/wasm`); `GET /plugins`, `GET|DELETE
//! /plugins/{name}`. The upload rules (size, quota, compile, version swap)
//! are `plugin::upload`'s; this file speaks HTTP. The name never reaches a path.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, TenantAccess};
use crate::plugin::permissions::Permissions;
use crate::plugin::upload::{Offer, Uploads};
use crate::store::{PluginRow, rfc3339};

#[derive(Deserialize)]
pub struct NameParam {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    /// `permissions`: accept a version that can do more than the live one.
    accept: Option<String>,
}

/// The header a detached signature travels in.
const SIGNATURE_HEADER: &str = "x-postern-plugin-signature";

fn view(p: &PluginRow) -> Value {
    let signature = match (&p.key_id, &p.signature) {
        (Some(key_id), Some(sig)) => json!({ "keyId": key_id, "signature": sig }),
        _ => Value::Null,
    };
    json!({
        "name": p.name,
        "sha256": p.sha256,
        "size": p.size,
        "info": serde_json::from_str::<Value>(&p.info).unwrap_or(json!({})),
        "signature": signature,
        "permissions": Permissions::from_stored(&p.imports, &p.info),
        "uploadedAt": rfc3339(p.uploaded_at),
    })
}

#[utoipa::path(put, path = "/t/{tenant}/api/v1/plugins/{name}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Plugin name"),
        ("accept" = Option<String>, Query, description = "`permissions`: accept a version that adds imports or secret keys"),
        ("X-Postern-Plugin-Signature" = Option<String>, Header, description = "Detached signature `ed25519:<keyId>:<base64>` (postern plugin sign); required with require_signature")),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "A WebAssembly component of world postern:plugin/deliverer"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{success, plugin:{name, sha256, size, info:{name, version, description, configKeys}, signature:{keyId, signature}|null, permissions:{imports, outboundHttp, clocks, random, configKeys, secretKeys}, uploadedAt}}"),
        (status = 400, body = super::error::ErrorBody, description = "error-invalid-plugin: not wasm, a core module, wrong world, an ungranted import; or unsigned / untrusted-key / bad-signature / malformed-signature; details.reason"),
        (status = 409, body = super::error::ErrorBody, description = "error-conflict: the new version adds imports or secret keys; details:{addedImports, addedSecretKeys, outboundHttp}; repeat with ?accept=permissions"),
        (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody),
        (status = 429, body = super::error::ErrorBody, description = "limits.tenant_max_plugins reached")))]
pub async fn put(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
    ApiQuery(q): ApiQuery<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let accept_permissions = match q.accept.as_deref() {
        None => false,
        Some("permissions") => true,
        Some(_) => {
            return Err(ApiError::invalid_params(
                "accept",
                "accept=permissions is the only value",
            ));
        }
    };
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let offer = Offer {
        tenant: &access.tenant,
        name: &p.name,
        content_type: text(header::CONTENT_TYPE),
        announced_len: text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        signature: text(header::HeaderName::from_static(SIGNATURE_HEADER)),
        accept_permissions,
    };
    let uploads = Uploads {
        store: state.store.as_ref(),
        clock: state.clock.as_ref(),
        plugins: &state.plugins,
        config: &state.config.plugins,
        max_plugins: state.config.limits.tenant_max_plugins,
    };
    let row = uploads
        .put(offer, body, state.reload_tenant_channels())
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
    security(("bearer" = [])), responses((status = 200, description = "{success, plugin}"), (status = 404, body = super::error::ErrorBody)))]
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
    security(("bearer" = [])), responses((status = 200, description = "Deleted"), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "A channel uses the plugin")))]
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
        return Err(
            ApiError::conflict(format!("channels use this plugin: {}", users.join(", ")))
                .with_details(json!({ "channels": users })),
        );
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
