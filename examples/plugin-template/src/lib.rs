//! A minimal postern delivery plugin: posts the code to a JSON webhook.
//!
//! Request:
//!
//! ```text
//! POST {url}
//! Content-Type: application/json
//! Authorization: Bearer {token}        (only when the secret `token` is set)
//!
//! {"to": "<send-to>", "text": "<message.text>", "code": "<code>", "ttl_seconds": N}
//! ```
//!
//! Any 2xx is a delivery; a JSON answer with a string `id` gives the
//! provider-id. 408/429/5xx and network errors are retried (`unavailable`),
//! other statuses are permanent (`rejected`).
//!
//! Config: `url` (required), secret `token` (optional).
//! Send-to: 1 to 128 of `A-Z a-z 0-9 . _ @ + -`.

use postern_plugin_sdk::serde_json::{Value, json};
use postern_plugin_sdk::{
    DeliveryError, Guest, Message, PluginInfo, Receipt, config, config_key, http,
};

struct MyPlugin;

impl Guest for MyPlugin {
    /// Shown by `postern plugin check` and the upload API.
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "my-plugin".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Posts the code to a JSON webhook".to_string(),
            config_keys: vec![
                config_key("url", true, false, "Webhook URL (http:// or https://)"),
                config_key("token", false, true, "Bearer token sent in Authorization"),
            ],
        }
    }

    /// Called at enrolment: a strict check, and an error that says what is expected.
    fn validate_recipient(send_to: String) -> Result<(), String> {
        let ok = (1..=128).contains(&send_to.len())
            && send_to
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
        if ok {
            Ok(())
        } else {
            Err("expected 1 to 128 letters, digits or . _ @ + -".to_string())
        }
    }

    /// One delivery attempt. Never log or return secrets, URLs or the code.
    fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
        Self::validate_recipient(message.send_to.clone())
            .map_err(DeliveryError::InvalidRecipient)?;
        let url = config::required("url")?;
        let auth = config::get("token").map(|t| http::bearer(&t));
        let mut headers = Vec::new();
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        let body = json!({
            "to": message.send_to,
            "text": message.text,
            "code": message.code,
            "ttl_seconds": message.ttl_seconds,
        });
        let resp = http::post_json(&url, &body, &headers)?; // network error → unavailable
        resp.check()?; // 408/429/5xx → unavailable, other non-2xx → rejected
        let id = resp.json().unwrap_or(Value::Null)["id"]
            .as_str()
            .map(str::to_string);
        postern_plugin_sdk::info!("webhook answered HTTP {}", resp.status);
        Ok(Receipt { provider_id: id })
    }
}

postern_plugin_sdk::export!(MyPlugin);
