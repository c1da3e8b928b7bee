//! The tenant's audit log (tenant key).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{ApiQuery, TenantAccess};
use super::{AppState, success};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LimitQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/audit", tag = "audit", params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant"), ("limit" = Option<u32>, Query, description = "1..=1000, default 100", minimum = 1, maximum = 1000)), security(("bearer" = [])), responses((status = 200, description = "{success, entries:[{id, at, actor, action, subject, detail}]}"), (status = 400, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "Rate limited; see Retry-After")))]
pub async fn audit(
    State(state): State<AppState>,
    access: TenantAccess,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_params("limit", "limit must be 1..=1000"));
    }
    let entries = state
        .store
        .list_audit(access.tenant.as_str(), limit)
        .await?;
    Ok(success(json!({ "entries": entries })))
}
