//! Wiring: config → store, keys, channels, queue → HTTP server; and the
//! graceful shutdown that lets in-flight deliveries finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::api::ops::HealthBoard;
use crate::api::{self, AppState, Inner};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::crypto::{Keys, random_token, sha256_hex};
use crate::delivery::file_channels::file_channels;
use crate::delivery::queue::{LeaseOwner, Queue, QueueSettings, Role};
use crate::delivery::registry::Registry;
use crate::delivery::retry::Backoff;
use crate::domain::TenantName;
use crate::host_id::HostId;
use crate::metrics::Metrics;
use crate::store::{self, Readiness, Store};
use crate::twofa::TwoFactor;

const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

/// Everything a running postern holds, built from the config.
pub struct App {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub twofa: Arc<TwoFactor>,
    pub keys: Keys,
    pub plugins: Arc<crate::plugin::TenantPlugins>,
    pub clock: SharedClock,
    pub readiness: Arc<Readiness>,
}

/// How the admin token was settled at start-up.
pub enum AdminToken {
    FromConfig,
    Stored,
    /// Generated now; shown once.
    Generated(String),
}

impl App {
    /// For one-off commands: leases taken here are never taken back by a
    /// server starting on the same data dir.
    pub async fn build(config: Config) -> Result<Self> {
        Self::build_for(config, Role::Cli).await
    }

    pub async fn build_for(config: Config, role: Role) -> Result<Self> {
        let config = Arc::new(config);
        let clock = SystemClock::shared();
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create server.data_dir {}", data_dir.display()))?;
        let keys = Keys::load_or_create(config.server.secret_key.as_ref(), data_dir)?;
        let host = HostId::load_or_create(data_dir).with_context(|| {
            format!(
                "cannot read or create the host id in {}",
                data_dir.display()
            )
        })?;
        let store = store::open(&config.database_url())
            .await
            .with_context(|| "cannot open the store (server.database_url)")?;
        store
            .ensure_tenant(TenantName::default_tenant().as_str(), clock.now_ms())
            .await?;
        let registry = Arc::new(Registry::default());
        let runtime = crate::plugin::PluginRuntime::new(&config.plugins, Some(data_dir))
            .map_err(|e| anyhow::anyhow!("[plugins]: {e}"))?;
        let plugins = crate::plugin::FileChannelPlugins::load(&config, &runtime)
            .await
            .map_err(anyhow::Error::msg)?;
        let channels =
            file_channels(&config, &|c| plugins.sender(c)).map_err(anyhow::Error::msg)?;
        for c in channels {
            registry.insert(&TenantName::default_tenant(), c);
        }
        let metrics = Arc::new(Metrics::new());
        registry.set_receipts(Arc::new(crate::delivery::receipts::StoreReceipts {
            store: store.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
        }));
        let queue = Queue::new(
            store.clone(),
            registry.clone(),
            keys.clone(),
            metrics.clone(),
            queue_settings(&config),
            clock.clone(),
            LeaseOwner::new(&host, role),
        );
        let readiness = Arc::new(Readiness::new(host.as_str(), metrics.store_up.clone()));
        let tenant_plugins = tenant_plugins(runtime, &store, &clock, &metrics, &config);
        tenant_plugins.sync(store.as_ref()).await?;
        for (tenant, channel) in crate::delivery::tenant_channels::load_all(
            store.as_ref(),
            &keys,
            &config,
            &tenant_plugins,
        )
        .await?
        {
            registry.set_tenant_channel(&tenant, channel);
        }
        let twofa = Arc::new(TwoFactor::new(
            store.clone(),
            keys.clone(),
            queue.clone(),
            registry.clone(),
            config.clone(),
            clock.clone(),
        ));
        Ok(Self {
            config,
            store,
            registry,
            queue,
            metrics,
            twofa,
            keys,
            plugins: tenant_plugins,
            clock,
            readiness,
        })
    }

    /// The admin token's hash: from the config, else stored, else generated now.
    pub async fn admin_token(&self) -> Result<(String, AdminToken)> {
        if let Some(t) = self
            .config
            .server
            .admin_token
            .as_ref()
            .filter(|t| !t.is_empty())
        {
            return Ok((sha256_hex(t.expose().as_bytes()), AdminToken::FromConfig));
        }
        if let Some(h) = self.store.get_setting(ADMIN_TOKEN_SETTING).await? {
            return Ok((h, AdminToken::Stored));
        }
        let token = random_token("pat_");
        let hash = sha256_hex(token.as_bytes());
        if self
            .store
            .put_setting_if_absent(ADMIN_TOKEN_SETTING, &hash)
            .await?
        {
            Ok((hash, AdminToken::Generated(token)))
        } else {
            // Another process won the race; use its token.
            let h = self
                .store
                .get_setting(ADMIN_TOKEN_SETTING)
                .await?
                .context("admin token setting vanished")?;
            Ok((h, AdminToken::Stored))
        }
    }

