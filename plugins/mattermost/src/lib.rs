//! postern plugin: Mattermost incoming webhook.
//!
//! Request (docs: <https://developers.mattermost.com/integrate/webhooks/incoming/>):
//!
//! ```text
//! POST {api_base}/hooks/{send-to}
//! Content-Type: application/json
//!
//! {"text": "<message.text>", "username": "<username>"}   (username only when configured)
//! ```
//!
//! Mattermost answers `200 ok`. Errors are JSON `{"id":"…","message":"…",
//! "status_code":N}` (e.g. 400 "Invalid webhook"); 429/5xx → unavailable,
//! other 4xx → rejected. No message id is returned.
//!
//! Config: `api_base` (required: Mattermost is self-hosted, e.g.
//! `https://chat.example.com`), `username` (optional display-name override;
//! the server must allow overrides).
//! Send-to: the webhook key, the last path segment of the hook URL
//! (`[a-z0-9]{10,64}`; Mattermost generates 26 characters).

use postern_plugin_sdk::serde_json::{Value, json};
use postern_plugin_sdk::{
    DeliveryError, Guest, Message, PluginInfo, Receipt, classify_status, config, config_key, http,
    snippet, url_join,
};

struct Mattermost;

impl Guest for Mattermost {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "mattermost".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Posts the code to a Mattermost channel through an incoming webhook"
                .to_string(),
            config_keys: vec![
                config_key(
                    "api_base",
                    true,
                    false,
                    "Mattermost server URL, e.g. https://chat.example.com",
                ),
                config_key(
                    "username",
                    false,
                    false,
                    "Display name for the post (needs override enabled)",
                ),
            ],
        }
    }

    fn validate_recipient(send_to: String) -> Result<(), String> {
        let ok = (10..=64).contains(&send_to.len())
            && send_to
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(())
        } else {
            Err(
                "expected a Mattermost incoming-webhook key: the last part of \
                 https://<server>/hooks/<key>, 10 to 64 lowercase letters and digits"
                    .to_string(),
            )
        }
    }

    fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
        Self::validate_recipient(message.send_to.clone())
            .map_err(DeliveryError::InvalidRecipient)?;
        let base = config::api_base(None)?;
        let mut body = json!({ "text": message.text });
        if let Some(name) = config::get("username") {
            body["username"] = json!(name);
        }
        let url = url_join(&base, &format!("hooks/{}", message.send_to));
        let resp = http::post_json(&url, &body, &[])?;
        postern_plugin_sdk::info!("Mattermost answered HTTP {}", resp.status);
        let parsed = resp.json().unwrap_or(Value::Null);
        let detail = match parsed["message"].as_str() {
            Some(m) => snippet(m, 200),
            None => resp.snippet(),
        };
        classify_status(resp.status, &detail)?;
        Ok(Receipt { provider_id: None })
    }
}

postern_plugin_sdk::export!(Mattermost);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_keys() {
        assert!(Mattermost::validate_recipient("xxxxxxxxxxxxxxxxxxxxxxxxxx".to_string()).is_ok());
        for bad in ["", "short", "ABCDEFGHIJKL", "abcdefghij/k", &"a".repeat(65)] {
            assert!(
                Mattermost::validate_recipient(bad.to_string()).is_err(),
                "{bad}"
            );
        }
    }
}
