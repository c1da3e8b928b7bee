//! The overview: finished deliveries per channel over the last hour, day
//! or week (delivered on the first attempt, delivered after retries,
//! failed, expired), the success rate, send→delivered p50/p95, the queue,
//! and channel health from the health board `/readyz` shows.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::chart::{self, Chart};
use super::frame::Frame;
use super::session::Viewer;
use super::view::{ConsoleError, when};
use crate::api::AppState;
use crate::api::ops::HealthBoard;
use crate::store::{DeliveryStatus, OutcomeBucket};

/// A chart's time span and bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
}

impl Window {
    pub fn parse(s: Option<&str>) -> Result<Self, ConsoleError> {
        match s.unwrap_or("day") {
            "hour" => Ok(Self::Hour),
            "" | "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            _ => Err(ConsoleError::bad_request("window is hour, day or week")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    /// (span, bucket) in ms: 12 × 5 min, 24 × 1 h, 14 × 12 h.
    pub fn spans(self) -> (i64, i64) {
        const MIN: i64 = 60_000;
        match self {
            Self::Hour => (60 * MIN, 5 * MIN),
            Self::Day => (24 * 60 * MIN, 60 * MIN),
            Self::Week => (7 * 24 * 60 * MIN, 12 * 60 * MIN),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    tenant: Option<String>,
    window: Option<String>,
}

/// One channel's counts per bucket (series order of [`chart::SERIES`]).
fn per_channel(rows: &[OutcomeBucket], buckets: usize) -> BTreeMap<String, Vec<[u64; 4]>> {
    let mut out: BTreeMap<String, Vec<[u64; 4]>> = BTreeMap::new();
    for r in rows {
        let series = match (r.status, r.retried) {
            (DeliveryStatus::Delivered, false) => 0,
            (DeliveryStatus::Delivered, true) => 1,
            (DeliveryStatus::Failed, _) => 2,
            (DeliveryStatus::Expired, _) => 3,
            _ => continue,
        };
        let Ok(i) = usize::try_from(r.bucket) else {
            continue;
        };
        let slots = out
            .entry(r.channel.clone())
            .or_insert_with(|| vec![[0; 4]; buckets]);
        if let Some(slot) = slots.get_mut(i) {
            slot[series] += r.count;
        }
    }
    out
}

fn totals(buckets: &[[u64; 4]]) -> [u64; 4] {
    buckets.iter().fold([0; 4], |mut acc, b| {
        for (a, n) in acc.iter_mut().zip(b) {
            *a += n;
        }
        acc
    })
}

/// Delivered (with or without retries) of all finished, in percent.
fn success_rate(t: &[u64; 4]) -> Option<String> {
    let all: u64 = t.iter().sum();
    (all > 0).then(|| format!("{:.1}", (t[0] + t[1]) as f64 * 100.0 / all as f64))
}

fn channel_rows(charts: &BTreeMap<String, Vec<[u64; 4]>>, w: Window) -> Vec<Value> {
    let (span, _) = w.spans();
    let labels = || (format!("-{}", human_span(span)), "now".to_string());
    charts
        .iter()
        .map(|(name, buckets)| {
            let t = totals(buckets);
            let c: Chart = chart::stacked(name.clone(), buckets, labels());
            json!({
                "name": name, "chart": c, "delivered": t[0], "retried": t[1],
                "failed": t[2], "expired": t[3], "rate": success_rate(&t),
            })
        })
        .collect()
}

fn human_span(ms: i64) -> String {
    match ms / 60_000 {
        m if m < 120 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} d", m / 1440),
    }
}

/// `GET /console`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, ConsoleError> {
    let frame = Frame::new(&state, &viewer, q.tenant.as_deref(), "overview", true).await?;
    let w = Window::parse(q.window.as_deref())?;
    let tenant = frame.tenant.as_ref().map(|t| t.as_str());
    let now = state.clock.now_ms();
    let (span, bucket) = w.spans();
    let since = now - span;
    let rows = state.store.outcome_buckets(tenant, since, bucket).await?;
    let charts = per_channel(&rows, (span / bucket) as usize);
    let all = totals(
        &charts
            .values()
            .flat_map(|b| b.iter().copied())
            .collect::<Vec<_>>(),
    );
    let q = state
        .store
        .delivered_quantiles(tenant, since, &[0.5, 0.95])
        .await?;
    let queue = state.store.queue_summary(tenant).await?;
    let overdue = queue.oldest_due_at.map(|at| ((now - at).max(0)) / 1000);
    let health = health_rows(&state, tenant);
    frame.render(
        "overview.html",
        json!({
            "window": w.name(),
            "windows": ["hour", "day", "week"],
            "series": chart::SERIES,
            "channels": channel_rows(&charts, w),
            "total": { "delivered": all[0], "retried": all[1], "failed": all[2],
                       "expired": all[3], "rate": success_rate(&all) },
            "p50": q.first().copied().flatten(),
            "p95": q.get(1).copied().flatten(),
            "queue": { "depth": queue.depth,
                       "oldest_due": queue.oldest_due_at.map(when),
                       "overdue_s": overdue },
            "health": health,
        }),
    )
}

/// Every channel of `tenant` (all for the operator's view) with the health
/// board's last probe; a channel created since the last probe (they run
/// every minute) shows as `unchecked` rather than missing. Names are shown
/// bare in a tenant's view, `tenant/name` in the operator's.
pub fn health_rows(state: &AppState, tenant: Option<&str>) -> Vec<Value> {
    let board = state.health.snapshot();
    let mut rows: Vec<(String, Value)> = state
        .registry
        .all()
        .into_iter()
        .filter(|(t, _)| tenant.is_none_or(|want| want == t.as_str()))
        .map(|(t, ch)| {
            let key = HealthBoard::key(&t, &ch.name);
            let shown = if tenant.is_some() {
                ch.name.to_string()
            } else {
                key.clone()
            };
            let row = match board.get(&key) {
                Some(h) => json!({ "name": shown, "kind": h.kind, "status": h.status,
                                   "detail": h.detail, "checked_at": h.checked_at }),
                None => json!({ "name": shown, "kind": ch.sender.kind(), "status": "unchecked",
                                "detail": "not probed yet (every minute)" }),
            };
            (shown, row)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        channel: &str,
        bucket: i64,
        status: DeliveryStatus,
        retried: bool,
        n: u64,
    ) -> OutcomeBucket {
        OutcomeBucket {
            channel: channel.into(),
            bucket,
            status,
            retried,
            count: n,
        }
    }

    #[test]
    fn outcomes_land_in_their_channel_bucket_and_series() {
        let rows = [
            row("sms", 0, DeliveryStatus::Delivered, false, 3),
            row("sms", 0, DeliveryStatus::Delivered, true, 1),
            row("sms", 11, DeliveryStatus::Failed, true, 2),
            row("mail", 5, DeliveryStatus::Expired, false, 4),
            row("mail", 99, DeliveryStatus::Failed, false, 9),
        ];
        let c = per_channel(&rows, 12);
        assert_eq!(c["sms"][0], [3, 1, 0, 0]);
        assert_eq!(c["sms"][11], [0, 0, 2, 0]);
        assert_eq!(
            totals(&c["mail"]),
            [0, 0, 0, 4],
            "outside the window is dropped"
        );
        assert_eq!(success_rate(&totals(&c["sms"])).as_deref(), Some("66.7"));
        assert_eq!(success_rate(&[0; 4]), None);
    }

    #[test]
    fn windows_parse_and_default_to_a_day() {
        assert_eq!(Window::parse(None).unwrap(), Window::Day);
        assert_eq!(
            Window::parse(Some("week")).unwrap().spans().0,
            7 * 86_400_000
        );
        assert!(Window::parse(Some("year")).is_err());
    }
}
