//! Delivering a code: the [`Sender`] trait every channel implements, the
//! outcome classes, the channel kinds, the registry and the durable queue.
//!
//! A sender knows its protocol and nothing about 2FA rules; the queue knows
//! retries and fallbacks and nothing about protocols.
//!
//! # One folder per channel kind
//!
//! Each [`kind::ChannelKind`] has a folder holding everything about it:
//! `config.rs` (its keys, their checks, the secret names a tenant channel
//! takes) and `mod.rs` (its [`Sender`]; `Kind`, its [`spec::KindAdapter`]
//! for `PUT /channels`; `file_channel` where the config file has a section
//! of that kind): `smtp/`, `pushover/`, `url/`, `sms_http/`, `sms_smtp/`, `sms_smpp/`,
//! `plugin/` (the kind's config and checks; the wasmtime runtime is
//! `crate::plugin`). A file channel and a tenant channel of one kind are
//! built by the same constructor with a [`BuildContext`]; they differ only
//! in where the settings come from ([`file_channels`] reads the file's
//! sections, [`tenant_channels`] a tenant's spec) and in `public_only`.
//!
//! Adding a kind (say `smpp`):
//! 1. a folder `delivery/smpp/`: `config.rs` with an `SmppConfig` struct
//!    (serde, the key names), its `validate` and `SECRET_KEYS`; `mod.rs`
//!    with `SmppSender: Sender` built from `(&SmppConfig, &BuildContext)`
//!    and `pub struct Kind` implementing [`spec::KindAdapter`] (wire name,
//!    secret names, `sender`: `spec.typed()` the config, check it, build);
//!    and `pub mod smpp;` below;
//! 2. a variant `ChannelKind::Smpp`, its entry in `ChannelKind::ALL` and its
//!    arm in `ChannelKind::adapter` (`delivery/kind.rs`).
//!
//! Tenants can then `PUT` it; the store, the API and the queue need
//! nothing. Only a kind the config file should offer too needs a section:
//! a field in `config::Config`, validated in `Config::validate`, and a
//! `file_channel` call in [`file_channels`].
//!
//! Other files: [`registry`] (channels by name), [`fallback`] (the one
//! fallback-graph check, for the file and the API), [`recipient`]
//! (`send_to_type` rules), [`spec`] (a tenant's kind settings and the
//! checks kinds share), [`sms_gateway`] (privacyIDEA's table shared by the
//! three SMS kinds), [`http`] and [`template`] (helpers of the senders),
//! [`receipts`] (where senders report handset receipts), [`queue`] and
//! [`retry`].

pub mod fallback;
pub mod file_channels;
pub mod http;
pub mod kind;
pub mod plugin;
pub mod pushover;
pub mod queue;
pub mod receipts;
pub mod recipient;
pub mod registry;
pub mod retry;
pub mod sms_gateway;
pub mod sms_http;
pub mod sms_smpp;
pub mod sms_smtp;
pub mod smtp;
pub mod spec;
pub mod template;
pub mod tenant_channels;
pub mod url;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a channel is asked to deliver. Stored encrypted in the queue (it
/// holds the code); `Debug` hides the code.
#[derive(Clone, Serialize, Deserialize)]
pub struct Message {
    pub send_to: String,
    pub code: String,
    pub ttl_seconds: u32,
    /// Host-rendered text, e.g. "Your verification code is 123456. It expires in 10 minutes."
    pub text: String,
    pub username: String,
    pub user_agent: Option<String>,
    pub remote_address: Option<String>,
    /// The BCP 47 locale chosen when the code was queued.
    pub locale: Option<String>,
    /// The email parts, rendered for the channel right before an attempt
    /// (`registry::Channel::compose`); never stored.
    #[serde(skip)]
    pub email: Option<crate::messages::Email>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("send_to", &crate::domain::mask_destination(&self.send_to))
            .field("code", &"***")
            .field("ttl_seconds", &self.ttl_seconds)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What every sender is built with, wherever its channel is defined.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// `server.base_url`, for templates and the URL form.
    pub base_url: Option<&'a str>,
    /// Dial only public addresses: tenant channels, unless the operator
    /// allows private networks.
    pub public_only: bool,
}

impl<'a> BuildContext<'a> {
    /// The config file's channels: the operator's own, any address.
    pub fn file(base_url: Option<&'a str>) -> Self {
        Self {
            base_url,
            public_only: false,
        }
    }
}

/// How an attempt ended (SPEC §6 "Outcome classes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeClass {
    Delivered,
    /// Worth retrying: timeouts, connection errors, 408/429/5xx, `unavailable`.
    Transient,
    /// Retrying cannot help: 4xx, refusals, misconfiguration, plugin traps.
    Permanent,
}

