//! The durable delivery queue. A delivery is stored before its first
//! attempt; every attempt is recorded; a worker lease (not a row lock) marks
//! who is working on it, so a killed process's deliveries are taken over
//! when the lease runs out. A delivery recorded as delivered is never sent
//! again (a crash between the provider's accept and the record can still
//! cause one duplicate: delivery is at-least-once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::registry::{Channel, Registry};
use super::retry::{self, Backoff, Next, Timing};
use super::{Message, OutcomeClass, SendOutcome};
use crate::crypto::Keys;
use crate::domain::{TenantName, mask_destination};
use crate::metrics::Metrics;
use crate::store::{
    AttemptRow, ClaimedDelivery, DeliveryRecord, DeliveryStatus, Finish, NewDelivery, Store,
    StoreError,
};

/// A fallback chain never goes deeper than this.
const MAX_FALLBACK_DEPTH: u32 = 3;

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("no channel named `{0}`")]
    UnknownChannel(String),
    #[error("invalid send-to: {0}")]
    InvalidSendTo(String),
    #[error("tenant delivery quota reached; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What is stored, encrypted, per delivery.
#[derive(Serialize, Deserialize)]
struct Payload {
    message: Message,
    /// Send-to values the fallback channels should use, by channel name.
    #[serde(default)]
    alternates: BTreeMap<String, String>,
}

/// A request to deliver one message.
pub struct Enqueue {
    pub tenant: TenantName,
    pub channel: String,
    pub message: Message,
    pub username: Option<String>,
    pub expires_at: i64,
    pub alternates: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub backoff: Backoff,
    pub lease: Duration,
    pub workers: usize,
    /// `limits.tenant_deliveries_per_minute`: new deliveries per tenant.
    pub tenant_per_minute: u32,
    /// `limits.tenant_max_concurrent_deliveries`: attempts in flight per tenant.
    pub tenant_concurrency: usize,
}

