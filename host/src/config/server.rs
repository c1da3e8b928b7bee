//! `[server]`: where postern listens, its data and database, its keys.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use super::check::{ConfigError, check_range, invalid};
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: String,
    pub base_url: Option<String>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub admin_token: Option<Secret>,
    pub secret_key: Option<Secret>,
    pub trusted_proxies: Vec<String>,
    /// Seconds in-flight deliveries get to finish on SIGINT/SIGTERM (postern addition).
    pub shutdown_grace_seconds: u64,
    /// `text` (default) or `json` log lines (postern addition).
    pub log_format: String,
    /// The name messages use (`{{ app_name }}`).
    pub app_name: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            base_url: None,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            admin_token: None,
            secret_key: None,
            trusted_proxies: Vec::new(),
            shutdown_grace_seconds: 10,
            log_format: "text".into(),
            app_name: "postern".into(),
        }
    }
}

impl ServerConfig {
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("`{}` is not an address:port", self.listen),
            )
        })
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("postern.db").display()))
    }

    pub fn trusted_proxies(&self) -> Vec<IpNet> {
        // Validated in `validate`, so parse failures cannot happen here.
        self.trusted_proxies
            .iter()
            .filter_map(|s| parse_net(s))
            .collect()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if let Some(url) = &self.base_url {
            url::Url::parse(url)
                .map_err(|e| invalid("server.base_url", format!("not a URL: {e}")))?;
        }
        self.validate_database()?;
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            if parse_net(p).is_none() {
                return Err(invalid(
                    format!("server.trusted_proxies[{i}]"),
                    format!("`{p}` is not an IP address or CIDR network"),
                ));
            }
        }
        match self.log_format.as_str() {
            "text" | "json" => {}
            other => {
                return Err(invalid(
                    "server.log_format",
                    format!("`{other}`: allowed values are text, json"),
                ));
            }
        }
        let name_ok = (1..=64).contains(&self.app_name.chars().count())
            && !self.app_name.chars().any(char::is_control);
        if !name_ok {
            return Err(invalid(
                "server.app_name",
                "must be 1 to 64 characters without control characters",
            ));
        }
        check_range(
            "server.shutdown_grace_seconds",
            self.shutdown_grace_seconds,
            0..=300,
        )
    }

    fn validate_database(&self) -> Result<(), ConfigError> {
        let db = self.database_url();
        if crate::store::is_postgres_url(&db) {
            crate::store::check_postgres_url(&db).map_err(|e| invalid("server.database_url", e))?;
            // A key generated into each host's data_dir would differ per
            // host: no host could open another's payloads or check its codes.
            if self.secret_key.as_ref().is_none_or(|k| k.is_empty()) {
                return Err(invalid(
                    "server.secret_key",
                    "is required when server.database_url is PostgreSQL: every host sharing \
                     the database must use the same key (set it in the file or as \
                     POSTERN_SERVER__SECRET_KEY)",
                ));
            }
        } else if !db.starts_with("sqlite:") {
            return Err(invalid(
                "server.database_url",
                format!(
                    "unsupported scheme in `{}`; allowed: sqlite://, postgres://, postgresql://",
                    db.split(':').next().unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}
