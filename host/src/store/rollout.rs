//! Staged plugin rollouts (`PUT /plugins/{name}?canary=N`): the version on
//! trial beside the live one, the outcomes of both that the rollback
//! decision reads, and how the rollout ended. Everything is here, in the
//! one database, so every host routes and decides alike.

use async_trait::async_trait;

use super::backend::{Backend, Cols, SqlStore};
use super::tenants::bump_and_commit;
use super::{PluginRow, Result, StoreError};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    /// The candidate takes its share of deliveries.
    Canary,
    /// The candidate became the live version.
    Promoted,
    /// The candidate was withdrawn (by hand or by the failure-rate check).
    RolledBack,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Canary => "canary",
            RolloutState::Promoted => "promoted",
            RolloutState::RolledBack => "rolled_back",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "canary" => Ok(RolloutState::Canary),
            "promoted" => Ok(RolloutState::Promoted),
            "rolled_back" => Ok(RolloutState::RolledBack),
            other => Err(StoreError::Corrupt {
                what: "rollout state",
                value: other.to_string(),
                reason: "expected canary, promoted or rolled_back".into(),
            }),
        }
    }
}

/// One plugin's rollout: the candidate version and how far it got.
#[derive(Debug, Clone)]
pub struct RolloutRow {
    pub state: RolloutState,
    /// The share of the plugin's deliveries the candidate takes, 1..=100.
    pub percent: u8,
    /// The live version when the rollout started.
    pub stable_sha256: String,
    /// The candidate (`wasm` empty in reads; see `rollout_bytes`);
    /// `uploaded_at` is when the rollout started.
    pub candidate: PluginRow,
    /// Why it was rolled back.
    pub reason: Option<String>,
    pub ended_at: Option<i64>,
}

/// The last outcomes of one version: how many, how many failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolloutWindow {
    pub deliveries: u32,
    pub failed: u32,
}

#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Starts a rollout of `r.candidate` (replacing an ended one) and
    /// forgets the outcomes counted for an earlier one.
    async fn start_rollout(&self, r: &RolloutRow) -> Result<()>;
    /// Without the candidate's bytes.
    async fn rollout(&self, tenant: &str, name: &str) -> Result<Option<RolloutRow>>;
    async fn rollouts(&self, tenant: &str) -> Result<Vec<RolloutRow>>;
    async fn rollout_bytes(&self, tenant: &str, name: &str) -> Result<Option<Vec<u8>>>;
    /// Counts one attempt of version `sha256`, keeping its last `keep`.
    async fn record_rollout_outcome(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        failed: bool,
        at: i64,
        keep: u32,
    ) -> Result<()>;
    /// The last `n` outcomes counted for version `sha256`.
    async fn rollout_window(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        n: u32,
    ) -> Result<RolloutWindow>;
    /// Ends the live rollout of `sha256` as rolled back; false when it was
    /// not live (already ended, e.g. by another host).
    async fn roll_back(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        reason: &str,
        at: i64,
    ) -> Result<bool>;
    /// Makes the live candidate `sha256` the plugin's version (bumping
    /// `channels_version`), in one transaction; false when it was not live.
    async fn promote_rollout(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        at: i64,
    ) -> Result<bool>;
}

const COLUMNS: &str = "tenant, name, state, percent, stable_sha256, sha256, size, info,
    started_at, signature, key_id, imports, reason, ended_at";

fn rollout_row(r: &impl Cols) -> Result<RolloutRow> {
    let percent = r.int(3)?;
    Ok(RolloutRow {
        state: RolloutState::parse(&r.text(2)?)?,
        percent: u8::try_from(percent).map_err(|_| StoreError::Corrupt {
            what: "rollout percent",
            value: percent.to_string(),
            reason: "expected 1..=100".into(),
        })?,
        stable_sha256: r.text(4)?,
        candidate: PluginRow {
            tenant: r.text(0)?,
            name: r.text(1)?,
            sha256: r.text(5)?,
            size: r.int(6)?,
            info: r.text(7)?,
            wasm: Vec::new(),
            uploaded_at: r.int(8)?,
            signature: r.opt_text(9)?,
            key_id: r.opt_text(10)?,
            imports: r.text(11)?,
        },
        reason: r.opt_text(12)?,
        ended_at: r.opt_int(13)?,
    })
}

