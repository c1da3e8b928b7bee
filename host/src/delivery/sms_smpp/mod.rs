//! The `sms-smpp` kind: privacyIDEA's SMPP provider, a bound transceiver
//! session to an operator's SMSC ([`session`]), submits pipelined up to
//! `window` on it, texts as GSM-7 or UCS-2 with concatenated parts
//! ([`encode`]), answers mapped onto outcome classes ([`outcome`]) and
//! delivery receipts recorded as the delivery's handset state ([`receipt`]).
//! [`config`] checks its keys; this file holds the sender and the tenant
//! adapter.

pub mod config;
pub mod encode;
pub mod outcome;
pub mod receipt;
pub mod session;
pub mod transport;

/// The kind's wire name.
pub const NAME: &str = "sms-smpp";

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusmpp::pdus::SubmitSm;
use rusmpp::types::COctetString;
use rusmpp::values::{EsmClass, RegisteredDelivery, ServiceType};
use rusmppc::Client;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::DropGuard;

use self::config::{CONFIG_KEYS, SECRET_KEYS, SmppSettings};
use self::session::{Link, Owner, Session};
use super::receipts::Receipts;
use super::sms_gateway::SmsGatewayConfig;
use super::spec::{KindAdapter, KindSpec, SpecError, TenantContext, check_host, err};
use super::{Message, SendOutcome, Sender};

/// How long the session gets to unbind when the server stops.
const UNBIND_GRACE: Duration = Duration::from_secs(3);

pub struct SmppSender {
    session: Arc<Session>,
    window: Semaphore,
    /// Concatenated messages' reference numbers.
    reference: AtomicU8,
    /// Dropping the sender (channel replaced or removed) ends the session.
    _stop: DropGuard,
}

impl SmppSender {
    pub fn new(settings: SmppSettings, owner: Owner) -> Self {
        let window = Semaphore::new(settings.window.get());
        let session = Session::new(settings, owner);
        let stop = session.stop_token().drop_guard();
        Self {
            session,
            window,
            reference: AtomicU8::new(rand::random()),
            _stop: stop,
        }
    }

    fn timeout(&self) -> Duration {
        self.session.settings().timeout
    }

    /// The bound session's client, waiting up to the timeout for a bind.
    async fn client(&self) -> Result<Client, SendOutcome> {
        self.session.ensure_started();
        let timeout = self.timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut link = self.session.link();
        loop {
            let reason = match &*link.borrow_and_update() {
                Link::Up(c) if !c.is_closed() => return Ok(c.clone()),
                Link::Down {
                    refused: Some(status),
                    ..
                } => return Err(outcome::misconfigured(status)),
                Link::Stopped => {
                    return Err(SendOutcome::transient("the SMPP session is closed"));
                }
                Link::Down { reason, .. } => reason.clone(),
                Link::Up(_) | Link::Starting => "binding".to_string(),
            };
            match tokio::time::timeout_at(deadline, link.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(SendOutcome::transient("the SMPP session is closed")),
                Err(_) => {
                    return Err(SendOutcome::transient(format!(
                        "SMSC not bound within {timeout:?}: {reason}"
                    )));
                }
            }
        }
    }

    fn template(&self, send_to: &str) -> Result<SubmitSm, SendOutcome> {
        let s = self.session.settings();
        let destination = s
            .destination(send_to)
            .parse::<COctetString<1, 21>>()
            .map_err(|_| {
                SendOutcome::permanent(
                    "invalid recipient: not an SMPP address (at most 20 ASCII characters)",
                )
            })?;
        Ok(SubmitSm::builder()
            .service_type(ServiceType::default())
            .source_addr_ton(s.source_ton)
            .source_addr_npi(s.source_npi)
            .source_addr(s.source.clone())
            .dest_addr_ton(s.dest_ton)
            .dest_addr_npi(s.dest_npi)
            .destination_addr(destination)
            .esm_class(EsmClass::default())
            // SMSC delivery receipt on final outcome, success or failure.
            .registered_delivery(RegisteredDelivery::from(1u8))
            .build())
    }

