//! Saving and removing a tenant channel: the domain side of
//! `PUT /channels/{name}` and `DELETE /channels/{name}`. The API only maps
//! [`ChannelError`] onto statuses.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{ChannelSpec, build, row};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::Keys;
use crate::delivery::fallback;
use crate::delivery::kind::ChannelKind;
use crate::delivery::recipient::SendToType;
use crate::delivery::registry::Registry;
use crate::delivery::spec::{KindSpec, SpecError};
use crate::domain::{ChannelName, TenantName};
use crate::plugin::TenantPlugins;
use crate::store::{ChannelRow, Store, StoreError};

/// Longest fallback chain a tenant may build.
const MAX_CHAIN: usize = 64;

/// The body of `PUT /channels/{name}`, as received.
#[derive(Debug, Clone, Default)]
pub struct ChannelPut {
    pub kind: String,
    pub config: Map<String, Value>,
    /// `None` on an update keeps the stored secrets.
    pub secrets: Option<BTreeMap<String, String>>,
    pub plugin: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub send_to_type: Option<String>,
    pub send_to_regex: Option<String>,
    pub fallback: Option<String>,
    pub templates: crate::messages::TemplatesSpec,
}

/// Why a save or removal was refused.
#[derive(Debug)]
pub enum ChannelError {
    /// A field is refused; `message` is the whole answer.
    Invalid {
        field: String,
        message: String,
        /// Line and column, when a template is to blame.
        position: Option<(usize, usize)>,
    },
    /// The name belongs to a config-file channel, or another channel falls
    /// back to it; `field` is set when a field is to blame.
    Conflict {
        message: String,
        field: Option<&'static str>,
    },
    NotFound,
    Internal(String),
    Store(StoreError),
}

impl From<StoreError> for ChannelError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ChannelError {
    ChannelError::Invalid {
        field: field.to_string(),
        message: message.into(),
        position: None,
    }
}

/// A build error, worded as the API answers it: "`field`: message".
fn refused(e: SpecError) -> ChannelError {
    let message = format!("`{}`: {}", e.field, e.message);
    ChannelError::Invalid {
        field: e.field,
        message,
        position: e.position,
    }
}

/// What saving and removing tenant channels works on.
pub struct TenantChannels<'a> {
    pub store: &'a dyn Store,
    pub keys: &'a Keys,
    pub registry: &'a Registry,
    pub config: &'a Config,
    pub plugins: &'a TenantPlugins,
    pub clock: &'a dyn Clock,
}

impl TenantChannels<'_> {
    /// Checks, builds, stores and registers a channel; answers the stored row.
    pub async fn save(
        &self,
        tenant: &TenantName,
        name: &str,
        put: ChannelPut,
    ) -> Result<ChannelRow, ChannelError> {
        let name = self.not_a_file_channel(tenant, name, Some("name"))?;
        let existing = self.stored(tenant, &name).await?;
        let secrets = match (put.secrets, &existing) {
            (Some(s), _) => s,
            (None, Some(r)) => row::secrets(r, self.keys).map_err(ChannelError::Internal)?,
            (None, None) => BTreeMap::new(),
        };
        let send_to_type = parse_send_to_type(put.send_to_type.as_deref())?;
        if let Some(f) = &put.fallback {
            self.check_fallback(tenant, &name, f)?;
        }
        let kind = ChannelKind::parse(&put.kind).map_err(|m| refused(SpecError::kind(m)))?;
        let spec = ChannelSpec {
            kind,
            settings: KindSpec {
                config: put.config,
                secrets,
                plugin: put.plugin,
                allowed_hosts: put.allowed_hosts,
            },
            send_to_type,
            send_to_regex: put.send_to_regex,
            fallback: put.fallback,
            templates: put.templates,
        };
        let channel =
            build(tenant.as_str(), &name, &spec, self.config, self.plugins).map_err(refused)?;
        let now = self.clock.now_ms();
        let created_at = existing.as_ref().map_or(now, |r| r.created_at);
        let row = row::to_row(
            tenant.as_str(),
            name.as_str(),
            &spec,
            self.keys,
            created_at,
            now,
        );
        self.store.put_channel(&row).await?;
        self.registry.set_tenant_channel(tenant, channel);
        let detail = format!("kind={kind}");
        self.store
            .audit(
                tenant.as_str(),
                "api",
                "channel.put",
                Some(name.as_str()),
                Some(&detail),
                now,
            )
            .await?;
        Ok(row)
    }

    /// Deletes a channel no other channel falls back to.
    pub async fn remove(&self, tenant: &TenantName, name: &str) -> Result<(), ChannelError> {
        let name = self.not_a_file_channel(tenant, name, None)?;
        if let Some(user) = self
            .registry
            .list(tenant)
            .iter()
            .find(|c| c.fallback.as_ref() == Some(&name))
        {
            return Err(ChannelError::Conflict {
                message: format!("channel `{}` falls back to `{name}`", user.name),
                field: None,
            });
        }
        if !self
            .store
            .delete_channel(tenant.as_str(), name.as_str())
            .await?
        {
            return Err(ChannelError::NotFound);
        }
        self.registry.remove_tenant_channel(tenant, &name);
        self.store
            .audit(
                tenant.as_str(),
                "api",
                "channel.delete",
                Some(name.as_str()),
                None,
                self.clock.now_ms(),
            )
            .await?;
        Ok(())
    }

    /// The name, parsed; config-file channels cannot be changed over the API.
    fn not_a_file_channel(
        &self,
        tenant: &TenantName,
        name: &str,
        field: Option<&'static str>,
    ) -> Result<ChannelName, ChannelError> {
        let name = ChannelName::parse(name).map_err(|m| invalid("name", m))?;
        if self.registry.is_file_channel(tenant, &name) {
            return Err(ChannelError::Conflict {
                message: format!("`{name}` is defined in the config file"),
                field,
            });
        }
        Ok(name)
    }

    async fn stored(
        &self,
        tenant: &TenantName,
        name: &ChannelName,
    ) -> Result<Option<ChannelRow>, StoreError> {
        let rows = self.store.channels(Some(tenant.as_str())).await?;
        Ok(rows.into_iter().find(|c| c.name == name.as_str()))
    }

    /// The fallback must name a channel of the tenant and not lead back.
    fn check_fallback(
        &self,
        tenant: &TenantName,
        name: &ChannelName,
        target: &str,
    ) -> Result<(), ChannelError> {
        let lookup = |n: &str| {
            self.registry
                .get(tenant, n)
                .map(|c| c.fallback.as_ref().map(|f| f.to_string()))
        };
        fallback::check(name.as_str(), target, lookup, MAX_CHAIN).map_err(|e| match e {
            // Worded as the build check that used to find it.
            fallback::FallbackError::Itself => {
                refused(crate::delivery::spec::err("fallback", e.message(true)))
            }
            _ => invalid("fallback", e.message(true)),
        })
    }
}

fn parse_send_to_type(value: Option<&str>) -> Result<Option<SendToType>, ChannelError> {
    match value {
        None => Ok(None),
        Some("none") => Ok(Some(SendToType::None)),
        Some("email") => Ok(Some(SendToType::Email)),
        Some("regex") => Ok(Some(SendToType::Regex)),
        Some(_) => Err(invalid(
            "sendToType",
            "sendToType must be none, email or regex",
        )),
    }
}
