//! Operations: liveness, readiness (store and channels' last health),
//! Prometheus metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

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

    /// A channel's entry: `name` for the `default` tenant, `tenant/name` otherwise.
    pub fn key(tenant: &crate::domain::TenantName, name: &impl std::fmt::Display) -> String {
        if tenant.as_str() == "default" {
            name.to_string()
        } else {
            format!("{tenant}/{name}")
        }
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
            let key = Self::key(&tenant, &ch.name);
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
