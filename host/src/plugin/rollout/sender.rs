//! A tenant plugin channel's sender, rollout-aware: with no live canary it
//! is the stable [`PluginSender`]; with one, each delivery runs on the
//! version its id hashes to, the outcome is counted for the rollback rule,
//! and a canary attempt that failed for good (rejected, trapped, over a
//! limit) is run again on the stable version at once, so no user's code is
//! lost to a bad canary.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::decision::takes_canary;
use super::{Rollouts, Version};
use crate::delivery::{Message, OutcomeClass, SendOutcome, Sender};
use crate::plugin::{ChannelSandbox, PluginRuntime, PluginSender};
use crate::store::RolloutRow;

pub(crate) struct RolloutSender {
    pub(crate) stable: Arc<PluginSender>,
    pub(crate) runtime: Arc<PluginRuntime>,
    /// The channel's grants, for the canary's sender.
    pub(crate) sandbox: ChannelSandbox,
    pub(crate) rollouts: Arc<Rollouts>,
    pub(crate) tenant: String,
    /// The uploaded plugin's name (not the channel's).
    pub(crate) plugin: String,
    /// The canary's sender, built on first use per candidate.
    pub(crate) canary: Mutex<Option<Arc<PluginSender>>>,
}

impl RolloutSender {
    /// The live rollout, if any; a store error routes to the stable version.
    async fn live(&self) -> Option<RolloutRow> {
        match self.rollouts.live(&self.tenant, &self.plugin).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(tenant = %self.tenant, plugin = %self.plugin, error = %e, "cannot read the plugin's rollout; using the stable version");
                None
            }
        }
    }

    /// The candidate's sender: cached, else loaded from the store.
    async fn canary_sender(&self, live: &RolloutRow) -> Result<Arc<PluginSender>, String> {
        let sha = &live.candidate.sha256;
        let cached = self.lock().clone().filter(|c| c.plugin().sha256 == *sha);
        if let Some(c) = cached {
            return Ok(c);
        }
        let bytes = self
            .rollouts
            .store
            .rollout_bytes(&self.tenant, &self.plugin)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the canary's bytes are gone")?;
        let plugin = self.runtime.load(bytes).await.map_err(|e| e.to_string())?;
        if plugin.sha256 != *sha {
            return Err("the canary changed while loading".into());
        }
        let sender = self.runtime.sender(plugin, self.sandbox.clone());
        *self.lock() = Some(sender.clone());
        Ok(sender)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<PluginSender>>> {
        self.canary.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a delivered or permanently failed attempt (a transient one
    /// is retried, and counted then).
    async fn count(&self, live: &RolloutRow, version: Version, o: &SendOutcome) {
        if o.class == OutcomeClass::Transient {
            return;
        }
        let failed = o.class == OutcomeClass::Permanent;
        if let Err(e) = self.rollouts.record(live, version, failed).await {
            tracing::warn!(tenant = %self.tenant, plugin = %self.plugin, error = %e, "cannot count a rollout outcome");
        }
    }

    /// The attempt on the stable version after the canary's failed.
    async fn retry_on_stable(
        &self,
        live: &RolloutRow,
        m: &Message,
        canary: SendOutcome,
    ) -> SendOutcome {
        let mut out = self.stable.send(m).await;
        self.count(live, Version::Stable, &out).await;
        let short = live.candidate.sha256.get(..12).unwrap_or_default();
        out.detail = format!(
            "{} (the canary {short} failed first: {}; retried on the stable version)",
            out.detail, canary.detail
        );
        out.log = match (canary.log, out.log) {
            (Some(c), Some(s)) => Some(format!("[canary {short}]\n{c}\n[stable]\n{s}")),
            (c, s) => s.or(c),
        };
        out
    }
}

#[async_trait]
impl Sender for RolloutSender {
    fn kind(&self) -> &'static str {
        "plugin"
    }

    async fn validate_recipient(&self, send_to: &str) -> Result<(), String> {
        self.stable.validate_recipient(send_to).await
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        self.stable.send(m).await
    }

    async fn send_delivery(&self, delivery_id: &str, m: &Message) -> SendOutcome {
        let Some(live) = self.live().await else {
            return self.stable.send(m).await;
        };
        let canary = if takes_canary(delivery_id, live.percent) {
            match self.canary_sender(&live).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(tenant = %self.tenant, plugin = %self.plugin, error = %e, "cannot load the canary; using the stable version");
                    None
                }
            }
        } else {
            None
        };
        let Some(canary) = canary else {
            let out = self.stable.send(m).await;
            self.count(&live, Version::Stable, &out).await;
            return out;
        };
        let first = canary.send(m).await;
        self.count(&live, Version::Canary, &first).await;
        if first.class == OutcomeClass::Permanent {
            return self.retry_on_stable(&live, m, first).await;
        }
        first
    }
}
