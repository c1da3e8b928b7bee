//! `[api]`: rport's 2FA keys (`two_fa_*`) and the URL sender's settings.

use serde::{Deserialize, Deserializer};

use super::check::{ConfigError, check_range, check_send_to};
use crate::delivery::recipient::SendToType;
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    pub two_fa_token_delivery: Option<TokenDelivery>,
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

impl ApiConfig {
    /// The keys of this section alone; where `two_fa_token_delivery` points
    /// is checked with the channels (`super::channels`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "api.two_fa_token_ttl_seconds",
            self.two_fa_token_ttl_seconds as u64,
            60..=3600,
        )?;
        check_range("api.url_timeout_seconds", self.url_timeout_seconds, 1..=120)?;
        check_send_to(
            "api.two_fa_send_to_type",
            "api.two_fa_send_to_regex",
            Some(self.two_fa_send_to_type),
            self.two_fa_send_to_regex.as_deref(),
        )
    }
}

/// rport's `two_fa_token_delivery`, read once: which channel delivers codes
/// by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenDelivery {
    /// `smtp` or `email`: the `email` channel of `[smtp]`.
    Email,
    /// `pushover`: the channel of `[pushover]`.
    Pushover,
    /// An `http://` or `https://` URL: the `url` channel posts codes there.
    Url(String),
    /// `plugin:<name>`: a `[[channel]]`.
    Plugin(String),
    /// Anything else: the name of an `[[sms_gateway]]`.
    Gateway(String),
}

impl TokenDelivery {
    pub fn parse(value: &str) -> Self {
        match value {
            "smtp" | "email" => Self::Email,
            "pushover" => Self::Pushover,
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Self::Url(url.to_string())
            }
            other => match other.strip_prefix("plugin:") {
                Some(channel) => Self::Plugin(channel.to_string()),
                None => Self::Gateway(other.to_string()),
            },
        }
    }

    /// The channel it names, which is also the default 2FA method.
    pub fn channel_name(&self) -> &str {
        match self {
            Self::Email => "email",
            Self::Pushover => "pushover",
            Self::Url(_) => "url",
            Self::Plugin(name) | Self::Gateway(name) => name,
        }
    }
}

impl<'de> Deserialize<'de> for TokenDelivery {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self::parse(&s))
    }
}
