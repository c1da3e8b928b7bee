//! Delivery records and one-off test deliveries through a channel.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, ClientInfo, TenantAccess};
use crate::delivery::Message;
use crate::delivery::queue::Enqueue;
use crate::messages::Preferences;
use crate::store::{DeliveryFilter, DeliveryRecord, DeliveryStatus};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only deliveries for this username.
    pub username: Option<String>,
    /// Only deliveries in this state.
    #[param(value_type = Option<DeliveryStatus>)]
    pub status: Option<String>,
    /// 1..=500, default 50; newest first.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub success: bool,
    pub deliveries: Vec<DeliveryRecord>,
    pub total: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    pub success: bool,
    pub delivery: DeliveryRecord,
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/deliveries", tag = "deliveries",
    params(("tenant" = String, Path, description = "Tenant name"), ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = DeliveryList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_params(
                "status",
                "status must be one of queued, sending, delivered, failed, expired",
            )
        })?),
    };
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::invalid_params("limit", "limit must be 1..=500"))?,
    };
    let filter = DeliveryFilter {
        username: q.username.filter(|u| !u.is_empty()),
        status,
        limit,
    };
    let (deliveries, total) = state
        .store
        .list_deliveries(access.tenant.as_str(), &filter)
        .await?;
    Ok(Json(DeliveryList {
        success: true,
        deliveries,
        total,
    }))
}

#[derive(Debug, Deserialize)]
pub struct IdParam {
    id: String,
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/deliveries/{id}", tag = "deliveries",
    params(("tenant" = String, Path, description = "Tenant name"), ("id" = String, Path, description = "Delivery id")),
    security(("bearer" = [])),
    responses((status = 200, body = DeliveryResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<IdParam>,
) -> Result<Json<DeliveryResponse>, ApiError> {
    let mut delivery = state
        .store
        .get_delivery(access.tenant.as_str(), &p.id)
        .await?
        .ok_or_else(|| ApiError::not_found("No such delivery"))?;
    if let Some(id) = &delivery.provider_id {
        delivery.handset = state
            .store
            .handset_of(access.tenant.as_str(), &delivery.channel, id)
            .await?;
    }
    Ok(Json(DeliveryResponse {
        success: true,
        delivery,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestRequest {
    /// The recipient, in the form the channel expects.
    pub send_to: String,
}

#[derive(Debug, Deserialize)]
pub struct NameParam {
    name: String,
}

/// One real delivery with a throwaway code; answers after the first attempt.
#[utoipa::path(post, path = "/t/{tenant}/api/v1/channels/{name}/test", tag = "channels",
    params(("tenant" = String, Path, description = "Tenant name"), ("name" = String, Path, description = "Channel name")),
    request_body = TestRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = DeliveryResponse, description = "Delivered, or queued for a retry"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "The provider refused or failed; `delivery` holds the record")))]
pub async fn test_channel(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiPath(p): ApiPath<NameParam>,
    ClientInfo(caller): ClientInfo,
    ApiJson(body): ApiJson<TestRequest>,
) -> Result<Response, ApiError> {
    let delivery = send_test(&state, access.tenant, p.name, body.send_to, caller).await?;
    Ok(delivery_response(delivery))
}

/// One real delivery with a throwaway code through a tenant's channel
/// (the API's `channels/{name}/test` and the console's "send test").
pub async fn send_test(
    state: &AppState,
    tenant: crate::domain::TenantName,
    channel: String,
    send_to: String,
    caller: crate::twofa::Caller,
) -> Result<DeliveryRecord, ApiError> {
    let ttl = state.config.api.two_fa_token_ttl_seconds;
    let code = random_code(state.config.limits.code_length);
    // The locale chain as for a real code: the header, then the number's country.
    let prefs = Preferences::chain(None, caller.accept_language.as_deref(), &send_to);
    let locale = state
        .registry
        .get(&tenant, &channel)
        .map(|c| c.messages.choose(&prefs).to_string());
    let message = Message {
        send_to,
        // Rendered by the channel before the attempt.
        text: String::new(),
        code,
        ttl_seconds: ttl,
        username: "postern-test".into(),
        user_agent: caller.user_agent,
        remote_address: Some(caller.ip.to_string()),
        locale,
        email: None,
    };
    let req = Enqueue {
        tenant,
        channel,
        message,
        username: None,
        expires_at: state.clock.now_ms() + i64::from(ttl) * 1000,
        alternates: BTreeMap::new(),
    };
    Ok(state.queue.submit(req).await?)
}

/// 200 when delivered or queued for a retry; 502 with the record when the
/// provider refused or failed.
pub fn delivery_response(delivery: DeliveryRecord) -> Response {
    if delivery.status == "failed" || delivery.status == "expired" {
        let detail = delivery
            .attempts
            .last()
            .map(|a| a.detail.clone())
            .unwrap_or_default();
        let body = json!({
            "success": false,
            "error": format!("Delivery failed: {detail} [error-delivery-failed]"),
            "errorType": "error-delivery-failed",
            "details": { "channel": delivery.channel, "status": delivery.status },
            "delivery": delivery,
        });
        return (StatusCode::BAD_GATEWAY, Json(body)).into_response();
    }
    Json(DeliveryResponse {
        success: true,
        delivery,
    })
    .into_response()
}

/// `len` random digits from a CSPRNG.
pub fn random_code(len: u32) -> String {
    // ThreadRng is a CSPRNG (ChaCha12) seeded and reseeded from the OS.
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}
