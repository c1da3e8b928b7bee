//! Writing what happened to the store, so that a short storage fault costs
//! neither a duplicate nor a false error: an attempt's outcome is retried
//! in memory for a while before the delivery is left to its lease (which
//! would send it again), and a caller whose delivery was attempted gets an
//! answer even when the store cannot be read back just then.

use std::time::{Duration, Instant};

use super::{Answer, Queue};
use crate::delivery::registry::Channel;
use crate::store::{ClaimedDelivery, DeliveryRecord, DeliveryStatus, Finish, NewDelivery, rfc3339};

/// The longest an outcome is retried in memory (never more than half the
/// lease, so the lease cannot run out while this host still holds it).
const OUTCOME_RETRY_MAX: Duration = Duration::from_secs(10);
const FIRST_WAIT: Duration = Duration::from_millis(50);
const LONGEST_WAIT: Duration = Duration::from_secs(1);

impl Queue {
    /// Records the outcome of a leased delivery; the status recorded, if the
    /// record was written (and the metrics counted).
    pub(super) async fn finish(
        &self,
        d: &ClaimedDelivery,
        channel: Option<&Channel>,
        f: Finish,
    ) -> Option<DeliveryStatus> {
        let status = f.status;
        let budget = (self.settings.lease / 2).min(OUTCOME_RETRY_MAX);
        let give_up_at = Instant::now() + budget;
        let mut wait = FIRST_WAIT;
        let mut failures = 0u32;
        let written = loop {
            let now = self.clock.now_ms();
            match self
                .store
                .finish(&d.id, self.owner.as_str(), now, f.clone())
                .await
            {
                Err(e) if Instant::now() + wait < give_up_at => {
                    if failures == 0 {
                        tracing::warn!(delivery = %d.id, error = %e, "cannot record delivery outcome yet; retrying for up to {budget:?}");
                    }
                    failures += 1;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(LONGEST_WAIT);
                }
                other => break other,
            }
        };
        match written {
            Ok(true) => {
                if failures > 0 {
                    tracing::info!(delivery = %d.id, retries = failures, "delivery outcome recorded after a storage fault");
                }
                if status != DeliveryStatus::Queued {
                    let name = channel.map(|c| c.name.as_str()).unwrap_or(&d.channel);
                    self.metrics
                        .deliveries
                        .with_label_values(&[&d.tenant, name, status.as_str()])
                        .inc();
                }
                Some(status)
            }
            Ok(false) => {
                tracing::warn!(delivery = %d.id, "lease lost before the outcome was recorded; another worker owns it now");
                None
            }
            Err(e) => {
                tracing::error!(delivery = %d.id, error = %e, "cannot record delivery outcome; the lease will expire and the delivery will be retried");
                None
            }
        }
    }

    /// The stored record of a delivery just submitted, as its first attempt
    /// left it (`first`: the status that attempt recorded). If the store
    /// cannot be read now, a summary from what this process knows.
    pub(super) async fn record_or_summary(
        &self,
        new: &NewDelivery,
        first: Option<DeliveryStatus>,
        answer: Answer,
    ) -> DeliveryRecord {
        if answer == Answer::Status && first.is_some() {
            return summary(new, first);
        }
        match self.store.get_delivery(&new.tenant, &new.id).await {
            Ok(Some(mut record)) => {
                // A worker (on this host or another sharing the store) may
                // already have started the retry: answer as the first
                // attempt left it.
                if let Some(status) = first {
                    record.status = status;
                    record.attempts.truncate(1);
                }
                record
            }
            other => {
                if let Err(e) = other {
                    tracing::warn!(delivery = %new.id, error = %e, "cannot read the delivery back; answering from memory");
                }
                summary(new, first)
            }
        }
    }

    /// At start-up of a server: the deliveries earlier runs on this host had
    /// leased are due at once (no other process can be working on them).
    pub(super) async fn take_back_earlier_leases(&self) {
        let Some(pattern) = self.owner.earlier_runs() else {
            return;
        };
        let now = self.clock.now_ms();
        match self
            .store
            .release_leases(&pattern, self.owner.as_str(), now)
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    deliveries = n,
                    "resuming deliveries leased by this host's previous run"
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take back this host's earlier leases; they resume when the leases expire")
            }
        }
    }

    pub(super) fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A delivery record from the submitted row alone (no attempts).
fn summary(new: &NewDelivery, status: Option<DeliveryStatus>) -> DeliveryRecord {
    let fallback = if new.lease.is_some() {
        DeliveryStatus::Sending
    } else {
        DeliveryStatus::Queued
    };
    DeliveryRecord {
        id: new.id.clone(),
        channel: new.channel.clone(),
        to: new.send_to_masked.clone(),
        status: status.unwrap_or(fallback),
        attempts: Vec::new(),
        log: None,
        username: new.username.clone(),
        provider_id: None,
        fallback_of: new.fallback_of.clone(),
        handset: None,
        locale: new.facts.locale.clone(),
        sms: new.facts.sms.clone(),
        expires_at: rfc3339(new.expires_at),
        created_at: rfc3339(new.created_at),
    }
}
