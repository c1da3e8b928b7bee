//! User administration with the tenant key (`users.create`, `users.info`,
//! `users.delete`, `users.setTwoFactor`; users named by `userId` or
//! `username`, as Rocket.Chat takes them) and the user as the API shows it.
//! A user session may read its own `users.info`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, KeyOrSession, TenantAccess};
use super::{AppState, success};
use crate::domain::{EmailAddress, TenantName};
use crate::store::{StoreError, UserRow, rfc3339};
use crate::twofa::{TwoFactor, password};

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
        "language": u.language,
        "createdAt": rfc3339(u.created_at),
        "twoFactor": {
            "enabled": !methods.is_empty(),
            "default": u.default_method.clone().filter(|d| methods.iter().any(|m| m.method.as_str() == d))
                .or_else(|| methods.first().map(|m| m.method.to_string())),
            "methods": list,
        },
    }))
}

/// `{success, user}`.
async fn user_answer(state: &AppState, user: &UserRow) -> Result<Json<Value>, ApiError> {
    Ok(success(
        json!({ "user": user_json(&state.twofa, user).await? }),
    ))
}

async fn audit(
    state: &AppState,
    tenant: &TenantName,
    action: &str,
    username: &str,
) -> Result<(), ApiError> {
    state
        .store
        .audit(
            tenant.as_str(),
            "api",
            action,
            Some(username),
            None,
            state.clock.now_ms(),
        )
        .await?;
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    password: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    name: Option<String>,
    /// BCP 47 language of the messages sent to this user (`de`, `pt-BR`).
    language: Option<String>,
}

/// A `language` field, parsed as a BCP 47 tag and kept in canonical form.
pub fn parse_language(v: Option<&str>, field: &str) -> Result<Option<String>, ApiError> {
    v.map(|l| {
        crate::messages::Locale::parse(l)
            .map(|l| l.to_string())
            .map_err(|m| ApiError::invalid_params(field, m))
    })
    .transpose()
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

/// The password's hash, computed off the request threads (it is slow on purpose).
async fn hash_password(password: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(p) = password else {
        return Ok(None);
    };
    if p.is_empty() {
        return Err(ApiError::invalid_params(
            "password",
            "password must not be empty",
        ));
    }
    let p = p.to_string();
    let hash = tokio::task::spawn_blocking(move || password::hash(&p))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Some(hash))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.create", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = CreateUser, security(("bearer" = [])), responses((status = 200, description = "{success, user}"), (status = 409, body = super::error::ErrorBody), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn users_create(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiJson(b): ApiJson<CreateUser>,
) -> Result<Json<Value>, ApiError> {
    check_username(&b.username)?;
    if let Some(e) = &b.email {
        EmailAddress::parse(e).map_err(|m| ApiError::invalid_params("email", m))?;
    }
    let language = parse_language(b.language.as_deref(), "language")?;
    let user = UserRow {
        tenant: access.tenant.to_string(),
        id: format!("usr_{}", uuid::Uuid::new_v4().simple()),
        password_hash: hash_password(b.password.as_deref()).await?,
        email_verified: b.email.is_some() && b.email_verified,
        username: b.username,
        email: b.email,
        name: b.name,
        default_method: None,
        created_at: state.clock.now_ms(),
        language,
    };
    match state.store.create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(
                ApiError::conflict(format!("username `{}` is taken", user.username))
                    .with_details(json!({ "field": "username" })),
            );
        }
        Err(e) => return Err(e.into()),
    }
    audit(&state, &access.tenant, "user.create", &user.username).await?;
    user_answer(&state, &user).await
}

/// `users.info`'s query: the user by `userId` or `username` (Rocket.Chat
/// takes either; given both, they must name the same user).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// The user's `_id`.
    #[serde(rename = "userId")]
    #[param(rename = "userId")]
    user_id: Option<String>,
    /// The username.
    username: Option<String>,
}

/// `users.delete`'s body: `{userId}` or `{username}` (or both, agreeing).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserRefBody {
    user_id: Option<String>,
    username: Option<String>,
}

/// Which user a call names.
pub(super) enum UserRef {
    Id(String),
    Name(String),
    Both { id: String, name: String },
}

