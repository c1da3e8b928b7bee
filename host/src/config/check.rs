//! The one error type of config loading and the checks every section uses;
//! each names the key it refused (`invalid `api.two_fa_token_ttl_seconds`: …`).

use std::ops::RangeInclusive;
use std::path::PathBuf;

use thiserror::Error;

use crate::delivery::recipient::{RecipientRule, SendToType};

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

pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

pub fn check_range(key: &str, value: u64, range: RangeInclusive<u64>) -> Result<(), ConfigError> {
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

pub fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    crate::domain::ChannelName::parse(name)
        .map(|_| ())
        .map_err(|m| invalid(key, m))
}

pub fn check_http_url(key: &str, value: &str) -> Result<url::Url, ConfigError> {
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

pub fn check_send_to(
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
        RecipientRule::regex(r).map_err(|m| invalid(regex_key, m))?;
    }
    Ok(())
}
