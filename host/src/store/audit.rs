//! The per-tenant audit log.

use async_trait::async_trait;

use super::backend::{Backend, Cols, SqlStore};
use super::{AuditRow, Result, rfc3339};

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn audit(
        &self,
        tenant: &str,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&str>,
        now: i64,
    ) -> Result<()>;
    /// The newest `limit` entries, newest first.
    async fn list_audit(&self, tenant: &str, limit: u32) -> Result<Vec<AuditRow>>;
}

#[async_trait]
impl<B: Backend> AuditStore for SqlStore<B> {
    async fn audit(
        &self,
        tenant: &str,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO audit (tenant, at, actor, action, subject, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                tenant.into(),
                now.into(),
                actor.into(),
                action.into(),
                subject.into(),
                detail.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn list_audit(&self, tenant: &str, limit: u32) -> Result<Vec<AuditRow>> {
        let rows = self
            .read_all(
                "SELECT id, at, actor, action, subject, detail FROM audit
                 WHERE tenant = $1 ORDER BY id DESC LIMIT $2",
                &[tenant.into(), limit.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.int(0)?,
                    at: rfc3339(r.int(1)?),
                    actor: r.text(2)?,
                    action: r.text(3)?,
                    subject: r.opt_text(4)?,
                    detail: r.opt_text(5)?,
                })
            })
            .collect()
    }
}
