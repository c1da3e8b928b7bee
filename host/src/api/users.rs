//! User administration with the tenant key (`users.create`, `users.info`,
//! `users.delete`, `users.setTwoFactor`) and the user as the API shows it.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, TenantAccess};
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

#[utoipa::path(get, path = "/t/{tenant}/api/v1/users.info", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant"), ("username" = String, Query, description = "Username")), security(("bearer" = [])), responses((status = 200, description = "{success, user}"), (status = 404, body = super::error::ErrorBody), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn users_info(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiQuery(q): ApiQuery<UsernameQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = find_user(&state, &access.tenant, q.username.as_deref()).await?;
    user_answer(&state, &user).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsernameBody {
    username: String,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.delete", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = UsernameBody, security(("bearer" = [])), responses((status = 200, description = "Success"), (status = 404, body = super::error::ErrorBody), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
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
    audit(&state, &access.tenant, "user.delete", &user.username).await?;
    Ok(success(json!({})))
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

#[utoipa::path(post, path = "/t/{tenant}/api/v1/users.setTwoFactor", tag = "users", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")), request_body = SetTwoFactor, security(("bearer" = [])), responses((status = 200, description = "{success, user}"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
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
    user_answer(&state, &user).await
}
