//! One-time codes (stored as MACs) and Verify verifications.
//!
//! Every check-and-change here is one statement: a concurrent one either
//! waits for the row (PostgreSQL re-checks the condition on the row it
//! then sees) or for the database (SQLite serialises writers), so exactly
//! one of them wins.
//!
//! Purposes and statuses are typed here and stored as their wire strings
//! (`CodePurpose::as_str`, `VerificationStatus::as_str`), byte for byte what
//! earlier versions stored.

use async_trait::async_trait;

use super::backend::{Backend, Cols, SqlStore};
use super::failures::count_at;
use super::{CodeRow, FailureCount, NewCode, Result, VerificationRow};
use crate::domain::{ChannelName, CodePurpose, VerificationStatus};

#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a code, replacing the subject's live code for `purpose`.
    async fn put_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &CodePurpose,
        code: &NewCode<'_>,
    ) -> Result<()>;
    async fn code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &CodePurpose,
    ) -> Result<Option<CodeRow>>;
    /// Deletes the code if it is still the one with `mac`, live and under
    /// `max` attempts: true exactly once, even under concurrent checks.
    async fn consume_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &CodePurpose,
        mac: &str,
        now: i64,
        max: u32,
    ) -> Result<bool>;
    /// Counts a wrong attempt on a live code; the new count, or None if
    /// there was no live code left to count against.
    async fn fail_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &CodePurpose,
        now: i64,
        max: u32,
    ) -> Result<Option<u32>>;
    async fn delete_code(&self, tenant: &str, subject: &str, purpose: &CodePurpose) -> Result<()>;

    async fn insert_verification(&self, v: &VerificationRow) -> Result<()>;
    async fn verification(&self, tenant: &str, id: &str) -> Result<Option<VerificationRow>>;
    /// A verification and, in the same read, the failure count of the key
    /// its checks count against (None: no count stored).
    async fn verification_for_check(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(VerificationRow, Option<FailureCount>)>>;
    /// `pending` → `status`; false if it was no longer pending.
    async fn finish_verification(
        &self,
        tenant: &str,
        id: &str,
        status: VerificationStatus,
        now: i64,
    ) -> Result<bool>;
}

/// What [`verification_row`] reads, in its order (table alias `v`).
const VERIFICATION_COLUMNS: &str = "v.id, v.tenant, v.channel, v.to_masked, v.username, v.status,
    v.expires_at, v.created_at, v.failure_key";
const ONE_VERIFICATION: &str = "v.tenant = $1 AND v.id = $2";

fn verification_row(r: &impl Cols) -> Result<VerificationRow> {
    Ok(VerificationRow {
        id: r.text(0)?,
        tenant: r.text(1)?,
        channel: r.parsed(2, "verification channel", ChannelName::parse)?,
        to: r.text(3)?,
        username: r.opt_text(4)?,
        status: r.parsed(5, "verification status", |s| {
            VerificationStatus::parse(s).ok_or("not a verification status")
        })?,
        expires_at: r.int(6)?,
        created_at: r.int(7)?,
        failure_key: r.opt_text(8)?,
    })
}

