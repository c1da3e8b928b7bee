//! The delivery queue: deliveries, their leases and attempts.

use async_trait::async_trait;

use super::backend::{Arg, Backend, Cols, SqlStore};
use super::{
    AttemptRecord, ClaimedDelivery, DeliveryFilter, DeliveryRecord, DeliveryStatus, Finish,
    NewDelivery, Result, rfc3339,
};

#[async_trait]
pub trait QueueStore: Send + Sync {
    async fn insert_delivery(&self, d: &NewDelivery) -> Result<()>;
    /// Leases up to `limit` due deliveries (queued, or sending with an
    /// expired lease) to `owner` until `lease_until`.
    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>>;
    /// Leases one delivery by id if it is due and not leased.
    async fn claim_by_id(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<ClaimedDelivery>>;
    /// Records the outcome if `owner` still holds the lease; returns false
    /// (and changes nothing) if it does not.
    async fn finish(&self, id: &str, owner: &str, now: i64, f: Finish) -> Result<bool>;
    /// Ends the leases held by owners matching the `LIKE` pattern `owners`
    /// other than `except` (a restarted host's earlier runs), so their
    /// deliveries are due now; returns how many.
    async fn release_leases(&self, owners: &str, except: &str, now: i64) -> Result<u64>;
    /// Earliest `next_attempt_at` among deliveries that may be claimed.
    async fn next_due_at(&self) -> Result<Option<i64>>;
    async fn get_delivery(&self, tenant: &str, id: &str) -> Result<Option<DeliveryRecord>>;
    async fn list_deliveries(
        &self,
        tenant: &str,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<DeliveryRecord>, u64)>;
    /// Deliveries in `queued` or `sending`: for shutdown and metrics.
    async fn count_pending(&self) -> Result<u64>;
}

const INSERT_DELIVERY: &str = "INSERT INTO deliveries (id, tenant, channel, send_to_masked,
        username, payload, status, next_attempt_at, lease_owner, lease_until, expires_at,
        fallback_of, fallback_depth, created_at, updated_at, locale, sms_encoding, sms_segments)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17)";

/// The arguments of [`INSERT_DELIVERY`]: leased (`sending`) when the
/// delivery carries a lease, else `queued`.
fn delivery_args(d: &NewDelivery) -> [Arg<'_>; 17] {
    let (status, owner, until) = match &d.lease {
        Some((owner, until)) => (DeliveryStatus::Sending, Some(owner.as_str()), Some(*until)),
        None => (DeliveryStatus::Queued, None, None),
    };
    [
        (&d.id).into(),
        (&d.tenant).into(),
        (&d.channel).into(),
        (&d.send_to_masked).into(),
        (&d.username).into(),
        (&d.payload).into(),
        status.as_str().into(),
        d.next_attempt_at.into(),
        owner.into(),
        until.into(),
        d.expires_at.into(),
        (&d.fallback_of).into(),
        d.fallback_depth.into(),
        d.created_at.into(),
        (&d.facts.locale).into(),
        d.facts.sms.as_ref().map(|s| s.encoding.as_str()).into(),
        d.facts.sms.as_ref().map(|s| i64::from(s.segments)).into(),
    ]
}

/// Due, and not leased by a live worker (`$3` is now).
const CLAIMABLE: &str = "status IN ('queued', 'sending') AND next_attempt_at <= $3
    AND (lease_until IS NULL OR lease_until < $3)";

/// Leases the rows the condition picks to `$1` until `$2` (`$3` is now).
const LEASE: &str =
    "UPDATE deliveries SET status = 'sending', lease_owner = $1, lease_until = $2, updated_at = $3";

const CLAIMED_COLUMNS: &str = "id, tenant, channel, send_to_masked, username, payload,
    attempt_count, expires_at, fallback_depth, created_at";

fn claimed(r: &impl Cols) -> Result<ClaimedDelivery> {
    Ok(ClaimedDelivery {
        id: r.text(0)?,
        tenant: r.text(1)?,
        channel: r.text(2)?,
        send_to_masked: r.text(3)?,
        username: r.opt_text(4)?,
        payload: r.bytes(5)?,
        attempt_count: r.int(6)? as u32,
        expires_at: r.int(7)?,
        fallback_depth: r.int(8)? as u32,
        created_at: r.int(9)?,
    })
}

