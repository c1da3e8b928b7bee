//! The overview: finished deliveries per channel over the last hour, day
//! or week (delivered on the first attempt, delivered after retries,
//! failed, expired), the success rate, send→delivered p50/p95, the queue,
//! and channel health from the health board `/readyz` shows.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::chart::{self, Chart};
use super::frame::Frame;
use super::rollup::{self, Figures, HOUR_MS, HourCache};
use super::session::Viewer;
use super::view::{ConsoleError, when};
use crate::api::AppState;
use crate::api::ops::HealthBoard;
use crate::domain::TenantName;

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

    /// (bucket ms, buckets): 12 × 5 min, 24 × 1 h, 14 × 12 h.
    pub fn buckets(self) -> (i64, usize) {
        const MIN: i64 = 60_000;
        match self {
            Self::Hour => (5 * MIN, 12),
            Self::Day => (HOUR_MS, 24),
            Self::Week => (12 * HOUR_MS, 14),
        }
    }

    /// The first bucket's start: buckets are aligned to the clock (UTC), the
    /// last one is the current, partial one.
    pub fn first(self, now: i64) -> i64 {
        let (bucket, count) = self.buckets();
        now.div_euclid(bucket) * bucket - (count as i64 - 1) * bucket
    }
}

/// The window's figures per bucket: the last hour from the rows, longer
/// windows from hours (settled ones kept in memory, see `rollup`). The
/// operator's are the sum of every tenant's, so each read stays on the
/// `(tenant, created_at)` index.
async fn figures(
    state: &AppState,
    cache: &HourCache,
    tenant: Option<&str>,
    w: Window,
    now: i64,
) -> Result<Vec<Figures>, ConsoleError> {
    let Some(tenant) = tenant else {
        let mut names: Vec<String> = state
            .store
            .list_tenants()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.push(TenantName::default_tenant().as_str().to_string());
        names.sort_unstable();
        names.dedup();
        let mut sum = Vec::new();
        for t in &names {
            let one = tenant_figures(state, cache, t, w, now).await?;
            sum = if sum.is_empty() {
                one
            } else {
                Figures::zip_add(sum, &one)
            };
        }
        return Ok(sum);
    };
    tenant_figures(state, cache, tenant, w, now).await
}

async fn tenant_figures(
    state: &AppState,
    cache: &HourCache,
    tenant: &str,
    w: Window,
    now: i64,
) -> Result<Vec<Figures>, ConsoleError> {
    let (bucket, count) = w.buckets();
    let first = w.first(now);
    let store = state.store.as_ref();
    if bucket < HOUR_MS {
        return Ok(rollup::from_rows(store, Some(tenant), first, bucket, count).await?);
    }
    let per = (bucket / HOUR_MS) as usize;
    let hours = cache
        .hours(store, Some(tenant), first, count * per, now)
        .await?;
    Ok(Figures::fold(&hours, per))
}

#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    tenant: Option<String>,
    window: Option<String>,
}

/// One channel's counts per bucket (series order of [`chart::SERIES`]).
fn per_channel(buckets: &[Figures]) -> BTreeMap<String, Vec<[u64; 4]>> {
    let mut out: BTreeMap<String, Vec<[u64; 4]>> = BTreeMap::new();
    for (i, f) in buckets.iter().enumerate() {
        for (ch, counts) in &f.channels {
            out.entry(ch.clone())
                .or_insert_with(|| vec![[0; 4]; buckets.len()])[i] = *counts;
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
    let (bucket, count) = w.buckets();
    let span = bucket * count as i64;
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
    Extension(hours): Extension<Arc<HourCache>>,
    viewer: Viewer,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, ConsoleError> {
    let frame = Frame::new(&state, &viewer, q.tenant.as_deref(), "overview", true).await?;
    let w = Window::parse(q.window.as_deref())?;
    let tenant = frame.tenant.as_ref().map(|t| t.as_str());
    let now = state.clock.now_ms();
    let buckets = figures(&state, &hours, tenant, w, now).await?;
    let charts = per_channel(&buckets);
    let all = totals(&charts.values().flatten().copied().collect::<Vec<_>>());
    let took = Figures::total(&buckets);
    let q = [took.quantile(0.5), took.quantile(0.95)];
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
            "p50": q[0],
            "p95": q[1],
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

    #[test]
    fn outcomes_land_in_their_channel_bucket() {
        let mut hours = vec![Figures::default(); 12];
        hours[0].channels.insert("sms".into(), [3, 1, 0, 0]);
        hours[11].channels.insert("sms".into(), [0, 0, 2, 0]);
        hours[5].channels.insert("mail".into(), [0, 0, 0, 4]);
        let c = per_channel(&hours);
        assert_eq!(c["sms"].len(), 12);
        assert_eq!(c["sms"][0], [3, 1, 0, 0]);
        assert_eq!(c["sms"][11], [0, 0, 2, 0]);
        assert_eq!(totals(&c["mail"]), [0, 0, 0, 4]);
        assert_eq!(success_rate(&totals(&c["sms"])).as_deref(), Some("66.7"));
        assert_eq!(success_rate(&[0; 4]), None);
    }

    #[test]
    fn windows_parse_and_default_to_a_day() {
        assert_eq!(Window::parse(None).unwrap(), Window::Day);
        let week = Window::parse(Some("week")).unwrap();
        assert_eq!(week.buckets(), (12 * HOUR_MS, 14));
        let now = 1_764_650_000_000;
        let first = week.first(now);
        assert_eq!(first % (12 * HOUR_MS), 0, "aligned to the clock");
        assert!(now - first > 13 * 12 * HOUR_MS && now - first <= 14 * 12 * HOUR_MS);
        assert!(Window::parse(Some("year")).is_err());
    }
}
