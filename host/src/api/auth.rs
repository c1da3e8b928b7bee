//! Who is calling: the operator (admin token) or a tenant integration
//! (the tenant's API key, or the admin token, which works for every tenant).

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::crypto::{digest_eq, sha256_hex};
use crate::domain::TenantName;

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
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
