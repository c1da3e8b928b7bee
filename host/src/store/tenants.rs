//! Tenants and what they configure: API keys, channels, plugins; and the
//! server's own settings.

use async_trait::async_trait;

use super::backend::{Backend, Cols, SqlStore, Tx};
use super::{ChannelRow, PluginKeyRow, PluginRow, Result, StoreError, TenantRow, plugin_keys};

#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` unless the key exists; returns whether it was stored.
    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool>;
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;

    async fn create_tenant(&self, name: &str, api_key_hash: Option<&str>, now: i64) -> Result<()>;
    async fn ensure_tenant(&self, name: &str, now: i64) -> Result<()>;
    async fn list_tenants(&self) -> Result<Vec<TenantRow>>;
    /// Deletes a tenant and everything it owns; false if there was none.
    async fn delete_tenant(&self, name: &str) -> Result<bool>;
    /// `None`: no such tenant; `Some(None)`: a tenant without an API key.
    async fn tenant_key_hash(&self, name: &str) -> Result<Option<Option<String>>>;
    async fn tenant_by_key_hash(&self, hash: &str) -> Result<Option<String>>;

    /// Inserts or replaces a tenant channel and bumps `channels_version`.
    async fn put_channel(&self, c: &ChannelRow) -> Result<()>;
    async fn delete_channel(&self, tenant: &str, name: &str) -> Result<bool>;
    /// One tenant's channels, or every tenant's with `None`.
    async fn channels(&self, tenant: Option<&str>) -> Result<Vec<ChannelRow>>;
    /// Changes whenever any tenant channel or plugin changes (for other
    /// hosts to notice).
    async fn channels_version(&self) -> Result<i64>;

    /// Inserts or replaces a plugin (bumps `channels_version`).
    async fn put_plugin(&self, p: &PluginRow) -> Result<()>;
    /// Without bytes; one tenant's or everyone's.
    async fn plugins(&self, tenant: Option<&str>) -> Result<Vec<PluginRow>>;
    /// The uploaded module itself.
    async fn plugin_bytes(&self, tenant: &str, name: &str) -> Result<Option<Vec<u8>>>;
    async fn delete_plugin(&self, tenant: &str, name: &str) -> Result<bool>;

    /// Inserts or replaces a key the tenant trusts for plugin signatures.
    async fn put_plugin_key(&self, k: &PluginKeyRow) -> Result<()>;
    async fn plugin_keys(&self, tenant: &str) -> Result<Vec<PluginKeyRow>>;
    async fn delete_plugin_key(&self, tenant: &str, name: &str) -> Result<bool>;
}

/// Bumps `channels_version` and commits. Other hosts poll it to reload
/// tenant channels; bumped in the same transaction as the change, so they
/// never see the change without it.
pub(super) async fn bump_and_commit<B: Backend>(mut tx: Tx<B>) -> Result<()> {
    tx.exec(
        "INSERT INTO settings (key, value) VALUES ('channels_version', '1')
         ON CONFLICT (key) DO UPDATE
            SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)",
        &[],
    )
    .await?;
    tx.commit().await
}

/// What a tenant owns, deleted before the tenant itself (`$1` its name).
const TENANT_TABLES: [&str; 16] = [
    "delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE tenant = $1)",
    "deliveries WHERE tenant = $1",
    "sessions WHERE tenant = $1",
    "codes WHERE tenant = $1",
    "backup_codes WHERE tenant = $1",
    "user_totp WHERE tenant = $1",
    "user_methods WHERE tenant = $1",
    "users WHERE tenant = $1",
    "verifications WHERE tenant = $1",
    "tenant_channels WHERE tenant = $1",
    "plugins WHERE tenant = $1",
    "plugin_keys WHERE tenant = $1",
    "plugin_rollouts WHERE tenant = $1",
    "plugin_rollout_outcomes WHERE tenant = $1",
    "settings WHERE key = 'plugins.require_signature:' || CAST($1 AS TEXT)",
    "audit WHERE tenant = $1",
];