#[async_trait]
impl<B: Backend> CodeStore for SqlStore<B> {
    async fn put_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &CodePurpose,
        code: &NewCode<'_>,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO codes (tenant, subject, purpose, code_mac, attempts, expires_at, created_at,
                fraud_tracked)
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7)
             ON CONFLICT (tenant, subject, purpose) DO UPDATE SET code_mac = excluded.code_mac,
                attempts = 0, expires_at = excluded.expires_at, created_at = excluded.created_at,
                fraud_tracked = excluded.fraud_tracked",
            &[
                tenant.into(),
                subject.into(),
                purpose.as_str().as_ref().into(),
                code.mac.into(),
                code.expires_at.into(),
                code.created_at.into(),
                code.fraud_tracked.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &CodePurpose,
    ) -> Result<Option<CodeRow>> {
        let r = self
            .opt(
                "SELECT code_mac, attempts, expires_at, fraud_tracked FROM codes
                 WHERE tenant = $1 AND subject = $2 AND purpose = $3",
                &[
                    tenant.into(),
                    subject.into(),
                    purpose.as_str().as_ref().into(),
                ],
            )
            .await?;
        r.map(|r| {
            Ok(CodeRow {
                code_mac: r.text(0)?,
                attempts: r.int(1)? as u32,
                expires_at: r.int(2)?,
                fraud_tracked: r.flag(3)?,
            })
        })
        .transpose()
    }

    async fn consume_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &CodePurpose,
        mac: &str,
        now: i64,
        max: u32,
    ) -> Result<bool> {
        // A second DELETE racing this one waits for the row lock and then
        // finds the row gone: one of them deletes it.
        let n = self
            .exec(
                "DELETE FROM codes WHERE tenant = $1 AND subject = $2 AND purpose = $3
                    AND code_mac = $4 AND expires_at > $5 AND attempts < $6",
                &[
                    tenant.into(),
                    subject.into(),
                    purpose.as_str().as_ref().into(),
                    mac.into(),
                    now.into(),
                    max.into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn fail_code(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &CodePurpose,
        now: i64,
        max: u32,
    ) -> Result<Option<u32>> {
        // Concurrent increments serialise on the row lock, and each re-checks
        // `attempts < max` against the count the previous one committed.
        let r = self
            .opt(
                "UPDATE codes SET attempts = attempts + 1
                 WHERE tenant = $1 AND subject = $2 AND purpose = $3 AND expires_at > $4
                    AND attempts < $5
                 RETURNING attempts",
                &[
                    tenant.into(),
                    subject.into(),
                    purpose.as_str().as_ref().into(),
                    now.into(),
                    max.into(),
                ],
            )
            .await?;
        r.map(|r| Ok(r.int(0)? as u32)).transpose()
    }

    async fn delete_code(&self, tenant: &str, subject: &str, purpose: &CodePurpose) -> Result<()> {
        self.exec(
            "DELETE FROM codes WHERE tenant = $1 AND subject = $2 AND purpose = $3",
            &[
                tenant.into(),
                subject.into(),
                purpose.as_str().as_ref().into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn insert_verification(&self, v: &VerificationRow) -> Result<()> {
        self.exec(
            "INSERT INTO verifications (id, tenant, channel, to_masked, username, status,
                expires_at, created_at, updated_at, failure_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
            &[
                (&v.id).into(),
                (&v.tenant).into(),
                v.channel.as_str().into(),
                (&v.to).into(),
                (&v.username).into(),
                v.status.as_str().into(),
                v.expires_at.into(),
                v.created_at.into(),
                (&v.failure_key).into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn verification(&self, tenant: &str, id: &str) -> Result<Option<VerificationRow>> {
        let sql =
            format!("SELECT {VERIFICATION_COLUMNS} FROM verifications v WHERE {ONE_VERIFICATION}");
        let r = self.opt(&sql, &[tenant.into(), id.into()]).await?;
        r.as_ref().map(verification_row).transpose()
    }

    async fn verification_for_check(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(VerificationRow, Option<FailureCount>)>> {
        let sql = format!(
            "SELECT {VERIFICATION_COLUMNS}, f.failures, f.locks, f.locked_until, f.key
             FROM verifications v LEFT JOIN failures f ON f.key = v.failure_key
             WHERE {ONE_VERIFICATION}"
        );
        let Some(r) = self.opt(&sql, &[tenant.into(), id.into()]).await? else {
            return Ok(None);
        };
        let count = match r.opt_text(12)? {
            Some(_) => Some(count_at(&r, 9)?),
            None => None,
        };
        Ok(Some((verification_row(&r)?, count)))
    }

    async fn finish_verification(
        &self,
        tenant: &str,
        id: &str,
        status: VerificationStatus,
        now: i64,
    ) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE verifications SET status = $3, updated_at = $4
                 WHERE tenant = $1 AND id = $2 AND status = 'pending'",
                &[tenant.into(), id.into(), status.as_str().into(), now.into()],
            )
            .await?;
        Ok(n == 1)
    }
}
