//! Keys a tenant trusts to sign its plugins (`PUT /plugin-keys/{name}`);
//! the bodies of the [`super::TenantStore`] methods of that name.

use super::backend::{Backend, Cols, SqlStore};
use super::{PluginKeyRow, Result};

pub(super) async fn put<B: Backend>(s: &SqlStore<B>, k: &PluginKeyRow) -> Result<()> {
    s.exec(
        "INSERT INTO plugin_keys (tenant, name, public_key, key_id, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant, name) DO UPDATE SET public_key = excluded.public_key,
            key_id = excluded.key_id, created_at = excluded.created_at",
        &[
            (&k.tenant).into(),
            (&k.name).into(),
            (&k.public_key).into(),
            (&k.key_id).into(),
            k.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn list<B: Backend>(s: &SqlStore<B>, tenant: &str) -> Result<Vec<PluginKeyRow>> {
    let rows = s
        .all(
            "SELECT tenant, name, public_key, key_id, created_at FROM plugin_keys
             WHERE tenant = $1 ORDER BY name",
            &[tenant.into()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PluginKeyRow {
                tenant: r.text(0)?,
                name: r.text(1)?,
                public_key: r.text(2)?,
                key_id: r.text(3)?,
                created_at: r.int(4)?,
            })
        })
        .collect()
}

pub(super) async fn delete<B: Backend>(s: &SqlStore<B>, tenant: &str, name: &str) -> Result<bool> {
    let n = s
        .exec(
            "DELETE FROM plugin_keys WHERE tenant = $1 AND name = $2",
            &[tenant.into(), name.into()],
        )
        .await?;
    Ok(n == 1)
}
