//! The `sms-http` kind's keys: an `[[sms_gateway]]` with `kind = "http"`
//! (privacyIDEA's HTTP provider), or the `config` of a tenant's `sms-http`
//! channel (same names).

use crate::config::check::{ConfigError, check_http_url, check_range, invalid};
use crate::delivery::sms_gateway::{PhoneRewrite, SmsGatewayConfig};

/// The secrets a tenant's `sms-http` channel takes.
pub const SECRET_KEYS: &[&str] = &["password"];

/// Checks the HTTP provider's keys; keys in errors start with `prefix`
/// (`sms_gateway[0]` in the file, `config` over the API).
pub fn validate(g: &SmsGatewayConfig, prefix: &str) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
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
        url::Url::parse(&g.proxy).map_err(|e| invalid(key("proxy"), format!("not a URL: {e}")))?;
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
    Ok(())
}
