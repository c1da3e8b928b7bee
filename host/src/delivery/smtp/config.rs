//! The `smtp` kind's keys: rport's `[smtp]` section, and the `config` of a
//! tenant's `smtp` / `sms-smtp` channel (same names).

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::check::{ConfigError, check_range, invalid};
use crate::config::lenient::lenient_opt_string;
use crate::messages::TemplatesSpec;
use crate::secret::Secret;

/// The secrets a tenant's `smtp` or `sms-smtp` channel takes.
pub const SECRET_KEYS: &[&str] = &["auth_username", "auth_password"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    #[default]
    Opportunistic,
    Required,
    Off,
}

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
    /// rport's `{code}`-tag subject and body: when set, they replace the
    /// built-in messages in every language without an own template.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub subject: Option<String>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub body: Option<String>,
    /// Own messages per locale (`crate::messages::TemplatesSpec`).
    pub templates: TemplatesSpec,
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
            subject: None,
            body: None,
            templates: TemplatesSpec::default(),
        }
    }
}

impl SmtpConfig {
    /// Keys in errors start with `section` (`smtp` in the file, `config`
    /// over the API).
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
