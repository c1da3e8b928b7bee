//! A tenant's plugin upload, the domain half of `PUT /plugins/{name}`: the
//! name and media type, the size cap (announced, then while reading), the
//! tenant's plugin quota, the signature (`keys`, `trust`), compilation (off
//! the request threads and time-bounded, inside
//! [`PluginRuntime::load`](super::PluginRuntime::load)), the permission
//! review (`permissions`), then the version swap: stored, loaded, channels
//! rebuilt, audited.

use std::future::Future;

use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sha2::{Digest, Sha256};

use super::keys::Policy;
use super::permissions::{Permissions, Widening};
use super::rollout::{CanaryPercent, RolloutError};
use super::trust::{self, TrustError, Verified};
use super::{LoadedPlugin, PluginError, TenantPlugins};
use crate::clock::Clock;
use crate::config::plugins::PluginsConfig;
use crate::domain::{ChannelName, TenantName};
use crate::store::{PluginRow, Store, StoreError};

/// Components travel as `application/wasm` (parameters allowed).
const MEDIA_TYPE: &str = "application/wasm";

/// Why an upload was refused.
#[derive(Debug)]
pub enum UploadError {
    /// The name is not a valid plugin name; the message says why.
    InvalidName(String),
    /// The media type is not `application/wasm`.
    NotWasm,
    /// Over `plugins.max_upload_bytes`.
    TooLarge {
        limit: u64,
    },
    /// A new name while the tenant has `limits.tenant_max_plugins` already.
    TooMany {
        count: usize,
        limit: u32,
    },
    /// The body could not be read.
    Unreadable,
    /// The bytes are not a plugin postern runs.
    Invalid(PluginError),
    /// The host could not compile it now (timeout, runtime failure).
    Compile(PluginError),
    /// Unsigned when a signature is required, or a signature that does not
    /// verify by a trusted key.
    Untrusted(TrustError),
    /// The new version can do more than the live one, and the upload did
    /// not say `?accept=permissions`.
    Widens(Widening),
    /// `?canary` refused, or a plain upload while a canary is live.
    Rollout(RolloutError),
    Store(StoreError),
}

impl From<StoreError> for UploadError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<PluginError> for UploadError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::TooLarge { limit, .. } => Self::TooLarge { limit },
            e if e.is_invalid_plugin() => Self::Invalid(e),
            e => Self::Compile(e),
        }
    }
}

/// What the request says about the upload before its body is read.
pub struct Offer<'a> {
    pub tenant: &'a TenantName,
    pub name: &'a str,
    /// `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// `Content-Length`, if announced.
    pub announced_len: Option<u64>,
    /// `X-Postern-Plugin-Signature`, if sent.
    pub signature: Option<&'a str>,
    /// `?accept=permissions`: swap in a version that can do more.
    pub accept_permissions: bool,
    /// `?canary=N`: stage the version beside the live one (`rollout`).
    pub canary: Option<CanaryPercent>,
}

/// A tenant's plugins and the limits that bound them.
pub struct Uploads<'a> {
    pub store: &'a dyn Store,
    pub clock: &'a dyn Clock,
    pub plugins: &'a TenantPlugins,
    /// `[plugins]`: `max_upload_bytes`, `trusted_keys`, `require_signature`.
    pub config: &'a PluginsConfig,
    /// `limits.tenant_max_plugins`.
    pub max_plugins: u32,
}

