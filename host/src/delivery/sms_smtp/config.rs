//! The `sms-smtp` kind's keys: an `[[sms_gateway]]` with `kind = "smtp"`
//! (privacyIDEA's SMTP provider: `mailto`, `subject`, `body`, `regexp`),
//! sent through `[smtp]`; a tenant's `sms-smtp` channel gives the relay's
//! keys (`smtp` kind) and these together in `config`.

use crate::config::check::{ConfigError, invalid};
use crate::delivery::sms_gateway::{PhoneRewrite, SmsGatewayConfig};

/// The gateway's own keys; the rest of a tenant's `config` is the relay's.
pub const GATEWAY_KEYS: &[&str] = &["mailto", "subject", "body", "regexp"];

/// Checks the SMTP provider's keys; keys in errors start with `prefix`.
pub fn validate(g: &SmsGatewayConfig, prefix: &str, has_smtp: bool) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
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
    Ok(())
}