    async fn submit(&self, m: &Message) -> SendOutcome {
        let template = match self.template(&m.send_to) {
            Ok(t) => t,
            Err(o) => return o,
        };
        let reference = self.reference.fetch_add(1, Ordering::Relaxed);
        let parts = match encode::submit_parts(template, &m.text, reference) {
            Ok(p) => p,
            Err(e) => return SendOutcome::permanent(e),
        };
        let client = match self.client().await {
            Ok(c) => c,
            Err(o) => return o,
        };
        let count = parts.len();
        let mut first_id = None;
        for part in parts {
            match client.submit_sm(part).await {
                Ok(resp) => {
                    first_id.get_or_insert_with(|| resp.message_id().to_string());
                }
                Err(e) => return outcome::for_error(&e),
            }
        }
        let id = first_id.unwrap_or_default();
        let parts = if count == 1 { "" } else { "s" };
        SendOutcome::delivered(format!(
            "accepted by the SMSC ({count} part{parts}), message_id {id}"
        ))
        .with_provider_id(Some(id))
    }
}

#[async_trait]
impl Sender for SmppSender {
    fn kind(&self) -> &'static str {
        NAME
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        let permit = tokio::time::timeout(self.timeout(), self.window.acquire()).await;
        let _permit = match permit {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return SendOutcome::transient("the SMPP session is closed"),
            Err(_) => {
                return SendOutcome::transient(format!(
                    "all {} submit slots of the session stayed busy",
                    self.session.settings().window
                ));
            }
        };
        self.submit(m).await
    }

    async fn check_health(&self) -> Option<Result<(), String>> {
        Some(self.client().await.map(|_| ()).map_err(|o| o.detail))
    }

    fn attach_receipts(&self, sink: &Receipts) {
        self.session.attach_receipts(sink);
    }

    async fn shutdown(&self) {
        self.session.stop(UNBIND_GRACE).await;
    }
}

/// The `[[sms_gateway]]` `kind = "smpp"` number `i`'s sender.
pub fn file_sender(g: &SmsGatewayConfig, prefix: &str) -> Result<SmppSender, String> {
    let settings = SmppSettings::parse(g, prefix).map_err(|e| e.to_string())?;
    let owner = Owner {
        tenant: crate::domain::TenantName::default_tenant().to_string(),
        channel: g.name.clone(),
        public_only: false,
    };
    Ok(SmppSender::new(settings, owner))
}

/// The tenant adapter of the `sms-smpp` kind: `config` holds the
/// [`CONFIG_KEYS`], `secrets` the `password`.
pub struct Kind;

impl KindAdapter for Kind {
    fn name(&self) -> &'static str {
        NAME
    }

    fn secret_keys(&self) -> Option<&'static [&'static str]> {
        Some(SECRET_KEYS)
    }

    fn sender(
        &self,
        spec: &KindSpec,
        ctx: &TenantContext<'_>,
    ) -> Result<Arc<dyn Sender>, SpecError> {
        if let Some(k) = spec
            .config
            .keys()
            .find(|k| !CONFIG_KEYS.contains(&k.as_str()))
        {
            return Err(err(
                format!("config.{k}"),
                format!("unknown key `{k}` for kind `{NAME}`"),
            ));
        }
        let g: SmsGatewayConfig = spec.typed(
            self.name(),
            &[
                ("kind", Value::String("smpp".into())),
                ("name", Value::String(ctx.name.to_string())),
            ],
        )?;
        let settings = SmppSettings::parse(&g, "config")?;
        check_host(&settings.host, "config.smsc_host", ctx.build.public_only)?;
        let owner = Owner {
            tenant: ctx.tenant.to_string(),
            channel: ctx.name.to_string(),
            public_only: ctx.build.public_only,
        };
        Ok(Arc::new(SmppSender::new(settings, owner)))
    }
}
