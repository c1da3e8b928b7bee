//! The channels a tenant can deliver through, by name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::Sender;
use super::pushover::PushoverSender;
use super::recipient::RecipientRule;
use super::sms_http::SmsHttpSender;
use super::sms_smtp::SmsSmtpSender;
use super::smtp::{Mailer, SmtpSender};
use super::url::UrlSender;
use crate::config::{ChannelConfig, Config, SendToType};
use crate::domain::{ChannelName, TenantName};
use crate::secret::Secret;

/// A named way to deliver: a sender plus the channel's own rules.
pub struct Channel {
    pub name: ChannelName,
    pub sender: Arc<dyn Sender>,
    pub rule: RecipientRule,
    pub fallback: Option<ChannelName>,
    /// Secret values the channel uses: scrubbed from every stored detail.
    pub secrets: Vec<Secret>,
}

impl Channel {
    /// The channel's `send_to_type` rule, then the protocol's own check.
    pub async fn validate_recipient(&self, send_to: &str) -> Result<(), String> {
        self.rule.check(send_to)?;
        self.sender.validate_recipient(send_to).await
    }
}

type ChannelMap = HashMap<(TenantName, ChannelName), Arc<Channel>>;

/// File channels (fixed at start-up) and tenant channels (changed over the
/// API, re-read when another host changes them).
#[derive(Default)]
pub struct Registry {
    file: RwLock<ChannelMap>,
    tenant: RwLock<ChannelMap>,
}

fn read(m: &RwLock<ChannelMap>) -> std::sync::RwLockReadGuard<'_, ChannelMap> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write(m: &RwLock<ChannelMap>) -> std::sync::RwLockWriteGuard<'_, ChannelMap> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// A channel from the config file.
    pub fn insert(&self, tenant: &TenantName, channel: Channel) {
        write(&self.file).insert((tenant.clone(), channel.name.clone()), Arc::new(channel));
    }

    pub fn is_file_channel(&self, tenant: &TenantName, name: &ChannelName) -> bool {
        read(&self.file).contains_key(&(tenant.clone(), name.clone()))
    }

    pub fn set_tenant_channel(&self, tenant: &TenantName, channel: Channel) {
        write(&self.tenant).insert((tenant.clone(), channel.name.clone()), Arc::new(channel));
    }

    pub fn remove_tenant_channel(&self, tenant: &TenantName, name: &ChannelName) {
        write(&self.tenant).remove(&(tenant.clone(), name.clone()));
    }

    pub fn replace_tenant_channels(&self, channels: Vec<(TenantName, Channel)>) {
        let map = channels
            .into_iter()
            .map(|(t, c)| ((t, c.name.clone()), Arc::new(c)))
            .collect();
        *write(&self.tenant) = map;
    }

    pub fn get(&self, tenant: &TenantName, name: &str) -> Option<Arc<Channel>> {
        let key = (tenant.clone(), ChannelName::parse(name).ok()?);
        let file = read(&self.file).get(&key).cloned();
        file.or_else(|| read(&self.tenant).get(&key).cloned())
    }

    pub fn list(&self, tenant: &TenantName) -> Vec<Arc<Channel>> {
        let mut v: Vec<_> = self
            .all()
            .into_iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, c)| c)
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn all(&self) -> Vec<(TenantName, Arc<Channel>)> {
        let mut v: Vec<_> = read(&self.file)
            .iter()
            .map(|((t, _), c)| (t.clone(), c.clone()))
            .collect();
        v.extend(
            read(&self.tenant)
                .iter()
                .map(|((t, _), c)| (t.clone(), c.clone())),
        );
        v
    }
}

/// Builds a plugin channel's sender; supplied by the plugin runtime.
pub type PluginSenderFactory<'a> = &'a dyn Fn(&ChannelConfig) -> Result<Arc<dyn Sender>, String>;

