//! The canary half of an upload: `PUT /plugins/{name}?canary=N` takes the
//! upload's every check (name, size, quota, signature, compile, permission
//! review) and then, instead of the version swap, stages the version beside
//! the live one.

use super::{CanaryPercent, RolloutError};
use crate::domain::{ChannelName, TenantName};
use crate::plugin::upload::{Offer, UploadError, Uploads};
use crate::store::{PluginRow, RolloutRow, RolloutState};

impl Uploads<'_> {
    /// Before the body is read: a plain upload while a canary is live is
    /// refused (promote or roll back first), and so is a canary of a plugin
    /// with no live version. Answers the live version's sha256 for a canary.
    pub(crate) async fn check_rollout(
        &self,
        tenant: &TenantName,
        name: &ChannelName,
        canary: Option<CanaryPercent>,
    ) -> Result<Option<String>, UploadError> {
        let rollouts = self.plugins.rollouts();
        if let Some(live) = rollouts.live(tenant.as_str(), name.as_str()).await? {
            return Err(UploadError::Rollout(RolloutError::Live {
                sha256: live.candidate.sha256,
            }));
        }
        if canary.is_none() {
            return Ok(None);
        }
        let rows = self.store.plugins(Some(tenant.as_str())).await?;
        match rows.into_iter().find(|r| r.name == name.as_str()) {
            Some(live) => Ok(Some(live.sha256)),
            None => Err(UploadError::Rollout(RolloutError::NoStable)),
        }
    }

    /// Starts the rollout of `row` beside the live version `stable` and
    /// audits it; channels keep their stable sender, which routes by itself.
    pub(crate) async fn stage(
        &self,
        row: PluginRow,
        percent: CanaryPercent,
        stable: String,
        offer: &Offer<'_>,
    ) -> Result<PluginRow, UploadError> {
        if row.sha256 == stable {
            return Err(UploadError::Rollout(RolloutError::SameVersion));
        }
        let key = row.key_id.as_deref().unwrap_or("none");
        let mut detail = format!(
            "sha256={} size={} key={key} percent={} stable={stable}",
            row.sha256,
            row.size,
            percent.get()
        );
        if offer.accept_permissions {
            detail.push_str(" accepted=permissions");
        }
        let rollout = RolloutRow {
            state: RolloutState::Canary,
            percent: percent.get(),
            stable_sha256: stable,
            candidate: row,
            reason: None,
            ended_at: None,
        };
        self.store.start_rollout(&rollout).await?;
        let c = &rollout.candidate;
        let (tenant, name) = (&c.tenant, Some(c.name.as_str()));
        self.store
            .audit(
                tenant,
                "api",
                "plugin.canary",
                name,
                Some(&detail),
                c.uploaded_at,
            )
            .await?;
        Ok(rollout.candidate)
    }
}
