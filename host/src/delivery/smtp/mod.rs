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
use super::{BuildContext, Message, SendOutcome, Sender};
use crate::domain::{ChannelName, EmailAddress};

/// The `email` channel: sends the parts the channel's templates rendered
/// (`Message::email`), plain and HTML as multipart/alternative.
pub struct SmtpSender {
    mailer: Mailer,
}

impl SmtpSender {
    pub fn new(c: &SmtpConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        Ok(Self {
            mailer: Mailer::new(c, ctx.public_only)?,
        })
    }
}

#[async_trait]
impl Sender for SmtpSender {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn form(&self) -> super::MessageForm {
        super::MessageForm::Email
    }

    async fn validate_recipient(&self, send_to: &str) -> Result<(), String> {
        EmailAddress::parse(send_to).map(|_| ())
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        let Some(email) = &m.email else {
            return SendOutcome::permanent("no email was composed for this message");
        };
        self.mailer
            .send(
                &m.send_to,
                &email.subject,
                email.plain.clone(),
                Some(email.html.clone()),
            )
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
        messages: Default::default(),
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
