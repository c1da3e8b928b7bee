//! Staged rollout of a tenant plugin (`PUT /plugins/{name}?canary=N`): the
//! live version keeps serving while the candidate takes N % of the
//! plugin's deliveries; a candidate that fails clearly more often than the
//! live version is rolled back by itself, a good one promoted by hand.
//!
//! * [`decision`] — routing by delivery id, the rollback rule (no I/O).
//! * `sender` — the plugin channel's sender during a rollout: routes each
//!   delivery, counts outcomes, retries a failed canary attempt on the
//!   stable version.
//! * `stage` — the canary half of an upload (`Uploads::stage`).
//!
//! Everything a decision rests on is in the store (`store::RolloutStore`),
//! so every host routes alike and at most one records a rollback.

pub mod decision;
pub(crate) mod sender;
mod stage;

use std::sync::Arc;

pub use self::decision::{CanaryPercent, Settings};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::{RolloutRow, RolloutState, RolloutWindow, Store, StoreError};

/// Why a rollout request cannot be done.
#[derive(Debug)]
pub enum RolloutError {
    /// `?canary` for a plugin that has no live version to stage against.
    NoStable,
    /// The candidate is the live version already.
    SameVersion,
    /// A canary is live: promote or roll it back first.
    Live {
        sha256: String,
    },
    /// Promote / rollback without a live canary.
    NotLive,
    /// No such plugin.
    NotFound,
    Store(StoreError),
}

impl From<StoreError> for RolloutError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Which version ran an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Stable,
    Canary,
}

impl Version {
    fn as_str(self) -> &'static str {
        match self {
            Version::Stable => "stable",
            Version::Canary => "canary",
        }
    }
}

/// A rollout's windows: the canary's last outcomes and the stable version's.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub canary: RolloutWindow,
    pub stable: RolloutWindow,
}

/// The rollouts of every tenant plugin, on this host.
pub struct Rollouts {
    store: Arc<dyn Store>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    settings: Settings,
}

impl Rollouts {
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            clock,
            metrics,
            settings,
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The plugin's rollout while its canary is live.
    pub async fn live(&self, tenant: &str, name: &str) -> Result<Option<RolloutRow>, StoreError> {
        let row = self.store.rollout(tenant, name).await?;
        Ok(row.filter(|r| r.state == RolloutState::Canary))
    }

    /// The windows the rollback rule reads.
    pub async fn counts(&self, r: &RolloutRow) -> Result<Counts, StoreError> {
        let (t, n, w) = (&r.candidate.tenant, &r.candidate.name, self.settings.window);
        Ok(Counts {
            canary: self
                .store
                .rollout_window(t, n, &r.candidate.sha256, w)
                .await?,
            stable: self.store.rollout_window(t, n, &r.stable_sha256, w).await?,
        })
    }

    /// Counts one attempt of the live rollout `r`; after a canary attempt,
    /// applies the rule and rolls back when it says so.
    pub async fn record(
        &self,
        r: &RolloutRow,
        version: Version,
        failed: bool,
    ) -> Result<(), StoreError> {
        let sha256 = match version {
            Version::Stable => &r.stable_sha256,
            Version::Canary => &r.candidate.sha256,
        };
        let (tenant, name) = (&r.candidate.tenant, &r.candidate.name);
        let now = self.clock.now_ms();
        let keep = self.settings.window;
        self.store
            .record_rollout_outcome(tenant, name, sha256, failed, now, keep)
            .await?;
        let outcome = if failed { "failed" } else { "ok" };
        self.metrics
            .rollout
            .attempts
            .with_label_values(&[tenant.as_str(), name.as_str(), version.as_str(), outcome])
            .inc();
        if version == Version::Stable {
            return Ok(());
        }
        let counts = self.counts(r).await?;
        if let Some(reason) = decision::judge(counts.canary, counts.stable, self.settings) {
            self.roll_back(r, &reason, "automatic").await?;
        }
        Ok(())
    }

    /// Ends the live rollout `r` as rolled back: audited and counted by
    /// the one host whose update took (`trigger`: automatic | manual).
    async fn roll_back(
        &self,
        r: &RolloutRow,
        reason: &str,
        trigger: &str,
    ) -> Result<bool, StoreError> {
        let (tenant, name, sha) = (&r.candidate.tenant, &r.candidate.name, &r.candidate.sha256);
        let now = self.clock.now_ms();
        if !self.store.roll_back(tenant, name, sha, reason, now).await? {
            return Ok(false);
        }
        tracing::warn!(tenant = %tenant, plugin = %name, canary = %sha, trigger, reason, "plugin canary rolled back");
        self.metrics
            .rollout
            .rollbacks
            .with_label_values(&[tenant.as_str(), name.as_str(), trigger])
            .inc();
        let actor = if trigger == "automatic" {
            "postern"
        } else {
            "api"
        };
        let detail = format!("sha256={sha} trigger={trigger} reason={reason}");
        let action = "plugin.rollback";
        self.store
            .audit(tenant, actor, action, Some(name), Some(&detail), now)
            .await?;
        Ok(true)
    }

    /// `POST /plugins/{name}/rollback`.
    pub async fn roll_back_by_hand(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<RolloutRow, RolloutError> {
        let live = self.live_or_refuse(tenant, name).await?;
        if !self
            .roll_back(&live, "rolled back by hand", "manual")
            .await?
        {
            return Err(RolloutError::NotLive);
        }
        self.ended(tenant, name).await
    }

    /// `POST /plugins/{name}/promote`: the canary becomes the live version
    /// (the caller then reloads the tenant's channels).
    pub async fn promote(&self, tenant: &str, name: &str) -> Result<RolloutRow, RolloutError> {
        let live = self.live_or_refuse(tenant, name).await?;
        let sha = &live.candidate.sha256;
        let now = self.clock.now_ms();
        if !self.store.promote_rollout(tenant, name, sha, now).await? {
            return Err(RolloutError::NotLive);
        }
        let detail = format!("sha256={sha} replaces={}", live.stable_sha256);
        self.store
            .audit(
                tenant,
                "api",
                "plugin.promote",
                Some(name),
                Some(&detail),
                now,
            )
            .await?;
        self.ended(tenant, name).await
    }

    async fn live_or_refuse(&self, tenant: &str, name: &str) -> Result<RolloutRow, RolloutError> {
        let plugins = self.store.plugins(Some(tenant)).await?;
        if !plugins.iter().any(|p| p.name == name) {
            return Err(RolloutError::NotFound);
        }
        self.live(tenant, name).await?.ok_or(RolloutError::NotLive)
    }

    async fn ended(&self, tenant: &str, name: &str) -> Result<RolloutRow, RolloutError> {
        self.store
            .rollout(tenant, name)
            .await?
            .ok_or(RolloutError::NotLive)
    }
}

#[cfg(test)]
mod tests;
