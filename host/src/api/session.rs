//! A user's own session: `login`, `logout`, `me` and `users.updateOwnBasicInfo`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, login_failure};
use super::extract::{ApiJson, ClientInfo, PublicTenant, Session, TwoFactorHeaders, parse_json};
use super::two_factor::protect;
use super::users::user_json;
use super::{AppState, success};
use crate::domain::EmailAddress;
use crate::twofa::password;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PasswordField {
    Plain(String),
    Digest { digest: String, algorithm: String },
}

impl PasswordField {
    /// The SHA-256 hex digest the 2FA core checks.
    fn digest(self) -> Result<String, ApiError> {
        match self {
            PasswordField::Plain(p) => Ok(password::digest(&p)),
            PasswordField::Digest { digest, algorithm }
                if algorithm.eq_ignore_ascii_case("sha-256") =>
            {
                Ok(digest)
            }
            PasswordField::Digest { .. } => Err(ApiError::invalid_params(
                "password",
                "only algorithm \"sha-256\" is supported",
            )),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    user: Option<String>,
    username: Option<String>,
    email: Option<String>,
    password: Option<PasswordField>,
    code: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/login", tag = "auth", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = LoginBody, responses((status = 200, description = "{status:\"success\", data:{userId, authToken, me}}"), (status = 401, description = "Bad credentials, or totp-required / totp-invalid / totp-max-attempts: {success:false, status:\"error\", error, errorType, message, details:{method, codeGenerated, codeCount, codeExpires, availableMethods}}"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    PublicTenant(tenant): PublicTenant,
    ClientInfo(caller): ClientInfo,
    TwoFactorHeaders(mut supplied): TwoFactorHeaders,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let ident = [body.user, body.username, body.email]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid_params("user", "user (or username) is required"))?;
    let digest = body
        .password
        .ok_or_else(|| ApiError::invalid_params("password", "password is required"))?
        .digest()?;
    if let Some(code) = body.code.filter(|c| !c.is_empty()) {
        supplied.code = Some(code);
    }
    let ok = match state
        .twofa
        .login(&tenant, &ident, &digest, &supplied, &caller)
        .await
    {
        Ok(ok) => ok,
        Err(e) => return login_failure(e),
    };
    let me = user_json(&state.twofa, &ok.user).await?;
    Ok(Json(json!({
        "status": "success",
        "data": { "userId": ok.user.id, "authToken": ok.token, "me": me },
    }))
    .into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct LogoutBody {
    #[serde(default)]
    all: bool,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/logout", tag = "auth", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = LogoutBody, security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::error::ErrorBody, description = "No or bad session"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
/// `logout`: this session; with `{"all": true}` every session of the user (2FA).
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    TwoFactorHeaders(supplied): TwoFactorHeaders,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // The body is optional: empty means this session only.
    let all = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        parse_json::<LogoutBody>(&body)?.all
    };
    if all {
        protect(&state, &session.user, &supplied, &caller).await?;
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

#[utoipa::path(get, path = "/t/{tenant}/api/v1/me", tag = "auth", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), security(("session" = [])), responses((status = 200, description = "Success"), (status = 401, body = super::error::ErrorBody, description = "No or bad session"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn me(State(state): State<AppState>, session: Session) -> Result<Json<Value>, ApiError> {
    Ok(success(user_json(&state.twofa, &session.user).await?))
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
    /// BCP 47 language of the messages sent to this user.
    language: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.updateOwnBasicInfo", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = BasicInfo, security(("session" = [])), responses((status = 200, description = "{success, user}; needs x-2fa-code + x-2fa-method"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn update_own_basic_info(
    State(state): State<AppState>,
    session: Session,
    ClientInfo(caller): ClientInfo,
    TwoFactorHeaders(supplied): TwoFactorHeaders,
    ApiJson(b): ApiJson<BasicInfo>,
) -> Result<Json<Value>, ApiError> {
    if let Some(e) = &b.data.email {
        EmailAddress::parse(e).map_err(|m| ApiError::invalid_params("data.email", m))?;
    }
    let language = super::users::parse_language(b.data.language.as_deref(), "data.language")?;
    protect(&state, &session.user, &supplied, &caller).await?;
    let mut user = session.user;
    if let Some(name) = b.data.name {
        user.name = Some(name);
    }
    if let Some(l) = language {
        user.language = Some(l);
    }
    if let Some(email) = b.data.email
        && user.email.as_deref() != Some(email.as_str())
    {
        user.email = Some(email);
        user.email_verified = false;
    }
    state.store.update_user(&user).await?;
    let who = Some(user.username.as_str());
    state
        .store
        .audit(
            &user.tenant,
            &user.username,
            "user.update",
            who,
            None,
            state.clock.now_ms(),
        )
        .await?;
    Ok(success(
        json!({ "user": user_json(&state.twofa, &user).await? }),
    ))
}
