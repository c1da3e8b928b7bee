//! The overview's figures per clock hour, kept in memory once an hour is
//! settled, so a week's overview reads a few hours of rows instead of a
//! week's (the bench: 100,000 deliveries).
//!
//! An hour is settled when it ended more than [`SETTLE_MS`] ago (another
//! host's clock may lag a little) and none of the deliveries created in it
//! is still queued or sending: nothing can change its figures any more.
//! Each host keeps its own; they agree because they come from the same
//! rows. At most [`MAX_HOURS`] entries; the oldest hours go first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::{DeliveryStatus, Result, Store};

pub const HOUR_MS: i64 = 3_600_000;
/// How long after its end an hour may still gain rows (clock skew).
pub const SETTLE_MS: i64 = 5 * 60_000;
/// About 120 tenant-weeks of hours.
pub const MAX_HOURS: usize = 20_000;

/// One bucket's figures: per channel the counts in series order
/// (delivered first try, delivered after retries, failed, expired), the
/// delivered ones by send→delivered time, and how many are not final yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub channels: BTreeMap<String, [u64; 4]>,
    pub took: BTreeMap<i64, u64>,
    pub unfinished: u64,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        for (ch, counts) in &other.channels {
            let mine = self.channels.entry(ch.clone()).or_default();
            for (a, b) in mine.iter_mut().zip(counts) {
                *a += b;
            }
        }
        for (t, n) in &other.took {
            *self.took.entry(*t).or_default() += n;
        }
        self.unfinished += other.unfinished;
    }

    /// Sums consecutive groups of `n` buckets.
    pub fn fold(buckets: &[Figures], n: usize) -> Vec<Figures> {
        buckets
            .chunks(n.max(1))
            .map(|group| {
                let mut sum = Figures::default();
                group.iter().for_each(|f| sum.add(f));
                sum
            })
            .collect()
    }

    /// Adds `other`'s buckets to `mine`, bucket by bucket.
    pub fn zip_add(mut mine: Vec<Figures>, other: &[Figures]) -> Vec<Figures> {
        mine.iter_mut().zip(other).for_each(|(a, b)| a.add(b));
        mine
    }

    /// All buckets together.
    pub fn total(buckets: &[Figures]) -> Figures {
        Self::fold(buckets, buckets.len()).pop().unwrap_or_default()
    }

    /// Nearest rank: the smallest time with at least `q` of the delivered
    /// at or below it.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        let n: u64 = self.took.values().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        self.took.iter().find_map(|(t, c)| {
            seen += c;
            (seen >= rank).then_some(*t)
        })
    }
}

/// Series index of a final status, `None` for queued or sending.
fn series(status: DeliveryStatus, retried: bool) -> Option<usize> {
    match (status, retried) {
        (DeliveryStatus::Delivered, false) => Some(0),
        (DeliveryStatus::Delivered, true) => Some(1),
        (DeliveryStatus::Failed, _) => Some(2),
        (DeliveryStatus::Expired, _) => Some(3),
        _ => None,
    }
}

/// The figures of `count` buckets of `bucket_ms` from `since`, from the rows.
pub async fn from_rows(
    store: &dyn Store,
    tenant: Option<&str>,
    since: i64,
    bucket_ms: i64,
    count: usize,
) -> Result<Vec<Figures>> {
    let until = since + bucket_ms * count as i64;
    let mut out = vec![Figures::default(); count];
    let slot = |b: i64| usize::try_from(b).ok().filter(|&i| i < count);
    for r in store
        .outcome_buckets(tenant, since, until, bucket_ms)
        .await?
    {
        let Some(i) = slot(r.bucket) else {
            continue;
        };
        match series(r.status, r.retried) {
            Some(s) => out[i].channels.entry(r.channel).or_default()[s] += r.count,
            None => out[i].unfinished += r.count,
        }
    }
    for t in store.took_buckets(tenant, since, until, bucket_ms).await? {
        if let Some(i) = slot(t.bucket) {
            *out[i].took.entry(t.took_ms).or_default() += t.count;
        }
    }
    Ok(out)
}

type Key = (Option<String>, i64);

/// Settled hours' figures per (tenant or every tenant, hour start).
#[derive(Default)]
pub struct HourCache {
    hours: Mutex<HashMap<Key, Arc<Figures>>>,
}