    /// What every request handler shares.
    pub(crate) fn app_state(&self, admin_token_sha256: String) -> AppState {
        let rt = &self.config.realtime;
        AppState::new(Inner {
            config: self.config.clone(),
            store: self.store.clone(),
            registry: self.registry.clone(),
            queue: self.queue.clone(),
            metrics: self.metrics.clone(),
            health: Arc::new(HealthBoard::default()),
            readiness: self.readiness.clone(),
            twofa: self.twofa.clone(),
            keys: self.keys.clone(),
            plugins: self.plugins.clone(),
            clock: self.clock.clone(),
            admin_token_sha256,
            trusted_proxies: self.config.trusted_proxies(),
            realtime: crate::api::realtime::Connections::new(
                usize::try_from(rt.max_connections).unwrap_or(usize::MAX),
                usize::try_from(rt.max_connections_per_ip).unwrap_or(usize::MAX),
                self.metrics.realtime_connections.clone(),
            ),
        })
    }

    /// Replaces the stored admin token; returns the new one.
    pub async fn rotate_admin_token(&self) -> Result<String> {
        let token = random_token("pat_");
        self.store
            .put_setting(ADMIN_TOKEN_SETTING, &sha256_hex(token.as_bytes()))
            .await?;
        Ok(token)
    }
}

fn queue_settings(config: &Config) -> QueueSettings {
    QueueSettings {
        backoff: Backoff {
            base_ms: config.delivery.retry_base_ms,
            max_ms: config.delivery.retry_max_ms,
        },
        lease: Duration::from_secs(config.delivery.lease_seconds),
        workers: config.delivery.workers as usize,
        tenant_per_minute: config.limits.tenant_deliveries_per_minute,
        tenant_concurrency: config.limits.tenant_max_concurrent_deliveries as usize,
    }
}

pub async fn serve(app: App) -> Result<()> {
    let config = app.config.clone();
    let addr = config.listen_addr()?;
    let (admin_hash, admin) = app.admin_token().await?;
    let state = app.app_state(admin_hash);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (server.listen)"))?;
    let local = listener.local_addr()?;
    announce(local, admin);
    tracing::info!(%local, channels = app.registry.all().len(), "postern started");

    let shutdown = CancellationToken::new();
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    let worker = tokio::spawn(app.queue.clone().run(shutdown.clone(), grace));
    spawn_health_refresh(state.clone(), shutdown.clone());
    spawn_store_probe(state.clone(), shutdown.clone());
    spawn_channel_sync(state.clone(), shutdown.clone());

    // The console (`/console`) beside the API; the API's fallback answers the rest.
    let router = api::router(state.clone()).merge(crate::console::router(state));
    let stop = shutdown.clone();
    crate::http_server::serve(
        listener,
        router,
        async move {
            wait_for_signal().await;
            tracing::info!("shutting down: no new requests; finishing in-flight deliveries");
            stop.cancel();
        },
        grace,
    )
    .await;
    shutdown.cancel();
    let _ = worker.await;
    // Long-lived provider sessions (SMPP) unbind once no attempt needs them.
    app.registry.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The one place the admin token is shown: stdout, once, never the logs.
fn announce(local: SocketAddr, admin: AdminToken) {
    println!("postern listening on http://{local}");
    match admin {
        AdminToken::FromConfig => println!("admin token: from server.admin_token"),
        AdminToken::Stored => println!(
            "admin token: set on first start (stored hashed); `postern admin-token rotate` prints a new one"
        ),
        AdminToken::Generated(t) => {
            println!("admin token (shown once, stored hashed): {t}");
            println!("use it as: Authorization: Bearer <token>");
        }
    }
}

/// Probes every channel now and then every minute, so `/readyz` never waits.
fn spawn_health_refresh(state: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            state.health.refresh(&state).await;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    });
}

/// Probes the store's writes every second, so `postern_store_up` and the
/// pool's recovery do not wait for someone to ask `/readyz`.
fn spawn_store_probe(state: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let _ = state
                .readiness
                .check(state.store.as_ref(), state.clock.now_ms())
                .await;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(store::READINESS_FRESH_FOR) => {}
            }
        }
    });
}

/// Tenant channels changed through another host show up within seconds.
fn spawn_channel_sync(state: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut seen = state.store.channels_version().await.unwrap_or(0);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            match state.store.channels_version().await {
                Ok(v) if v != seen => {
                    if let Err(e) = state.reload_tenant_channels().await {
                        tracing::warn!(error = %e, "cannot reload tenant channels");
                    } else {
                        seen = v;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read channels version"),
            }
        }
    });
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Tenant uploads and their staged rollouts.
fn tenant_plugins(
    runtime: Arc<crate::plugin::PluginRuntime>,
    store: &Arc<dyn crate::store::Store>,
    clock: &crate::clock::SharedClock,
    metrics: &Arc<Metrics>,
    config: &Config,
) -> Arc<crate::plugin::TenantPlugins> {
    use crate::plugin::rollout::{Rollouts, Settings};
    let settings = Settings::from_config(&config.plugins);
    let rollouts = Rollouts::new(store.clone(), clock.clone(), metrics.clone(), settings);
    Arc::new(crate::plugin::TenantPlugins::new(
        runtime,
        Arc::new(rollouts),
    ))
}
