//! The durable delivery queue. A delivery is stored before its first
//! attempt; every attempt is recorded; a worker lease (not a row lock) marks
//! who is working on it, so a killed process's deliveries are taken over
//! when the lease runs out. A delivery recorded as delivered is never sent
//! again (a crash between the provider's accept and the record can still
//! cause one duplicate: delivery is at-least-once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Message;
use super::registry::Registry;
use super::retry::Backoff;
use crate::clock::SharedClock;
use crate::crypto::Keys;
use crate::domain::{TenantName, mask_destination};
use crate::metrics::Metrics;
use crate::store::{
    ClaimedDelivery, DeliveryRecord, DeliveryStatus, Finish, NewDelivery, Store, StoreError,
};

mod attempt;
mod owner;
mod record;

pub use owner::{LeaseOwner, Role};

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

/// What [`Queue::submit_as`] answers with once the first attempt ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The stored record, attempts and all (what the test endpoint shows).
    Record,
    /// Id, channel, masked send-to and the status the first attempt
    /// recorded, from memory: a 2FA send needs no more, and reading the
    /// record back would cost two statements. The stored record is read
    /// when the attempt's status is not known here.
    Status,
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
    owner: LeaseOwner,
    /// Set once shutdown begins: no new attempt starts after it.
    closing: std::sync::atomic::AtomicBool,
    wake: Notify,
    slots: Arc<Semaphore>,
    /// Per-tenant budgets, so one tenant's slow channel cannot take every slot.
    tenant_slots: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    tasks: TaskTracker,
    /// Leases, next attempts and expiry are timed by this.
    clock: SharedClock,
}

impl Queue {
    /// The host's metrics (the 2FA rules count locks and refusals there).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        keys: Keys,
        metrics: Arc<Metrics>,
        settings: QueueSettings,
        clock: SharedClock,
        owner: LeaseOwner,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            registry,
            keys,
            metrics,
            settings,
            owner,
            closing: Default::default(),
            wake: Notify::new(),
            slots: Arc::new(Semaphore::new(settings.workers)),
            tenant_slots: Default::default(),
            tasks: TaskTracker::new(),
            clock,
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
    /// the stored record after it. Later attempts belong to the workers. The
    /// attempt runs in its own task, so a caller that goes away does not cut
    /// it short.
    pub async fn submit(self: &Arc<Self>, req: Enqueue) -> Result<DeliveryRecord, QueueError> {
        self.submit_as(req, Answer::Record).await
    }

    /// [`Queue::submit`], answering as `answer` says.
    pub async fn submit_as(
        self: &Arc<Self>,
        req: Enqueue,
        answer: Answer,
    ) -> Result<DeliveryRecord, QueueError> {
        let channel = self
            .registry
            .get(&req.tenant, &req.channel)
            .ok_or_else(|| QueueError::UnknownChannel(req.channel.clone()))?;
        channel
            .validate_recipient(&req.message.send_to)
            .await
            .map_err(QueueError::InvalidSendTo)?;
        let now = self.clock.now_ms();
        self.tenant_quota(&req.tenant, now).await?;
        let id = format!("dlv_{}", uuid::Uuid::new_v4().simple());
        let lease_until = now + self.settings.lease.as_millis() as i64;
        // Shutting down: stored for the next worker (here after a restart,
        // or another host), not attempted by this process.
        let attempt_now = !self.is_closing();
        let send_to_masked = mask_destination(&req.message.send_to);
        let facts = channel.facts(&req.message);
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
            lease: attempt_now.then(|| (self.owner.as_str().to_string(), lease_until)),
            facts,
        };
        self.store.insert_delivery(&new).await?;
        if !attempt_now {
            return Ok(self.record_or_summary(&new, None, answer).await);
        }
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
        let first = self.first_attempt(claimed).await;
        // Once an attempt has run, the call succeeds: the code may be on its
        // way, so an error now would tell the caller something false.
        Ok(self.record_or_summary(&new, first, answer).await)
    }

    /// `limits.tenant_deliveries_per_minute`: counts one new delivery.
    async fn tenant_quota(&self, tenant: &TenantName, now: i64) -> Result<(), QueueError> {
        let key = format!("tenant-deliveries:{tenant}");
        let (count, window_start) = self.store.rate_hit(&key, now, 60_000).await?;
        if count > u64::from(self.settings.tenant_per_minute) {
            let retry_after = ((window_start + 60_000 - now) / 1000).max(1) as u64;
            return Err(QueueError::TooManyRequests { retry_after });
        }
        Ok(())
    }

    /// Runs the first attempt in its own task and waits for it.
    async fn first_attempt(self: &Arc<Self>, claimed: ClaimedDelivery) -> Option<DeliveryStatus> {
        let me = self.clone();
        let permit = self.slots.clone().acquire_owned().await;
        let handle = self.tasks.spawn(async move {
            let _permit = permit;
            me.execute(claimed).await
        });
        handle.await.ok().flatten()
    }

    /// Leases due deliveries and starts them; returns how many were started.
    /// Production loops over this in [`Queue::run`]; tests may call it directly.
    pub async fn dispatch_due(self: &Arc<Self>) -> Result<usize, StoreError> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let lease_until = now + self.settings.lease.as_millis() as i64;
        let claimed = self
            .store
            .claim_due(self.owner.as_str(), now, lease_until, free as u32)
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
                    next_attempt_at: Some(self.clock.now_ms() + 200),
                    provider_id: None,
                    log: None,
                    then_enqueue: None,
                };
                if let Err(e) = self
                    .store
                    .finish(&d.id, self.owner.as_str(), self.clock.now_ms(), later)
                    .await
                {
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
        let now = self.clock.now_ms();
        let lease_until = now + self.settings.lease.as_millis() as i64;
        match self
            .store
            .claim_by_id(id, self.owner.as_str(), now, lease_until)
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
        self.take_back_earlier_leases().await;
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
                    Ok(Some(at)) => {
                        Duration::from_millis((at - self.clock.now_ms()).clamp(0, 1000) as u64)
                    }
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
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
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
}