impl OutcomeClass {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Delivered => "delivered",
            OutcomeClass::Transient => "transient",
            OutcomeClass::Permanent => "permanent",
        }
    }
}

/// One attempt's result, as the sender saw it. `detail` must never hold a
/// secret or the code; the queue also redacts known secrets before storing.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub class: OutcomeClass,
    pub detail: String,
    pub provider_id: Option<String>,
    /// Captured plugin output, if any.
    pub log: Option<String>,
    /// The plugin version (sha256) that ran, for plugin senders.
    pub plugin_sha256: Option<String>,
    /// What the plugin call used, for plugin senders (boxed: outcomes are
    /// passed by value and most have none).
    pub resources: Option<Box<Resources>>,
}

/// What one plugin call used: CPU time, peak linear memory, outbound HTTP
/// requests (the record's `cpuMs`, `peakMemoryBytes`, `httpRequests`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// The plugin's describe() name (the metrics' `plugin` label).
    pub plugin: String,
    pub cpu_us: u64,
    pub peak_memory_bytes: u64,
    pub http_requests: u32,
    /// Why the plugin did not finish (`trap`, `cpu_budget`, …), for the metrics.
    pub failure: Option<&'static str>,
}

impl SendOutcome {
    pub fn delivered(detail: impl Into<String>) -> Self {
        Self::new(OutcomeClass::Delivered, detail)
    }
    pub fn transient(detail: impl Into<String>) -> Self {
        Self::new(OutcomeClass::Transient, detail)
    }
    pub fn permanent(detail: impl Into<String>) -> Self {
        Self::new(OutcomeClass::Permanent, detail)
    }
    pub fn new(class: OutcomeClass, detail: impl Into<String>) -> Self {
        Self {
            class,
            detail: detail.into(),
            provider_id: None,
            log: None,
            plugin_sha256: None,
            resources: None,
        }
    }
    pub fn with_provider_id(mut self, id: Option<String>) -> Self {
        self.provider_id = id;
        self
    }
}

/// Which rendered message a sender puts on the wire, so a channel renders
/// (and its record measures) only that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageForm {
    /// `Message::text`: SMS, chat and plugin channels.
    Text,
    /// `Message::email`: subject, plain and HTML parts.
    Email,
    /// Its own fields (URL form, Pushover's rport wording): no text is measured.
    Fields,
}

/// A delivery protocol. Implementations bound every network call with a
/// timeout and classify every failure.
#[async_trait]
pub trait Sender: Send + Sync {
    /// The protocol, for records and metrics: `smtp`, `pushover`, `url`, …
    fn kind(&self) -> &'static str;

    /// Which rendered message it sends.
    fn form(&self) -> MessageForm {
        MessageForm::Text
    }

    /// Checks only the protocol knows (a plugin's `validate-recipient`). The
    /// channel's `send_to_type` rule runs before this.
    async fn validate_recipient(&self, _send_to: &str) -> Result<(), String> {
        Ok(())
    }

    async fn send(&self, message: &Message) -> SendOutcome;

    /// One attempt of the queued delivery `delivery_id`: what the queue
    /// calls. A sender that routes by delivery (a plugin's staged rollout
    /// keeps each delivery and its retries on one version) overrides it.
    async fn send_delivery(&self, _delivery_id: &str, message: &Message) -> SendOutcome {
        self.send(message).await
    }

    /// A cheap reachability probe for `/readyz`; `None` if there is none.
    async fn check_health(&self) -> Option<Result<(), String>> {
        None
    }

    /// Where to report what became of a message after the provider took it
    /// (SMPP delivery receipts); the registry calls it as the channel joins.
    fn attach_receipts(&self, _sink: &receipts::Receipts) {}

    /// Ends long-lived connections cleanly (SMPP `unbind`) as the server stops.
    async fn shutdown(&self) {}
}