impl UserRef {
    /// Empty strings count as missing; neither given is a 400 naming both.
    pub(super) fn parse(
        user_id: Option<String>,
        username: Option<String>,
    ) -> Result<Self, ApiError> {
        let present = |v: Option<String>| v.filter(|s| !s.is_empty());
        match (present(user_id), present(username)) {
            (Some(id), Some(name)) => Ok(Self::Both { id, name }),
            (Some(id), None) => Ok(Self::Id(id)),
            (None, Some(name)) => Ok(Self::Name(name)),
            (None, None) => Err(ApiError::invalid_params(
                "userId",
                "userId or username is required",
            )
            .with_details(json!({ "field": "userId", "fields": ["userId", "username"] }))),
        }
    }

    /// Whether this names `user` (no store look-up: a session learns
    /// nothing about other users from the answer).
    fn names(&self, user: &UserRow) -> bool {
        match self {
            Self::Id(id) => *id == user.id,
            Self::Name(name) => *name == user.username,
            Self::Both { id, name } => *id == user.id && *name == user.username,
        }
    }
}

fn mismatch() -> ApiError {
    ApiError::invalid_params("userId", "userId and username name different users")
        .with_details(json!({ "field": "userId", "fields": ["userId", "username"] }))
}

pub(super) async fn find_user(
    state: &AppState,
    tenant: &TenantName,
    who: &UserRef,
) -> Result<UserRow, ApiError> {
    let t = tenant.as_str();
    let found = match who {
        UserRef::Id(id) => state.store.user_by_id(t, id).await?,
        UserRef::Name(name) => state.store.user_by_username(t, name).await?,
        UserRef::Both { id, name } => {
            let by_id = state.store.user_by_id(t, id).await?;
            let by_name = state.store.user_by_username(t, name).await?;
            match (by_id, by_name) {
                (Some(a), Some(b)) if a.id == b.id => Some(a),
                (None, None) => None,
                _ => return Err(mismatch()),
            }
        }
    };
    found.ok_or_else(|| ApiError::not_found("No such user"))
}

/// A session asking for someone else's record.
fn not_own_user() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "error-forbidden",
        "A user session may read only its own user; other users need the tenant API key",
    )
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/users.info", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant"), UserQuery), security(("bearer" = []), ("session" = [])), responses((status = 200, description = "{success, user}"), (status = 404, body = super::error::ErrorBody), (status = 400, body = super::error::ErrorBody, description = "Neither userId nor username, or the two name different users"), (status = 401, body = super::error::ErrorBody, description = "No or bad credentials"), (status = 403, body = super::error::ErrorBody, description = "A user session asking for another user"), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
/// The tenant key reads any user; a user session (`X-User-Id` +
/// `X-Auth-Token`) reads its own.
pub async fn users_info(
    State(state): State<AppState>,
    caller: KeyOrSession,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = UserRef::parse(q.user_id, q.username)?;
    let user = match caller {
        KeyOrSession::Key(access) => find_user(&state, &access.tenant, &who).await?,
        KeyOrSession::Session(session) if who.names(&session.user) => session.user,
        KeyOrSession::Session(_) => return Err(not_own_user()),
    };
    user_answer(&state, &user).await
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.delete", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = UserRefBody, security(("bearer" = [])), responses((status = 200, description = "Success"), (status = 404, body = super::error::ErrorBody), (status = 400, body = super::error::ErrorBody, description = "Neither userId nor username, or the two name different users"), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn users_delete(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiJson(b): ApiJson<UserRefBody>,
) -> Result<Json<Value>, ApiError> {
    let who = UserRef::parse(b.user_id, b.username)?;
    let user = find_user(&state, &access.tenant, &who).await?;
    state
        .store
        .delete_user(access.tenant.as_str(), &user.id)
        .await?;
    audit(&state, &access.tenant, "user.delete", &user.username).await?;
    Ok(success(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTwoFactor {
    user_id: Option<String>,
    username: Option<String>,
    method: Option<String>,
    send_to: Option<String>,
}

/// The method `two_fa_token_delivery` names, as a channel name.
fn default_method(state: &AppState) -> Option<String> {
    let d = state.config.api.two_fa_token_delivery.as_ref()?;
    Some(d.channel_name().to_string())
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.setTwoFactor", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = SetTwoFactor, security(("bearer" = [])), responses((status = 200, description = "{success, user}"), (status = 400, body = super::error::ErrorBody, description = "Bad method or sendTo; neither userId nor username, or the two name different users"), (status = 404, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn users_set_two_factor(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiJson(b): ApiJson<SetTwoFactor>,
) -> Result<Json<Value>, ApiError> {
    let who = UserRef::parse(b.user_id, b.username)?;
    let mut user = find_user(&state, &access.tenant, &who).await?;
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
    user_answer(&state, &user).await
}
