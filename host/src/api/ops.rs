//! Operations: liveness, readiness (store and channels' last health),
//! Prometheus metrics and the OpenAPI document.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::OpenApi;

use super::AppState;

/// The last health probe of each channel, refreshed in the background so
/// `/readyz` never waits on a provider.
#[derive(Default)]
pub struct HealthBoard {
    entries: Mutex<BTreeMap<String, ChannelHealth>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelHealth {
    pub kind: String,
    /// ok | failing | unchecked
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
}

impl HealthBoard {
    pub fn snapshot(&self) -> BTreeMap<String, ChannelHealth> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, key: String, h: ChannelHealth) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, h);
    }

    /// Probes every channel once; logs channels that fail.
    pub async fn refresh(&self, state: &AppState) {
        for (tenant, ch) in state.registry.all() {
            let key = if tenant.as_str() == "default" {
                ch.name.to_string()
            } else {
                format!("{tenant}/{}", ch.name)
            };
            let probe =
                tokio::time::timeout(Duration::from_secs(15), ch.sender.check_health()).await;
            let now = Some(crate::store::rfc3339(state.clock.now_ms()));
            let h = match probe {
                Ok(None) => ChannelHealth {
                    kind: ch.sender.kind().into(),
                    status: "unchecked".into(),
                    detail: None,
                    checked_at: None,
                },
                Ok(Some(Ok(()))) => ChannelHealth {
                    kind: ch.sender.kind().into(),
                    status: "ok".into(),
                    detail: None,
                    checked_at: now,
                },
                Ok(Some(Err(e))) => {
                    tracing::warn!(channel = %key, error = %e, "channel health check failed");
                    ChannelHealth {
                        kind: ch.sender.kind().into(),
                        status: "failing".into(),
                        detail: Some(e),
                        checked_at: now,
                    }
                }
                Err(_) => {
                    tracing::warn!(channel = %key, "channel health check timed out");
                    ChannelHealth {
                        kind: ch.sender.kind().into(),
                        status: "failing".into(),
                        detail: Some("health check timed out".into()),
                        checked_at: now,
                    }
                }
            };
            self.set(key, h);
        }
    }
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "success": true, "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The store accepts writes; channel health in the body"),
        (status = 503, description = "The store cannot write: `store.reason` says why")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let probe = state
        .readiness
        .check(state.store.as_ref(), state.clock.now_ms())
        .await;
    let (code, store) = match probe {
        Ok(()) => (StatusCode::OK, json!({ "status": "ok" })),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "failing", "reason": reason }),
        ),
    };
    let body = json!({
        "success": code == StatusCode::OK,
        "store": store,
        "channels": state.health.snapshot(),
    });
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    super::abuse::refresh_gauges(&state).await;
    state
        .metrics
        .queue
        .refresh(state.store.as_ref(), state.clock.now_ms())
        .await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(title = "postern", description = "Delivery and checking of one-time 2FA codes. Errors: {success:false, error, errorType, details}."),
    paths(
        healthz, readyz, metrics, openapi,
        super::deliveries::list, super::deliveries::get_one,
        super::deliveries::test_channel,
        super::channels::list, super::channels::get_one, super::channels::put, super::channels::delete,
        super::plugins::put, super::plugins::list, super::plugins::get_one, super::plugins::delete,
        super::plugin_keys::put, super::plugin_keys::list, super::plugin_keys::delete,
        super::plugin_keys::get_policy, super::plugin_keys::put_policy,
        super::realtime::websocket,
        super::admin::create, super::admin::list, super::admin::get_one, super::admin::delete,
        super::session::login, super::session::logout, super::session::me,
        super::users::users_create, super::users::users_info, super::users::users_delete,
        super::users::users_set_two_factor, super::session::update_own_basic_info,
        super::two_factor::send_email_code, super::two_factor::enable_email, super::two_factor::disable_email,
        super::two_factor::disable_all, super::two_factor::enable_totp, super::two_factor::validate_temp_token,
        super::two_factor::regenerate_codes, super::two_factor::check_codes_remaining, super::two_factor::disable_totp,
        super::two_factor::enable_channel, super::two_factor::confirm_channel, super::audit::audit,
        super::verify::start, super::verify::check, super::verify::get_one, super::verify::cancel,
        super::abuse::unlock, super::abuse::unlock_destination, super::abuse::list, super::abuse::unblock,
        super::templates::preview,
    ),
    components(schemas(
        crate::store::DeliveryRecord, crate::store::AttemptRecord, crate::store::HandsetRecord,
        crate::store::SmsFacts, ChannelHealth,
        super::deliveries::TestRequest, super::deliveries::DeliveryResponse,
        super::deliveries::DeliveryList, super::error::ErrorBody,
    )),
    tags((name = "messages", description = "Messages and languages. Every channel renders its messages with MiniJinja \
        templates: `text` (SMS, chat, plugins), email `subject`, `body` and `html`. Built-in in en, de, fr, es, it, pt, nl, pl, \
        sv, ru, ja, zh; a channel's `templates` ({defaultLocale?, text?, subject?, body?, html?: {<BCP 47>: template}, webotp?}) \
        override them per locale. Variables: code, ttl_seconds, ttl, username, app_name, base_url, domain, user_agent, \
        remote_address, locale. The locale is the user's `language` (or a Verify `locale`), else Accept-Language, else the \
        country of a +E.164 send-to, else the channel's defaultLocale, else en; de-AT falls back to de. Records show `locale` \
        and, for texts, `sms {encoding, segments}`. A bad template is 400 error-invalid-params with details.field, line, column.")),
    modifiers(&BearerAuth, &DefaultTenantPaths),
)]
pub struct ApiDoc;

/// Tenant routes are documented once under `/t/{tenant}/api/v1`; this adds
/// the same operations under `/api/v1` (the `default` tenant).
struct DefaultTenantPaths;

impl utoipa::Modify for DefaultTenantPaths {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let tenant_paths: Vec<(String, utoipa::openapi::PathItem)> = api
            .paths
            .paths
            .iter()
            .filter_map(|(p, item)| {
                p.strip_prefix("/t/{tenant}")
                    .map(|rest| (rest.to_string(), item.clone()))
            })
            .collect();
        for (path, mut item) in tenant_paths {
            for op in [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                if let Some(params) = op.parameters.as_mut() {
                    params.retain(|p| p.name != "tenant");
                }
                op.operation_id = op.operation_id.take().map(|id| format!("{id}_default"));
            }
            api.paths.paths.insert(path, item);
        }
    }
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // A user session is two headers from `login`: X-User-Id and X-Auth-Token.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "X-Auth-Token",
                    "The authToken from login, together with X-User-Id: the userId",
                ),
            )),
        );
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
