//! One attempt of a leased delivery: the checks before it (payload readable,
//! code not expired, channel still there), the send under a timeout, its
//! metrics and log line, and the decision after it (delivered, retry at,
//! give up and maybe hand over to the fallback channel).

use std::time::{Duration, Instant};

use super::{MAX_FALLBACK_DEPTH, Payload, Queue};
use crate::delivery::registry::Channel;
use crate::delivery::retry::{self, Next, Timing};
use crate::delivery::{OutcomeClass, SendOutcome};
use crate::domain::{TenantName, mask_destination};
use crate::store::{AttemptRow, ClaimedDelivery, DeliveryStatus, Finish, NewDelivery};

/// What one send produced, redacted for storage.
struct Attempted {
    outcome: SendOutcome,
    at: i64,
    elapsed: Duration,
    detail: String,
    log: Option<String>,
}

impl Queue {
    /// One attempt (or a terminal decision without one); returns the status
    /// recorded, if the record was written.
    pub(super) async fn execute(&self, d: ClaimedDelivery) -> Option<DeliveryStatus> {
        let tenant = TenantName::parse(&d.tenant).unwrap_or_else(|_| TenantName::default_tenant());
        let (payload, channel) = match self.preflight(&d, &tenant) {
            Ok(ready) => ready,
            Err((status, why)) => {
                return self.finish(&d, None, Finish::terminal(status, &why)).await;
            }
        };
        let attempted = self.attempt(&d, &tenant, &channel, &payload).await;
        let finish = self
            .decide(&d, &tenant, &channel, &payload, attempted)
            .await;
        let retry_scheduled = finish.next_attempt_at.is_some() || finish.then_enqueue.is_some();
        let recorded = self.finish(&d, Some(&channel), finish).await;
        if retry_scheduled {
            self.wake.notify_one();
        }
        recorded
    }

    /// The payload and channel of a delivery that may be attempted, or the
    /// terminal status of one that may not, and why.
    fn preflight(
        &self,
        d: &ClaimedDelivery,
        tenant: &TenantName,
    ) -> Result<(Payload, std::sync::Arc<Channel>), (DeliveryStatus, String)> {
        let Some(payload) = self.open(d) else {
            return Err((
                DeliveryStatus::Failed,
                "stored payload cannot be decrypted (server.secret_key changed?)".into(),
            ));
        };
        if self.clock.now_ms() >= d.expires_at {
            return Err((
                DeliveryStatus::Expired,
                "the code expired before this attempt".into(),
            ));
        }
        match self.registry.get(tenant, &d.channel) {
            Some(channel) => Ok((payload, channel)),
            None => Err((
                DeliveryStatus::Failed,
                format!("channel `{}` no longer exists", d.channel),
            )),
        }
    }

