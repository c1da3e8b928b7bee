//! Users, login and the Rocket.Chat 2FA protocol over REST.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{TenantAccess, path_tenant};
use super::error::{ApiError, ApiJson, ApiQuery};
use crate::crypto::sha256_hex;
use crate::domain::{EmailAddress, Method, TenantName};
use crate::store::{StoreError, UserRow, rfc3339};
use crate::twofa::{Caller, LoginError, Supplied, TwoFaError, TwoFactor, password};

/// The caller's address and user agent, for rate limits and messages.
pub struct ClientInfo(pub Caller);

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        Ok(Self(Caller {
            ip: state.client_ip(&parts.headers, peer),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }))
    }
}

/// A logged-in user: `X-User-Id` + `X-Auth-Token` from `login`.
pub struct Session {
    pub user: UserRow,
    pub token_hash: String,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tenant = path_tenant(parts, state).await?;
        let h = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let (Some(user_id), Some(token)) = (h("x-user-id"), h("x-auth-token")) else {
            return Err(ApiError::unauthorized());
        };
        let token_hash = sha256_hex(token.as_bytes());
        let owner = state
            .store
            .session_user(&token_hash, tenant.as_str(), state.clock.now_ms())
            .await?;
        if owner.as_deref() != Some(user_id) {
            return Err(ApiError::unauthorized());
        }
        let user = state
            .store
            .user_by_id(tenant.as_str(), user_id)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Self { user, token_hash })
    }
}

impl From<TwoFaError> for ApiError {
    fn from(e: TwoFaError) -> Self {
        if let Some((kind, reason, details)) = e.totp_kind() {
            return ApiError::new(StatusCode::BAD_REQUEST, kind, reason)
                .with_details(serde_json::to_value(details).unwrap_or_default());
        }
        match e {
            TwoFaError::TooManyRequests { retry_after } => too_many_requests(retry_after),
            TwoFaError::DeliveryFailed(record) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "error-delivery-failed",
                "The code could not be delivered",
            )
            .with_details(json!({ "channel": record.channel, "status": record.status, "deliveryId": record.id })),
            TwoFaError::InvalidSendTo(why) => ApiError::invalid_send_to(why),
            TwoFaError::BadRequest { field, message } => ApiError::invalid_params(field, message),
            TwoFaError::NotFound(what) => ApiError::not_found(what),
            TwoFaError::Store(e) => ApiError::internal(e),
            TwoFaError::Required(_) | TwoFaError::Invalid(_) | TwoFaError::MaxAttempts(_) => {
                ApiError::internal("unreachable 2FA error mapping")
            }
        }
    }
}

/// 429 with `Retry-After`.
pub fn too_many_requests(retry_after: u64) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "error-too-many-requests",
        format!("Too many requests; retry in {retry_after} s"),
    )
    .with_details(json!({ "retryAfter": retry_after }));
    err.retry_after = Some(retry_after);
    err
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// `x-2fa-code` + `x-2fa-method`.
fn supplied(headers: &HeaderMap) -> Supplied {
    Supplied {
        code: header_str(headers, "x-2fa-code"),
        method: header_str(headers, "x-2fa-method").and_then(|m| Method::parse(&m).ok()),
    }
}

