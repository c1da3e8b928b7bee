//! The `url` kind: rport's form POST (`email`, `token`, `ttl`, `user_agent`,
//! `remote_address`, `url`) plus an `X-Postern-Signature` HMAC header.
//! [`config`] holds its keys; this file the sender and the adapters.

pub mod config;

/// The kind's wire name.
pub const NAME: &str = "url";

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use self::config::{SECRET_KEYS, UrlConfig};
use super::http::{self, ClientOptions};
use super::recipient::RecipientRule;
use super::registry::Channel;
use super::spec::{KindAdapter, KindSpec, SpecError, TenantContext, check_timeout, check_url, err};
use super::{BuildContext, Message, SendOutcome, Sender};
use crate::config::api::ApiConfig;
use crate::domain::ChannelName;
use crate::secret::Secret;

pub struct UrlSender {
    client: reqwest::Client,
    url: String,
    base_url: String,
    signing_secret: Option<Secret>,
}

impl UrlSender {
    pub fn new(c: &UrlConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        Ok(Self {
            client: http::client(ClientOptions {
                timeout: Duration::from_secs(c.timeout_seconds),
                check_ssl: true,
                proxy: None,
                public_only: ctx.public_only,
            })?,
            url: c.url.clone(),
            base_url: ctx.base_url.unwrap_or_default().to_string(),
            signing_secret: c.signing_secret.clone(),
        })
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`; the key is the secret's UTF-8 bytes.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Sender for UrlSender {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn form(&self) -> super::MessageForm {
        super::MessageForm::Fields
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        let ttl = m.ttl_seconds.to_string();
        let form = [
            ("email", m.send_to.as_str()),
            ("token", m.code.as_str()),
            ("ttl", ttl.as_str()),
            ("user_agent", m.user_agent.as_deref().unwrap_or("")),
            ("remote_address", m.remote_address.as_deref().unwrap_or("")),
            ("url", self.base_url.as_str()),
        ];
        let body = match serde_urlencoded::to_string(form) {
            Ok(b) => b,
            Err(e) => return SendOutcome::permanent(format!("cannot encode form: {e}")),
        };
        let mut req = self.client.post(&self.url).header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
        if let Some(secret) = &self.signing_secret {
            let sig = signature(
                secret.expose(),
                chrono::Utc::now().timestamp(),
                body.as_bytes(),
            );
            req = req.header("X-Postern-Signature", sig);
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => return http::error_outcome(e),
        };
        let status = resp.status();
        let body = http::read_body(resp).await.unwrap_or_default();
        http::status_outcome(status, &body)
    }
}

/// The config file's `url` channel: `[api]` names the URL and its secret.
pub fn file_channel(
    url: &str,
    api: &ApiConfig,
    rule: RecipientRule,
    ctx: &BuildContext<'_>,
) -> Result<Channel, String> {
    let c = UrlConfig {
        url: url.to_string(),
        signing_secret: api.two_fa_url_signing_secret.clone(),
        timeout_seconds: api.url_timeout_seconds,
    };
    Ok(Channel {
        name: ChannelName::parse("url")?,
        sender: Arc::new(UrlSender::new(&c, ctx)?),
        rule,
        fallback: None,
        secrets: c.signing_secret.into_iter().collect(),
        messages: Default::default(),
    })
}

/// The tenant adapter of the `url` kind.
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
        let c: UrlConfig = spec.typed(self.name(), &[])?;
        check_url(&c.url, "config.url", ctx.build.public_only)?;
        check_timeout(c.timeout_seconds)?;
        let sender = UrlSender::new(&c, &ctx.build).map_err(|m| err("config", m))?;
        Ok(Arc::new(sender))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_t_dot_body() {
        // Cross-checked with: printf '1700000000.a=1' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature("key", 1_700_000_000, b"a=1"),
            "t=1700000000,v1=b7976d6408ba52fb8193d44808da90e9d90eed6820e7313444defe19b339b8cf"
        );
    }
}