pub struct Queue {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    keys: Keys,
    metrics: Arc<Metrics>,
    settings: QueueSettings,
    /// This process's identity in leases.
    owner: String,
    wake: Notify,
    slots: Arc<Semaphore>,
    /// Per-tenant budgets, so one tenant's slow channel cannot take every slot.
    tenant_slots: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    tasks: TaskTracker,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Queue {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        keys: Keys,
        metrics: Arc<Metrics>,
        settings: QueueSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            registry,
            keys,
            metrics,
            settings,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
            slots: Arc::new(Semaphore::new(settings.workers)),
            tenant_slots: Default::default(),
            tasks: TaskTracker::new(),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn tenant_slots(&self, tenant: &str) -> Arc<Semaphore> {
        let mut map = self.tenant_slots.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.tenant_concurrency)))
            .clone()
    }

    fn seal(&self, id: &str, payload: &Payload) -> Vec<u8> {
        let json = serde_json::to_vec(payload)
            .unwrap_or_else(|_| unreachable!("payload serialises to JSON"));
        self.keys.seal(&format!("delivery:{id}"), &json)
    }

    fn open(&self, d: &ClaimedDelivery) -> Option<Payload> {
        let plain = self
            .keys
            .open(&format!("delivery:{}", d.id), &d.payload)
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }

    /// Stores the delivery, makes the first attempt right away and returns
    /// the record after it. Later attempts belong to the workers. The attempt
    /// runs in its own task, so a caller that goes away does not cut it short.
    pub async fn submit(self: &Arc<Self>, req: Enqueue) -> Result<DeliveryRecord, QueueError> {
        let channel = self
            .registry
            .get(&req.tenant, &req.channel)
            .ok_or_else(|| QueueError::UnknownChannel(req.channel.clone()))?;
        channel
            .validate_recipient(&req.message.send_to)
            .await
            .map_err(QueueError::InvalidSendTo)?;
        let now = now_ms();
        let (count, window_start) = self
            .store
            .rate_hit(&format!("tenant-deliveries:{}", req.tenant), now, 60_000)
            .await?;
        if count > u64::from(self.settings.tenant_per_minute) {
            let retry_after = ((window_start + 60_000 - now) / 1000).max(1) as u64;
            return Err(QueueError::TooManyRequests { retry_after });
        }
        let id = format!("dlv_{}", uuid::Uuid::new_v4().simple());
        let lease_until = now + self.settings.lease.as_millis() as i64;
        let send_to_masked = mask_destination(&req.message.send_to);
        let payload = Payload {
            message: req.message,
            alternates: req.alternates,
        };
        let new = NewDelivery {
            id: id.clone(),
            tenant: req.tenant.to_string(),
            channel: channel.name.to_string(),
            send_to_masked: send_to_masked.clone(),
            username: req.username.clone(),
            payload: self.seal(&id, &payload),
            next_attempt_at: now,
            expires_at: req.expires_at,
            fallback_of: None,
            fallback_depth: 0,
            created_at: now,
            lease: Some((self.owner.clone(), lease_until)),
        };
        self.store.insert_delivery(&new).await?;
        let claimed = ClaimedDelivery {
            id: id.clone(),
            tenant: new.tenant.clone(),
            channel: new.channel.clone(),
            send_to_masked,
            username: req.username,
            payload: new.payload.clone(),
            attempt_count: 0,
            expires_at: req.expires_at,
            fallback_depth: 0,
            created_at: now,
        };
        let me = self.clone();
        let permit = self.slots.clone().acquire_owned().await;
        let handle = self.tasks.spawn(async move {
            let _permit = permit;
            me.execute(claimed).await
        });
        let first = handle.await.ok().flatten();
        let mut record = self
            .store
            .get_delivery(&new.tenant, &id)
            .await?
            .ok_or_else(|| StoreError::Other("delivery vanished after its first attempt".into()))?;
        // A worker (on this host or another sharing the store) may already
        // have started the retry: answer as the first attempt left it.
        if let Some(status) = first {
            record.status = status;
            record.attempts.truncate(1);
        }
        Ok(record)
    }

    /// Leases due deliveries and starts them; returns how many were started.
    /// Production loops over this in [`Queue::run`]; tests may call it directly.
    pub async fn dispatch_due(self: &Arc<Self>) -> Result<usize, StoreError> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = now_ms();
        let lease_until = now + self.settings.lease.as_millis() as i64;
        let claimed = self
            .store
            .claim_due(&self.owner, now, lease_until, free as u32)
            .await?;
        let n = claimed.len();
        for d in claimed {
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                break;
            };
            // A tenant at its concurrency budget waits its turn without
            // holding a shared slot.
            let Ok(tenant_permit) = self.tenant_slots(&d.tenant).try_acquire_owned() else {
                drop(permit);
                let later = Finish {
                    attempt: None,
                    status: DeliveryStatus::Queued,
                    next_attempt_at: Some(now_ms() + 200),
                    provider_id: None,
                    log: None,
                    then_enqueue: None,
                };
                if let Err(e) = self.store.finish(&d.id, &self.owner, now_ms(), later).await {
                    tracing::warn!(delivery = %d.id, error = %e, "cannot defer delivery");
                }
                continue;
            };
            let me = self.clone();
            self.tasks.spawn(async move {
                let _permits = (permit, tenant_permit);
                me.execute(d).await;
            });
        }
        Ok(n)
    }

    /// Makes the next attempt of one delivery if it is due; returns whether
    /// an attempt ran. For `postern send-test`, which must not pick up other
    /// deliveries.
    pub async fn attempt_one(self: &Arc<Self>, id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let lease_until = now + self.settings.lease.as_millis() as i64;
        match self
            .store
            .claim_by_id(id, &self.owner, now, lease_until)
            .await?
        {
            Some(d) => {
                self.execute(d).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The worker loop: runs until `shutdown`, then lets in-flight attempts
    /// finish for up to `grace`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, grace: Duration) {
        loop {
            let started = match self.dispatch_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim deliveries");
                    0
                }
            };
            let sleep = if started > 0 {
                Duration::ZERO
            } else {
                match self.store.next_due_at().await {
                    Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(0, 1000) as u64),
                    _ => Duration::from_secs(1),
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep.max(Duration::from_millis(5))) => {}
                // A freed slot may let more work start.
                _ = self.slots.acquire(), if self.slots.available_permits() == 0 => {}
            }
        }
        self.tasks.close();
        let pending = self.tasks.len();
        if pending > 0 {
            tracing::info!(pending, "waiting for in-flight deliveries");
        }
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "in-flight deliveries did not finish within {grace:?}; their leases expire and another worker resumes them"
            );
        }
    }

    /// One attempt (or a terminal decision without one); returns the status
    /// recorded, if the record was written.
    async fn execute(&self, d: ClaimedDelivery) -> Option<DeliveryStatus> {
        let tenant = TenantName::parse(&d.tenant).unwrap_or_else(|_| TenantName::default_tenant());
        let Some(payload) = self.open(&d) else {
            return self
                .finish(
                    &d,
                    None,
                    Finish::terminal(
                        DeliveryStatus::Failed,
                        "stored payload cannot be decrypted (server.secret_key changed?)",
                    ),
                )
                .await;
        };
        if now_ms() >= d.expires_at {
            return self
                .finish(
                    &d,
                    None,
                    Finish::terminal(
                        DeliveryStatus::Expired,
                        "the code expired before this attempt",
                    ),
                )
                .await;
        }
        let Some(channel) = self.registry.get(&tenant, &d.channel) else {
            return self
                .finish(
                    &d,
                    None,
                    Finish::terminal(
                        DeliveryStatus::Failed,
                        &format!("channel `{}` no longer exists", d.channel),
                    ),
                )
                .await;
        };

        let started = Instant::now();
        let attempt_at = now_ms();
        // Senders have their own timeouts; this guard keeps a stuck one from
        // outliving the lease.
        let limit = self
            .settings
            .lease
            .saturating_sub(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        let outcome = match tokio::time::timeout(limit, channel.sender.send(&payload.message)).await
        {
            Ok(o) => o,
            Err(_) => SendOutcome::transient(format!("attempt timed out after {limit:?}")),
        };
        let elapsed = started.elapsed();
        let detail = redact(&outcome.detail, &channel, &payload.message.code);
        let log = outcome
            .log
            .as_deref()
            .map(|l| redact(l, &channel, &payload.message.code));

        self.metrics
            .attempts
            .with_label_values(&[
                tenant.as_str(),
                channel.name.as_str(),
                outcome.class.as_str(),
            ])
            .inc();
        self.metrics
            .attempt_seconds
            .with_label_values(&[channel.name.as_str()])
            .observe(elapsed.as_secs_f64());
        tracing::info!(
            delivery = %d.id, tenant = %tenant, channel = %channel.name, to = %d.send_to_masked,
            outcome = outcome.class.as_str(), ms = elapsed.as_millis() as u64, detail = %detail,
            "delivery attempt"
        );

        let timing = Timing {
            now: now_ms(),
            created_at: d.created_at,
            expires_at: d.expires_at,
            has_fallback: channel.fallback.is_some() && d.fallback_depth < MAX_FALLBACK_DEPTH,
        };
        let delay = self
            .settings
            .backoff
            .delay(d.attempt_count + 1, &mut rand::rng());
        let next = retry::after_attempt(outcome.class, timing, delay);
        let attempt = AttemptRow {
            at: attempt_at,
            outcome: outcome.class.as_str().to_string(),
            detail,
            duration_ms: elapsed.as_millis() as i64,
        };
        let mut finish = Finish {
            attempt: Some(attempt),
            status: DeliveryStatus::Queued,
            next_attempt_at: None,
            provider_id: outcome.provider_id.clone(),
            log,
            then_enqueue: None,
        };
        match next {
            Next::Delivered => finish.status = DeliveryStatus::Delivered,
            Next::RetryAt(at) => finish.next_attempt_at = Some(at),
            Next::GiveUp { expired } => {
                finish.status = if expired {
                    DeliveryStatus::Expired
                } else {
                    DeliveryStatus::Failed
                };
                if outcome.class != OutcomeClass::Delivered {
                    finish.then_enqueue = self.fallback_for(&d, &tenant, &channel, &payload).await;
                }
            }
        }
        let retry_scheduled = finish.next_attempt_at.is_some() || finish.then_enqueue.is_some();
        let recorded = self.finish(&d, Some(&channel), finish).await;
        if retry_scheduled {
            self.wake.notify_one();
        }
        recorded
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
        let now = now_ms();
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
        })
    }

    async fn finish(
        &self,
        d: &ClaimedDelivery,
        channel: Option<&Channel>,
        f: Finish,
    ) -> Option<DeliveryStatus> {
        let status = f.status;
        match self.store.finish(&d.id, &self.owner, now_ms(), f).await {
            Ok(true) => {
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
