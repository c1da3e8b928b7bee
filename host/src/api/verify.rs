//! Server-to-server verification (Twilio Verify style).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ClientInfo, TenantAccess};
use crate::messages::Locale;
use crate::store::rfc3339;
use crate::twofa::Verification;

fn view(v: &Verification) -> Value {
    json!({
        "id": v.id,
        "status": v.status,
        "channel": v.channel,
        "to": v.to,
        "username": v.username,
        "expiresAt": rfc3339(v.expires_at),
        "createdAt": rfc3339(v.created_at),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Start {
    username: Option<String>,
    to: Option<String>,
    channel: Option<String>,
    /// BCP 47 language of the message; wins over the user's `language` and
    /// the request's `Accept-Language`.
    locale: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/verifications", tag = "verify", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = Start, security(("bearer" = [])), responses((status = 201, description = "{success, verification:{id, status:\"pending\", channel, to, expiresAt}}"), (status = 502, body = super::error::ErrorBody), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
/// `POST /verifications {username | (to + channel)}` → 201.
pub async fn start(
    State(state): State<AppState>,
    access: TenantAccess,
    ClientInfo(caller): ClientInfo,
    ApiJson(b): ApiJson<Start>,
) -> Result<Response, ApiError> {
    let locale = b
        .locale
        .as_deref()
        .map(Locale::parse)
        .transpose()
        .map_err(|m| ApiError::invalid_params("locale", m))?
        .map(|l| l.to_string());
    let locale = locale.as_deref();
    // An empty field counts as missing, as everywhere in the API.
    let given = |v: Option<String>| v.filter(|s| !s.is_empty());
    let v = match (given(b.username), given(b.to), given(b.channel)) {
        (Some(u), None, None) => {
            state
                .twofa
                .start_user_verification(&access.tenant, &u, locale, &caller)
                .await?
        }
        (None, Some(to), Some(ch)) => {
            state
                .twofa
                .start_verification(&access.tenant, &ch, &to, None, locale, &caller)
                .await?
        }
        (None, Some(_), None) => {
            return Err(ApiError::invalid_params(
                "channel",
                "channel is required with to",
            ));
        }
        (None, None, Some(_)) => {
            return Err(ApiError::invalid_params(
                "to",
                "to is required with channel",
            ));
        }
        _ => {
            return Err(ApiError::invalid_params(
                "username",
                "give either username, or to and channel",
            ));
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "success": true, "verification": view(&v) })),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    id: String,
    code: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/verifications/check", tag = "verify", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = Check, security(("bearer" = [])), responses((status = 200, description = "{success, verification:{status: approved|pending|expired|max_attempts_reached}}"), (status = 404, body = super::error::ErrorBody, description = "No longer pending"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
/// `POST /verifications/check {id, code}`: approved | pending | expired |
/// max_attempts_reached; a verification no longer pending is 404.
pub async fn check(
    State(state): State<AppState>,
    access: TenantAccess,
    ClientInfo(caller): ClientInfo,
    ApiJson(b): ApiJson<Check>,
) -> Result<Json<Value>, ApiError> {
    let v = state
        .twofa
        .check_verification(&access.tenant, &b.id, &b.code, &caller)
        .await?;
    Ok(Json(json!({ "success": true, "verification": view(&v) })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct IdParam {
    id: String,
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/verifications/{id}", tag = "verify", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant"), ("id" = String, Path, description = "Verification id")), security(("bearer" = [])), responses((status = 200, description = "{success, verification}"), (status = 404, body = super::error::ErrorBody), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn get_one(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<IdParam>,
) -> Result<Json<Value>, ApiError> {
    let v = state.twofa.verification(&access.tenant, &p.id).await?;
    Ok(Json(json!({ "success": true, "verification": view(&v) })))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/verifications/{id}/cancel", tag = "verify", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant"), ("id" = String, Path, description = "Verification id")), security(("bearer" = [])), responses((status = 200, description = "{success, verification:{status:\"canceled\"}}"), (status = 404, body = super::error::ErrorBody), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn cancel(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<IdParam>,
) -> Result<Json<Value>, ApiError> {
    let v = state
        .twofa
        .cancel_verification(&access.tenant, &p.id)
        .await?;
    Ok(Json(json!({ "success": true, "verification": view(&v) })))
}
