//! Channels (kind, health, last error, "send test"), plugins (version,
//! size, upload time, attempts by outcome and failure reason), the audit
//! log and, for the operator, the tenants. Channel configs and secrets are
//! never shown; test deliveries use a throwaway code that is never stored
//! readable.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::frame::{Frame, TenantQuery};
use super::overview::health_rows;
use super::session::{Viewer, parse_form, same_origin};
use super::view::{ConsoleError, when};
use crate::api::AppState;
use crate::api::deliveries::send_test as send_test_delivery;
use crate::api::extract::ClientInfo;
use crate::store::{DeliverySearch, DeliveryStatus, PluginOutcome};

/// `GET /console/channels`.
pub async fn channels(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Response, ConsoleError> {
    let frame = Frame::new(&state, &viewer, q.tenant.as_deref(), "channels", false).await?;
    let tenant = frame.one();
    let health: BTreeMap<String, Value> = health_rows(&state, Some(tenant.as_str()))
        .into_iter()
        .filter_map(|h| Some((h["name"].as_str()?.to_string(), h)))
        .collect();
    let plugins: BTreeMap<String, Option<String>> = state
        .store
        .channels(Some(tenant.as_str()))
        .await?
        .into_iter()
        .map(|c| (c.name, c.plugin))
        .collect();
    let mut rows = Vec::new();
    for ch in state.registry.list(&tenant) {
        let name = ch.name.to_string();
        let failed = DeliverySearch {
            status: Some(DeliveryStatus::Failed),
            channel: Some(name.clone()),
            limit: 1,
            ..Default::default()
        };
        let last = state
            .store
            .search_deliveries(tenant.as_str(), &failed)
            .await?;
        let last_error = last
            .first()
            .and_then(|d| d.attempts.last())
            .map(|a| json!({ "at": a.at, "detail": a.detail }));
        rows.push(json!({
            "name": name,
            "kind": ch.sender.kind(),
            "fallback": ch.fallback.as_ref().map(|f| f.to_string()),
            "plugin": plugins.get(&name).cloned().flatten(),
            "health": health.get(&name),
            "last_error": last_error,
        }));
    }
    frame.render("channels.html", json!({ "channels": rows }))
}

#[derive(Deserialize)]
struct TestForm {
    csrf: String,
    send_to: String,
}

/// `POST /console/channels/{name}/test`: one real delivery, then its page.
pub async fn send_test(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
    ClientInfo(caller): ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    same_origin(&headers)?;
    let form: TestForm = parse_form(&body)?;
    viewer.check_csrf(&form.csrf)?;
    let frame = Frame::new(&state, &viewer, q.tenant.as_deref(), "channels", false).await?;
    let tenant = frame.one();
    let to = form.send_to.trim().to_string();
    if to.is_empty() {
        return Err(ConsoleError::bad_request("Say where the test goes."));
    }
    let d = send_test_delivery(&state, tenant.clone(), name, to, caller).await?;
    let tq = frame.ctx["tq"].as_str().unwrap_or_default();
    Ok(Redirect::to(&format!("/console/deliveries/{}{tq}", d.id)).into_response())
}

/// One plugin version's attempts by outcome, and its failure reasons.
type VersionStats = (BTreeMap<String, u64>, Vec<Value>);

/// Attempts of each plugin version: by outcome, and the failure reasons.
fn by_version(outcomes: Vec<PluginOutcome>) -> BTreeMap<String, VersionStats> {
    let mut out: BTreeMap<String, VersionStats> = BTreeMap::new();
    for o in outcomes {
        let entry = out.entry(o.plugin_sha256).or_default();
        *entry.0.entry(o.outcome.clone()).or_default() += o.count;
        if o.outcome != "delivered" {
            entry
                .1
                .push(json!({ "outcome": o.outcome, "detail": o.detail, "count": o.count }));
        }
    }
    out
}

async fn plugin_rows(state: &AppState, tenant: &str) -> Result<Vec<Value>, ConsoleError> {
    let stats = by_version(state.store.plugin_outcomes(tenant, 500).await?);
    let rows = state.store.plugins(Some(tenant)).await?;
    Ok(rows
        .into_iter()
        .map(|p| {
            let info: Value = serde_json::from_str(&p.info).unwrap_or(Value::Null);
            let (counts, reasons) = stats.get(&p.sha256).cloned().unwrap_or_default();
            json!({
                "name": p.name, "sha256": p.sha256, "size": p.size,
                "uploaded": when(p.uploaded_at), "version": info.get("version"),
                "description": info.get("description"), "key_id": p.key_id,
                "counts": counts, "reasons": reasons,
                "attempts": counts.values().sum::<u64>(),
            })
        })
        .collect())
}

/// `GET /console/plugins`.
pub async fn plugins(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Response, ConsoleError> {
    let frame = Frame::new(&state, &viewer, q.tenant.as_deref(), "plugins", false).await?;
    let rows = plugin_rows(&state, frame.one().as_str()).await?;
    frame.render("plugins.html", json!({ "plugins": rows }))
}

/// `GET /console/plugins/{name}`.
pub async fn plugin(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Response, ConsoleError> {
    let frame = Frame::new(&state, &viewer, q.tenant.as_deref(), "plugins", false).await?;
    let row = plugin_rows(&state, frame.one().as_str())
        .await?
        .into_iter()
        .find(|p| p["name"] == name.as_str())
        .ok_or_else(|| ConsoleError::not_found("No such plugin"))?;
    frame.render("plugin.html", json!({ "p": row }))
}

/// `GET /console/audit`.
pub async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Response, ConsoleError> {
    let frame = Frame::new(&state, &viewer, q.tenant.as_deref(), "audit", false).await?;
    let entries = state.store.list_audit(frame.one().as_str(), 200).await?;
    frame.render("audit.html", json!({ "entries": entries }))
}

/// `GET /console/tenants` (operator only).
pub async fn tenants(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, ConsoleError> {
    if !viewer.is_operator() {
        return Err(ConsoleError::forbidden(
            "Only the operator sees the tenants.",
        ));
    }
    let frame = Frame::new(&state, &viewer, None, "tenants", true).await?;
    let mut rows = Vec::new();
    for t in state.store.list_tenants().await? {
        let q = state.store.queue_summary(Some(&t.name)).await?;
        rows.push(json!({ "name": t.name, "created": when(t.created_at), "queued": q.depth }));
    }
    frame.render("tenants.html", json!({ "rows": rows }))
}
