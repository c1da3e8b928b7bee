//! Operator API: tenants (admin token).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{Admin, ApiJson, ApiPath};
use crate::crypto::{random_token, sha256_hex};
use crate::domain::TenantName;
use crate::store::{StoreError, rfc3339};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    name: String,
}

/// `POST /admin/v1/tenants {name}` → 201 `{tenant:{name}, apiKey}`; the key is shown once.
#[utoipa::path(post, path = "/admin/v1/tenants", tag = "operator", request_body = CreateTenant, security(("bearer" = [])),
    responses((status = 201, description = "{success, tenant:{name, createdAt}, apiKey}"), (status = 409, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(b): ApiJson<CreateTenant>,
) -> Result<Response, ApiError> {
    let name = TenantName::parse(&b.name).map_err(|m| ApiError::invalid_params("name", m))?;
    let key = random_token("ptk_");
    let now = state.clock.now_ms();
    match state
        .store
        .create_tenant(name.as_str(), Some(&sha256_hex(key.as_bytes())), now)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "error-conflict",
                format!("tenant `{name}` exists"),
            )
            .with_details(json!({ "field": "name" })));
        }
        Err(e) => return Err(e.into()),
    }
    state
        .store
        .audit(
            name.as_str(),
            "admin",
            "tenant.create",
            Some(name.as_str()),
            None,
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "success": true, "tenant": { "name": name, "createdAt": rfc3339(now) }, "apiKey": key })),
    )
        .into_response())
}

#[utoipa::path(get, path = "/admin/v1/tenants", tag = "operator", security(("bearer" = [])),
    responses((status = 200, description = "{success, tenants:[{name, createdAt}]}")))]
pub async fn list(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let tenants: Vec<Value> = state
        .store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| json!({ "name": t.name, "createdAt": rfc3339(t.created_at) }))
        .collect();
    Ok(Json(json!({ "success": true, "tenants": tenants })))
}

#[derive(Deserialize)]
pub struct NameParam {
    name: String,
}

#[utoipa::path(get, path = "/admin/v1/tenants/{name}", tag = "operator", params(("name" = String, Path, description = "Tenant name")),
    security(("bearer" = [])), responses((status = 200, description = "{success, tenant}"), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    let t = state
        .store
        .list_tenants()
        .await?
        .into_iter()
        .find(|t| t.name == p.name)
        .ok_or_else(|| ApiError::not_found("No such tenant"))?;
    Ok(Json(
        json!({ "success": true, "tenant": { "name": t.name, "createdAt": rfc3339(t.created_at) } }),
    ))
}

/// Deletes a tenant and everything it owns (users, channels, deliveries, audit).
#[utoipa::path(delete, path = "/admin/v1/tenants/{name}", tag = "operator", params(("name" = String, Path, description = "Tenant name")),
    security(("bearer" = [])), responses((status = 200, description = "Deleted"), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "`default` cannot be deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(p): ApiPath<NameParam>,
) -> Result<Json<Value>, ApiError> {
    let name = TenantName::parse(&p.name).map_err(|_| ApiError::not_found("No such tenant"))?;
    if name == TenantName::default_tenant() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "error-conflict",
            "the default tenant cannot be deleted",
        ));
    }
    if !state.store.delete_tenant(name.as_str()).await? {
        return Err(ApiError::not_found("No such tenant"));
    }
    state.reload_tenant_channels().await?;
    Ok(Json(json!({ "success": true })))
}
