//! One bound transceiver session per SMPP channel: dialled on first use
//! (the health probe at start-up is the first use, so a running server
//! binds at once), kept alive with `enquire_link`, re-bound with backoff
//! after a drop, unbound when the channel goes away or the server stops.
//! Incoming `deliver_sm` receipts go to the [`Receipts`] sink, then get
//! their `deliver_sm_resp`. The PDUs and the request/response matching
//! are rusmpp's (`rusmppc` client over `rusmpp`'s tokio codec).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use rand::Rng;
use rusmpp::pdus::{BindTransceiver, DeliverSmResp};
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Npi, Ton};
use rusmpp::{Command, CommandId, Pdu};
use rusmppc::{Client, ConnectionBuilder, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::SmppSettings;
use super::outcome::status_name;
use super::transport;
use crate::delivery::receipts::Receipts;

/// The largest PDU accepted from the SMSC; a bigger one closes the session.
const MAX_PDU: usize = 8 * 1024;
/// Re-bind delays: doubling from this, up to [`MAX_BACKOFF`], with jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the session stands, as senders and `/readyz` see it.
#[derive(Clone)]
pub enum Link {
    /// Not dialled yet, or dialling for the first time.
    Starting,
    Up(Client),
    /// Down since the last attempt; `refused` holds the command status of
    /// a refused bind (a misconfiguration, not an outage).
    Down {
        reason: String,
        refused: Option<String>,
    },
    /// The channel is gone or the server is stopping.
    Stopped,
}

/// Who the session belongs to, for receipts and logs.
#[derive(Clone)]
pub struct Owner {
    pub tenant: String,
    pub channel: String,
    /// Dial only public addresses (tenant channels).
    pub public_only: bool,
}

pub struct Session {
    settings: SmppSettings,
    owner: Owner,
    /// Set when the channel joins the registry.
    receipts: OnceLock<Receipts>,
    link: watch::Sender<Link>,
    started: AtomicBool,
    stop: CancellationToken,
    /// Cancelled when the task has unbound and ended.
    ended: CancellationToken,
}

impl Session {
    pub fn new(settings: SmppSettings, owner: Owner) -> Arc<Self> {
        Arc::new(Self {
            settings,
            owner,
            receipts: OnceLock::new(),
            link: watch::Sender::new(Link::Starting),
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
            ended: CancellationToken::new(),
        })
    }

    /// Where receipts go from now on (the first sink set stays).
    pub fn attach_receipts(&self, sink: &Receipts) {
        let _ = self.receipts.set(sink.clone());
    }

    pub fn settings(&self) -> &SmppSettings {
        &self.settings
    }

    /// Starts the session task once; later calls do nothing.
    pub fn ensure_started(self: &Arc<Self>) {
        if self.stop.is_cancelled() || self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            me.run().await;
            me.link.send_replace(Link::Stopped);
            me.ended.cancel();
        });
    }

    pub fn link(&self) -> watch::Receiver<Link> {
        self.link.subscribe()
    }

    /// Asks the task to unbind and end; waits at most `timeout` for it.
    pub async fn stop(&self, timeout: Duration) {
        self.stop.cancel();
        if self.started.load(Ordering::SeqCst) {
            let _ = tokio::time::timeout(timeout, self.ended.cancelled()).await;
        }
    }

    /// The token the sender's drop guard cancels.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    fn who(&self) -> String {
        format!("{}/{}", self.owner.tenant, self.owner.channel)
    }

    async fn run(&self) {
        let mut failures = 0u32;
        while !self.stop.is_cancelled() {
            match self.bind().await {
                Ok((client, events)) => {
                    failures = 0;
                    tracing::info!(channel = %self.who(), host = %self.settings.host, "SMPP session bound");
                    self.link.send_replace(Link::Up(client.clone()));
                    let why = self.serve(&client, events).await;
                    if self.stop.is_cancelled() {
                        self.unbind(&client).await;
                        return;
                    }
                    tracing::warn!(channel = %self.who(), reason = %why, "SMPP session dropped; re-binding");
                    self.link.send_replace(Link::Down {
                        reason: why,
                        refused: None,
                    });
                }
                Err(down) => {
                    if let Link::Down { reason, .. } = &down {
                        tracing::warn!(channel = %self.who(), reason = %reason, "SMPP bind failed");
                    }
                    self.link.send_replace(down);
                }
            }
            failures = failures.saturating_add(1);
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(backoff(failures)) => {}
            }
        }
    }

    /// Dials and binds as a transceiver; the error is the [`Link::Down`] to show.
    async fn bind(&self) -> Result<(Client, BoxStream<'static, Event>), Link> {
        let s = &self.settings;
        let down = |reason: String| Link::Down {
            reason,
            refused: None,
        };
        let stream = transport::dial(s, self.owner.public_only)
            .await
            .map_err(down)?;
        let (client, events) = ConnectionBuilder::new()
            .max_command_length(MAX_PDU)
            .enquire_link_interval(s.enquire_link)
            .enquire_link_response_timeout(s.timeout)
            .response_timeout(s.timeout)
            .disable_interface_version_check()
            .connected(stream);
        let password = s
            .password
            .as_ref()
            .and_then(|p| p.expose().parse::<COctetString<1, 9>>().ok())
            .unwrap_or_default();
        let bind = BindTransceiver::builder()
            .system_id(s.system_id.clone())
            .password(password)
            .system_type(s.system_type.clone())
            .interface_version(InterfaceVersion::Smpp3_4)
            .addr_ton(Ton::Unknown)
            .addr_npi(Npi::Unknown)
            .build();
        match client.bind_transceiver(bind).await {
            Ok(_) => Ok((client, events.boxed())),
            Err(rusmppc::error::Error::UnexpectedResponse { response }) => {
                let status = status_name(response.status());
                let _ = client.close().await;
                Err(Link::Down {
                    reason: format!("the SMSC refused the bind: {status}"),
                    refused: Some(status),
                })
            }
            Err(e) => {
                let _ = client.close().await;
                Err(down(format!("bind: {e}")))
            }
        }
    }

    /// Answers what the SMSC sends until the session ends or is stopped;
    /// returns why it ended.
    async fn serve(&self, client: &Client, mut events: BoxStream<'static, Event>) -> String {
        let mut last_error = None;
        loop {
            let event = tokio::select! {
                _ = self.stop.cancelled() => return "stopping".into(),
                e = events.next() => e,
            };
            match event {
                None => {
                    return last_error.unwrap_or_else(|| "the connection closed".to_string());
                }
                Some(Event::Error(e)) => {
                    tracing::warn!(channel = %self.who(), error = %e, "SMPP session error");
                    last_error = Some(e.to_string());
                }
                Some(Event::Incoming(command)) => {
                    if let Some(why) = self.incoming(client, command).await {
                        let _ = client.close().await;
                        return why;
                    }
                }
            }
        }
    }

    /// One command from the SMSC; `Some(why)` ends the session.
    async fn incoming(&self, client: &Client, command: Command) -> Option<String> {
        let seq = command.sequence_number();
        match command.pdu() {
            Some(Pdu::DeliverSm(sm)) => {
                if let (Some(r), Some(sink)) = (super::receipt::parse(sm), self.receipts.get()) {
                    sink.record(&self.owner.tenant, &self.owner.channel, r)
                        .await;
                }
                let _ = client.deliver_sm_resp(seq, DeliverSmResp::default()).await;
                None
            }
            Some(Pdu::Unbind) => {
                let _ = client.unbind_resp(seq).await;
                Some("the SMSC unbound".into())
            }
            // Late answers to submits that timed out, and the like.
            _ if command.id().is_response() => None,
            _ if command.id() == CommandId::AlertNotification => None,
            _ => {
                let _ = client.generic_nack(seq).await;
                None
            }
        }
    }

    async fn unbind(&self, client: &Client) {
        match client.unbind().await {
            Ok(()) => tracing::info!(channel = %self.who(), "SMPP session unbound"),
            Err(e) => tracing::warn!(channel = %self.who(), error = %e, "SMPP unbind"),
        }
        let _ = client.close().await;
    }
}

fn backoff(failures: u32) -> Duration {
    let exp = BASE_BACKOFF.saturating_mul(1 << failures.min(8).saturating_sub(1));
    let capped = exp.min(MAX_BACKOFF);
    capped.mul_f64(rand::rng().random_range(0.75..=1.0))
}
