//! postern plugin: Discord webhook ("Execute Webhook").
//!
//! Request (docs: <https://discord.com/developers/docs/resources/webhook#execute-webhook>):
//!
//! ```text
//! POST {api_base}/api/webhooks/{id}/{token}?wait=true
//! Content-Type: application/json
//!
//! {"content": "<message.text>", "allowed_mentions": {"parse": []}}
//! ```
//!
//! `wait=true` makes Discord answer `200` with the created message object;
//! its `id` becomes the provider-id. `allowed_mentions` stops the text from
//! pinging anyone. Errors: JSON `{"message":"…","code":N}`; 429/5xx →
//! unavailable, other 4xx (e.g. 404 "Unknown Webhook") → rejected.
//!
//! Config: `api_base` (default `https://discord.com`).
//! Send-to: `{webhook id}/{webhook token}` from the webhook URL
//! `https://discord.com/api/webhooks/{id}/{token}`.

use postern_plugin_sdk::serde_json::{Value, json};
use postern_plugin_sdk::{
    DeliveryError, Guest, Message, PluginInfo, Receipt, classify_status, config, config_key, http,
    snippet, url_join,
};

const DEFAULT_API_BASE: &str = "https://discord.com";

struct Discord;

impl Guest for Discord {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "discord".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Posts the code to a Discord channel through a webhook".to_string(),
            config_keys: vec![config_key(
                "api_base",
                false,
                false,
                "Discord base URL (default https://discord.com)",
            )],
        }
    }

    fn validate_recipient(send_to: String) -> Result<(), String> {
        let ok = match send_to.split_once('/') {
            Some((id, token)) => {
                (1..=20).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && (1..=100).contains(&token.len())
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            }
            None => false,
        };
        if ok {
            Ok(())
        } else {
            Err(
                "expected `<webhook id>/<webhook token>` (numeric id, then the token) from the \
                 webhook URL https://discord.com/api/webhooks/<id>/<token>"
                    .to_string(),
            )
        }
    }

    fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
        Self::validate_recipient(message.send_to.clone())
            .map_err(DeliveryError::InvalidRecipient)?;
        let base = config::api_base(Some(DEFAULT_API_BASE))?;
        let url = url_join(
            &base,
            &format!("api/webhooks/{}?wait=true", message.send_to),
        );
        let body = json!({ "content": message.text, "allowed_mentions": { "parse": [] } });
        let resp = http::post_json(&url, &body, &[])?;
        postern_plugin_sdk::info!("Discord answered HTTP {}", resp.status);
        let parsed = resp.json().unwrap_or(Value::Null);
        let detail = match parsed["message"].as_str() {
            Some(m) => snippet(m, 200),
            None => resp.snippet(),
        };
        classify_status(resp.status, &detail)?;
        let id = parsed["id"].as_str().map(str::to_string);
        Ok(Receipt { provider_id: id })
    }
}

postern_plugin_sdk::export!(Discord);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients() {
        assert!(Discord::validate_recipient("123456789012345678/abc-DEF_123".to_string()).is_ok());
        for bad in [
            "",
            "123",
            "abc/def",
            "123/",
            "/tok",
            "123/tok/x",
            "123/tok?x",
        ] {
            assert!(
                Discord::validate_recipient(bad.to_string()).is_err(),
                "{bad}"
            );
        }
    }
}
