//! Every extractor the routers use, in one place: who is calling
//! ([`auth`]), from where ([`ClientInfo`]), with which second factor
//! ([`TwoFactorHeaders`]), and the body, query and path whose rejections
//! use the error shape ([`body`]). Handlers take these and never read
//! headers themselves.

mod auth;
mod body;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::domain::Method;
use crate::twofa::{Caller, Supplied};
pub use auth::{
    Admin, KeyOrSession, KeyScope, PublicTenant, Session, TenantAccess, key_scope, path_tenant,
    session_user,
};
pub use body::{ApiJson, ApiPath, ApiQuery, parse_json};

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
            accept_language: parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(256).collect()),
        }))
    }
}

/// The second factor a protected call carries: `x-2fa-code` +
/// `x-2fa-method` (either may be missing; the 2FA core says what that means).
pub struct TwoFactorHeaders(pub Supplied);

impl<S: Send + Sync> FromRequestParts<S> for TwoFactorHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(Supplied {
            code: auth::header_str(parts, "x-2fa-code").map(str::to_string),
            // A method postern does not know is no method.
            method: auth::header_str(parts, "x-2fa-method").and_then(|m| Method::parse(m).ok()),
        }))
    }
}
