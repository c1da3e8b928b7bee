//! The config file (SPEC §2): typed settings, environment overrides and
//! validation with messages that name the key and the allowed range.
//!
//! rport's `[api]`, `[smtp]` and `[pushover]` keys are accepted unchanged;
//! keys postern does not know are reported as warnings, not errors, so a pasted
//! `rportd.conf` section still loads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use thiserror::Error;

use crate::secret::Secret;

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

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name}: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("invalid `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
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
}

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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SendToType {
    #[default]
    None,
    Email,
    Regex,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    pub two_fa_token_delivery: Option<String>,
    pub two_fa_token_ttl_seconds: u32,
    pub two_fa_send_to_type: SendToType,
    pub two_fa_send_to_regex: Option<String>,
    pub two_fa_url_signing_secret: Option<Secret>,
    pub totp_enabled: bool,
    /// Seconds the URL sender waits for the receiver (rport's `two_fa_send_timeout`, in seconds).
    pub url_timeout_seconds: u64,
    /// Allow `http://` for URL delivery to a non-loopback host (postern addition; default false).
    pub url_allow_http: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            two_fa_token_delivery: None,
            two_fa_token_ttl_seconds: 600,
            two_fa_send_to_type: SendToType::None,
            two_fa_send_to_regex: None,
            two_fa_url_signing_secret: None,
            totp_enabled: true,
            url_timeout_seconds: 10,
            url_allow_http: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    #[default]
    Opportunistic,
    Required,
    Off,
}

pub const DEFAULT_SMTP_SUBJECT: &str = "Your verification code";
pub const DEFAULT_SMTP_BODY: &str = "Your verification code is {code}.\nIt expires in {ttl}.\n\nIt was requested from {remote_address} with user agent {user_agent}.\nIf this was not you, ignore this message.\n";

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    pub server: String,
    pub sender_email: String,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub auth_username: Option<String>,
    pub auth_password: Option<Secret>,
    pub secure: bool,
    pub starttls: StartTls,
    pub ca_file: Option<PathBuf>,
    pub timeout_seconds: u64,
    pub subject: String,
    pub body: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            server: String::new(),
            sender_email: String::new(),
            auth_username: None,
            auth_password: None,
            secure: false,
            starttls: StartTls::Opportunistic,
            ca_file: None,
            timeout_seconds: 10,
            subject: DEFAULT_SMTP_SUBJECT.into(),
            body: DEFAULT_SMTP_BODY.into(),
        }
    }
}

pub const DEFAULT_PUSHOVER_URL: &str = "https://api.pushover.net/1/messages.json";

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PushoverConfig {
    pub api_token: Secret,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub user_key: Option<String>,
    pub api_url: String,
    pub title: String,
    pub timeout_seconds: u64,
}

impl Default for PushoverConfig {
    fn default() -> Self {
        Self {
            api_token: Secret::default(),
            user_key: None,
            api_url: DEFAULT_PUSHOVER_URL.into(),
            title: "Verification code".into(),
            timeout_seconds: 10,
        }
    }
}

/// One `[[sms_gateway]]`: privacyIDEA's HTTP provider (`kind = "http"`) or
/// its SMTP provider (`kind = "smtp"`, mail to an SMS gateway through `[smtp]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmsGatewayConfig {
    pub name: String,
    pub kind: String,
    // kind = "http"
    pub url: String,
    pub http_method: String,
    pub send_data_as_json: bool,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub return_success: String,
    pub return_fail: String,
    pub check_ssl: bool,
    pub timeout_seconds: u64,
    pub proxy: String,
    pub regexp: String,
    pub parameters: BTreeMap<String, toml::Value>,
    pub options: BTreeMap<String, toml::Value>,
    pub headers: BTreeMap<String, String>,
    // kind = "smtp"
    pub mailto: String,
    pub subject: String,
    pub body: String,
    // both
    pub send_to_type: Option<SendToType>,
    pub send_to_regex: Option<String>,
    pub fallback: Option<String>,
}

impl Default for SmsGatewayConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: String::new(),
            url: String::new(),
            http_method: "GET".into(),
            send_data_as_json: false,
            username: None,
            password: None,
            return_success: String::new(),
            return_fail: String::new(),
            check_ssl: true,
            timeout_seconds: 3,
            proxy: String::new(),
            regexp: String::new(),
            parameters: BTreeMap::new(),
            options: BTreeMap::new(),
            headers: BTreeMap::new(),
            mailto: String::new(),
            subject: "{phone}".into(),
            body: "{otp}".into(),
            send_to_type: None,
            send_to_regex: None,
            fallback: None,
        }
    }
}

