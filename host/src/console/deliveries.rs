//! Deliveries: the newest ones matching status, channel, user and time,
//! and one delivery with its attempts, outcome details, captured plugin
//! log and handset state. The record is the API's: the destination masked,
//! never the code.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::json;

use super::frame::Frame;
use super::session::Viewer;
use super::view::ConsoleError;
use crate::api::AppState;
use crate::store::{DeliverySearch, DeliveryStatus};

const SHOWN: u32 = 100;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    tenant: Option<String>,
    status: Option<String>,
    channel: Option<String>,
    user: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (UTC), as a `datetime-local` input sends it.
    since: Option<String>,
    until: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A `datetime-local` value (UTC) in ms.
pub fn parse_time(field: &str, v: &Option<String>) -> Result<Option<i64>, ConsoleError> {
    let Some(s) = nonempty(v) else {
        return Ok(None);
    };
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&s, f).ok())
        .map(|t| Some(t.and_utc().timestamp_millis()))
        .ok_or_else(|| {
            ConsoleError::bad_request(&format!("{field} is a time like 2026-01-31T14:30 (UTC)"))
        })
}

fn search(q: &ListQuery) -> Result<DeliverySearch, ConsoleError> {
    let status = match nonempty(&q.status) {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(&s).ok_or_else(|| {
            ConsoleError::bad_request("status is queued, sending, delivered, failed or expired")
        })?),
    };
    Ok(DeliverySearch {
        status,
        channel: nonempty(&q.channel),
        username: nonempty(&q.user),
        since: parse_time("since", &q.since)?,
        until: parse_time("until", &q.until)?,
        limit: SHOWN,
    })
}

/// `GET /console/deliveries`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let frame = Frame::new(&state, &viewer, q.tenant.as_deref(), "deliveries", false).await?;
    let tenant = frame.one();
    let s = search(&q)?;
    let found = state.store.search_deliveries(tenant.as_str(), &s).await?;
    let channels: Vec<String> = state
        .registry
        .list(&tenant)
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    frame.render(
        "deliveries.html",
        json!({
            "deliveries": found,
            "shown": SHOWN,
            "channels": channels,
            "statuses": ["queued", "sending", "delivered", "failed", "expired"],
            "f": { "status": nonempty(&q.status), "channel": s.channel, "user": s.username,
                   "since": nonempty(&q.since), "until": nonempty(&q.until) },
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct TenantOnly {
    tenant: Option<String>,
}

/// `GET /console/deliveries/{id}`.
pub async fn one(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<TenantOnly>,
) -> Result<Response, ConsoleError> {
    let frame = Frame::new(&state, &viewer, q.tenant.as_deref(), "deliveries", false).await?;
    let tenant = frame.one();
    let mut d = state
        .store
        .get_delivery(tenant.as_str(), &id)
        .await?
        .ok_or_else(|| ConsoleError::not_found("No such delivery"))?;
    if let Some(pid) = &d.provider_id {
        d.handset = state
            .store
            .handset_of(tenant.as_str(), &d.channel, pid)
            .await?;
    }
    frame.render("delivery.html", json!({ "d": d }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_datetime_local_values() {
        let t = parse_time("since", &Some("2026-01-31T14:30".into())).unwrap();
        assert_eq!(t, Some(1_769_869_800_000));
        assert_eq!(parse_time("since", &Some(" ".into())).unwrap(), None);
        assert!(parse_time("since", &Some("yesterday".into())).is_err());
    }

    #[test]
    fn a_bad_status_is_a_bad_request() {
        let q = ListQuery {
            status: Some("lost".into()),
            ..Default::default()
        };
        assert!(search(&q).is_err());
    }
}
