//! postern plugin: ntfy push notification (ntfy.sh or a self-hosted server).
//!
//! Request (docs: <https://docs.ntfy.sh/publish/>):
//!
//! ```text
//! POST {api_base}/{topic}
//! Content-Type: text/plain; charset=utf-8
//! Title: <title>              (RFC 2047 encoded when not ASCII)
//! Priority: <priority>        (default high)
//! Tags: key
//! Authorization: Bearer <access_token>   (only when configured)
//!
//! <message.text>
//! ```
//!
//! Success is `200` with JSON `{"id":"…","event":"message",…}`; the id becomes
//! the provider-id. Errors are JSON `{"code":40301,"http":403,"error":"…"}`:
//! 429/5xx → unavailable, 401/403 → misconfigured (token), other 4xx → rejected.
//!
//! Config: `api_base` (default `https://ntfy.sh`), `title` (default
//! "Verification code"), `priority` (default `high`), secret `access_token`.
//! Send-to: the topic name, `[-_A-Za-z0-9]{1,64}`.

use postern_plugin_sdk::serde_json::Value;
use postern_plugin_sdk::{
    DeliveryError, Guest, Message, PluginInfo, Receipt, base64, classify_status, config,
    config_key, http, snippet, url_join,
};

const DEFAULT_API_BASE: &str = "https://ntfy.sh";

struct Ntfy;

impl Guest for Ntfy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "ntfy".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Pushes the code to an ntfy topic".to_string(),
            config_keys: vec![
                config_key(
                    "api_base",
                    false,
                    false,
                    "ntfy server URL (default https://ntfy.sh)",
                ),
                config_key(
                    "title",
                    false,
                    false,
                    "Notification title (default \"Verification code\")",
                ),
                config_key(
                    "priority",
                    false,
                    false,
                    "min, low, default, high or urgent (default high)",
                ),
                config_key(
                    "access_token",
                    false,
                    true,
                    "Access token for protected topics",
                ),
            ],
        }
    }

    fn validate_recipient(send_to: String) -> Result<(), String> {
        let ok = (1..=64).contains(&send_to.len())
            && send_to
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err("expected an ntfy topic name: 1 to 64 letters, digits, - or _".to_string())
        }
    }

    fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
        Self::validate_recipient(message.send_to.clone())
            .map_err(DeliveryError::InvalidRecipient)?;
        let base = config::api_base(Some(DEFAULT_API_BASE))?;
        let title = header_text(&config::get_or("title", "Verification code"));
        let priority = config::get_or("priority", "high");
        if !matches!(
            priority.as_str(),
            "min" | "low" | "default" | "high" | "urgent" | "1" | "2" | "3" | "4" | "5"
        ) {
            return Err(DeliveryError::Misconfigured(
                "config key `priority` must be min, low, default, high, urgent or 1..5".to_string(),
            ));
        }
        let auth = config::get("access_token").map(|t| http::bearer(&t));
        let mut headers = vec![
            ("title", title.as_str()),
            ("priority", priority.as_str()),
            ("tags", "key"),
        ];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        let url = url_join(&base, &message.send_to);
        let resp = http::post_body(
            &url,
            "text/plain; charset=utf-8",
            message.text.into_bytes(),
            &headers,
        )?;

        postern_plugin_sdk::info!("ntfy answered HTTP {}", resp.status);
        let parsed = resp.json().unwrap_or(Value::Null);
        let detail = match parsed["error"].as_str() {
            Some(e) => snippet(e, 200),
            None => resp.snippet(),
        };
        if matches!(resp.status, 401 | 403) {
            return Err(DeliveryError::Misconfigured(format!(
                "ntfy refused access to the topic (HTTP {}): {detail}",
                resp.status
            )));
        }
        classify_status(resp.status, &detail)?;
        Ok(Receipt {
            provider_id: parsed["id"].as_str().map(str::to_string),
        })
    }
}

/// Printable ASCII stays as is; anything else becomes an RFC 2047
/// `=?UTF-8?B?…?=` encoded word, which ntfy decodes.
fn header_text(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        s.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", base64(s.as_bytes()))
    }
}

postern_plugin_sdk::export!(Ntfy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_titles() {
        assert!(Ntfy::validate_recipient("my_topic-42".to_string()).is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(65)] {
            assert!(Ntfy::validate_recipient(bad.to_string()).is_err(), "{bad}");
        }
        assert_eq!(header_text("Verification code"), "Verification code");
        assert_eq!(header_text("Bestätigung"), "=?UTF-8?B?QmVzdMOkdGlndW5n?=");
    }
}
