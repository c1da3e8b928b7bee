//! The `sms-smtp` kind: privacyIDEA's SMTP SMS provider, a mail to an
//! email-to-SMS gateway, with `{otp}` and `{phone}` tags in `mailto`,
//! `subject` and `body`. [`config`] checks its keys; this file holds the
//! sender and the tenant adapter.

pub mod config;

/// The kind's wire name.
pub const NAME: &str = "sms-smtp";

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use self::config::GATEWAY_KEYS;
use super::sms_gateway::{PhoneRewrite, SmsGatewayConfig};
use super::smtp::config::SECRET_KEYS;
use super::smtp::mailer::Mailer;
use super::spec::{KindAdapter, KindSpec, SpecError, TenantContext, err};
use super::template::render;
use super::{Message, SendOutcome, Sender};

pub struct SmsSmtpSender {
    mailer: Mailer,
    mailto: String,
    subject: String,
    body: String,
    rewrite: Option<PhoneRewrite>,
}

impl SmsSmtpSender {
    /// Sends through `mailer` (the file's `[smtp]`, or the tenant's relay).
    pub fn new(mailer: Mailer, g: &SmsGatewayConfig) -> Result<Self, String> {
        Ok(Self {
            mailer,
            mailto: g.mailto.clone(),
            subject: g.subject.clone(),
            body: g.body.clone(),
            rewrite: PhoneRewrite::parse_optional(&g.regexp)?,
        })
    }
}

#[async_trait]
impl Sender for SmsSmtpSender {
    fn kind(&self) -> &'static str {
        NAME
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        let phone = match &self.rewrite {
            Some(r) => r.apply(&m.send_to),
            None => m.send_to.clone(),
        };
        let tags = [
            ("otp", m.code.as_str()),
            ("phone", phone.as_str()),
            ("text", m.text.as_str()),
        ];
        let to = render(&self.mailto, &tags);
        let subject = render(&self.subject, &tags);
        let body = render(&self.body, &tags);
        self.mailer.send(&to, &subject, body, None).await
    }

    async fn check_health(&self) -> Option<Result<(), String>> {
        Some(self.mailer.probe().await)
    }
}

/// The tenant adapter of the `sms-smtp` kind: `config` holds the relay's
/// keys and the gateway's ([`GATEWAY_KEYS`]); the secrets are the relay's.
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
        let mut relay_part = spec.clone();
        let mut gateway_part = spec.clone();
        relay_part
            .config
            .retain(|k, _| !GATEWAY_KEYS.contains(&k.as_str()));
        gateway_part
            .config
            .retain(|k, _| GATEWAY_KEYS.contains(&k.as_str()));
        gateway_part.secrets.clear();
        let smtp = super::smtp::tenant_relay(&relay_part, self.name(), ctx)?;
        let g: SmsGatewayConfig = gateway_part.typed(
            self.name(),
            &[
                ("kind", Value::String("smtp".into())),
                ("name", Value::String(ctx.name.to_string())),
            ],
        )?;
        config::validate(&g, "config", true)?;
        let mailer = Mailer::new(&smtp, ctx.build.public_only).map_err(|m| err("config", m))?;
        let sender = SmsSmtpSender::new(mailer, &g).map_err(|m| err("config", m))?;
        Ok(Arc::new(sender))
    }
}
