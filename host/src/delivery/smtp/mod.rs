//! The `smtp` kind: the `email` channel of `[smtp]`, and tenants' `smtp`
//! channels. [`config`] holds its keys and their checks, [`mailer`] the
//! relay (shared with `sms-smtp`), this file the sender and the adapters.

pub mod config;
pub mod mailer;

/// The kind's wire name.
pub const NAME: &str = "smtp";

use std::sync::Arc;

use async_trait::async_trait;

use self::config::{SECRET_KEYS, SmtpConfig};
use self::mailer::Mailer;
use super::recipient::RecipientRule;
use super::registry::Channel;
use super::spec::{KindAdapter, KindSpec, SpecError, TenantContext, check_host, err};
use super::template::{html_escape, human_ttl, plain_field, render};
use super::{BuildContext, Message, SendOutcome, Sender};
use crate::domain::{ChannelName, EmailAddress};

/// The `email` channel: renders the subject and body templates.
pub struct SmtpSender {
    mailer: Mailer,
    subject: String,
    body: String,
    base_url: String,
}

impl SmtpSender {
    pub fn new(c: &SmtpConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        Ok(Self {
            mailer: Mailer::new(c, ctx.public_only)?,
            subject: c.subject.clone(),
            body: c.body.clone(),
            base_url: ctx.base_url.unwrap_or_default().to_string(),
        })
    }
}

#[async_trait]
impl Sender for SmtpSender {
    fn kind(&self) -> &'static str {
        NAME
    }

    async fn validate_recipient(&self, send_to: &str) -> Result<(), String> {
        EmailAddress::parse(send_to).map(|_| ())
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        // User agent and IP are untrusted: one line of plain text, and
        // HTML-escaped in the HTML part.
        let fields = [
            ("code", m.code.clone()),
            ("ttl", human_ttl(m.ttl_seconds)),
            ("username", plain_field(Some(&m.username))),
            ("base_url", self.base_url.clone()),
            ("user_agent", plain_field(m.user_agent.as_deref())),
            ("remote_address", plain_field(m.remote_address.as_deref())),
        ];
        let plain: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let escaped: Vec<(&str, String)> =
            fields.iter().map(|(k, v)| (*k, html_escape(v))).collect();
        let html: Vec<(&str, &str)> = escaped.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let subject = render(&self.subject, &plain);
        let text = render(&self.body, &plain);
        // html_escape leaves `{tag}` intact, so tags are filled after escaping the template.
        let html_body = format!(
            "<html><body><pre style=\"font-family:sans-serif\">{}</pre></body></html>",
            render(&html_escape(&self.body), &html)
        );
        self.mailer
            .send(&m.send_to, &subject, text, Some(html_body))
            .await
    }

    async fn check_health(&self) -> Option<Result<(), String>> {
        Some(self.mailer.probe().await)
    }
}

/// The `email` channel of the config file's `[smtp]`.
pub fn file_channel(smtp: &SmtpConfig, ctx: &BuildContext<'_>) -> Result<Channel, String> {
    Ok(Channel {
        name: ChannelName::parse("email")?,
        sender: Arc::new(SmtpSender::new(smtp, ctx).map_err(|e| format!("[smtp]: {e}"))?),
        // `email` always requires an email address.
        rule: RecipientRule::Email,
        fallback: None,
        secrets: smtp.auth_password.iter().cloned().collect(),
    })
}

/// A tenant's relay settings (`smtp` and `sms-smtp`), checked: the relay
/// must be a public host unless private networks are allowed.
pub fn tenant_relay(
    spec: &KindSpec,
    kind: &str,
    ctx: &TenantContext<'_>,
) -> Result<SmtpConfig, SpecError> {
    let smtp: SmtpConfig = spec.typed(kind, &[])?;
    smtp.validate("config")?;
    let (host, _) = smtp.host_port().map_err(|m| err("config.server", m))?;
    check_host(&host, "config.server", ctx.build.public_only)?;
    Ok(smtp)
}

/// The tenant adapter of the `smtp` kind.
pub struct Kind;

impl KindAdapter for Kind {
    fn name(&self) -> &'static str {
        NAME
    }

    fn secret_keys(&self) -> Option<&'static [&'static str]> {
        Some(SECRET_KEYS)
    }

    fn forced_rule(&self) -> Option<RecipientRule> {
        Some(RecipientRule::Email)
    }

    fn sender(
        &self,
        spec: &KindSpec,
        ctx: &TenantContext<'_>,
    ) -> Result<Arc<dyn Sender>, SpecError> {
        let smtp = tenant_relay(spec, self.name(), ctx)?;
        let sender = SmtpSender::new(&smtp, &ctx.build).map_err(|m| err("config", m))?;
        Ok(Arc::new(sender))
    }
}