    /// Sends once, records the metrics and the log line.
    async fn attempt(
        &self,
        d: &ClaimedDelivery,
        tenant: &TenantName,
        channel: &Channel,
        payload: &Payload,
    ) -> Attempted {
        let started = Instant::now();
        let at = self.clock.now_ms();
        // Senders have their own timeouts; this guard keeps a stuck one from
        // outliving the lease.
        let limit = self
            .settings
            .lease
            .saturating_sub(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        // The channel's templates, in the message's locale.
        let outcome = match channel.compose(&payload.message) {
            Err(e) => SendOutcome::permanent(format!("the message cannot be rendered: {e}")),
            Ok(message) => {
                match tokio::time::timeout(limit, channel.sender.send_delivery(&d.id, &message))
                    .await
                {
                    Ok(o) => o,
                    Err(_) => SendOutcome::transient(format!("attempt timed out after {limit:?}")),
                }
            }
        };
        let elapsed = started.elapsed();
        let code = &payload.message.code;
        let detail = redact(&outcome.detail, channel, code);
        let log = outcome.log.as_deref().map(|l| redact(l, channel, code));
        let class = outcome.class.as_str();
        let labels = [tenant.as_str(), channel.name.as_str(), class];
        self.metrics.attempts.with_label_values(&labels).inc();
        if let Some(reason) = outcome.resources.as_ref().and_then(|r| r.failure) {
            let labels = [tenant.as_str(), channel.name.as_str(), reason];
            self.metrics
                .plugin_failures
                .with_label_values(&labels)
                .inc();
        }
        self.metrics
            .attempt_seconds
            .with_label_values(&[channel.name.as_str()])
            .observe(elapsed.as_secs_f64());
        if let Some(r) = &outcome.resources {
            self.metrics.plugins.observe(tenant.as_str(), r);
        }
        tracing::info!(
            delivery = %d.id, tenant = %tenant, channel = %channel.name, to = %d.send_to_masked,
            outcome = class, ms = elapsed.as_millis() as u64, detail = %detail,
            "delivery attempt"
        );
        Attempted {
            outcome,
            at,
            elapsed,
            detail,
            log,
        }
    }

    /// The record of an attempt and what happens next.
    async fn decide(
        &self,
        d: &ClaimedDelivery,
        tenant: &TenantName,
        channel: &Channel,
        payload: &Payload,
        a: Attempted,
    ) -> Finish {
        let timing = Timing {
            now: self.clock.now_ms(),
            created_at: d.created_at,
            expires_at: d.expires_at,
            has_fallback: channel.fallback.is_some() && d.fallback_depth < MAX_FALLBACK_DEPTH,
        };
        let delay = self
            .settings
            .backoff
            .delay(d.attempt_count + 1, &mut rand::rng());
        let class = a.outcome.class;
        let mut finish = Finish {
            attempt: Some(AttemptRow {
                at: a.at,
                outcome: class.as_str().to_string(),
                detail: a.detail,
                duration_ms: a.elapsed.as_millis() as i64,
                plugin_sha256: a.outcome.plugin_sha256,
                resources: a.outcome.resources.map(|r| *r),
            }),
            status: DeliveryStatus::Queued,
            next_attempt_at: None,
            provider_id: a.outcome.provider_id,
            log: a.log,
            then_enqueue: None,
        };
        match retry::after_attempt(class, timing, delay) {
            Next::Delivered => finish.status = DeliveryStatus::Delivered,
            Next::RetryAt(at) => finish.next_attempt_at = Some(at),
            Next::GiveUp { expired } => {
                finish.status = if expired {
                    DeliveryStatus::Expired
                } else {
                    DeliveryStatus::Failed
                };
                if class != OutcomeClass::Delivered {
                    finish.then_enqueue = self.fallback_for(d, tenant, channel, payload).await;
                }
            }
        }
        finish
    }

    /// The fallback channel's delivery, if the channel has one that accepts
    /// a send-to for this message.
    async fn fallback_for(
        &self,
        d: &ClaimedDelivery,
        tenant: &TenantName,
        channel: &Channel,
        payload: &Payload,
    ) -> Option<NewDelivery> {
        let fb_name = channel.fallback.as_ref()?;
        if d.fallback_depth >= MAX_FALLBACK_DEPTH {
            return None;
        }
        let fb = self.registry.get(tenant, fb_name.as_str())?;
        let send_to = payload
            .alternates
            .get(fb_name.as_str())
            .cloned()
            .unwrap_or_else(|| payload.message.send_to.clone());
        if let Err(e) = fb.validate_recipient(&send_to).await {
            tracing::warn!(delivery = %d.id, fallback = %fb_name, error = %e, "fallback channel cannot take this send-to");
            return None;
        }
        let now = self.clock.now_ms();
        let id = format!("dlv_{}", uuid::Uuid::new_v4().simple());
        let mut message = payload.message.clone();
        message.send_to = send_to;
        let fb_payload = Payload {
            message,
            alternates: payload.alternates.clone(),
        };
        Some(NewDelivery {
            id: id.clone(),
            tenant: d.tenant.clone(),
            channel: fb_name.to_string(),
            send_to_masked: mask_destination(&fb_payload.message.send_to),
            username: d.username.clone(),
            payload: self.seal(&id, &fb_payload),
            next_attempt_at: now,
            expires_at: d.expires_at,
            fallback_of: Some(d.id.clone()),
            fallback_depth: d.fallback_depth + 1,
            created_at: now,
            lease: None,
            facts: fb.facts(&fb_payload.message),
        })
    }
}

impl Finish {
    /// Ends a delivery without an attempt (expired, undecryptable, channel gone).
    fn terminal(status: DeliveryStatus, why: &str) -> Self {
        Finish {
            attempt: None,
            status,
            next_attempt_at: None,
            provider_id: None,
            log: Some(why.to_string()),
            then_enqueue: None,
        }
    }
}

/// Scrubs the channel's secrets and the code from text that will be stored.
fn redact(text: &str, channel: &Channel, code: &str) -> String {
    let mut out = text.to_string();
    for s in &channel.secrets {
        if s.expose().len() >= 4 {
            out = out.replace(s.expose(), "***");
        }
    }
    if !code.is_empty() {
        out = out.replace(code, "***");
    }
    out
}
