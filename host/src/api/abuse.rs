//! Abuse controls a tenant integration operates with its key: lifting a
//! second-factor lock (`users.2fa.unlock`, `verifications/unlock`) and the SMS-pumping guard's
//! blocked prefixes (`GET /fraud`, `DELETE /fraud/{prefix}`); and the
//! `/metrics` gauges read from the store (every host's locks and blocks).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, TenantAccess};
use super::users::{UserRef, find_user};
use super::{AppState, success};
use crate::config::fraud::is_e164_prefix;
use crate::domain::Method;
use crate::store::{FlaggedPrefix, rfc3339};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Unlock {
    user_id: Option<String>,
    username: Option<String>,
    /// One method to unlock (`email`, `totp`, a channel name, `password`);
    /// absent: all of the user's methods.
    method: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.unlock", tag = "users",
    params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")),
    request_body = Unlock, security(("bearer" = [])),
    responses(
        (status = 200, description = "{success, unlocked}: how many of the named methods were locked; their failure counts start again"),
        (status = 400, body = super::error::ErrorBody, description = "Neither userId nor username, the two name different users, or a bad method"),
        (status = 401, body = super::error::ErrorBody, description = "No or bad tenant key"),
        (status = 404, body = super::error::ErrorBody, description = "No such user or tenant"),
        (status = 413, body = super::error::ErrorBody, description = "Body over 1 MiB"),
        (status = 415, body = super::error::ErrorBody, description = "Not application/json")))]
/// Clears the consecutive-failure count (and lock) of a user's method, or
/// of all of them.
pub async fn unlock(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiJson(b): ApiJson<Unlock>,
) -> Result<Json<Value>, ApiError> {
    let who = UserRef::parse(b.user_id, b.username)?;
    let method = b
        .method
        .filter(|m| !m.is_empty())
        .map(|m| Method::parse(&m).map_err(|e| ApiError::invalid_params("method", e)))
        .transpose()?;
    let user = find_user(&state, &access.tenant, &who).await?;
    let unlocked = state.twofa.unlock(&user, method.as_ref()).await?;
    Ok(success(json!({ "unlocked": unlocked })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockDestination {
    to: String,
    channel: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/verifications/unlock", tag = "verify",
    params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")),
    request_body = UnlockDestination, security(("bearer" = [])),
    responses(
        (status = 200, description = "{success, unlocked}: whether the destination was locked; its failure count starts again"),
        (status = 400, body = super::error::ErrorBody, description = "A missing field"),
        (status = 401, body = super::error::ErrorBody, description = "No or bad tenant key"),
        (status = 404, body = super::error::ErrorBody, description = "No such tenant"),
        (status = 413, body = super::error::ErrorBody, description = "Body over 1 MiB"),
        (status = 415, body = super::error::ErrorBody, description = "Not application/json")))]
/// Clears the consecutive-failure count (and lock) of a Verify destination
/// (postern addition: the Verify counterpart of `users.2fa.unlock`).
pub async fn unlock_destination(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiJson(b): ApiJson<UnlockDestination>,
) -> Result<Json<Value>, ApiError> {
    let unlocked = state
        .twofa
        .unlock_destination(&access.tenant, &b.channel, &b.to)
        .await?;
    Ok(success(json!({ "unlocked": unlocked })))
}

fn prefix_json(p: &FlaggedPrefix) -> Value {
    let conversion = if p.sends == 0 {
        0.0
    } else {
        (p.checks as f64 * 1000.0 / p.sends as f64).round() / 10.0
    };
    json!({
        "prefix": p.prefix,
        "country": p.country,
        "mode": if p.blocked { "blocked" } else { "monitor" },
        "sends": p.sends,
        "checks": p.checks,
        "conversionPercent": conversion,
        "since": rfc3339(p.since),
    })
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/fraud", tag = "fraud",
    params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{success, prefixes:[{prefix, country, mode: blocked | monitor, sends, checks, conversionPercent, since}]}: the window's figures when the guard flagged each"),
        (status = 401, body = super::error::ErrorBody, description = "No or bad tenant key"),
        (status = 404, body = super::error::ErrorBody, description = "No such tenant")))]
/// The prefixes the pumping guard blocks (or, in monitor mode, reports).
pub async fn list(
    State(state): State<AppState>,
    access: TenantAccess,
) -> Result<Json<Value>, ApiError> {
    let flagged = state.twofa.flagged_prefixes(&access.tenant).await?;
    let prefixes: Vec<Value> = flagged.iter().map(prefix_json).collect();
    Ok(success(json!({ "prefixes": prefixes })))
}

#[derive(Deserialize)]
pub struct PrefixParam {
    prefix: String,
}

#[utoipa::path(delete, path = "/t/{tenant}/api/v1/fraud/{prefix}", tag = "fraud",
    params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant"),
        ("prefix" = String, Path, description = "The prefix as GET /fraud shows it, e.g. +44791 (or %2B44791)", pattern = r"^\+[0-9]{1,15}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unblocked; the prefix's figures start afresh"),
        (status = 400, body = super::error::ErrorBody, description = "Not a prefix (`+` and 1 to 15 digits)"),
        (status = 401, body = super::error::ErrorBody, description = "No or bad tenant key"),
        (status = 404, body = super::error::ErrorBody, description = "The prefix is not blocked or reported, or no such tenant")))]
/// Unblocks a prefix.
pub async fn unblock(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<PrefixParam>,
) -> Result<Json<Value>, ApiError> {
    if !is_e164_prefix(&p.prefix) {
        return Err(ApiError::invalid_params(
            "prefix",
            "a prefix is `+` and 1 to 15 digits, e.g. +44791",
        ));
    }
    state
        .twofa
        .unblock_prefix(&access.tenant, &p.prefix)
        .await?;
    Ok(success(json!({})))
}

/// Sets the store-wide gauges before `/metrics` renders: locks and blocked
/// prefixes of every host. A store error leaves them as they were.
pub async fn refresh_gauges(state: &AppState) {
    let now = state.clock.now_ms();
    let m = &state.metrics.abuse;
    match state.store.locked_by_tenant(now).await {
        Ok(rows) => {
            m.twofa_locked.reset();
            for (tenant, n) in rows {
                m.twofa_locked
                    .with_label_values(&[tenant.as_str()])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the locked second factors"),
    }
    match state.store.blocked_prefixes_by_tenant().await {
        Ok(rows) => {
            m.fraud_blocked_prefixes.reset();
            for (tenant, n) in rows {
                m.fraud_blocked_prefixes
                    .with_label_values(&[tenant.as_str()])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the blocked prefixes"),
    }
}
