//! The HTTP API, in layers: `extract` (who is calling, the body, query and
//! path) and `error` (the one error shape and every domain error's mapping)
//! under thin handlers, one file per area, that call the domain
//! (`twofa`, `plugin::upload`, `delivery`, `store`).
//!
//! Areas: `session` (login, logout, me), `two_factor` (`users.2fa.*`),
//! `users` (tenant-key user admin), `verify`, `deliveries`, `channels`,
//! `plugins`, `templates` (preview), `audit`, `abuse` (unlock, the pumping guard), `admin` (operator), `ops` (health, metrics,
//! OpenAPI), `realtime` (DDP over WebSocket).

pub mod abuse;
pub mod admin;
pub mod audit;
pub mod channels;
pub mod deliveries;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod plugin_keys;
pub mod plugin_rollout;
pub mod plugins;
pub mod realtime;
pub mod session;
pub mod templates;
pub mod two_factor;
pub mod users;
pub mod verify;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ipnet::IpNet;
use serde_json::Value;

use crate::config::Config;
use crate::crypto::{digest_eq, sha256_hex};
use crate::delivery::queue::Queue;
use crate::delivery::registry::Registry;
use crate::metrics::Metrics;
use crate::store::Store;
use error::ApiError;
use ops::HealthBoard;

/// Request bodies above this get 413 (plugin uploads have their own cap).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<HealthBoard>,
    /// Whether the store can write (`/readyz`, `postern_store_up`).
    pub readiness: Arc<crate::store::Readiness>,
    pub twofa: Arc<crate::twofa::TwoFactor>,
    pub keys: crate::crypto::Keys,
    pub plugins: Arc<crate::plugin::TenantPlugins>,
    pub clock: crate::clock::SharedClock,
    pub admin_token_sha256: String,
    pub trusted_proxies: Vec<IpNet>,
    /// Open realtime connections of this host (caps per host and address).
    pub realtime: Arc<realtime::Connections>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Rebuilds every tenant channel from the store.
    pub async fn reload_tenant_channels(&self) -> Result<(), crate::store::StoreError> {
        self.plugins.sync(self.store.as_ref()).await?;
        let all = crate::delivery::tenant_channels::load_all(
            self.store.as_ref(),
            &self.keys,
            &self.config,
            &self.plugins,
        )
        .await?;
        self.registry.replace_tenant_channels(all);
        Ok(())
    }

    pub fn is_admin_token(&self, token: &str) -> bool {
        digest_eq(&sha256_hex(token.as_bytes()), &self.admin_token_sha256)
    }

    /// The client's address: the peer, or the right-most untrusted entry of
    /// `X-Forwarded-For` when the peer is a trusted proxy.
    pub fn client_ip(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        client_ip(headers, peer.ip(), &self.trusted_proxies)
    }
}

/// A success answer: the body with `success: true` added.
pub(crate) fn success(mut v: Value) -> Json<Value> {
    v["success"] = Value::Bool(true);
    Json(v)
}

pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    // Walk from the nearest hop back; the first untrusted one is the client.
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .copied()
        .or_else(|| hops.first().copied())
        .unwrap_or(peer)
}

/// Every tenant-scoped route; mounted at `/api/v1` (the `default` tenant)
/// and at `/t/{tenant}/api/v1`.
fn tenant_routes() -> Router<AppState> {
    resource_routes().merge(user_routes())
}

/// What a tenant integration manages with its key.
fn resource_routes() -> Router<AppState> {
    Router::new()
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{id}", get(deliveries::get_one))
        .route("/plugins", get(plugins::list))
        .route(
            "/plugins/{name}",
            get(plugins::get_one)
                .put(plugins::put)
                .delete(plugins::delete)
                // Uploads have their own cap (plugins.max_upload_bytes).
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/plugins/{name}/promote", post(plugin_rollout::promote))
        .route("/plugins/{name}/rollback", post(plugin_rollout::rollback))
        .route("/plugin-keys", get(plugin_keys::list))
        .route(
            "/plugin-keys/{name}",
            put(plugin_keys::put).delete(plugin_keys::delete),
        )
        .route(
            "/plugin-policy",
            get(plugin_keys::get_policy).put(plugin_keys::put_policy),
        )
        .route("/channels", get(channels::list))
        .route(
            "/channels/{name}",
            get(channels::get_one)
                .put(channels::put)
                .delete(channels::delete),
        )
        .route("/channels/{name}/test", post(deliveries::test_channel))
        .route("/audit", get(audit::audit))
        .route("/templates/preview", post(templates::preview))
        .route("/verifications", post(verify::start))
        .route("/verifications/check", post(verify::check))
        .route("/verifications/unlock", post(abuse::unlock_destination))
        .route("/verifications/{id}", get(verify::get_one))
        .route("/verifications/{id}/cancel", post(verify::cancel))
        .route("/fraud", get(abuse::list))
        .route("/fraud/{prefix}", axum::routing::delete(abuse::unblock))
}

/// Users: tenant-key administration, their sessions and second factors.
fn user_routes() -> Router<AppState> {
    Router::new()
        .route("/login", post(session::login))
        .route("/logout", post(session::logout))
        .route("/me", get(session::me))
        .route("/users.create", post(users::users_create))
        .route("/users.info", get(users::users_info))
        .route("/users.delete", post(users::users_delete))
        .route("/users.setTwoFactor", post(users::users_set_two_factor))
        .route(
            "/users.updateOwnBasicInfo",
            post(session::update_own_basic_info),
        )
        .route(
            "/users.2fa.sendEmailCode",
            post(two_factor::send_email_code),
        )
        .route("/users.2fa.enableEmail", post(two_factor::enable_email))
        .route("/users.2fa.disableEmail", post(two_factor::disable_email))
        .route("/users.2fa.disable", post(two_factor::disable_all))
        .route("/users.2fa.enableTOTP", post(two_factor::enable_totp))
        .route(
            "/users.2fa.validateTempToken",
            post(two_factor::validate_temp_token),
        )
        .route(
            "/users.2fa.regenerateCodes",
            post(two_factor::regenerate_codes),
        )
        .route(
            "/users.2fa.checkCodesRemaining",
            get(two_factor::check_codes_remaining),
        )
        .route("/users.2fa.disableTOTP", post(two_factor::disable_totp))
        .route("/users.2fa.unlock", post(abuse::unlock))
        .route("/users.2fa.enableChannel", post(two_factor::enable_channel))
        .route(
            "/users.2fa.confirmChannel",
            post(two_factor::confirm_channel),
        )
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .route("/admin/v1/tenants", get(admin::list).post(admin::create))
        .route(
            "/admin/v1/tenants/{name}",
            get(admin::get_one).delete(admin::delete),
        )
        .route("/websocket", get(realtime::websocket))
        .route("/t/{tenant}/websocket", get(realtime::websocket))
        .nest("/api/v1", tenant_routes())
        .nest("/t/{tenant}/api/v1", tenant_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("Not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "error-method-not-allowed",
        "Method not allowed",
    )
}

async fn count_responses(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await.into_response();
    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
        state.metrics.http_rate_limited.inc();
    }
    let class = match resp.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state
        .metrics
        .http_requests
        .with_label_values(&[class])
        .inc();
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4, 10.0.0.7".parse().unwrap());
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "5.6.7.8".parse().unwrap();
        assert_eq!(
            client_ip(&h, proxy, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(&h, stranger, &trusted), stranger);
        // A spoofed left-most entry does not win over the real client.
        h.insert("x-forwarded-for", "9.9.9.9, 1.2.3.4".parse().unwrap());
        assert_eq!(
            client_ip(&h, proxy, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }
}
