//! The `users.2fa.*` endpoints: a user enrolling, confirming and removing
//! their second factors (email, TOTP and backup codes, channels).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{ApiJson, ClientInfo, PublicTenant, Session, TwoFactorHeaders};
use super::users::user_json;
use super::{AppState, success};
use crate::domain::Method;
use crate::store::{UserRow, rfc3339};
use crate::twofa::{Caller, Supplied};

/// Runs the 2FA check of a protected call.
pub async fn protect(
    state: &AppState,
    user: &UserRow,
    supplied: &Supplied,
    caller: &Caller,
) -> Result<(), ApiError> {
    state.twofa.require(user, supplied, caller, true).await?;
    Ok(())
}

/// `disableEmail`, `disableTOTP` and `disable` (every method): a second
/// factor every time, then off.
async fn protected_disable(
    state: &AppState,
    session: Session,
    supplied: &Supplied,
    caller: &Caller,
    method: Option<Method>,
) -> Result<Json<Value>, ApiError> {
    protect(state, &session.user, supplied, caller).await?;
    let mut user = session.user;
    state.twofa.disable(&mut user, method).await?;
    Ok(success(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendEmailCode {
    email_or_username: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.sendEmailCode", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = SendEmailCode, responses((status = 200, description = "{success:true} whether or not the user exists"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn send_email_code(
    State(state): State<AppState>,
    PublicTenant(tenant): PublicTenant,
    ClientInfo(caller): ClientInfo,
    ApiJson(b): ApiJson<SendEmailCode>,
) -> Result<Json<Value>, ApiError> {
    let who = b
        .email_or_username
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "error-parameter-required",
                "emailOrUsername is required",
            )
            .with_details(json!({ "field": "emailOrUsername" }))
        })?;
    state
        .twofa
        .send_email_code(&tenant, who.trim(), &caller)
        .await?;
    Ok(success(json!({})))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.enableEmail", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::error::ErrorBody, description = "No or bad session"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn enable_email(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<Value>, ApiError> {
    state.twofa.enable_email(&session.user).await?;
    Ok(success(json!({})))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.disableEmail", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::error::ErrorBody, description = "No or bad session"), (status = 502, body = super::error::ErrorBody, description = "The code could not be delivered"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn disable_email(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    TwoFactorHeaders(supplied): TwoFactorHeaders,
) -> Result<Json<Value>, ApiError> {
    protected_disable(&state, session, &supplied, &caller, Some(Method::Email)).await
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.disable", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::error::ErrorBody, description = "No or bad session"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn disable_all(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    TwoFactorHeaders(supplied): TwoFactorHeaders,
) -> Result<Json<Value>, ApiError> {
    protected_disable(&state, session, &supplied, &caller, None).await
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.enableTOTP", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "{success, secret, url, qr}"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn enable_totp(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<Value>, ApiError> {
    let e = state.twofa.enable_totp(&session.user).await?;
    Ok(success(
        json!({ "secret": e.secret, "url": e.url, "qr": e.qr }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CodeBody {
    code: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.validateTempToken", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = CodeBody, security(("session" = [])), responses((status = 200, description = "{success, codes:[12 backup codes]}"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn validate_temp_token(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    ApiJson(b): ApiJson<CodeBody>,
) -> Result<Json<Value>, ApiError> {
    let codes = state
        .twofa
        .validate_temp_token(&session.user, &b.code, &caller)
        .await?;
    Ok(success(json!({ "codes": codes })))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.regenerateCodes", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "{success, codes}"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn regenerate_codes(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    TwoFactorHeaders(supplied): TwoFactorHeaders,
) -> Result<Json<Value>, ApiError> {
    protect(&state, &session.user, &supplied, &caller).await?;
    state.twofa.codes_remaining(&session.user).await?;
    let codes = state.twofa.regenerate_codes(&session.user).await?;
    Ok(success(json!({ "codes": codes })))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/users.2fa.checkCodesRemaining", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "{success, remaining}"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn check_codes_remaining(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<Value>, ApiError> {
    let remaining = state.twofa.codes_remaining(&session.user).await?;
    Ok(success(json!({ "remaining": remaining })))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.disableTOTP", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::error::ErrorBody, description = "No or bad session"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn disable_totp(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    TwoFactorHeaders(supplied): TwoFactorHeaders,
) -> Result<Json<Value>, ApiError> {
    protected_disable(&state, session, &supplied, &caller, Some(Method::Totp)).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnableChannel {
    channel: String,
    send_to: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.enableChannel", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = EnableChannel, security(("session" = [])), responses((status = 200, description = "{success, codeGenerated, codeExpires}"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn enable_channel(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    ApiJson(b): ApiJson<EnableChannel>,
) -> Result<Json<Value>, ApiError> {
    let (generated, expires) = state
        .twofa
        .enable_channel(&session.user, &b.channel, &b.send_to, &caller)
        .await?;
    Ok(success(
        json!({ "codeGenerated": generated, "codeExpires": rfc3339(expires) }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConfirmChannel {
    channel: String,
    code: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.confirmChannel", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = ConfirmChannel, security(("session" = [])), responses((status = 200, description = "{success, user}"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn confirm_channel(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    ApiJson(b): ApiJson<ConfirmChannel>,
) -> Result<Json<Value>, ApiError> {
    let mut user = session.user;
    state
        .twofa
        .confirm_channel(&mut user, &b.channel, &b.code, &caller)
        .await?;
    Ok(success(
        json!({ "user": user_json(&state.twofa, &user).await? }),
    ))
}
