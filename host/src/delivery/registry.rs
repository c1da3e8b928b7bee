//! The channels a tenant can deliver through, by name.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use super::receipts::Receipts;
use super::recipient::RecipientRule;
use super::{Message, MessageForm, Sender};
use crate::domain::{ChannelName, TenantName};
use crate::messages::{Locale, Messages, Preferences, Vars, sms};
use crate::secret::Secret;
use crate::store::{MessageFacts, SmsFacts};

/// A named way to deliver: a sender plus the channel's own rules.
pub struct Channel {
    pub name: ChannelName,
    pub sender: Arc<dyn Sender>,
    pub rule: RecipientRule,
    pub fallback: Option<ChannelName>,
    /// Secret values the channel uses: scrubbed from every stored detail.
    pub secrets: Vec<Secret>,
    /// What it says, in which languages (`crate::messages`).
    pub messages: Arc<Messages>,
}

impl Channel {
    /// The locale a message carries, else this channel's default.
    fn locale_of(&self, m: &Message) -> Locale {
        m.locale
            .as_deref()
            .and_then(|l| Locale::parse(l).ok())
            .unwrap_or_else(|| self.messages.choose(&Preferences::default()))
    }

    /// `m` with its text (and, for email, its parts) rendered by this
    /// channel's templates in the message's locale.
    pub fn compose(&self, m: &Message) -> Result<Message, String> {
        let loc = self.locale_of(m);
        let vars = Vars {
            code: &m.code,
            ttl_seconds: m.ttl_seconds,
            username: &m.username,
            user_agent: m.user_agent.as_deref(),
            remote_address: m.remote_address.as_deref(),
        };
        let mut out = m.clone();
        out.text = self.messages.text(&loc, &vars).map_err(|e| e.to_string())?;
        if self.sender.form() == MessageForm::Email {
            out.email = Some(
                self.messages
                    .email(&loc, &vars)
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(out)
    }

    /// What the delivery record says about `m` on this channel: its
    /// locale, and for a text channel the SMS length of the text.
    pub fn facts(&self, m: &Message) -> MessageFacts {
        let sms = match self.sender.form() {
            MessageForm::Email | MessageForm::Fields => None,
            MessageForm::Text => self.compose(m).ok().map(|c| {
                let l = sms::length(&c.text);
                SmsFacts {
                    encoding: l.encoding.as_str().to_string(),
                    segments: l.segments,
                }
            }),
        };
        MessageFacts {
            locale: Some(self.locale_of(m).to_string()),
            sms,
        }
    }

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
    /// Every channel's sender reports receipts here once it is set.
    receipts: OnceLock<Receipts>,
}

fn read(m: &RwLock<ChannelMap>) -> std::sync::RwLockReadGuard<'_, ChannelMap> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write(m: &RwLock<ChannelMap>) -> std::sync::RwLockWriteGuard<'_, ChannelMap> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// Where the senders of every channel, now and later, report receipts.
    pub fn set_receipts(&self, sink: Receipts) {
        if self.receipts.set(sink).is_ok() {
            for (_, c) in self.all() {
                self.attach(&c);
            }
        }
    }

    fn attach(&self, channel: &Channel) {
        if let Some(sink) = self.receipts.get() {
            channel.sender.attach_receipts(sink);
        }
    }

    /// Lets every sender close its connections (the server is stopping).
    pub async fn shutdown(&self) {
        let all = self.all();
        futures::future::join_all(all.iter().map(|(_, c)| c.sender.shutdown())).await;
    }

    /// A channel from the config file.
    pub fn insert(&self, tenant: &TenantName, channel: Channel) {
        self.attach(&channel);
        write(&self.file).insert((tenant.clone(), channel.name.clone()), Arc::new(channel));
    }

    pub fn is_file_channel(&self, tenant: &TenantName, name: &ChannelName) -> bool {
        read(&self.file).contains_key(&(tenant.clone(), name.clone()))
    }

    pub fn set_tenant_channel(&self, tenant: &TenantName, channel: Channel) {
        self.attach(&channel);
        write(&self.tenant).insert((tenant.clone(), channel.name.clone()), Arc::new(channel));
    }

    pub fn remove_tenant_channel(&self, tenant: &TenantName, name: &ChannelName) {
        write(&self.tenant).remove(&(tenant.clone(), name.clone()));
    }

    pub fn replace_tenant_channels(&self, channels: Vec<(TenantName, Channel)>) {
        let map = channels
            .into_iter()
            .inspect(|(_, c)| self.attach(c))
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
