//! Who is calling: the operator (admin token), a tenant integration (the
//! tenant's API key, or the admin token, which works for every tenant), a
//! logged-in user (a session from `login`), or anyone on a route that names
//! an existing tenant and takes no credentials.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::crypto::{digest_eq, sha256_hex};
use crate::domain::TenantName;
use crate::store::{Store, StoreError, UserRow};

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A trimmed, non-empty header value.
pub(super) fn header_str<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The tenant a path names, or `default`.
pub async fn path_tenant(parts: &mut Parts, state: &AppState) -> Result<TenantName, ApiError> {
    let raw = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::not_found("Not found"))?;
    let name = raw
        .iter()
        .find(|(k, _)| *k == "tenant")
        .map(|(_, v)| v.to_string());
    let tenant = match name {
        None => TenantName::default_tenant(),
        Some(n) => TenantName::parse(&n).map_err(|_| ApiError::not_found("Unknown tenant"))?,
    };
    Ok(tenant)
}

/// The operator: `Authorization: Bearer <admin_token>`.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        if state.is_admin_token(token) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized())
        }
    }
}

/// A tenant integration call on `/t/{tenant}/api/v1/…` (or `/api/v1/…` for
/// `default`). Unknown tenant → 404; no or bad key → 401; another tenant's
/// key → 403.
pub struct TenantAccess {
    pub tenant: TenantName,
}

impl FromRequestParts<AppState> for TenantAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tenant = path_tenant(parts, state).await?;
        let key_hash = state
            .store
            .tenant_key_hash(tenant.as_str())
            .await?
            .ok_or_else(|| ApiError::not_found("Unknown tenant"))?;
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        if state.is_admin_token(token) {
            return Ok(Self { tenant });
        }
        let presented = sha256_hex(token.as_bytes());
        if key_hash
            .as_deref()
            .is_some_and(|h| digest_eq(h, &presented))
        {
            return Ok(Self { tenant });
        }
        if state.store.tenant_by_key_hash(&presented).await?.is_some() {
            return Err(ApiError::forbidden());
        }
        Err(ApiError::unauthorized())
    }
}

/// The tenant a route's path names, for routes that take no credentials
/// (`login`, `sendEmailCode`, the realtime upgrade): 404 if it does not exist.
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

/// A call that takes either the tenant key (`Authorization`) or a user's
/// session (`X-User-Id` + `X-Auth-Token`): `users.info`. With neither, the
/// tenant key's answers (404 unknown tenant, 401).
pub enum KeyOrSession {
    Key(TenantAccess),
    Session(Box<Session>),
}

impl FromRequestParts<AppState> for KeyOrSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let has_session =
            header_str(parts, "x-user-id").is_some() || header_str(parts, "x-auth-token").is_some();
        if bearer(parts).is_none() && has_session {
            return Ok(Self::Session(Box::new(
                Session::from_request_parts(parts, state).await?,
            )));
        }
        Ok(Self::Key(
            TenantAccess::from_request_parts(parts, state).await?,
        ))
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
        let (Some(user_id), Some(token)) = (
            header_str(parts, "x-user-id"),
            header_str(parts, "x-auth-token"),
        ) else {
            return Err(ApiError::unauthorized());
        };
        let token_hash = sha256_hex(token.as_bytes());
        let now = state.clock.now_ms();
        let user = session_user(state.store.as_ref(), &tenant, &token_hash, user_id, now)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Self { user, token_hash })
    }
}

/// The user a live session token belongs to, if it is `user_id`'s. REST
/// calls and realtime connections both ask this on every call, so a
/// session ended anywhere ends everywhere.
pub async fn session_user(
    store: &dyn Store,
    tenant: &TenantName,
    token_hash: &str,
    user_id: &str,
    now_ms: i64,
) -> Result<Option<UserRow>, StoreError> {
    let owner = store
        .session_user(token_hash, tenant.as_str(), now_ms)
        .await?;
    if owner.as_deref() != Some(user_id) {
        return Ok(None);
    }
    store.user_by_id(tenant.as_str(), user_id).await
}

/// Whom a presented key signs in as: the admin token is the operator, a
/// tenant's API key that tenant (the console's sign-in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    Operator,
    Tenant(TenantName),
}

/// The scope of `token`, or `None` when it is no key postern issued.
pub async fn key_scope(state: &AppState, token: &str) -> Result<Option<KeyScope>, StoreError> {
    if state.is_admin_token(token) {
        return Ok(Some(KeyScope::Operator));
    }
    let tenant = state
        .store
        .tenant_by_key_hash(&sha256_hex(token.as_bytes()))
        .await?;
    Ok(tenant
        .and_then(|t| TenantName::parse(&t).ok())
        .map(KeyScope::Tenant))
}
