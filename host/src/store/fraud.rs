//! The SMS-pumping guard's figures: codes sent per destination prefix and
//! whether each was checked (converted), over a sliding window; prefixes
//! the guard blocked or flagged. Shared by every host using the store.

use async_trait::async_trait;

use super::Result;
use super::backend::{Backend, Cols, SqlStore};

/// A prefix the guard stopped (`blocked`) or only reported (`monitor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedPrefix {
    pub tenant: String,
    /// `+<country code><first digits>`.
    pub prefix: String,
    /// ISO 3166-1 alpha-2, when the number's country is known.
    pub country: Option<String>,
    pub blocked: bool,
    /// The window's figures when it was flagged.
    pub sends: u64,
    pub checks: u64,
    pub since: i64,
}

#[async_trait]
pub trait FraudStore: Send + Sync {
    /// Records a code sent to `prefix` for `subject`/`purpose`; forgets the
    /// prefix's sends at or before `forget_before`.
    async fn record_fraud_send(
        &self,
        tenant: &str,
        prefix: &str,
        subject: &str,
        purpose: &str,
        now: i64,
        forget_before: i64,
    ) -> Result<()>;
    /// (sends, converted sends) to `prefix` after `since`.
    async fn fraud_window(&self, tenant: &str, prefix: &str, since: i64) -> Result<(u64, u64)>;
    /// The subject's codes for `purpose` were checked: its sends converted.
    async fn mark_converted(&self, tenant: &str, subject: &str, purpose: &str) -> Result<()>;
    async fn flagged_prefix(&self, tenant: &str, prefix: &str) -> Result<Option<FlaggedPrefix>>;
    /// Flags (or re-flags in another mode) a prefix: true if this call changed it.
    async fn flag_prefix(&self, p: &FlaggedPrefix) -> Result<bool>;
    async fn flagged_prefixes(&self, tenant: &str) -> Result<Vec<FlaggedPrefix>>;
    /// Unblocks a prefix and forgets its sends (a fresh start): true if it was flagged.
    async fn unflag_prefix(&self, tenant: &str, prefix: &str) -> Result<bool>;
    /// Blocked prefixes by tenant.
    async fn blocked_prefixes_by_tenant(&self) -> Result<Vec<(String, u64)>>;
}

const FLAGGED_COLS: &str = "tenant, prefix, country, mode, sends, checks, since";

fn flagged(r: &impl Cols) -> Result<FlaggedPrefix> {
    Ok(FlaggedPrefix {
        tenant: r.text(0)?,
        prefix: r.text(1)?,
        country: r.opt_text(2)?,
        blocked: r.text(3)? == "blocked",
        sends: u64::try_from(r.int(4)?).unwrap_or(0),
        checks: u64::try_from(r.int(5)?).unwrap_or(0),
        since: r.int(6)?,
    })
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl<B: Backend> FraudStore for SqlStore<B> {
    async fn record_fraud_send(
        &self,
        tenant: &str,
        prefix: &str,
        subject: &str,
        purpose: &str,
        now: i64,
        forget_before: i64,
    ) -> Result<()> {
        self.exec(
            "DELETE FROM fraud_sends WHERE tenant = $1 AND prefix = $2 AND sent_at <= $3",
            &[tenant.into(), prefix.into(), forget_before.into()],
        )
        .await?;
        self.exec(
            "INSERT INTO fraud_sends (tenant, prefix, subject, purpose, sent_at, converted)
             VALUES ($1, $2, $3, $4, $5, 0)",
            &[
                tenant.into(),
                prefix.into(),
                subject.into(),
                purpose.into(),
                now.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn fraud_window(&self, tenant: &str, prefix: &str, since: i64) -> Result<(u64, u64)> {
        let r = self
            .one(
                "SELECT COUNT(*), CAST(COALESCE(SUM(converted), 0) AS BIGINT) FROM fraud_sends
                 WHERE tenant = $1 AND prefix = $2 AND sent_at > $3",
                &[tenant.into(), prefix.into(), since.into()],
            )
            .await?;
        let n = |i| r.int(i).map(|v| u64::try_from(v).unwrap_or(0));
        Ok((n(0)?, n(1)?))
    }

    async fn mark_converted(&self, tenant: &str, subject: &str, purpose: &str) -> Result<()> {
        self.exec(
            "UPDATE fraud_sends SET converted = 1
             WHERE tenant = $1 AND subject = $2 AND purpose = $3 AND converted = 0",
            &[tenant.into(), subject.into(), purpose.into()],
        )
        .await?;
        Ok(())
    }

    async fn flagged_prefix(&self, tenant: &str, prefix: &str) -> Result<Option<FlaggedPrefix>> {
        let sql =
            format!("SELECT {FLAGGED_COLS} FROM fraud_prefixes WHERE tenant = $1 AND prefix = $2");
        let r = self.opt(&sql, &[tenant.into(), prefix.into()]).await?;
        r.as_ref().map(flagged).transpose()
    }

    async fn flag_prefix(&self, p: &FlaggedPrefix) -> Result<bool> {
        let mode = if p.blocked { "blocked" } else { "monitor" };
        let sql = format!(
            "INSERT INTO fraud_prefixes ({FLAGGED_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant, prefix) DO UPDATE SET mode = excluded.mode,
                sends = excluded.sends, checks = excluded.checks, since = excluded.since
             WHERE fraud_prefixes.mode <> excluded.mode"
        );
        let n = self
            .exec(
                &sql,
                &[
                    (&p.tenant).into(),
                    (&p.prefix).into(),
                    p.country.as_deref().into(),
                    mode.into(),
                    as_i64(p.sends).into(),
                    as_i64(p.checks).into(),
                    p.since.into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn flagged_prefixes(&self, tenant: &str) -> Result<Vec<FlaggedPrefix>> {
        let sql = format!(
            "SELECT {FLAGGED_COLS} FROM fraud_prefixes WHERE tenant = $1 ORDER BY since, prefix"
        );
        let rows = self.all(&sql, &[tenant.into()]).await?;
        rows.iter().map(flagged).collect()
    }

    async fn unflag_prefix(&self, tenant: &str, prefix: &str) -> Result<bool> {
        let n = self
            .exec(
                "DELETE FROM fraud_prefixes WHERE tenant = $1 AND prefix = $2",
                &[tenant.into(), prefix.into()],
            )
            .await?;
        self.exec(
            "DELETE FROM fraud_sends WHERE tenant = $1 AND prefix = $2",
            &[tenant.into(), prefix.into()],
        )
        .await?;
        Ok(n == 1)
    }

    async fn blocked_prefixes_by_tenant(&self) -> Result<Vec<(String, u64)>> {
        let rows = self
            .all(
                "SELECT tenant, COUNT(*) FROM fraud_prefixes WHERE mode = 'blocked'
                 GROUP BY tenant ORDER BY tenant",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.text(0)?, u64::try_from(r.int(1)?).unwrap_or(0))))
            .collect()
    }
}