#[async_trait]
impl<B: Backend> RolloutStore for SqlStore<B> {
    async fn start_rollout(&self, r: &RolloutRow) -> Result<()> {
        let c = &r.candidate;
        let mut tx = self.begin().await?;
        tx.exec(
            "DELETE FROM plugin_rollout_outcomes WHERE tenant = $1 AND name = $2",
            &[(&c.tenant).into(), (&c.name).into()],
        )
        .await?;
        tx.exec(
            "INSERT INTO plugin_rollouts (tenant, name, state, percent, stable_sha256, sha256,
                size, info, wasm, started_at, signature, key_id, imports, reason, ended_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (tenant, name) DO UPDATE SET state = excluded.state,
                percent = excluded.percent, stable_sha256 = excluded.stable_sha256,
                sha256 = excluded.sha256, size = excluded.size, info = excluded.info,
                wasm = excluded.wasm, started_at = excluded.started_at,
                signature = excluded.signature, key_id = excluded.key_id,
                imports = excluded.imports, reason = excluded.reason,
                ended_at = excluded.ended_at",
            &[
                (&c.tenant).into(),
                (&c.name).into(),
                r.state.as_str().into(),
                i64::from(r.percent).into(),
                (&r.stable_sha256).into(),
                (&c.sha256).into(),
                c.size.into(),
                (&c.info).into(),
                (&c.wasm).into(),
                c.uploaded_at.into(),
                (&c.signature).into(),
                (&c.key_id).into(),
                (&c.imports).into(),
                (&r.reason).into(),
                r.ended_at.into(),
            ],
        )
        .await?;
        tx.commit().await
    }

    async fn rollout(&self, tenant: &str, name: &str) -> Result<Option<RolloutRow>> {
        let sql = format!("SELECT {COLUMNS} FROM plugin_rollouts WHERE tenant = $1 AND name = $2");
        let r = self.opt(&sql, &[tenant.into(), name.into()]).await?;
        r.map(|r| rollout_row(&r)).transpose()
    }

    async fn rollouts(&self, tenant: &str) -> Result<Vec<RolloutRow>> {
        let sql = format!("SELECT {COLUMNS} FROM plugin_rollouts WHERE tenant = $1 ORDER BY name");
        let rows = self.all(&sql, &[tenant.into()]).await?;
        rows.iter().map(rollout_row).collect()
    }

    async fn rollout_bytes(&self, tenant: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let sql = "SELECT wasm FROM plugin_rollouts WHERE tenant = $1 AND name = $2";
        let r = self.opt(sql, &[tenant.into(), name.into()]).await?;
        r.map(|r| r.bytes(0)).transpose()
    }

    async fn record_rollout_outcome(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        failed: bool,
        at: i64,
        keep: u32,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO plugin_rollout_outcomes (tenant, name, sha256, failed, at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                tenant.into(),
                name.into(),
                sha256.into(),
                failed.into(),
                at.into(),
            ],
        )
        .await?;
        self.exec(
            "DELETE FROM plugin_rollout_outcomes
             WHERE tenant = $1 AND name = $2 AND sha256 = $3 AND id < (
                SELECT MIN(id) FROM (SELECT id FROM plugin_rollout_outcomes
                    WHERE tenant = $1 AND name = $2 AND sha256 = $3
                    ORDER BY id DESC LIMIT $4) AS kept)",
            &[tenant.into(), name.into(), sha256.into(), keep.into()],
        )
        .await?;
        Ok(())
    }

    async fn rollout_window(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        n: u32,
    ) -> Result<RolloutWindow> {
        let rows = self
            .all(
                "SELECT failed FROM plugin_rollout_outcomes
                 WHERE tenant = $1 AND name = $2 AND sha256 = $3 ORDER BY id DESC LIMIT $4",
                &[tenant.into(), name.into(), sha256.into(), n.into()],
            )
            .await?;
        let mut w = RolloutWindow::default();
        for r in &rows {
            w.deliveries += 1;
            w.failed += u32::from(r.flag(0)?);
        }
        Ok(w)
    }

    async fn roll_back(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        reason: &str,
        at: i64,
    ) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE plugin_rollouts SET state = 'rolled_back', reason = $4, ended_at = $5
                 WHERE tenant = $1 AND name = $2 AND sha256 = $3 AND state = 'canary'",
                &[
                    tenant.into(),
                    name.into(),
                    sha256.into(),
                    reason.into(),
                    at.into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn promote_rollout(
        &self,
        tenant: &str,
        name: &str,
        sha256: &str,
        at: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                "UPDATE plugin_rollouts SET state = 'promoted', ended_at = $4
                 WHERE tenant = $1 AND name = $2 AND sha256 = $3 AND state = 'canary'",
                &[tenant.into(), name.into(), sha256.into(), at.into()],
            )
            .await?;
        if n != 1 {
            return Ok(false);
        }
        tx.exec(
            "INSERT INTO plugins (tenant, name, sha256, size, info, wasm, uploaded_at,
                signature, key_id, imports)
             SELECT tenant, name, sha256, size, info, wasm, $3, signature, key_id, imports
             FROM plugin_rollouts WHERE tenant = $1 AND name = $2
             ON CONFLICT (tenant, name) DO UPDATE SET sha256 = excluded.sha256,
                size = excluded.size, info = excluded.info, wasm = excluded.wasm,
                uploaded_at = excluded.uploaded_at, signature = excluded.signature,
                key_id = excluded.key_id, imports = excluded.imports",
            &[tenant.into(), name.into(), at.into()],
        )
        .await?;
        bump_and_commit(tx).await?;
        Ok(true)
    }
}
