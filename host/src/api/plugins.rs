//! Plugin upload: `PUT /plugins/{name}` with the component as the body
//! (`Content-Type: application/wasm`; `?canary=N` stages it, see
//! `plugin_rollout`); `GET /plugins`, `GET|DELETE /plugins/{name}`. The upload rules (size, quota, compile, version swap)
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
use super::plugin_rollout::{self, NameParam};
use crate::plugin::rollout::CanaryPercent;
use crate::plugin::upload::{Offer, Uploads};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    /// `permissions`: accept a version that can do more than the live one.
    accept: Option<String>,
    /// `N`: stage the upload beside the live version for N % of deliveries.
    canary: Option<String>,
}

/// The header a detached signature travels in.
const SIGNATURE_HEADER: &str = "x-postern-plugin-signature";

#[utoipa::path(put, path = "/t/{tenant}/api/v1/plugins/{name}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Plugin name"),
        ("accept" = Option<String>, Query, description = "`permissions`: accept a version that adds imports or secret keys"),
        ("canary" = Option<u8>, Query, minimum = 1, maximum = 100, description = "Stage the upload as a canary: the live version stays, the new one takes this percent of the plugin's deliveries (by delivery id) until promoted or rolled back"),
        ("X-Postern-Plugin-Signature" = Option<String>, Header, description = "Detached signature `ed25519:<keyId>:<base64>` (postern plugin sign); required with require_signature")),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "A WebAssembly component of world postern:plugin/deliverer"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{success, plugin:{name, sha256, size, info:{name, version, description, configKeys}, signature:{keyId, signature}|null, permissions:{imports, outboundHttp, clocks, random, configKeys, secretKeys}, uploadedAt, rollout:{state: canary|promoted|rolled_back, percent, sha256, stableSha256, size, info, signature, permissions, reason, startedAt, endedAt, counts:{canary:{deliveries, failed}, stable:{…}}, window, marginPercent}|null}}; with ?canary the live version's fields and the new one under rollout"),
        (status = 400, body = super::error::ErrorBody, description = "error-invalid-plugin: not wasm, a core module, wrong world, an ungranted import; or unsigned / untrusted-key / bad-signature / malformed-signature; details.reason. error-invalid-params: accept or canary (1..=100) malformed"),
        (status = 401, body = super::error::ErrorBody, description = "No or bad tenant key"),
        (status = 409, body = super::error::ErrorBody, description = "error-conflict: the new version adds imports or secret keys (details:{addedImports, addedSecretKeys, outboundHttp}; repeat with ?accept=permissions); a canary is live (promote or roll back first); ?canary without a live version, or of the live version itself"),
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
    let canary = q
        .canary
        .as_deref()
        .map(CanaryPercent::parse)
        .transpose()
        .map_err(|m| ApiError::invalid_params("canary", m))?;
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let offer = Offer {
        tenant: &access.tenant,
        name: &p.name,
        content_type: text(header::CONTENT_TYPE),
        announced_len: text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        signature: text(header::HeaderName::from_static(SIGNATURE_HEADER)),
        accept_permissions,
        canary,
    };
    let uploads = Uploads {
        store: state.store.as_ref(),
        clock: state.clock.as_ref(),
        plugins: &state.plugins,
        config: &state.config.plugins,
        max_plugins: state.config.limits.tenant_max_plugins,
    };
    uploads
        .put(offer, body, state.reload_tenant_channels())
        .await?;
    plugin_rollout::answer(&state, access.tenant.as_str(), &p.name).await
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/plugins", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name")), security(("bearer" = [])),
    responses((status = 200, description = "{success, plugins:[…]}")))]
pub async fn list(
    State(state): State<AppState>,
    access: TenantAccess,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.plugins(Some(access.tenant.as_str())).await?;
    let plugins = plugin_rollout::views(&state, &rows).await?;
    Ok(Json(json!({ "success": true, "plugins": plugins })))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/plugins/{name}", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Plugin name")),
    security(("bearer" = [])), responses((status = 200, description = "{success, plugin}"), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    plugin_rollout::answer(&state, access.tenant.as_str(), &p.name).await
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
