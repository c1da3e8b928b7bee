//! The config file (SPEC §2): typed settings, environment overrides and
//! validation with messages that name the key and the allowed range.
//!
//! rport's `[api]`, `[smtp]` and `[pushover]` keys are accepted unchanged;
//! keys postern does not know are reported as warnings, not errors, so a pasted
//! `rportd.conf` section still loads.
//!
//! One file per section, each checking its own keys: [`server`], [`api`],
//! [`plugins`], [`delivery`], [`limits`], [`realtime`], [`fraud`], [`sms_gateway`];
//! [`env`] applies `POSTERN_*` overrides. The channel sections are typed
//! and checked by their kind's folder under `delivery/` (`[smtp]` in
//! `delivery/smtp/config.rs`, `[pushover]` in `delivery/pushover/config.rs`,
//! `[[channel]]` in `delivery/plugin/config.rs`, the `[[sms_gateway]]`
//! table in `delivery/sms_gateway.rs`); [`channels`] checks what spans them:
//! unique names, `api.two_fa_token_delivery`'s target and the fallback graph.

pub mod api;
pub mod channels;
pub mod check;
pub mod delivery;
pub(crate) mod env;
pub mod fraud;
pub mod lenient;
pub mod limits;
pub mod plugins;
pub mod realtime;
pub mod server;
pub mod sms_gateway;
pub mod templates;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

pub use self::api::{ApiConfig, TokenDelivery};
pub use self::check::ConfigError;
pub use self::delivery::DeliveryConfig;
pub use self::fraud::FraudConfig;
pub use self::limits::LimitsConfig;
pub use self::plugins::PluginsConfig;
pub use self::realtime::RealtimeConfig;
pub use self::server::ServerConfig;
pub use crate::delivery::plugin::config::ChannelConfig;
pub use crate::delivery::pushover::config::PushoverConfig;
pub use crate::delivery::recipient::SendToType;
pub use crate::delivery::sms_gateway::SmsGatewayConfig;
pub use crate::delivery::smtp::config::SmtpConfig;

/// Where a config came from, for messages.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("embedded defaults"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub api: ApiConfig,
    pub smtp: Option<SmtpConfig>,
    pub pushover: Option<PushoverConfig>,
    pub sms_gateway: Vec<SmsGatewayConfig>,
    pub channel: Vec<ChannelConfig>,
    pub plugins: PluginsConfig,
    pub delivery: DeliveryConfig,
    pub limits: LimitsConfig,
    pub realtime: RealtimeConfig,
    pub fraud: FraudConfig,
}

/// The result of loading: the config, where it came from, and keys that were ignored.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub source: Source,
    pub unknown_keys: Vec<String>,
}

impl Config {
    /// Loads `path`, else `./postern.toml` when present, else the embedded
    /// defaults; then applies `POSTERN_<SECTION>__<KEY>` overrides from `env`
    /// and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let (text, source) = match path {
            Some(p) => (read(p)?, Source::File(p.to_path_buf())),
            None => {
                let default = Path::new("postern.toml");
                if default.exists() {
                    (read(default)?, Source::File(default.to_path_buf()))
                } else {
                    (String::new(), Source::Embedded)
                }
            }
        };
        Self::from_toml(&text, source, env)
    }

    pub fn from_toml(
        text: &str,
        source: Source,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let parse_error = |e: &dyn std::fmt::Display| ConfigError::Parse {
            source_name: source.to_string(),
            message: e.to_string(),
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_error(&e))?;
        env::apply_env_overrides(&mut table, env)?;
        let mut unknown_keys = Vec::new();
        let config: Config = serde_ignored::deserialize(toml::Value::Table(table), |path| {
            unknown_keys.push(path.to_string())
        })
        .map_err(|e| parse_error(&e))?;
        config.validate()?;
        Ok(Loaded {
            config,
            source,
            unknown_keys,
        })
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen_addr()
    }

    pub fn database_url(&self) -> String {
        self.server.database_url()
    }

    pub fn trusted_proxies(&self) -> Vec<IpNet> {
        self.server.trusted_proxies()
    }

    /// Every check that can be made without touching the network or the
    /// disk, section by section in file order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.api.validate()?;
        if let Some(smtp) = &self.smtp {
            smtp.validate("smtp")?;
        }
        if let Some(p) = &self.pushover {
            p.validate_file()?;
        }
        channels::validate(self)?;
        templates::file_messages(self)?;
        self.plugins.validate()?;
        self.delivery.validate()?;
        self.realtime.validate()?;
        self.limits.validate()?;
        self.fraud.validate()
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