fn channel_row(r: &impl Cols) -> Result<ChannelRow> {
    Ok(ChannelRow {
        tenant: r.text(0)?,
        name: r.text(1)?,
        kind: r.text(2)?,
        config: r.text(3)?,
        secrets: r.opt_bytes(4)?,
        secret_keys: r.text(5)?,
        plugin: r.opt_text(6)?,
        allowed_hosts: r.text(7)?,
        send_to_type: r.opt_text(8)?,
        send_to_regex: r.opt_text(9)?,
        fallback: r.opt_text(10)?,
        created_at: r.int(11)?,
        updated_at: r.int(12)?,
        templates: r.opt_text(13)?,
    })
}

fn plugin_row(r: &impl Cols) -> Result<PluginRow> {
    Ok(PluginRow {
        tenant: r.text(0)?,
        name: r.text(1)?,
        sha256: r.text(2)?,
        size: r.int(3)?,
        info: r.text(4)?,
        wasm: Vec::new(),
        uploaded_at: r.int(5)?,
        signature: r.opt_text(6)?,
        key_id: r.opt_text(7)?,
        imports: r.text(8)?,
    })
}

#[async_trait]
impl<B: Backend> TenantStore for SqlStore<B> {
    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let sql = "SELECT value FROM settings WHERE key = $1";
        let r = self.opt(sql, &[key.into()]).await?;
        r.map(|r| r.text(0)).transpose()
    }

    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool> {
        let sql = "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
        Ok(self.exec(sql, &[key.into(), value.into()]).await? == 1)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        let sql = "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value";
        self.exec(sql, &[key.into(), value.into()]).await?;
        Ok(())
    }

    async fn create_tenant(&self, name: &str, api_key_hash: Option<&str>, now: i64) -> Result<()> {
        let n = self
            .exec(
                "INSERT INTO tenants (name, api_key_hash, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[name.into(), api_key_hash.into(), now.into()],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn ensure_tenant(&self, name: &str, now: i64) -> Result<()> {
        let sql =
            "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
        self.exec(sql, &[name.into(), now.into()]).await?;
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRow>> {
        let rows = self
            .all("SELECT name, created_at FROM tenants ORDER BY name", &[])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TenantRow {
                    name: r.text(0)?,
                    created_at: r.int(1)?,
                })
            })
            .collect()
    }

    async fn delete_tenant(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        for table in TENANT_TABLES {
            tx.exec(&format!("DELETE FROM {table}"), &[name.into()])
                .await?;
        }
        let n = tx
            .exec("DELETE FROM tenants WHERE name = $1", &[name.into()])
            .await?;
        bump_and_commit(tx).await?;
        Ok(n == 1)
    }

    async fn tenant_key_hash(&self, name: &str) -> Result<Option<Option<String>>> {
        let sql = "SELECT api_key_hash FROM tenants WHERE name = $1";
        let r = self.opt(sql, &[name.into()]).await?;
        r.map(|r| r.opt_text(0)).transpose()
    }

    async fn tenant_by_key_hash(&self, hash: &str) -> Result<Option<String>> {
        let sql = "SELECT name FROM tenants WHERE api_key_hash = $1";
        let r = self.opt(sql, &[hash.into()]).await?;
        r.map(|r| r.text(0)).transpose()
    }

    async fn put_channel(&self, c: &ChannelRow) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec(
            "INSERT INTO tenant_channels (tenant, name, kind, config, secrets, secret_keys, plugin,
                allowed_hosts, send_to_type, send_to_regex, fallback, created_at, updated_at,
                templates)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (tenant, name) DO UPDATE SET kind = excluded.kind,
                config = excluded.config, secrets = excluded.secrets,
                secret_keys = excluded.secret_keys, plugin = excluded.plugin,
                allowed_hosts = excluded.allowed_hosts, send_to_type = excluded.send_to_type,
                send_to_regex = excluded.send_to_regex, fallback = excluded.fallback,
                updated_at = excluded.updated_at, templates = excluded.templates",
            &[
                (&c.tenant).into(),
                (&c.name).into(),
                (&c.kind).into(),
                (&c.config).into(),
                (&c.secrets).into(),
                (&c.secret_keys).into(),
                (&c.plugin).into(),
                (&c.allowed_hosts).into(),
                (&c.send_to_type).into(),
                (&c.send_to_regex).into(),
                (&c.fallback).into(),
                c.created_at.into(),
                c.updated_at.into(),
                (&c.templates).into(),
            ],
        )
        .await?;
        bump_and_commit(tx).await
    }

    async fn delete_channel(&self, tenant: &str, name: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                "DELETE FROM tenant_channels WHERE tenant = $1 AND name = $2",
                &[tenant.into(), name.into()],
            )
            .await?;
        bump_and_commit(tx).await?;
        Ok(n == 1)
    }

    async fn channels(&self, tenant: Option<&str>) -> Result<Vec<ChannelRow>> {
        let rows = self
            .all(
                "SELECT tenant, name, kind, config, secrets, secret_keys, plugin, allowed_hosts,
                    send_to_type, send_to_regex, fallback, created_at, updated_at, templates
                 FROM tenant_channels WHERE (CAST($1 AS TEXT) IS NULL OR tenant = $1)
                 ORDER BY tenant, name",
                &[tenant.into()],
            )
            .await?;
        rows.iter().map(channel_row).collect()
    }

    async fn channels_version(&self) -> Result<i64> {
        let v = self.get_setting("channels_version").await?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    async fn put_plugin(&self, p: &PluginRow) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec(
            "INSERT INTO plugins (tenant, name, sha256, size, info, wasm, uploaded_at,
                signature, key_id, imports)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (tenant, name) DO UPDATE SET sha256 = excluded.sha256,
                size = excluded.size, info = excluded.info, wasm = excluded.wasm,
                uploaded_at = excluded.uploaded_at, signature = excluded.signature,
                key_id = excluded.key_id, imports = excluded.imports",
            &[
                (&p.tenant).into(),
                (&p.name).into(),
                (&p.sha256).into(),
                p.size.into(),
                (&p.info).into(),
                (&p.wasm).into(),
                p.uploaded_at.into(),
                (&p.signature).into(),
                (&p.key_id).into(),
                (&p.imports).into(),
            ],
        )
        .await?;
        bump_and_commit(tx).await
    }

    async fn plugins(&self, tenant: Option<&str>) -> Result<Vec<PluginRow>> {
        let rows = self
            .all(
                "SELECT tenant, name, sha256, size, info, uploaded_at, signature, key_id, imports
                 FROM plugins
                 WHERE (CAST($1 AS TEXT) IS NULL OR tenant = $1) ORDER BY tenant, name",
                &[tenant.into()],
            )
            .await?;
        rows.iter().map(plugin_row).collect()
    }

    async fn plugin_bytes(&self, tenant: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let sql = "SELECT wasm FROM plugins WHERE tenant = $1 AND name = $2";
        let r = self.opt(sql, &[tenant.into(), name.into()]).await?;
        r.map(|r| r.bytes(0)).transpose()
    }

    async fn delete_plugin(&self, tenant: &str, name: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                "DELETE FROM plugins WHERE tenant = $1 AND name = $2",
                &[tenant.into(), name.into()],
            )
            .await?;
        for table in ["plugin_rollouts", "plugin_rollout_outcomes"] {
            let sql = format!("DELETE FROM {table} WHERE tenant = $1 AND name = $2");
            tx.exec(&sql, &[tenant.into(), name.into()]).await?;
        }
        bump_and_commit(tx).await?;
        Ok(n == 1)
    }

    async fn put_plugin_key(&self, k: &PluginKeyRow) -> Result<()> {
        plugin_keys::put(self, k).await
    }

    async fn plugin_keys(&self, tenant: &str) -> Result<Vec<PluginKeyRow>> {
        plugin_keys::list(self, tenant).await
    }

    async fn delete_plugin_key(&self, tenant: &str, name: &str) -> Result<bool> {
        plugin_keys::delete(self, tenant, name).await
    }
}
