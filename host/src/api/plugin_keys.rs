//! The keys a tenant trusts to sign its plugins: `PUT|DELETE
//! /plugin-keys/{name}`, `GET /plugin-keys`, and whether its uploads must be
//! signed: `GET|PUT /plugin-policy`. The rules are `plugin::keys`'s.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, TenantAccess};
use crate::domain::ChannelName;
use crate::plugin::keys;
use crate::store::{PluginKeyRow, rfc3339};

#[derive(Deserialize)]
pub struct NameParam {
    name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutKey {
    /// `ed25519:<base64 of 32 bytes>`, as `postern plugin keygen` prints it.
    public_key: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutPolicy {
    /// Refuse this tenant's unsigned uploads (the operator's
    /// `[plugins] require_signature` holds whatever this says).
    require_signature: bool,
}

fn view(k: &PluginKeyRow) -> Value {
    json!({ "name": k.name, "keyId": k.key_id, "publicKey": k.public_key,
            "createdAt": rfc3339(k.created_at) })
}

#[utoipa::path(put, path = "/t/{tenant}/api/v1/plugin-keys/{name}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Key name")),
    request_body = PutKey, security(("bearer" = [])),
    responses((status = 200, description = "{success, key:{name, keyId, publicKey, createdAt}}"),
        (status = 400, body = super::error::ErrorBody, description = "error-invalid-params: details.field name or publicKey")))]
pub async fn put(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
    ApiJson(b): ApiJson<PutKey>,
) -> Result<Json<Value>, ApiError> {
    let name = ChannelName::parse(&p.name)
        .map_err(|m| ApiError::invalid_params("name", m.replace("channel", "key")))?;
    let now = state.clock.now_ms();
    let row = keys::key_row(access.tenant.as_str(), name.as_str(), &b.public_key, now)
        .map_err(|m| ApiError::invalid_params("publicKey", m))?;
    state.store.put_plugin_key(&row).await?;
    let detail = format!("keyId={}", row.key_id);
    state
        .store
        .audit(
            &row.tenant,
            "api",
            "plugin-key.put",
            Some(&row.name),
            Some(&detail),
            now,
        )
        .await?;
    Ok(Json(json!({ "success": true, "key": view(&row) })))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/plugin-keys", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name")), security(("bearer" = [])),
    responses((status = 200, description = "{success, keys:[{name, keyId, publicKey, createdAt}]}")))]
pub async fn list(
    State(state): State<AppState>,
    access: TenantAccess,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.plugin_keys(access.tenant.as_str()).await?;
    let keys: Vec<Value> = rows.iter().map(view).collect();
    Ok(Json(json!({ "success": true, "keys": keys })))
}

#[utoipa::path(delete, path = "/t/{tenant}/api/v1/plugin-keys/{name}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Key name")),
    security(("bearer" = [])), responses((status = 200, description = "Deleted; plugins it signed keep running"),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant.as_str();
    if !state.store.delete_plugin_key(tenant, &p.name).await? {
        return Err(ApiError::not_found("No such plugin key"));
    }
    let now = state.clock.now_ms();
    state
        .store
        .audit(tenant, "api", "plugin-key.delete", Some(&p.name), None, now)
        .await?;
    Ok(Json(json!({ "success": true })))
}

async fn policy_view(state: &AppState, tenant: &str) -> Result<Value, ApiError> {
    let own = keys::tenant_requires(state.store.as_ref(), tenant).await?;
    let server = state.config.plugins.require_signature;
    Ok(
        json!({ "requireSignature": own || server, "tenantRequires": own, "serverRequires": server }),
    )
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/plugin-policy", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name")), security(("bearer" = [])),
    responses((status = 200, description = "{success, policy:{requireSignature, tenantRequires, serverRequires}}")))]
pub async fn get_policy(
    State(state): State<AppState>,
    access: TenantAccess,
) -> Result<Json<Value>, ApiError> {
    let policy = policy_view(&state, access.tenant.as_str()).await?;
    Ok(Json(json!({ "success": true, "policy": policy })))
}

#[utoipa::path(put, path = "/t/{tenant}/api/v1/plugin-policy", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name")), request_body = PutPolicy,
    security(("bearer" = [])), responses((status = 200, description = "{success, policy}")))]
pub async fn put_policy(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiJson(b): ApiJson<PutPolicy>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant.as_str();
    keys::set_tenant_requires(state.store.as_ref(), tenant, b.require_signature).await?;
    let now = state.clock.now_ms();
    let detail = format!("requireSignature={}", b.require_signature);
    state
        .store
        .audit(tenant, "api", "plugin-policy.put", None, Some(&detail), now)
        .await?;
    let policy = policy_view(&state, tenant).await?;
    Ok(Json(json!({ "success": true, "policy": policy })))
}