/// A `[[channel]]`: a plugin channel run by the operator.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ChannelConfig {
    pub name: String,
    pub plugin: PathBuf,
    pub allowed_hosts: Vec<String>,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
    pub send_to_type: Option<SendToType>,
    pub send_to_regex: Option<String>,
    pub fallback: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PluginsConfig {
    pub max_upload_bytes: u64,
    pub memory_limit_bytes: u64,
    pub cpu_budget_ms: u64,
    pub wall_timeout_ms: u64,
    pub max_http_requests: u32,
    pub max_http_response_bytes: u64,
    pub max_log_bytes: u64,
    pub allow_private_networks: bool,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 10 * 1024 * 1024,
            memory_limit_bytes: 32 * 1024 * 1024,
            cpu_budget_ms: 100,
            wall_timeout_ms: 10_000,
            max_http_requests: 8,
            max_http_response_bytes: 1024 * 1024,
            max_log_bytes: 64 * 1024,
            allow_private_networks: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DeliveryConfig {
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub lease_seconds: u64,
    /// Deliveries one host works on at once (postern addition).
    pub workers: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            lease_seconds: 30,
            workers: 64,
        }
    }
}

/// `[realtime]` (postern addition): the WebSocket (DDP) endpoint's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RealtimeConfig {
    /// Open connections per host; more are answered 503.
    pub max_connections: u64,
    /// Open connections per client address (after `trusted_proxies`); more
    /// are answered 429.
    pub max_connections_per_ip: u64,
    /// Largest frame/message; a bigger one closes the connection with 1009.
    pub max_message_bytes: u64,
    /// A connection that sends nothing (not even a ping) for this long is closed.
    pub idle_timeout_seconds: u64,
    /// Meteor's server heartbeat: a quiet connection is pinged after the
    /// interval (0: never) and closed if the ping is unanswered for the timeout.
    pub heartbeat_interval_seconds: f64,
    pub heartbeat_timeout_seconds: f64,
    /// Calls of one method per `method_window_seconds` (Rocket.Chat's DDP
    /// rate limiter default: 10 per 10 s); more are refused with `too-many-requests`.
    pub calls_per_method: u32,
    pub method_window_seconds: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 500,
            max_message_bytes: 64 * 1024,
            idle_timeout_seconds: 60,
            heartbeat_interval_seconds: 17.5,
            heartbeat_timeout_seconds: 15.0,
            calls_per_method: 10,
            method_window_seconds: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    pub code_length: u32,
    pub max_check_attempts: u32,
    pub sends_per_destination: u32,
    pub tenant_deliveries_per_minute: u32,
    pub tenant_max_plugins: u32,
    pub tenant_max_concurrent_deliveries: u32,
    /// Code checks per user per minute (postern addition).
    pub checks_per_user_per_minute: u32,
    /// Code checks per client IP per minute (postern addition).
    pub checks_per_ip_per_minute: u32,
    /// Logins per client IP per minute (postern addition).
    pub logins_per_ip_per_minute: u32,
    /// Unauthenticated code requests (`sendEmailCode`) per client IP and per
    /// identifier per minute (postern addition).
    pub code_requests_per_minute: u32,
    /// Lifetime of a login session in hours (postern addition).
    pub session_hours: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            code_length: 6,
            max_check_attempts: 5,
            sends_per_destination: 5,
            tenant_deliveries_per_minute: 600,
            tenant_max_plugins: 20,
            tenant_max_concurrent_deliveries: 32,
            checks_per_user_per_minute: 10,
            checks_per_ip_per_minute: 60,
            logins_per_ip_per_minute: 30,
            code_requests_per_minute: 5,
            session_hours: 24 * 30,
        }
    }
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
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            source_name: source.to_string(),
            message: e.to_string(),
        })?;
        apply_env_overrides(&mut table, env)?;
        let mut unknown_keys = Vec::new();
        let config: Config = serde_ignored::deserialize(toml::Value::Table(table), |path| {
            unknown_keys.push(path.to_string())
        })
        .map_err(|e| ConfigError::Parse {
            source_name: source.to_string(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(Loaded {
            config,
            source,
            unknown_keys,
        })
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("`{}` is not an address:port", self.server.listen),
            )
        })
    }

    pub fn database_url(&self) -> String {
        self.server.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("postern.db").display()
            )
        })
    }

    pub fn trusted_proxies(&self) -> Vec<IpNet> {
        // Validated in `validate`, so parse failures cannot happen here.
        self.server
            .trusted_proxies
            .iter()
            .filter_map(|s| parse_net(s))
            .collect()
    }

    /// Every check that can be made without touching the network or the disk.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if let Some(url) = &self.server.base_url {
            url::Url::parse(url)
                .map_err(|e| invalid("server.base_url", format!("not a URL: {e}")))?;
        }
        let db = self.database_url();
        if crate::store::is_postgres_url(&db) {
            crate::store::check_postgres_url(&db).map_err(|e| invalid("server.database_url", e))?;
            // A key generated into each host's data_dir would differ per
            // host: no host could open another's payloads or check its codes.
            if self.server.secret_key.as_ref().is_none_or(|k| k.is_empty()) {
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
        for (i, p) in self.server.trusted_proxies.iter().enumerate() {
            if parse_net(p).is_none() {
                return Err(invalid(
                    format!("server.trusted_proxies[{i}]"),
                    format!("`{p}` is not an IP address or CIDR network"),
                ));
            }
        }
        match self.server.log_format.as_str() {
            "text" | "json" => {}
            other => {
                return Err(invalid(
                    "server.log_format",
                    format!("`{other}`: allowed values are text, json"),
                ));
            }
        }
        check_range(
            "server.shutdown_grace_seconds",
            self.server.shutdown_grace_seconds,
            0..=300,
        )?;

        let api = &self.api;
        check_range(
            "api.two_fa_token_ttl_seconds",
            api.two_fa_token_ttl_seconds as u64,
            60..=3600,
        )?;
        check_range("api.url_timeout_seconds", api.url_timeout_seconds, 1..=120)?;
        check_send_to(
            "api.two_fa_send_to_type",
            "api.two_fa_send_to_regex",
            Some(api.two_fa_send_to_type),
            api.two_fa_send_to_regex.as_deref(),
        )?;

        if let Some(smtp) = &self.smtp {
            smtp.validate("smtp")?;
        }
        if let Some(p) = &self.pushover {
            if p.api_token.is_empty() {
                return Err(invalid("pushover.api_token", "is required"));
            }
            check_http_url("pushover.api_url", &p.api_url)?;
            check_range("pushover.timeout_seconds", p.timeout_seconds, 1..=120)?;
        }

        let mut names: Vec<(String, String)> = Vec::new();
        let mut add_name = |name: &str, key: String| -> Result<(), ConfigError> {
            if let Some((_, first)) = names.iter().find(|(n, _)| n == name) {
                return Err(invalid(
                    key,
                    format!("channel name `{name}` is already used by `{first}`"),
                ));
            }
            names.push((name.to_string(), key));
            Ok(())
        };
        if self.smtp.is_some() {
            add_name("email", "smtp".into())?;
        }
        if self.pushover.is_some() {
            add_name("pushover", "pushover".into())?;
        }
        if let Some(d) = &api.two_fa_token_delivery {
            match d.as_str() {
                "smtp" | "email" => {
                    if self.smtp.is_none() {
                        return Err(invalid(
                            "api.two_fa_token_delivery",
                            "`smtp` needs an [smtp] section",
                        ));
                    }
                }
                "pushover" => {
                    if self.pushover.is_none() {
                        return Err(invalid(
                            "api.two_fa_token_delivery",
                            "`pushover` needs a [pushover] section",
                        ));
                    }
                }
                url if url.starts_with("http://") || url.starts_with("https://") => {
                    let parsed = check_http_url("api.two_fa_token_delivery", url)?;
                    if self.server.base_url.is_none() {
                        return Err(invalid(
                            "server.base_url",
                            "is required when api.two_fa_token_delivery is a URL",
                        ));
                    }
                    if parsed.scheme() == "http"
                        && !api.url_allow_http
                        && !is_loopback_host(&parsed)
                    {
                        return Err(invalid(
                            "api.two_fa_token_delivery",
                            "plain http:// is only allowed to a loopback host; use https:// or set api.url_allow_http = true",
                        ));
                    }
                    add_name("url", "api.two_fa_token_delivery".into())?;
                }
                other => {
                    if let Some(ch) = other.strip_prefix("plugin:") {
                        if !self.channel.iter().any(|c| c.name == ch) {
                            return Err(invalid(
                                "api.two_fa_token_delivery",
                                format!("no [[channel]] named `{ch}`"),
                            ));
                        }
                    } else if !self.sms_gateway.iter().any(|g| g.name == other) {
                        return Err(invalid(
                            "api.two_fa_token_delivery",
                            format!(
                                "`{other}`: allowed values are smtp, pushover, an http(s) URL, plugin:<channel name> or an [[sms_gateway]] name"
                            ),
                        ));
                    }
                }
            }
        }

        for (i, g) in self.sms_gateway.iter().enumerate() {
            let key = |k: &str| format!("sms_gateway[{i}].{k}");
            check_name(&key("name"), &g.name)?;
            add_name(&g.name, format!("sms_gateway[{i}]"))?;
            g.validate(&format!("sms_gateway[{i}]"), self.smtp.is_some())?;
        }

        for (i, c) in self.channel.iter().enumerate() {
            let key = |k: &str| format!("channel[{i}].{k}");
            check_name(&key("name"), &c.name)?;
            add_name(&c.name, format!("channel[{i}]"))?;
            if c.plugin.as_os_str().is_empty() {
                return Err(invalid(
                    key("plugin"),
                    "is required (a .wasm component file)",
                ));
            }
            for (j, h) in c.allowed_hosts.iter().enumerate() {
                crate::netguard::AllowedHost::parse(h)
                    .map_err(|m| invalid(format!("channel[{i}].allowed_hosts[{j}]"), m))?;
            }
            check_send_to(
                &key("send_to_type"),
                &key("send_to_regex"),
                c.send_to_type,
                c.send_to_regex.as_deref(),
            )?;
        }

        // Fallbacks must name a channel, not the channel itself.
        let fallbacks = self
            .sms_gateway
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("sms_gateway[{i}].fallback"), &g.name, &g.fallback))
            .chain(
                self.channel
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("channel[{i}].fallback"), &c.name, &c.fallback)),
            );
        let fallbacks: Vec<(String, &String, &Option<String>)> = fallbacks.collect();
        let fallback_of = |n: &str| {
            fallbacks
                .iter()
                .find(|(_, name, _)| name.as_str() == n)
                .and_then(|(_, _, f)| f.as_deref())
        };
        for (key, name, fallback) in &fallbacks {
            if let Some(f) = fallback {
                if f == *name {
                    return Err(invalid(key, "a channel cannot fall back to itself"));
                }
                if !names.iter().any(|(n, _)| n == f) {
                    return Err(invalid(key, format!("no channel named `{f}`")));
                }
                // Chains are fine; loops are not.
                let mut chain = vec![name.as_str(), f.as_str()];
                let mut next = fallback_of(f);
                while let Some(n) = next {
                    chain.push(n);
                    if n == name.as_str() || chain.len() > fallbacks.len() + 1 {
                        return Err(invalid(
                            key,
                            format!("fallbacks form a cycle: {}", chain.join(" → ")),
                        ));
                    }
                    next = fallback_of(n);
                }
            }
        }

        let p = &self.plugins;
        check_range(
            "plugins.max_upload_bytes",
            p.max_upload_bytes,
            1024..=256 << 20,
        )?;
        check_range(
            "plugins.memory_limit_bytes",
            p.memory_limit_bytes,
            1 << 20..=4 << 30,
        )?;
        check_range("plugins.cpu_budget_ms", p.cpu_budget_ms, 1..=60_000)?;
        check_range("plugins.wall_timeout_ms", p.wall_timeout_ms, 100..=300_000)?;
        check_range(
            "plugins.max_http_requests",
            p.max_http_requests as u64,
            0..=1000,
        )?;
        check_range(
            "plugins.max_http_response_bytes",
            p.max_http_response_bytes,
            1024..=256 << 20,
        )?;
        check_range("plugins.max_log_bytes", p.max_log_bytes, 256..=16 << 20)?;

        let d = &self.delivery;
        check_range("delivery.retry_base_ms", d.retry_base_ms, 10..=600_000)?;
        check_range(
            "delivery.retry_max_ms",
            d.retry_max_ms,
            d.retry_base_ms..=3_600_000,
        )?;
        check_range("delivery.lease_seconds", d.lease_seconds, 5..=3600)?;
        check_range("delivery.workers", d.workers as u64, 1..=1024)?;

        let r = &self.realtime;
        check_range("realtime.max_connections", r.max_connections, 1..=1_000_000)?;
        check_range(
            "realtime.max_connections_per_ip",
            r.max_connections_per_ip,
            1..=r.max_connections,
        )?;
        check_range(
            "realtime.max_message_bytes",
            r.max_message_bytes,
            1024..=16 << 20,
        )?;
        check_range(
            "realtime.idle_timeout_seconds",
            r.idle_timeout_seconds,
            5..=3600,
        )?;
        let hb = (r.heartbeat_interval_seconds, r.heartbeat_timeout_seconds);
        check_seconds("realtime.heartbeat_interval_seconds", hb.0, true)?;
        check_seconds("realtime.heartbeat_timeout_seconds", hb.1, false)?;
        check_range(
            "realtime.calls_per_method",
            r.calls_per_method as u64,
            1..=10_000,
        )?;
        check_range(
            "realtime.method_window_seconds",
            r.method_window_seconds,
            1..=3600,
        )?;

        let l = &self.limits;
        check_range("limits.code_length", l.code_length as u64, 6..=10)?;
        check_range(
            "limits.max_check_attempts",
            l.max_check_attempts as u64,
            1..=100,
        )?;
        check_range(
            "limits.sends_per_destination",
            l.sends_per_destination as u64,
            1..=10_000,
        )?;
        check_range(
            "limits.tenant_deliveries_per_minute",
            l.tenant_deliveries_per_minute as u64,
            1..=1_000_000,
        )?;
        check_range(
            "limits.tenant_max_plugins",
            l.tenant_max_plugins as u64,
            0..=10_000,
        )?;
        check_range(
            "limits.tenant_max_concurrent_deliveries",
            l.tenant_max_concurrent_deliveries as u64,
            1..=10_000,
        )?;
        for (key, v) in [
            (
                "limits.checks_per_user_per_minute",
                l.checks_per_user_per_minute,
            ),
            (
                "limits.checks_per_ip_per_minute",
                l.checks_per_ip_per_minute,
            ),
            (
                "limits.logins_per_ip_per_minute",
                l.logins_per_ip_per_minute,
            ),
            (
                "limits.code_requests_per_minute",
                l.code_requests_per_minute,
            ),
        ] {
            check_range(key, v as u64, 1..=1_000_000)?;
        }
        check_range("limits.session_hours", l.session_hours as u64, 1..=24 * 366)?;
        Ok(())
    }
}

