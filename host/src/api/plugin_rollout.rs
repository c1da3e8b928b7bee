//! Staged rollout over HTTP: `POST /plugins/{name}/promote | /rollback`;
//! how a plugin shows in answers (with its `rollout` object); the rollout
//! refusals.
//! The rules are `plugin::rollout`'s; this file speaks HTTP.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, TenantAccess};
use crate::plugin::permissions::Permissions;
use crate::plugin::rollout::{Counts, RolloutError, Rollouts};
use crate::store::{PluginRow, RolloutRow, RolloutWindow, StoreError, rfc3339};

impl From<RolloutError> for ApiError {
    fn from(e: RolloutError) -> Self {
        match e {
            RolloutError::NoStable => ApiError::conflict(
                "There is no live version to stage a canary beside; upload without ?canary first",
            ),
            RolloutError::SameVersion => {
                ApiError::conflict("The canary is the live version already")
            }
            RolloutError::Live { sha256 } => {
                ApiError::conflict("A canary of this plugin is live; promote or roll it back first")
                    .with_details(json!({ "canarySha256": sha256 }))
            }
            RolloutError::NotLive => {
                ApiError::conflict("The plugin has no live canary to promote or roll back")
            }
            RolloutError::NotFound => ApiError::not_found("No such plugin"),
            RolloutError::Store(e) => ApiError::internal(e),
        }
    }
}

#[derive(Deserialize)]
pub struct NameParam {
    pub(super) name: String,
}

/// A plugin row as answers show it (`rollout` filled in by [`views`]).
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
        "rollout": Value::Null,
    })
}

fn window(w: RolloutWindow) -> Value {
    json!({ "deliveries": w.deliveries, "failed": w.failed })
}

/// A rollout as answers show it: the candidate, where it stands, and the
/// windows the rollback rule reads.
pub fn rollout_view(r: &RolloutRow, counts: Counts, rollouts: &Rollouts) -> Value {
    let c = &r.candidate;
    let settings = rollouts.settings();
    let signature = match (&c.key_id, &c.signature) {
        (Some(key_id), Some(sig)) => json!({ "keyId": key_id, "signature": sig }),
        _ => Value::Null,
    };
    json!({
        "state": r.state.as_str(),
        "percent": r.percent,
        "sha256": c.sha256,
        "stableSha256": r.stable_sha256,
        "size": c.size,
        "info": serde_json::from_str::<Value>(&c.info).unwrap_or(json!({})),
        "signature": signature,
        "permissions": Permissions::from_stored(&c.imports, &c.info),
        "reason": r.reason,
        "startedAt": rfc3339(c.uploaded_at),
        "endedAt": r.ended_at.map(rfc3339),
        "counts": { "canary": window(counts.canary), "stable": window(counts.stable) },
        "window": settings.window,
        "marginPercent": settings.margin_percent,
    })
}

/// Plugin rows as answers show them, each with its rollout (or `null`).
pub async fn views(state: &AppState, plugins: &[PluginRow]) -> Result<Vec<Value>, StoreError> {
    let Some(first) = plugins.first() else {
        return Ok(Vec::new());
    };
    let rollouts = state.plugins.rollouts();
    let rows = state.store.rollouts(&first.tenant).await?;
    let mut out = Vec::with_capacity(plugins.len());
    for p in plugins {
        let mut v = view(p);
        if let Some(r) = rows.iter().find(|r| r.candidate.name == p.name) {
            v["rollout"] = rollout_view(r, rollouts.counts(r).await?, rollouts);
        }
        out.push(v);
    }
    Ok(out)
}

/// `{success, plugin}` for one of the tenant's plugins, with its rollout.
pub async fn answer(state: &AppState, tenant: &str, name: &str) -> Result<Json<Value>, ApiError> {
    let row = state
        .store
        .plugins(Some(tenant))
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::not_found("No such plugin"))?;
    let plugin = views(state, std::slice::from_ref(&row)).await?.remove(0);
    Ok(Json(json!({ "success": true, "plugin": plugin })))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/plugins/{name}/promote", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Plugin name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The canary is the live version: {success, plugin:{…, sha256 (the canary's), rollout:{state: promoted, percent, sha256, stableSha256, counts, endedAt, …}}}"),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody, description = "No or bad tenant key"),
        (status = 404, body = super::error::ErrorBody, description = "No such plugin"),
        (status = 409, body = super::error::ErrorBody, description = "error-conflict: the plugin has no live canary")))]
pub async fn promote(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant.as_str();
    state.plugins.rollouts().promote(tenant, &p.name).await?;
    state.reload_tenant_channels().await?;
    answer(&state, tenant, &p.name).await
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/plugins/{name}/rollback", tag = "plugins",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Plugin name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The canary is withdrawn, the live version takes every delivery: {success, plugin:{…, rollout:{state: rolled_back, reason, …}}}"),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody, description = "No or bad tenant key"),
        (status = 404, body = super::error::ErrorBody, description = "No such plugin"),
        (status = 409, body = super::error::ErrorBody, description = "error-conflict: the plugin has no live canary")))]
pub async fn rollback(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    let tenant = access.tenant.as_str();
    let rollouts = state.plugins.rollouts();
    rollouts.roll_back_by_hand(tenant, &p.name).await?;
    answer(&state, tenant, &p.name).await
}