/// Runs the 2FA check of a protected call.
async fn protect(
    state: &AppState,
    user: &UserRow,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<(), ApiError> {
    state
        .twofa
        .require(user, &supplied(headers), caller, true)
        .await?;
    Ok(())
}

/// The user as the API shows it.
pub async fn user_json(twofa: &TwoFactor, u: &UserRow) -> Result<Value, ApiError> {
    let methods = twofa.methods(u).await?;
    let emails: Vec<Value> = u
        .email
        .iter()
        .map(|e| json!({ "address": e, "verified": u.email_verified }))
        .collect();
    let list: Vec<Value> = methods
        .iter()
        .map(|m| match &m.send_to {
            Some(to) => {
                json!({ "method": m.method, "sendTo": crate::domain::mask_destination(to) })
            }
            None => json!({ "method": m.method }),
        })
        .collect();
    Ok(json!({
        "_id": u.id,
        "username": u.username,
        "name": u.name,
        "emails": emails,
        "createdAt": rfc3339(u.created_at),
        "twoFactor": {
            "enabled": !methods.is_empty(),
            "default": u.default_method.clone().filter(|d| methods.iter().any(|m| m.method.as_str() == d))
                .or_else(|| methods.first().map(|m| m.method.to_string())),
            "methods": list,
        },
    }))
}

fn ok(mut v: Value) -> Json<Value> {
    v["success"] = Value::Bool(true);
    Json(v)
}

// ---------------------------------------------------------------- login

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PasswordField {
    Plain(String),
    Digest { digest: String, algorithm: String },
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    user: Option<String>,
    username: Option<String>,
    email: Option<String>,
    password: Option<PasswordField>,
    code: Option<String>,
}

/// Login errors carry both shapes (SPEC §6): 401
/// `{success:false, status:"error", error:"<type>", errorType, message:"… [<type>]", details}`.
fn login_error(kind: &str, reason: &str, details: Value) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "success": false,
            "status": "error",
            "error": kind,
            "errorType": kind,
            "message": format!("{reason} [{kind}]"),
            "details": details,
        })),
    )
        .into_response()
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/login", tag = "auth", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = LoginBody, responses((status = 200, description = "{status:\"success\", data:{userId, authToken, me}}"), (status = 401, description = "Bad credentials, or totp-required / totp-invalid / totp-max-attempts: {success:false, status:\"error\", error, errorType, message, details:{method, codeGenerated, codeCount, codeExpires, availableMethods}}"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    PublicTenant(tenant): PublicTenant,
    ClientInfo(caller): ClientInfo,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let ident = body
        .user
        .or(body.username)
        .or(body.email)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid_params("user", "user (or username) is required"))?;
    let digest = match body.password {
        Some(PasswordField::Plain(p)) => password::digest(&p),
        Some(PasswordField::Digest { digest, algorithm })
            if algorithm.eq_ignore_ascii_case("sha-256") =>
        {
            digest
        }
        Some(PasswordField::Digest { .. }) => {
            return Err(ApiError::invalid_params(
                "password",
                "only algorithm \"sha-256\" is supported",
            ));
        }
        None => return Err(ApiError::invalid_params("password", "password is required")),
    };
    let mut supplied = supplied(&headers);
    if let Some(code) = body.code.filter(|c| !c.is_empty()) {
        supplied.code = Some(code);
    }
    match state
        .twofa
        .login(&tenant, &ident, &digest, &supplied, &caller)
        .await
    {
        Ok(ok) => {
            let me = user_json(&state.twofa, &ok.user).await?;
            Ok(Json(json!({
                "status": "success",
                "data": { "userId": ok.user.id, "authToken": ok.token, "me": me },
            }))
            .into_response())
        }
        Err(LoginError::BadCredentials) => {
            Ok(login_error("error-unauthorized", "Unauthorized", json!({})))
        }
        Err(LoginError::TwoFa(e)) => match e.totp_kind() {
            Some((kind, reason, details)) => Ok(login_error(
                kind,
                reason,
                serde_json::to_value(details).unwrap_or_default(),
            )),
            None => Err(e.into()),
        },
    }
}

/// The tenant a route's path names, for routes that take no credentials
/// (`login`, `sendEmailCode`): 404 if it does not exist.
pub struct PublicTenant(pub TenantName);

impl FromRequestParts<AppState> for PublicTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tenant = path_tenant(parts, state).await?;
        state
            .store
            .tenant_key_hash(tenant.as_str())
            .await?
            .ok_or_else(|| ApiError::not_found("Unknown tenant"))?;
        Ok(Self(tenant))
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct LogoutBody {
    #[serde(default)]
    all: bool,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/logout", tag = "auth", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = LogoutBody, security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::deliveries::ErrorBody, description = "No or bad session"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
/// `logout`: this session; with `{"all": true}` every session of the user (2FA).
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let all = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        super::error::parse_json::<LogoutBody>(&body)?.all
    };
    if all {
        protect(&state, &session.user, &headers, &caller).await?;
        let n = state
            .store
            .delete_sessions(&session.user.tenant, &session.user.id)
            .await?;
        return Ok(Json(
            json!({ "status": "success", "success": true, "data": { "message": "You've been logged out!", "sessions": n } }),
        ));
    }
    state.store.delete_session(&session.token_hash).await?;
    Ok(Json(
        json!({ "status": "success", "success": true, "data": { "message": "You've been logged out!" } }),
    ))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/me", tag = "auth", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::deliveries::ErrorBody, description = "No or bad session"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn me(State(state): State<AppState>, session: Session) -> Result<Json<Value>, ApiError> {
    Ok(ok(user_json(&state.twofa, &session.user).await?))
}

// ---------------------------------------------------------------- users (tenant key)

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    password: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    name: Option<String>,
}