/// The channels of the config file (they belong to the `default` tenant):
/// `email`, `pushover`, `url`, each `[[sms_gateway]]` and each `[[channel]]`.
/// Errors name the config key.
pub fn file_channels(
    cfg: &Config,
    plugin_sender: PluginSenderFactory<'_>,
) -> Result<Vec<Channel>, String> {
    let api = &cfg.api;
    // [api] two_fa_send_to_type/regex apply to file channels without their own rule.
    let rule_for = |own: Option<SendToType>, own_regex: Option<&str>, key: &str| {
        match own {
            Some(kind) => RecipientRule::from_config(kind, own_regex),
            None => RecipientRule::from_config(
                api.two_fa_send_to_type,
                api.two_fa_send_to_regex.as_deref(),
            ),
        }
        .map_err(|e| format!("{key}: {e}"))
    };
    let name = |n: &str| ChannelName::parse(n);
    let mut out = Vec::new();
    let mailer = match &cfg.smtp {
        Some(smtp) => Some(Mailer::new(smtp, false).map_err(|e| format!("[smtp]: {e}"))?),
        None => None,
    };
    if let Some(smtp) = &cfg.smtp {
        out.push(Channel {
            name: name("email")?,
            sender: Arc::new(
                SmtpSender::new(smtp, cfg.server.base_url.as_deref(), false)
                    .map_err(|e| format!("[smtp]: {e}"))?,
            ),
            // `email` always requires an email address.
            rule: RecipientRule::Email,
            fallback: None,
            secrets: smtp.auth_password.iter().cloned().collect(),
        });
    }
    if let Some(p) = &cfg.pushover {
        out.push(Channel {
            name: name("pushover")?,
            sender: Arc::new(
                PushoverSender::new(p, false).map_err(|e| format!("[pushover]: {e}"))?,
            ),
            rule: rule_for(None, None, "api.two_fa_send_to_regex")?,
            fallback: None,
            secrets: vec![p.api_token.clone()],
        });
    }
    if let Some(url) = api
        .two_fa_token_delivery
        .as_deref()
        .filter(|d| d.starts_with("http://") || d.starts_with("https://"))
    {
        out.push(Channel {
            name: name("url")?,
            sender: Arc::new(UrlSender::new(
                url,
                cfg.server.base_url.as_deref().unwrap_or_default(),
                api.two_fa_url_signing_secret.clone(),
                Duration::from_secs(api.url_timeout_seconds),
                false,
            )?),
            rule: rule_for(None, None, "api.two_fa_send_to_regex")?,
            fallback: None,
            secrets: api.two_fa_url_signing_secret.iter().cloned().collect(),
        });
    }
    for (i, g) in cfg.sms_gateway.iter().enumerate() {
        let key = format!("sms_gateway[{i}]");
        let sender: Arc<dyn Sender> = match g.kind.as_str() {
            "http" => Arc::new(SmsHttpSender::new(g, false).map_err(|e| format!("{key}: {e}"))?),
            _ => {
                let mailer = mailer
                    .clone()
                    .ok_or_else(|| format!("{key}: kind = \"smtp\" needs [smtp]"))?;
                Arc::new(
                    SmsSmtpSender::new(mailer, &g.mailto, &g.subject, &g.body, &g.regexp)
                        .map_err(|e| format!("{key}: {e}"))?,
                )
            }
        };
        let mut secrets: Vec<Secret> = g.password.iter().cloned().collect();
        if g.kind == "smtp" {
            secrets.extend(cfg.smtp.iter().flat_map(|s| s.auth_password.clone()));
        }
        // Header values (API keys) are secrets too.
        secrets.extend(g.headers.values().map(Secret::new));
        out.push(Channel {
            name: name(&g.name)?,
            sender,
            rule: rule_for(
                g.send_to_type,
                g.send_to_regex.as_deref(),
                &format!("{key}.send_to_regex"),
            )?,
            fallback: g.fallback.as_deref().map(name).transpose()?,
            secrets,
        });
    }
    for (i, c) in cfg.channel.iter().enumerate() {
        let key = format!("channel[{i}]");
        out.push(Channel {
            name: name(&c.name)?,
            sender: plugin_sender(c).map_err(|e| format!("{key}: {e}"))?,
            rule: rule_for(
                c.send_to_type,
                c.send_to_regex.as_deref(),
                &format!("{key}.send_to_regex"),
            )?,
            fallback: c.fallback.as_deref().map(name).transpose()?,
            secrets: c.secrets.values().cloned().collect(),
        });
    }
    Ok(out)
}