pub(super) const RECORD_COLUMNS: &str =
    "id, channel, send_to_masked, status, log, username, provider_id,
    fallback_of, expires_at, created_at, locale, sms_encoding, sms_segments";

fn record(r: &impl Cols) -> Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: r.text(0)?,
        channel: r.text(1)?,
        to: r.text(2)?,
        status: r.parsed(3, "delivery status", |s| {
            DeliveryStatus::parse(s).ok_or("not a delivery status")
        })?,
        attempts: Vec::new(),
        log: r.opt_text(4)?,
        username: r.opt_text(5)?,
        provider_id: r.opt_text(6)?,
        fallback_of: r.opt_text(7)?,
        handset: None,
        locale: r.opt_text(10)?,
        sms: match (r.opt_text(11)?, r.opt_int(12)?) {
            (Some(encoding), Some(n)) => Some(super::SmsFacts {
                encoding,
                segments: u32::try_from(n).unwrap_or(u32::MAX),
            }),
            _ => None,
        },
        expires_at: rfc3339(r.int(8)?),
        created_at: rfc3339(r.int(9)?),
    })
}

/// Deliveries matching the filter (`$1` tenant, `$2` username, `$3` status).
const FILTER: &str = "WHERE tenant = $1 AND (CAST($2 AS TEXT) IS NULL OR username = $2)
    AND (CAST($3 AS TEXT) IS NULL OR status = $3)";