fn check_username(u: &str) -> Result<(), ApiError> {
    let ok = !u.is_empty()
        && u.len() <= 128
        && u.chars().all(|c| c.is_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_params(
            "username",
            "username: 1-128 letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.create", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = CreateUser, security(("bearer" = [])), responses((status = 200, description = "{success, user}"), (status = 409, body = super::deliveries::ErrorBody), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn users_create(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiJson(b): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    check_username(&b.username)?;
    if let Some(e) = &b.email {
        EmailAddress::parse(e).map_err(|m| ApiError::invalid_params("email", m))?;
    }
    if let Some(p) = &b.password
        && p.is_empty()
    {
        return Err(ApiError::invalid_params(
            "password",
            "password must not be empty",
        ));
    }
    let password_hash = match &b.password {
        Some(p) => Some(
            tokio::task::spawn_blocking({
                let p = p.clone();
                move || password::hash(&p)
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let user = UserRow {
        tenant: access.tenant.to_string(),
        id: format!("usr_{}", uuid::Uuid::new_v4().simple()),
        username: b.username.clone(),
        password_hash,
        email: b.email.clone(),
        email_verified: b.email.is_some() && b.email_verified,
        name: b.name.clone(),
        default_method: None,
        created_at: state.clock.now_ms(),
    };
    match state.store.create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "error-conflict",
                format!("username `{}` is taken", b.username),
            )
            .with_details(json!({ "field": "username" })));
        }
        Err(e) => return Err(e.into()),
    }
    state
        .store
        .audit(
            access.tenant.as_str(),
            "api",
            "user.create",
            Some(&user.username),
            None,
            state.clock.now_ms(),
        )
        .await?;
    Ok((
        StatusCode::OK,
        ok(json!({ "user": user_json(&state.twofa, &user).await? })),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UsernameQuery {
    username: Option<String>,
}

async fn find_user(
    state: &AppState,
    tenant: &TenantName,
    username: Option<&str>,
) -> Result<UserRow, ApiError> {
    let username = username
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::invalid_params("username", "username is required"))?;
    state
        .store
        .user_by_username(tenant.as_str(), username)
        .await?
        .ok_or_else(|| ApiError::not_found("No such user"))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/users.info", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant"), ("username" = String, Query, description = "Username")), security(("bearer" = [])), responses((status = 200, description = "{success, user}"), (status = 404, body = super::deliveries::ErrorBody), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn users_info(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiQuery(q): ApiQuery<UsernameQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = find_user(&state, &access.tenant, q.username.as_deref()).await?;
    Ok(ok(json!({ "user": user_json(&state.twofa, &user).await? })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsernameBody {
    username: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.delete", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = UsernameBody, security(("bearer" = [])), responses((status = 200, description = "Success"), (status = 404, body = super::deliveries::ErrorBody), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn users_delete(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiJson(b): ApiJson<UsernameBody>,
) -> Result<Json<Value>, ApiError> {
    let user = find_user(&state, &access.tenant, Some(&b.username)).await?;
    state
        .store
        .delete_user(access.tenant.as_str(), &user.id)
        .await?;
    state
        .store
        .audit(
            access.tenant.as_str(),
            "api",
            "user.delete",
            Some(&user.username),
            None,
            state.clock.now_ms(),
        )
        .await?;
    Ok(ok(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTwoFactor {
    username: String,
    method: Option<String>,
    send_to: Option<String>,
}

/// The method `two_fa_token_delivery` names, as a channel name.
fn default_method(state: &AppState) -> Option<String> {
    let d = state.config.api.two_fa_token_delivery.as_ref()?;
    Some(d.channel_name().to_string())
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.setTwoFactor", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = SetTwoFactor, security(("bearer" = [])), responses((status = 200, description = "{success, user}"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn users_set_two_factor(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiJson(b): ApiJson<SetTwoFactor>,
) -> Result<Json<Value>, ApiError> {
    let mut user = find_user(&state, &access.tenant, Some(&b.username)).await?;
    let method = b.method.or_else(|| default_method(&state)).ok_or_else(|| {
        ApiError::invalid_params(
            "method",
            "method is required (no api.two_fa_token_delivery default)",
        )
    })?;
    state
        .twofa
        .set_method(&mut user, &method, b.send_to.as_deref())
        .await?;
    Ok(ok(json!({ "user": user_json(&state.twofa, &user).await? })))
}

// ---------------------------------------------------------------- users.2fa.*

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendEmailCode {
    email_or_username: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.sendEmailCode", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = SendEmailCode, responses((status = 200, description = "{success:true} whether or not the user exists"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
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
    Ok(ok(json!({})))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.enableEmail", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::deliveries::ErrorBody, description = "No or bad session"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn enable_email(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<Value>, ApiError> {
    state.twofa.enable_email(&session.user).await?;
    Ok(ok(json!({})))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.disableEmail", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::deliveries::ErrorBody, description = "No or bad session"), (status = 502, body = super::deliveries::ErrorBody, description = "The code could not be delivered"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn disable_email(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    protected_disable(&state, session, &headers, &caller, Some(Method::Email)).await
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.disable", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::deliveries::ErrorBody, description = "No or bad session"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn disable_all(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    protected_disable(&state, session, &headers, &caller, None).await
}

/// `disableEmail`, `disableTOTP` and `disable` (every method): a second
/// factor every time, then off.
async fn protected_disable(
    state: &AppState,
    session: Session,
    headers: &HeaderMap,
    caller: &Caller,
    method: Option<Method>,
) -> Result<Json<Value>, ApiError> {
    protect(state, &session.user, headers, caller).await?;
    let mut user = session.user;
    state.twofa.disable(&mut user, method).await?;
    Ok(ok(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct BasicInfo {
    data: BasicInfoData,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicInfoData {
    name: Option<String>,
    email: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.updateOwnBasicInfo", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = BasicInfo, security(("session" = [])), responses((status = 200, description = "{success, user}; needs x-2fa-code + x-2fa-method"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn update_own_basic_info(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    headers: HeaderMap,
    ApiJson(b): ApiJson<BasicInfo>,
) -> Result<Json<Value>, ApiError> {
    if let Some(e) = &b.data.email {
        EmailAddress::parse(e).map_err(|m| ApiError::invalid_params("data.email", m))?;
    }
    protect(&state, &session.user, &headers, &caller).await?;
    let mut user = session.user;
    if let Some(name) = b.data.name {
        user.name = Some(name);
    }
    if let Some(email) = b.data.email
        && user.email.as_deref() != Some(email.as_str())
    {
        user.email = Some(email);
        user.email_verified = false;
    }
    state.store.update_user(&user).await?;
    state
        .store
        .audit(
            &user.tenant,
            &user.username,
            "user.update",
            Some(&user.username),
            None,
            state.clock.now_ms(),
        )
        .await?;
    Ok(ok(json!({ "user": user_json(&state.twofa, &user).await? })))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.enableTOTP", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "{success, secret, url, qr}"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn enable_totp(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<Value>, ApiError> {
    let e = state.twofa.enable_totp(&session.user).await?;
    Ok(ok(json!({ "secret": e.secret, "url": e.url, "qr": e.qr })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CodeBody {
    code: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.validateTempToken", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = CodeBody, security(("session" = [])), responses((status = 200, description = "{success, codes:[12 backup codes]}"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
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
    Ok(ok(json!({ "codes": codes })))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.regenerateCodes", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "{success, codes}"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn regenerate_codes(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    protect(&state, &session.user, &headers, &caller).await?;
    state.twofa.codes_remaining(&session.user).await?;
    let codes = state.twofa.regenerate_codes(&session.user).await?;
    Ok(ok(json!({ "codes": codes })))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/users.2fa.checkCodesRemaining", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "{success, remaining}"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn check_codes_remaining(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<Value>, ApiError> {
    let remaining = state.twofa.codes_remaining(&session.user).await?;
    Ok(ok(json!({ "remaining": remaining })))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.disableTOTP", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::deliveries::ErrorBody, description = "No or bad session"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn disable_totp(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    protected_disable(&state, session, &headers, &caller, Some(Method::Totp)).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnableChannel {
    channel: String,
    send_to: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.enableChannel", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = EnableChannel, security(("session" = [])), responses((status = 200, description = "{success, codeGenerated, codeExpires}"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
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
    Ok(ok(
        json!({ "codeGenerated": generated, "codeExpires": rfc3339(expires) }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConfirmChannel {
    channel: String,
    code: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.2fa.confirmChannel", tag = "2fa", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = ConfirmChannel, security(("session" = [])), responses((status = 200, description = "{success, user}"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
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
    Ok(ok(json!({ "user": user_json(&state.twofa, &user).await? })))
}

// ---------------------------------------------------------------- audit

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LimitQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/audit", tag = "audit", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant"), ("limit" = Option<u32>, Query, description = "1..=1000, default 100")), security(("bearer" = [])), responses((status = 200, description = "{success, entries:[{id, at, actor, action, subject, detail}]}"), (status = 400, body = super::deliveries::ErrorBody), (status = 429, body = super::deliveries::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn audit(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = state
        .store
        .list_audit(access.tenant.as_str(), limit)
        .await?;
    Ok(ok(json!({ "entries": entries })))
}