impl HourCache {
    /// The map; a panic elsewhere while it was held leaves whole entries
    /// only (each insert is one call), so a poisoned lock is still usable.
    fn map(&self) -> MutexGuard<'_, HashMap<Key, Arc<Figures>>> {
        self.hours.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &Key) -> Option<Arc<Figures>> {
        self.map().get(key).cloned()
    }

    fn put(&self, key: Key, f: Figures) {
        let mut hours = self.map();
        if hours.len() >= MAX_HOURS {
            // Drop the oldest tenth at once, so a full cache is not scanned per insert.
            let mut starts: Vec<i64> = hours.keys().map(|k| k.1).collect();
            starts.sort_unstable();
            let cut = starts[starts.len() / 10];
            hours.retain(|k, _| k.1 > cut);
        }
        hours.insert(key, Arc::new(f));
    }

    /// The `count` hours from `first` (an hour start): settled ones from
    /// memory, the rest (from the first unsettled one on) from the rows in
    /// two statements; the newly settled are kept.
    pub async fn hours(
        &self,
        store: &dyn Store,
        tenant: Option<&str>,
        first: i64,
        count: usize,
        now: i64,
    ) -> Result<Vec<Figures>> {
        let key = |i: usize| (tenant.map(str::to_string), first + i as i64 * HOUR_MS);
        let mut out: Vec<Figures> = Vec::with_capacity(count);
        let cached = (0..count)
            .map_while(|i| self.get(&key(i)))
            .map(|f| (*f).clone());
        out.extend(cached);
        let from = out.len();
        if from == count {
            return Ok(out);
        }
        let start = first + from as i64 * HOUR_MS;
        let fresh = from_rows(store, tenant, start, HOUR_MS, count - from).await?;
        for (j, f) in fresh.into_iter().enumerate() {
            let hour_end = start + (j as i64 + 1) * HOUR_MS;
            if hour_end + SETTLE_MS <= now && f.unfinished == 0 {
                self.put(key(from + j), f.clone());
            }
            out.push(f);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(ch: &str, counts: [u64; 4], took: &[(i64, u64)]) -> Figures {
        Figures {
            channels: [(ch.to_string(), counts)].into(),
            took: took.iter().copied().collect(),
            unfinished: 0,
        }
    }

    #[test]
    fn buckets_fold_and_sum_per_channel() {
        let hours = [
            figures("sms", [1, 0, 2, 0], &[(10, 1)]),
            figures("sms", [3, 1, 0, 0], &[(10, 2), (200, 2)]),
            figures("mail", [0, 0, 0, 5], &[]),
        ];
        let folded = Figures::fold(&hours, 2);
        assert_eq!(folded.len(), 2);
        assert_eq!(folded[0].channels["sms"], [4, 1, 2, 0]);
        assert_eq!(folded[0].took[&10], 3);
        assert_eq!(folded[1].channels["mail"], [0, 0, 0, 5]);
        assert_eq!(Figures::total(&hours).channels.len(), 2);
        assert_eq!(Figures::total(&[]), Figures::default());
        let twice = Figures::zip_add(hours.to_vec(), &hours);
        assert_eq!(twice[1].channels["sms"], [6, 2, 0, 0]);
    }

    #[test]
    fn quantiles_are_nearest_rank_over_the_histogram() {
        let f = figures("sms", [0; 4], &[(10, 5), (20, 4), (500, 1)]);
        assert_eq!(f.quantile(0.5), Some(10));
        assert_eq!(f.quantile(0.9), Some(20));
        assert_eq!(f.quantile(0.95), Some(500));
        assert_eq!(f.quantile(0.0), Some(10));
        assert_eq!(Figures::default().quantile(0.5), None);
    }

    #[test]
    fn series_are_final_statuses_only() {
        assert_eq!(series(DeliveryStatus::Delivered, true), Some(1));
        assert_eq!(series(DeliveryStatus::Queued, false), None);
        assert_eq!(series(DeliveryStatus::Sending, true), None);
    }

    /// A settled hour is read once; an hour with a delivery still queued,
    /// and the current hour, are read again each time.
    #[tokio::test]
    async fn settled_hours_are_kept_and_the_rest_reread() {
        use crate::store::{SqliteStore, TenantStore};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let h0 = 1_700_000_000_000 / HOUR_MS * HOUR_MS;
        let now = h0 + 2 * HOUR_MS + 60_000;
        store.ensure_tenant("acme", h0).await.unwrap();
        let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
        let add = |id: &'static str, at: i64, status: &'static str| {
            let raw = raw.clone();
            async move {
                sqlx::query(
                    "INSERT INTO deliveries (id, tenant, channel, send_to_masked, payload, status,
                        attempt_count, next_attempt_at, expires_at, created_at, updated_at)
                     VALUES ($1, 'acme', 'sms', 'x', x'00', $2, 1, $3, $3 + 600000, $3, $3 + 40)",
                )
                .bind(id)
                .bind(status)
                .bind(at)
                .execute(&raw)
                .await
                .unwrap();
            }
        };
        add("a", h0 + 10, "delivered").await;
        add("b", h0 + 20, "failed").await;
        add("c", h0 + HOUR_MS + 10, "queued").await;
        add("d", h0 + 2 * HOUR_MS + 10, "delivered").await;
        let cache = HourCache::default();
        let first = cache.hours(&store, Some("acme"), h0, 3, now).await.unwrap();
        assert_eq!(first[0].channels["sms"], [1, 0, 1, 0]);
        assert_eq!(first[0].took[&40], 1);
        assert_eq!(first[1].unfinished, 1);

        // Rows that cannot appear in a settled hour prove it is not read again.
        add("e", h0 + 30, "delivered").await;
        sqlx::query("UPDATE deliveries SET status = 'delivered' WHERE id = 'c'")
            .execute(&raw)
            .await
            .unwrap();
        add("f", h0 + 2 * HOUR_MS + 20, "expired").await;
        let again = cache.hours(&store, Some("acme"), h0, 3, now).await.unwrap();
        assert_eq!(again[0], first[0], "settled: kept");
        assert_eq!(
            again[1].channels["sms"],
            [1, 0, 0, 0],
            "was unfinished: read again"
        );
        assert_eq!(
            again[2].channels["sms"],
            [1, 0, 0, 1],
            "current hour: read again"
        );
        let other = cache
            .hours(&store, Some("globex"), h0, 3, now)
            .await
            .unwrap();
        assert!(other.iter().all(|f| f.channels.is_empty()), "per tenant");
    }
}
