//! `[[sms_gateway]]`: one privacyIDEA provider per table. The table type and
//! the keys of each provider live with its kind (`delivery::sms_http`,
//! `delivery::sms_smtp`); this is the section's own check.

use super::check::{ConfigError, check_send_to, invalid};
use crate::delivery::sms_gateway::SmsGatewayConfig;
use crate::delivery::{sms_http, sms_smpp, sms_smtp};

/// Checks one gateway; keys in errors start with `prefix` (`sms_gateway[0]`).
pub fn validate(g: &SmsGatewayConfig, prefix: &str, has_smtp: bool) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    match g.kind.as_str() {
        "http" => sms_http::config::validate(g, prefix)?,
        "smtp" => sms_smtp::config::validate(g, prefix, has_smtp)?,
        "smpp" => sms_smpp::config::validate(g, prefix)?,
        other => {
            return Err(invalid(
                key("kind"),
                format!("`{other}`: allowed values are http, smtp, smpp"),
            ));
        }
    }
    check_send_to(
        &key("send_to_type"),
        &key("send_to_regex"),
        g.send_to_type,
        g.send_to_regex.as_deref(),
    )
}