impl SmsGatewayConfig {
    /// Checks one gateway; keys in errors start with `prefix`
    /// (`sms_gateway[0]` in the file, `config` over the API).
    pub fn validate(&self, prefix: &str, has_smtp: bool) -> Result<(), ConfigError> {
        let g = self;
        let key = |k: &str| format!("{prefix}.{k}");
        match g.kind.as_str() {
            "http" => {
                check_http_url(&key("url"), &g.url)?;
                match g.http_method.to_ascii_uppercase().as_str() {
                    "GET" | "POST" => {}
                    other => {
                        return Err(invalid(
                            key("http_method"),
                            format!("`{other}`: allowed values are GET, POST"),
                        ));
                    }
                }
                if g.send_data_as_json && g.http_method.eq_ignore_ascii_case("GET") {
                    return Err(invalid(
                        key("send_data_as_json"),
                        "needs http_method = \"POST\"",
                    ));
                }
                check_range(&key("timeout_seconds"), g.timeout_seconds, 1..=120)?;
                if !g.proxy.is_empty() {
                    url::Url::parse(&g.proxy)
                        .map_err(|e| invalid(key("proxy"), format!("not a URL: {e}")))?;
                }
                if !g.regexp.is_empty() {
                    PhoneRewrite::parse(&g.regexp).map_err(|m| invalid(key("regexp"), m))?;
                }
                for (h, v) in &g.headers {
                    if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err()
                        || reqwest::header::HeaderValue::from_str(v).is_err()
                    {
                        return Err(invalid(
                            format!("{prefix}.headers.{h}"),
                            "is not a valid HTTP header",
                        ));
                    }
                }
            }
            "smtp" => {
                if g.mailto.is_empty() {
                    return Err(invalid(key("mailto"), "is required for kind = \"smtp\""));
                }
                if !has_smtp {
                    return Err(invalid(
                        key("kind"),
                        "kind = \"smtp\" sends through the [smtp] section, which is missing",
                    ));
                }
                if !g.regexp.is_empty() {
                    PhoneRewrite::parse(&g.regexp).map_err(|m| invalid(key("regexp"), m))?;
                }
            }
            other => {
                return Err(invalid(
                    key("kind"),
                    format!("`{other}`: allowed values are http, smtp"),
                ));
            }
        }
        check_send_to(
            &key("send_to_type"),
            &key("send_to_regex"),
            g.send_to_type,
            g.send_to_regex.as_deref(),
        )?;
        Ok(())
    }
}