impl Uploads<'_> {
    /// Takes one upload through every check, then swaps the version in:
    /// running deliveries finish on the old one, `reload_channels` (run
    /// after the swap) moves the tenant's channels to the new one.
    pub async fn put<B>(
        &self,
        offer: Offer<'_>,
        body: B,
        reload_channels: impl Future<Output = Result<(), StoreError>>,
    ) -> Result<PluginRow, UploadError>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let name = ChannelName::parse(offer.name)
            .map_err(|m| UploadError::InvalidName(m.replace("channel", "plugin")))?;
        let media = offer.content_type.unwrap_or("").split(';').next();
        if media.map(str::trim) != Some(MEDIA_TYPE) {
            return Err(UploadError::NotWasm);
        }
        // Refuse by the announced size before reading anything.
        if offer
            .announced_len
            .is_some_and(|len| len > self.config.max_upload_bytes)
        {
            return Err(self.too_large());
        }
        self.check_quota(offer.tenant, &name).await?;
        let stable = self
            .check_rollout(offer.tenant, &name, offer.canary)
            .await?;
        let bytes = self.read(body).await?;
        // Checked before compiling: untrusted bytes never reach Cranelift.
        let signed = self.verify(offer.tenant, &bytes, offer.signature).await?;
        let loaded = self.plugins.runtime().load(bytes.clone()).await?;
        if !offer.accept_permissions {
            self.review(offer.tenant, &name, &loaded).await?;
        }
        let now = self.clock.now_ms();
        let row = PluginRow {
            tenant: offer.tenant.to_string(),
            name: name.to_string(),
            sha256: loaded.sha256.clone(),
            size: loaded.size as i64,
            info: serde_json::to_string(&loaded.info).unwrap_or_default(),
            wasm: bytes,
            uploaded_at: now,
            signature: signed.as_ref().map(|v| v.signature.clone()),
            key_id: signed.map(|v| v.key_id),
            imports: serde_json::to_string(&loaded.imports).unwrap_or_default(),
        };
        match (offer.canary, stable) {
            (Some(percent), Some(stable)) => self.stage(row, percent, stable, &offer).await,
            _ => self.swap(row, loaded, &offer, reload_channels).await,
        }
    }

    /// Stores the version, makes it the live one here and in every
    /// channel, and audits the upload.
    async fn swap(
        &self,
        row: PluginRow,
        loaded: std::sync::Arc<LoadedPlugin>,
        offer: &Offer<'_>,
        reload_channels: impl Future<Output = Result<(), StoreError>>,
    ) -> Result<PluginRow, UploadError> {
        self.store.put_plugin(&row).await?;
        self.plugins.set(&row.tenant, &row.name, loaded);
        reload_channels.await?;
        let key = row.key_id.as_deref().unwrap_or("none");
        let mut detail = format!("sha256={} size={} key={key}", row.sha256, row.size);
        if offer.accept_permissions {
            detail.push_str(" accepted=permissions");
        }
        self.store
            .audit(
                &row.tenant,
                "api",
                "plugin.upload",
                Some(&row.name),
                Some(&detail),
                row.uploaded_at,
            )
            .await?;
        Ok(row)
    }

    fn too_large(&self) -> UploadError {
        UploadError::TooLarge {
            limit: self.config.max_upload_bytes,
        }
    }

    /// Refuses a version that can do more than the live one (as stored:
    /// the same on every host; rows from before the review kept no imports,
    /// for those the version this host runs is asked).
    async fn review(
        &self,
        tenant: &TenantName,
        name: &ChannelName,
        new: &LoadedPlugin,
    ) -> Result<(), UploadError> {
        let rows = self.store.plugins(Some(tenant.as_str())).await?;
        let Some(row) = rows.iter().find(|r| r.name == name.as_str()) else {
            return Ok(());
        };
        let stored =
            Permissions::from_stored(&row.imports, &row.info).filter(|p| !p.imports.is_empty());
        let running = || {
            self.plugins
                .get(tenant.as_str(), name.as_str())
                .map(|p| Permissions::of(&p.imports, &p.info))
        };
        let Some(live) = stored.or_else(running) else {
            return Ok(());
        };
        match live.widened_by(&Permissions::of(&new.imports, &new.info)) {
            Some(w) => Err(UploadError::Widens(w)),
            None => Ok(()),
        }
    }

    async fn verify(
        &self,
        tenant: &TenantName,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> Result<Option<Verified>, UploadError> {
        let policy = Policy::load(self.store, self.config, tenant.as_str()).await?;
        let sha256 = Sha256::digest(bytes);
        trust::check(&sha256, signature, &policy.trusted, policy.required)
            .map_err(UploadError::Untrusted)
    }

    /// Replacing a plugin is always allowed; a new name needs room.
    async fn check_quota(
        &self,
        tenant: &TenantName,
        name: &ChannelName,
    ) -> Result<(), UploadError> {
        let existing = self.store.plugins(Some(tenant.as_str())).await?;
        let replacing = existing.iter().any(|r| r.name == name.as_str());
        if !replacing && existing.len() as u64 >= u64::from(self.max_plugins) {
            return Err(UploadError::TooMany {
                count: existing.len(),
                limit: self.max_plugins,
            });
        }
        Ok(())
    }

    /// The body, up to the cap (a body without a `Content-Length` is cut
    /// off there too).
    async fn read<B>(&self, body: B) -> Result<Vec<u8>, UploadError>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let cap = usize::try_from(self.config.max_upload_bytes).unwrap_or(usize::MAX);
        let collected = Limited::new(body, cap).collect().await.map_err(|e| {
            if e.is::<LengthLimitError>() {
                self.too_large()
            } else {
                UploadError::Unreadable
            }
        })?;
        Ok(collected.to_bytes().to_vec())
    }
}
