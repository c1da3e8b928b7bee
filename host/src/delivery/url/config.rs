//! The `url` kind's keys. The config file's `url` channel comes from
//! `[api]` (`two_fa_token_delivery` = the URL, `two_fa_url_signing_secret`,
//! `url_timeout_seconds`); a tenant's `url` channel names them `url`,
//! `signing_secret` and `timeout_seconds`.

use serde::Deserialize;

use crate::config::check::{ConfigError, check_http_url, invalid, is_loopback_host};
use crate::secret::Secret;

/// The secrets a tenant's `url` channel takes.
pub const SECRET_KEYS: &[&str] = &["signing_secret"];

/// Where and how the URL sender posts.
#[derive(Debug, Clone, Deserialize)]
pub struct UrlConfig {
    pub url: String,
    pub signing_secret: Option<Secret>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    10
}

/// `api.two_fa_token_delivery` as a URL: it needs `server.base_url` (the
/// form's `url` field) and https, except to a loopback host or with
/// `api.url_allow_http`.
pub fn check_file_url(
    key: &str,
    url: &str,
    has_base_url: bool,
    allow_http: bool,
) -> Result<(), ConfigError> {
    let parsed = check_http_url(key, url)?;
    if !has_base_url {
        return Err(invalid(
            "server.base_url",
            "is required when api.two_fa_token_delivery is a URL",
        ));
    }
    if parsed.scheme() == "http" && !allow_http && !is_loopback_host(&parsed) {
        return Err(invalid(
            key,
            "plain http:// is only allowed to a loopback host; use https:// or set api.url_allow_http = true",
        ));
    }
    Ok(())
}