impl SmtpConfig {
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{section}.{k}");
        if self.server.is_empty() {
            return Err(invalid(key("server"), "is required (host:port)"));
        }
        self.host_port().map_err(|m| invalid(key("server"), m))?;
        if crate::domain::EmailAddress::parse(&self.sender_email).is_err() {
            return Err(invalid(
                key("sender_email"),
                if self.sender_email.is_empty() {
                    "is required".to_string()
                } else {
                    format!("`{}` is not an email address", self.sender_email)
                },
            ));
        }
        if self.secure && self.starttls == StartTls::Required {
            return Err(invalid(
                key("starttls"),
                "`required` cannot be combined with secure = true (implicit TLS is already encrypted)",
            ));
        }
        check_range(&key("timeout_seconds"), self.timeout_seconds, 1..=120)?;
        if let Some(ca) = &self.ca_file
            && !ca.as_os_str().is_empty()
            && !ca.exists()
        {
            return Err(invalid(
                key("ca_file"),
                format!("{} does not exist", ca.display()),
            ));
        }
        Ok(())
    }

    /// `host:port` split; rport requires the port.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let (host, port) = self.server.rsplit_once(':').ok_or_else(|| {
            format!(
                "`{}`: expected host and port separated by a colon, e.g. smtp.example.com:587",
                self.server
            )
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` is not a port number"))?;
        let host = match host.strip_prefix('[') {
            // An IPv6 literal, bracketed: `[2001:db8::1]:25`.
            Some(v6) => v6
                .strip_suffix(']')
                .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
                .ok_or_else(|| format!("`{host}` is not a bracketed IPv6 address"))?,
            None => host,
        };
        let name_like = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        if !name_like && host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "`{}` is not a host name or IP address",
                host.escape_debug()
            ));
        }
        Ok((host.to_string(), port))
    }
}

/// privacyIDEA's `REGEXP` phone rewrite, written `/pattern/replacement/`.
#[derive(Debug, Clone)]
pub struct PhoneRewrite {
    pub pattern: regex::Regex,
    pub replacement: String,
}

impl PhoneRewrite {
    pub fn parse(spec: &str) -> Result<Self, String> {
        // Same split as privacyIDEA's `^/(.*)/(.*)/$`: the first group is greedy.
        let inner = spec
            .strip_prefix('/')
            .and_then(|s| s.strip_suffix('/'))
            .ok_or_else(|| "expected the form /pattern/replacement/".to_string())?;
        let (pattern, replacement) = inner
            .rsplit_once('/')
            .ok_or_else(|| "expected the form /pattern/replacement/".to_string())?;
        let pattern = regex::Regex::new(pattern).map_err(|e| format!("invalid pattern: {e}"))?;
        // Python's `\1` becomes regex's `${1}`.
        let replacement = python_backrefs(replacement);
        Ok(Self {
            pattern,
            replacement,
        })
    }

    pub fn apply(&self, phone: &str) -> String {
        self.pattern
            .replace_all(phone, self.replacement.as_str())
            .into_owned()
    }
}

fn python_backrefs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().copied().filter(|d| d.is_ascii_digit()) {
                    n.push(d);
                    chars.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// 1 to 3600 seconds, fractions allowed (and 0, "off", where `off_ok`).
fn check_seconds(key: &str, value: f64, off_ok: bool) -> Result<(), ConfigError> {
    if (off_ok && value == 0.0) || (1.0..=3600.0).contains(&value) {
        return Ok(());
    }
    let allowed = if off_ok { "0 or 1..=3600" } else { "1..=3600" };
    Err(invalid(
        key,
        format!("{value} is out of range; allowed {allowed}"),
    ))
}

fn check_range(key: &str, value: u64, range: RangeInclusive<u64>) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!(
                "{value} is out of range; allowed {}..={}",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    crate::domain::ChannelName::parse(name)
        .map(|_| ())
        .map_err(|m| invalid(key, m))
}

fn check_http_url(key: &str, value: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value).map_err(|e| invalid(key, format!("not a URL: {e}")))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(invalid(
            key,
            "must be an http:// or https:// URL with a host",
        )),
    }
}

pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn check_send_to(
    type_key: &str,
    regex_key: &str,
    kind: Option<SendToType>,
    regex: Option<&str>,
) -> Result<(), ConfigError> {
    if kind == Some(SendToType::Regex) {
        let r = regex.filter(|r| !r.is_empty()).ok_or_else(|| {
            invalid(
                regex_key,
                format!("is required when {type_key} = \"regex\""),
            )
        })?;
        crate::delivery::recipient::RecipientRule::regex(r).map_err(|m| invalid(regex_key, m))?;
    }
    Ok(())
}

/// `POSTERN_<SECTION>__<KEY>=value` sets `[section] key = value`. Values that
/// read as booleans or integers become those; everything else is a string.
/// Array sections (`[[sms_gateway]]`, `[[channel]]`) cannot be overridden.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    const SECTIONS: &[&str] = &[
        "server", "api", "smtp", "pushover", "plugins", "delivery", "limits", "realtime",
    ];
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("POSTERN_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let section = section.to_ascii_lowercase();
        let key = key.to_ascii_lowercase();
        if !SECTIONS.contains(&section.as_str()) {
            return Err(ConfigError::Env {
                var,
                message: format!(
                    "unknown section `{section}`; allowed: {}",
                    SECTIONS.join(", ")
                ),
            });
        }
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(t) = entry else {
            return Err(ConfigError::Env {
                var,
                message: format!("`{section}` in the file is not a table"),
            });
        };
        let v = if value == "true" || value == "false" {
            toml::Value::Boolean(value == "true")
        } else if let Ok(n) = value.parse::<i64>() {
            toml::Value::Integer(n)
        } else if let Some(f) = decimal(&value) {
            toml::Value::Float(f)
        } else {
            toml::Value::String(value)
        };
        t.insert(key, v);
    }
    Ok(())
}

/// Deserializes a string that may have arrived as a number or boolean
/// (environment overrides cannot tell them apart).
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(match Lenient::deserialize(d)? {
        Lenient::S(s) => s,
        Lenient::I(i) => i.to_string(),
        Lenient::F(f) => f.to_string(),
        Lenient::B(b) => b.to_string(),
    })
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    lenient_string(d).map(Some)
}

/// `17.5` (digits and one point, as the `*_seconds` keys take); not `inf` or `1e3`.
fn decimal(value: &str) -> Option<f64> {
    let plain = value.chars().all(|c| c.is_ascii_digit() || c == '.');
    plain.then(|| value.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_seconds_take_fractions_zero_and_env_overrides() {
        let r = load("[realtime]\nheartbeat_interval_seconds = 0\nheartbeat_timeout_seconds = 7")
            .unwrap()
            .config
            .realtime;
        assert_eq!(
            (r.heartbeat_interval_seconds, r.heartbeat_timeout_seconds),
            (0.0, 7.0)
        );
        let env = [("POSTERN_REALTIME__HEARTBEAT_INTERVAL_SECONDS", "2.5")];
        let r = load_env("", &env).unwrap().config.realtime;
        assert_eq!(r.heartbeat_interval_seconds, 2.5);
        let e = load("[realtime]\nheartbeat_timeout_seconds = 0.5").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("realtime.heartbeat_timeout_seconds"), "{e}");
        assert!(e.contains("0.5 is out of range; allowed 1..=3600"), "{e}");
    }

    fn load(text: &str) -> Result<Loaded, ConfigError> {
        Config::from_toml(text, Source::Embedded, Vec::new())
    }

    fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        Config::from_toml(
            text,
            Source::Embedded,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn empty_config_is_the_embedded_default() {
        let l = load("").unwrap();
        assert_eq!(l.config.server.listen, "127.0.0.1:8080");
        assert_eq!(l.config.database_url(), "sqlite://./data/postern.db");
        assert_eq!(l.config.api.two_fa_token_ttl_seconds, 600);
        assert!(l.config.smtp.is_none());
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../examples/postern.toml");
        let l = load(text).unwrap();
        assert!(l.unknown_keys.is_empty(), "{:?}", l.unknown_keys);
        assert!(l.config.smtp.is_some());
    }

    #[test]
    fn out_of_range_names_key_and_range() {
        let e = load("[api]\ntwo_fa_token_ttl_seconds = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.two_fa_token_ttl_seconds"), "{e}");
        assert!(e.contains("60..=3600"), "{e}");
        let e = load("[limits]\ncode_length = 4\n").unwrap_err().to_string();
        assert!(
            e.contains("limits.code_length") && e.contains("6..=10"),
            "{e}"
        );
    }

    #[test]
    fn rport_keys_are_accepted_and_unknown_keys_reported() {
        let text = r#"
[api]
address = "0.0.0.0:3000"
two_fa_token_delivery = "smtp"
two_fa_token_ttl_seconds = 600
two_fa_send_to_type = "email"
[smtp]
server = "smtp.example.com:2525"
sender_email = "rport@example.com"
auth_username = "john"
auth_password = "secret"
secure = false
"#;
        let l = load(text).unwrap();
        assert_eq!(l.unknown_keys, vec!["api.address".to_string()]);
        let smtp = l.config.smtp.unwrap();
        assert_eq!(smtp.host_port().unwrap(), ("smtp.example.com".into(), 2525));
        assert_eq!(format!("{:?}", smtp.auth_password), "Some(\"***\")");
    }

    #[test]
    fn smtp_without_port_is_refused() {
        let e = load("[smtp]\nserver = \"smtp.example.com\"\nsender_email = \"a@b.c\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("smtp.server"), "{e}");
    }

    #[test]
    fn env_overrides_win_and_numbers_can_be_secrets() {
        let l = load_env(
            "[smtp]\nserver = \"mail:25\"\nsender_email = \"a@b.c\"\n",
            &[
                ("POSTERN_SMTP__AUTH_PASSWORD", "123456"),
                ("POSTERN_API__TWO_FA_TOKEN_TTL_SECONDS", "120"),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
        assert_eq!(
            l.config.smtp.unwrap().auth_password.unwrap().expose(),
            "123456"
        );
        assert_eq!(l.config.api.two_fa_token_ttl_seconds, 120);
        let e = load_env("", &[("POSTERN_NOPE__X", "1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("POSTERN_NOPE__X"), "{e}");
    }

    #[test]
    fn sms_gateway_checks_name_the_key() {
        let e = load("[[sms_gateway]]\nname = \"g\"\nkind = \"http\"\nurl = \"ftp://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sms_gateway[0].url"), "{e}");
        let e = load(
            "[[sms_gateway]]\nname = \"g\"\nkind = \"http\"\nurl = \"http://x\"\nregexp = \"nope\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sms_gateway[0].regexp"), "{e}");
        let e = load("[[sms_gateway]]\nname = \"g\"\nkind = \"fax\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sms_gateway[0].kind") && e.contains("http, smtp"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_channel_names_and_bad_fallbacks_are_refused() {
        let g = "[[sms_gateway]]\nname = \"g\"\nkind = \"http\"\nurl = \"http://x\"\n";
        let e = load(&format!("{g}{g}")).unwrap_err().to_string();
        assert!(e.contains("already used"), "{e}");
        let e = load(&format!("{g}fallback = \"nowhere\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sms_gateway[0].fallback"), "{e}");
        let gw = |name: &str, fallback: &str| {
            format!(
                "[[sms_gateway]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://x\"\nfallback = \"{fallback}\"\n"
            )
        };
        let e = load(&format!("{}{}", gw("a", "b"), gw("b", "a")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cycle: a → b → a"), "{e}");
    }

    #[test]
    fn phone_rewrite_follows_privacyidea() {
        let r = PhoneRewrite::parse(r"/[\+/]//").unwrap();
        assert_eq!(r.apply("+49/123"), "49123");
        let r = PhoneRewrite::parse("/^0/0049/").unwrap();
        assert_eq!(r.apply("0123"), "0049123");
        let r = PhoneRewrite::parse(r"/^([0-9]+).*/\1/").unwrap();
        assert_eq!(r.apply("123abc"), "123");
    }

    #[test]
    fn url_delivery_needs_base_url_and_https() {
        let e = load("[api]\ntwo_fa_token_delivery = \"https://hook.example.com/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.base_url"), "{e}");
        let e = load(
            "[server]\nbase_url = \"https://2fa.example.com\"\n[api]\ntwo_fa_token_delivery = \"http://hook.example.com/x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("url_allow_http"), "{e}");
        load("[server]\nbase_url = \"https://2fa.example.com\"\n[api]\ntwo_fa_token_delivery = \"http://127.0.0.1:9/x\"\n").unwrap();
    }

    #[test]
    fn postgres_needs_a_shared_secret_key_and_other_schemes_are_refused() {
        let pg = "[server]\ndatabase_url = \"postgres://postern@db.internal/postern\"\n";
        let e = load(pg).unwrap_err().to_string();
        assert!(
            e.contains("server.secret_key") && e.contains("every host"),
            "{e}"
        );
        let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        load_env(pg, &[("POSTERN_SERVER__SECRET_KEY", key)]).unwrap();
        for host in [
            include_str!("../../examples/two-hosts/host-a.toml"),
            include_str!("../../examples/two-hosts/host-b.toml"),
        ] {
            assert!(
                load(host).is_err(),
                "the example needs the key from the environment"
            );
            let l = load_env(host, &[("POSTERN_SERVER__SECRET_KEY", key)]).unwrap();
            assert!(l.unknown_keys.is_empty(), "{:?}", l.unknown_keys);
        }
        load(&format!(
            "[server]\ndatabase_url = \"postgresql://db/postern\"\nsecret_key = \"{key}\"\n"
        ))
        .unwrap();
        let e = load_env(
            "[server]\ndatabase_url = \"postgres://u:hunter2@db/p?max_connections=x\"\n",
            &[("POSTERN_SERVER__SECRET_KEY", key)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("server.database_url")
                && e.contains("max_connections")
                && !e.contains("hunter2"),
            "{e}"
        );
        let e = load("[server]\ndatabase_url = \"mysql://db/postern\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.database_url") && e.contains("postgres://"),
            "{e}"
        );
    }
}