impl<B: Backend> SqlStore<B> {
    async fn attempts_of(&self, ids: &[String]) -> Result<Vec<(String, AttemptRecord)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT delivery_id, at, outcome, detail, duration_ms, plugin_sha256,
                    cpu_us, peak_memory_bytes, http_requests
             FROM delivery_attempts
             WHERE {} ORDER BY delivery_id, n",
            B::in_texts("delivery_id", 1, ids.len())
        );
        let rows = self.all(&sql, &[Arg::Texts(ids)]).await?;
        rows.iter()
            .map(|r| {
                let attempt = AttemptRecord {
                    at: rfc3339(r.int(1)?),
                    outcome: r.text(2)?,
                    detail: r.text(3)?,
                    duration_ms: r.int(4)?,
                    plugin_sha256: r.opt_text(5)?,
                    cpu_ms: r.opt_int(6)?.map(|us| us as f64 / 1000.0),
                    peak_memory_bytes: r.opt_int(7)?,
                    http_requests: r.opt_int(8)?,
                };
                Ok((r.text(0)?, attempt))
            })
            .collect()
    }

    /// Records with their attempts, in the order of `rows`.
    pub(super) async fn records(&self, rows: Vec<B::Rec>) -> Result<Vec<DeliveryRecord>> {
        let mut out = rows.iter().map(record).collect::<Result<Vec<_>>>()?;
        let ids: Vec<String> = out.iter().map(|d| d.id.clone()).collect();
        for (id, attempt) in self.attempts_of(&ids).await? {
            if let Some(d) = out.iter_mut().find(|d| d.id == id) {
                d.attempts.push(attempt);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl<B: Backend> QueueStore for SqlStore<B> {
    async fn insert_delivery(&self, d: &NewDelivery) -> Result<()> {
        self.exec(INSERT_DELIVERY, &delivery_args(d)).await?;
        Ok(())
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>> {
        // One statement: where writers serialise (SQLite), two workers can
        // never lease the same row; elsewhere the sub-select locks its rows.
        let sql = format!(
            "{LEASE} WHERE id IN (
                SELECT id FROM deliveries WHERE {CLAIMABLE}
                ORDER BY next_attempt_at LIMIT $4 {})
             RETURNING {CLAIMED_COLUMNS}",
            B::SKIP_LOCKED
        );
        let args = [owner.into(), lease_until.into(), now.into(), limit.into()];
        self.all(&sql, &args).await?.iter().map(claimed).collect()
    }

    async fn claim_by_id(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<ClaimedDelivery>> {
        // A concurrent claimer waits for the row lock and then re-checks the
        // lease on the row it sees: at most one of them matches.
        let sql = format!("{LEASE} WHERE id = $4 AND {CLAIMABLE} RETURNING {CLAIMED_COLUMNS}");
        let args = [owner.into(), lease_until.into(), now.into(), id.into()];
        self.opt(&sql, &args)
            .await?
            .as_ref()
            .map(claimed)
            .transpose()
    }

    async fn finish(&self, id: &str, owner: &str, now: i64, f: Finish) -> Result<bool> {
        let mut tx = self.begin().await?;
        let counted = i64::from(f.attempt.is_some());
        // RETURNING the new count: the attempt row's number, read under the
        // row lock this UPDATE holds until commit.
        let updated = tx
            .opt(
                "UPDATE deliveries SET status = $1, attempt_count = attempt_count + $2,
                    next_attempt_at = COALESCE($3, next_attempt_at), lease_owner = NULL,
                    lease_until = NULL, provider_id = COALESCE($4, provider_id),
                    log = COALESCE($5, log), updated_at = $6
                 WHERE id = $7 AND lease_owner = $8 AND status = 'sending'
                 RETURNING attempt_count",
                &[
                    f.status.as_str().into(),
                    counted.into(),
                    f.next_attempt_at.into(),
                    (&f.provider_id).into(),
                    (&f.log).into(),
                    now.into(),
                    id.into(),
                    owner.into(),
                ],
            )
            .await?;
        let Some(n) = updated else {
            tx.rollback().await?;
            return Ok(false);
        };
        if let Some(a) = &f.attempt {
            tx.exec(
                "INSERT INTO delivery_attempts (delivery_id, n, at, outcome, detail, duration_ms,
                    plugin_sha256, cpu_us, peak_memory_bytes, http_requests)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    id.into(),
                    n.int(0)?.into(),
                    a.at.into(),
                    (&a.outcome).into(),
                    (&a.detail).into(),
                    a.duration_ms.into(),
                    (&a.plugin_sha256).into(),
                    a.resources.as_ref().map(|r| r.cpu_us as i64).into(),
                    a.resources
                        .as_ref()
                        .map(|r| r.peak_memory_bytes as i64)
                        .into(),
                    a.resources
                        .as_ref()
                        .map(|r| i64::from(r.http_requests))
                        .into(),
                ],
            )
            .await?;
        }
        if let Some(next) = &f.then_enqueue {
            tx.exec(INSERT_DELIVERY, &delivery_args(next)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn release_leases(&self, owners: &str, except: &str, now: i64) -> Result<u64> {
        self.exec(
            "UPDATE deliveries SET status = 'queued', lease_owner = NULL, lease_until = NULL,
                updated_at = $3
             WHERE status = 'sending' AND lease_owner LIKE $1 AND lease_owner <> $2",
            &[owners.into(), except.into(), now.into()],
        )
        .await
    }

    async fn next_due_at(&self) -> Result<Option<i64>> {
        let sql = format!(
            "SELECT MIN({}) FROM deliveries WHERE status IN ('queued', 'sending')",
            B::later_of("next_attempt_at", "lease_until")
        );
        self.one(&sql, &[]).await?.opt_int(0)
    }

    async fn get_delivery(&self, tenant: &str, id: &str) -> Result<Option<DeliveryRecord>> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM deliveries WHERE tenant = $1 AND id = $2");
        let rows = self.all(&sql, &[tenant.into(), id.into()]).await?;
        Ok(self.records(rows).await?.into_iter().next())
    }

    async fn list_deliveries(
        &self,
        tenant: &str,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<DeliveryRecord>, u64)> {
        let status = filter.status.map(|s| s.as_str());
        let args = [
            tenant.into(),
            (&filter.username).into(),
            status.into(),
            filter.limit.into(),
        ];
        let count = format!("SELECT COUNT(*) FROM deliveries {FILTER}");
        let total = self.read_one(&count, &args[..3]).await?.int(0)?;
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM deliveries {FILTER} ORDER BY created_at DESC, id LIMIT $4"
        );
        let rows = self.read_all(&sql, &args).await?;
        Ok((self.records(rows).await?, total as u64))
    }

    async fn count_pending(&self) -> Result<u64> {
        let sql = "SELECT COUNT(*) FROM deliveries WHERE status IN ('queued', 'sending')";
        Ok(self.read_one(sql, &[]).await?.int(0)? as u64)
    }
}
