//! Plugins tenants upload: the loaded version of each (tenant, name), kept
//! in line with the store so every host serves what any host accepted.
//! Replacing a version swaps an `Arc`: deliveries already running keep the
//! old one until they finish.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use super::rollout::Rollouts;
use super::rollout::sender::RolloutSender;
use super::runtime::{LoadedPlugin, PluginRuntime};
use super::sandbox::ChannelSandbox;
use super::startup::check_required_keys;
use crate::delivery::Sender;
use crate::netguard::AllowList;
use crate::secret::Secret;
use crate::store::{Store, StoreError};

type Key = (String, String);

pub struct TenantPlugins {
    runtime: Arc<PluginRuntime>,
    loaded: RwLock<HashMap<Key, Arc<LoadedPlugin>>>,
    rollouts: Arc<Rollouts>,
}

impl TenantPlugins {
    pub fn new(runtime: Arc<PluginRuntime>, rollouts: Arc<Rollouts>) -> Self {
        Self {
            runtime,
            loaded: RwLock::new(HashMap::new()),
            rollouts,
        }
    }

    /// Staged rollouts of these plugins.
    pub fn rollouts(&self) -> &Arc<Rollouts> {
        &self.rollouts
    }

    pub fn runtime(&self) -> &Arc<PluginRuntime> {
        &self.runtime
    }

    pub fn get(&self, tenant: &str, name: &str) -> Option<Arc<LoadedPlugin>> {
        let map = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        map.get(&(tenant.to_string(), name.to_string())).cloned()
    }

    pub fn set(&self, tenant: &str, name: &str, plugin: Arc<LoadedPlugin>) {
        let mut map = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        map.insert((tenant.to_string(), name.to_string()), plugin);
    }

    /// Loads versions the store has and this host has not (compiling into
    /// the local cache), and forgets deleted ones.
    pub async fn sync(&self, store: &dyn Store) -> Result<(), StoreError> {
        let rows = store.plugins(None).await?;
        let mut fresh = HashMap::new();
        for row in rows {
            let key = (row.tenant.clone(), row.name.clone());
            if let Some(p) = self
                .get(&row.tenant, &row.name)
                .filter(|p| p.sha256 == row.sha256)
            {
                fresh.insert(key, p);
                continue;
            }
            let Some(bytes) = store.plugin_bytes(&row.tenant, &row.name).await? else {
                continue;
            };
            match self.runtime.load(bytes).await {
                Ok(p) => {
                    fresh.insert(key, p);
                }
                Err(e) => {
                    tracing::warn!(tenant = %row.tenant, plugin = %row.name, error = %e, "stored plugin does not load")
                }
            }
        }
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// A tenant channel's sender: `plugin`, the live version of the
    /// tenant's upload `name`, routing to its canary during a rollout.
    /// Errors name the field: `(field, message)`.
    pub fn channel_sender(
        &self,
        (tenant, name): (&str, &str),
        plugin: Arc<LoadedPlugin>,
        channel: &str,
        config: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
        allowed_hosts: &[String],
    ) -> Result<Arc<dyn Sender>, (String, String)> {
        let allow_list =
            AllowList::parse(allowed_hosts).map_err(|m| ("allowedHosts".to_string(), m))?;
        let secrets: BTreeMap<String, Secret> = secrets
            .iter()
            .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
            .collect();
        check_required_keys(&plugin, config, &secrets).map_err(|m| {
            let field = m.split(':').next().unwrap_or("config").to_string();
            (field, m)
        })?;
        let sandbox = ChannelSandbox {
            name: channel.to_string(),
            config: config.clone(),
            secrets,
            allow_list,
        };
        Ok(Arc::new(RolloutSender {
            stable: self.runtime.sender(plugin, sandbox.clone()),
            runtime: self.runtime.clone(),
            sandbox,
            rollouts: self.rollouts.clone(),
            tenant: tenant.to_string(),
            plugin: name.to_string(),
            canary: Default::default(),
        }))
    }
}
