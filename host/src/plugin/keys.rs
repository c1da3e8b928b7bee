//! Which keys may sign a tenant's plugins and whether it must: the
//! operator's `[plugins] trusted_keys` / `require_signature`, plus the keys a
//! tenant adds (`PUT /plugin-keys/{name}`) and its own `requireSignature`
//! (`PUT /plugin-policy`). Read at every upload, so a change on one host
//! holds on all.

use super::trust::PublicKey;
use crate::config::plugins::PluginsConfig;
use crate::store::{PluginKeyRow, Store, StoreError};

fn setting(tenant: &str) -> String {
    format!("plugins.require_signature:{tenant}")
}

/// The tenant's own `requireSignature` (false unless it set it).
pub async fn tenant_requires(store: &dyn Store, tenant: &str) -> Result<bool, StoreError> {
    Ok(store.get_setting(&setting(tenant)).await?.as_deref() == Some("true"))
}

pub async fn set_tenant_requires(
    store: &dyn Store,
    tenant: &str,
    required: bool,
) -> Result<(), StoreError> {
    store
        .put_setting(&setting(tenant), if required { "true" } else { "false" })
        .await
}

/// What an upload to `tenant` is checked against.
pub struct Policy {
    pub trusted: Vec<PublicKey>,
    pub required: bool,
}

impl Policy {
    pub async fn load(
        store: &dyn Store,
        config: &PluginsConfig,
        tenant: &str,
    ) -> Result<Self, StoreError> {
        let mut trusted = config.trusted_keys.clone();
        // Rows were parsed when stored; one that no longer parses trusts nothing.
        trusted.extend(
            store
                .plugin_keys(tenant)
                .await?
                .iter()
                .filter_map(|k| PublicKey::parse(&k.public_key).ok()),
        );
        let required = config.require_signature || tenant_requires(store, tenant).await?;
        Ok(Self { trusted, required })
    }
}

/// A row for `PUT /plugin-keys/{name}`; the error names what is wrong.
pub fn key_row(
    tenant: &str,
    name: &str,
    public_key: &str,
    now: i64,
) -> Result<PluginKeyRow, String> {
    let key = PublicKey::parse(public_key)?;
    Ok(PluginKeyRow {
        tenant: tenant.to_string(),
        name: name.to_string(),
        public_key: key.to_text(),
        key_id: key.key_id(),
        created_at: now,
    })
}
