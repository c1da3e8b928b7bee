//! The `pushover` kind: a form POST to `api_url` (https://pushover.net/api).
//! [`config`] holds its keys; this file the sender and the adapters.

pub mod config;

/// The kind's wire name.
pub const NAME: &str = "pushover";

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use self::config::{PushoverConfig, SECRET_KEYS};
use super::http::{self, ClientOptions};
use super::recipient::RecipientRule;
use super::registry::Channel;
use super::spec::{KindAdapter, KindSpec, SpecError, TenantContext, check_timeout, check_url, err};
use super::template::{html_escape, human_ttl, plain_field};
use super::{BuildContext, Message, SendOutcome, Sender};
use crate::domain::ChannelName;
use crate::secret::Secret;

pub struct PushoverSender {
    client: reqwest::Client,
    api_url: String,
    api_token: Secret,
    title: String,
}

impl PushoverSender {
    pub fn new(c: &PushoverConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        Ok(Self {
            client: http::client(ClientOptions {
                timeout: Duration::from_secs(c.timeout_seconds),
                check_ssl: true,
                proxy: None,
                public_only: ctx.public_only,
            })?,
            api_url: c.api_url.clone(),
            api_token: c.api_token.clone(),
            title: c.title.clone(),
        })
    }
}

/// Pushover user and group keys are 30 characters of `[A-Za-z0-9]`.
pub fn is_user_key(s: &str) -> bool {
    s.len() == 30 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[async_trait]
impl Sender for PushoverSender {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn form(&self) -> super::MessageForm {
        super::MessageForm::Fields
    }

    async fn validate_recipient(&self, send_to: &str) -> Result<(), String> {
        if is_user_key(send_to) {
            Ok(())
        } else {
            Err("a Pushover user key is 30 letters and digits".into())
        }
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        // html=1 as rport does, so untrusted fields are escaped.
        let message = format!(
            "Your verification code: <b>{}</b>\nrequested from {}\n<i>with {}</i>\n<i>valid for {}</i>.",
            html_escape(&m.code),
            html_escape(&plain_field(m.remote_address.as_deref())),
            html_escape(&plain_field(m.user_agent.as_deref())),
            human_ttl(m.ttl_seconds),
        );
        let ttl = m.ttl_seconds.to_string();
        let form = [
            ("token", self.api_token.expose()),
            ("user", m.send_to.as_str()),
            ("message", message.as_str()),
            ("title", self.title.as_str()),
            ("html", "1"),
            ("priority", "1"),
            ("ttl", ttl.as_str()),
        ];
        let resp = match self.client.post(&self.api_url).form(&form).send().await {
            Ok(r) => r,
            Err(e) => return http::error_outcome(e),
        };
        let status = resp.status();
        let body = match http::read_body(resp).await {
            Ok(b) => b,
            Err(o) => return o,
        };
        let outcome = http::status_outcome(status, &body);
        if !status.is_success() {
            return outcome;
        }
        // Pushover answers {"status":1,"request":"…"} on success.
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if parsed["status"] != 1 {
            return SendOutcome::permanent(format!(
                "Pushover did not accept the message: {}",
                http::snippet(&body)
            ));
        }
        SendOutcome::delivered(format!("HTTP {status}"))
            .with_provider_id(parsed["request"].as_str().map(str::to_string))
    }
}

/// The `pushover` channel of the config file's `[pushover]`.
pub fn file_channel(
    p: &PushoverConfig,
    rule: RecipientRule,
    ctx: &BuildContext<'_>,
) -> Result<Channel, String> {
    Ok(Channel {
        name: ChannelName::parse("pushover")?,
        sender: Arc::new(PushoverSender::new(p, ctx).map_err(|e| format!("[pushover]: {e}"))?),
        rule,
        fallback: None,
        secrets: vec![p.api_token.clone()],
        messages: Default::default(),
    })
}

/// The tenant adapter of the `pushover` kind.
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
        let p: PushoverConfig = spec.typed(self.name(), &[])?;
        if p.api_token.is_empty() {
            return Err(err("secrets.api_token", "is required"));
        }
        check_url(&p.api_url, "config.api_url", ctx.build.public_only)?;
        check_timeout(p.timeout_seconds)?;
        let sender = PushoverSender::new(&p, &ctx.build).map_err(|m| err("config", m))?;
        Ok(Arc::new(sender))
    }
}
