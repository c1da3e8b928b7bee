//! postern plugin: Slack incoming webhook.
//!
//! Request (docs: <https://api.slack.com/messaging/webhooks>):
//!
//! ```text
//! POST {api_base}/services/{send-to}
//! Content-Type: application/json
//!
//! {"text": "<message.text>"}
//! ```
//!
//! Slack answers `200 ok` (plain text). Errors are plain-text codes with a
//! 4xx status (`400 invalid_payload`, `403 action_prohibited`, `404
//! no_service`, `410 channel_is_archived`) → rejected; 429/5xx →
//! unavailable. Slack returns no message id.
//!
//! Config: `api_base` (default `https://hooks.slack.com`).
//! Send-to: the webhook path `T…/B…/secret`, i.e. the part of the webhook URL
//! after `https://hooks.slack.com/services/`.

use postern_plugin_sdk::serde_json::json;
use postern_plugin_sdk::{
    DeliveryError, Guest, Message, PluginInfo, Receipt, config, config_key, http, url_join,
};

const DEFAULT_API_BASE: &str = "https://hooks.slack.com";

struct Slack;

impl Guest for Slack {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "slack".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Posts the code to a Slack channel through an incoming webhook"
                .to_string(),
            config_keys: vec![config_key(
                "api_base",
                false,
                false,
                "Webhook base URL (default https://hooks.slack.com)",
            )],
        }
    }

    fn validate_recipient(send_to: String) -> Result<(), String> {
        if is_webhook_path(&send_to) {
            Ok(())
        } else {
            Err(
                "expected the Slack webhook path T…/B…/secret (the part of the webhook URL \
                 after https://hooks.slack.com/services/), e.g. T0001/B0002/abcdEFGH1234"
                    .to_string(),
            )
        }
    }

    fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
        Self::validate_recipient(message.send_to.clone())
            .map_err(DeliveryError::InvalidRecipient)?;
        let base = config::api_base(Some(DEFAULT_API_BASE))?;
        let url = url_join(&base, &format!("services/{}", message.send_to));
        let resp = http::post_json(&url, &json!({ "text": message.text }), &[])?;
        postern_plugin_sdk::info!("Slack answered HTTP {}", resp.status);
        resp.check()?;
        Ok(Receipt { provider_id: None })
    }
}

/// `T[A-Z0-9]+ / B[A-Z0-9]+ / [A-Za-z0-9]{8,64}`.
fn is_webhook_path(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    let id = |p: &str, first: char| {
        p.len() >= 2
            && p.len() <= 32
            && p.starts_with(first)
            && p.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    parts.len() == 3
        && id(parts[0], 'T')
        && id(parts[1], 'B')
        && (8..=64).contains(&parts[2].len())
        && parts[2].bytes().all(|b| b.is_ascii_alphanumeric())
}

postern_plugin_sdk::export!(Slack);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_paths() {
        assert!(is_webhook_path(
            "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
        ));
        for bad in [
            "",
            "T0/B0",
            "T0001/B0002/short",
            "B0001/T0002/abcdEFGH1234",
            "t0001/B0002/abcdEFGH1234",
            "T0001/B0002/abcdEFGH1234/x",
            "T0001/B0002/abcd-EFGH1234",
        ] {
            assert!(!is_webhook_path(bad), "{bad}");
        }
    }
}
