//! postern plugin: Telegram Bot API `sendMessage`.
//!
//! Request (docs: <https://core.telegram.org/bots/api#sendmessage>):
//!
//! ```text
//! POST {api_base}/bot{bot_token}/sendMessage
//! Content-Type: application/json
//!
//! {"chat_id": <send-to>, "text": "<message.text>"}
//! ```
//!
//! `chat_id` is a JSON integer for a numeric chat id, a string for
//! `@channelusername`. Success is `200 {"ok":true,"result":{"message_id":N,…}}`
//! and N becomes the provider-id. Failure is `{"ok":false,"error_code":E,
//! "description":"…"}`: 401/404 (bad token) → misconfigured, 429/5xx →
//! unavailable, other 4xx (e.g. 400 "chat not found", 403 "bot was blocked")
//! → rejected.
//!
//! Config: `api_base` (default `https://api.telegram.org`), secret `bot_token`.
//! Send-to: an integer chat id (`-?\d+`) or `@channelusername`.

use postern_plugin_sdk::serde_json::{Value, json};
use postern_plugin_sdk::{
    DeliveryError, Guest, Message, PluginInfo, Receipt, classify_status, config, config_key, http,
    snippet, url_join,
};

const DEFAULT_API_BASE: &str = "https://api.telegram.org";

struct Telegram;

impl Guest for Telegram {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "telegram".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Sends the code as a Telegram message from a bot (Bot API sendMessage)"
                .to_string(),
            config_keys: vec![
                config_key(
                    "api_base",
                    false,
                    false,
                    "Bot API base URL (default https://api.telegram.org)",
                ),
                config_key(
                    "bot_token",
                    true,
                    true,
                    "Bot token from @BotFather (123456:ABC-...)",
                ),
            ],
        }
    }

    fn validate_recipient(send_to: String) -> Result<(), String> {
        if is_chat_id(&send_to) || is_channel_username(&send_to) {
            Ok(())
        } else {
            Err(
                "expected a numeric Telegram chat id (e.g. 123456789 or -1001234567890) \
                 or a public channel username (@channelname)"
                    .to_string(),
            )
        }
    }

    fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
        Self::validate_recipient(message.send_to.clone())
            .map_err(DeliveryError::InvalidRecipient)?;
        let token = config::required("bot_token")?;
        if !is_bot_token(&token) {
            return Err(DeliveryError::Misconfigured(
                "config key `bot_token` is not a bot token (<digits>:<secret>)".to_string(),
            ));
        }
        let base = config::api_base(Some(DEFAULT_API_BASE))?;
        let chat_id = match message.send_to.parse::<i64>() {
            Ok(id) => json!(id),
            Err(_) => json!(message.send_to),
        };
        let body = json!({ "chat_id": chat_id, "text": message.text });
        let resp = http::post_json(
            &url_join(&base, &format!("bot{token}/sendMessage")),
            &body,
            &[],
        )?;

        postern_plugin_sdk::info!("Telegram answered HTTP {}", resp.status);
        let parsed = resp.json().unwrap_or(Value::Null);
        if resp.is_success() && parsed["ok"] == json!(true) {
            let id = parsed["result"]["message_id"]
                .as_i64()
                .map(|n| n.to_string());
            return Ok(Receipt { provider_id: id });
        }
        let detail = match parsed["description"].as_str() {
            Some(d) => snippet(d, 200),
            None => resp.snippet(),
        };
        if matches!(resp.status, 401 | 404) {
            return Err(DeliveryError::Misconfigured(format!(
                "Telegram refused the bot token or URL (HTTP {}): {detail}",
                resp.status
            )));
        }
        classify_status(resp.status, &detail)?;
        // A 2xx without `"ok": true` is not a delivery.
        Err(DeliveryError::Rejected(format!(
            "unexpected Telegram answer: {detail}"
        )))
    }
}

fn is_chat_id(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    (1..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `@` + 5..=32 of `[A-Za-z0-9_]`, starting with a letter.
fn is_channel_username(s: &str) -> bool {
    let Some(name) = s.strip_prefix('@') else {
        return false;
    };
    (5..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `<bot id>:<secret>`; nothing that could change the URL path.
fn is_bot_token(s: &str) -> bool {
    let Some((id, secret)) = s.split_once(':') else {
        return false;
    };
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && !secret.is_empty()
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

postern_plugin_sdk::export!(Telegram);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_and_token() {
        for ok in ["123456789", "-1001234567890", "@my_channel"] {
            assert!(Telegram::validate_recipient(ok.to_string()).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-",
            "12a",
            "@abc",
            "@1channel",
            "@chan-nel",
            "chat",
            "+123",
        ] {
            assert!(
                Telegram::validate_recipient(bad.to_string()).is_err(),
                "{bad}"
            );
        }
        assert!(is_bot_token("123456:ABC-def_123"));
        assert!(!is_bot_token("123456:ABC/../x"));
        assert!(!is_bot_token("abc:def"));
        assert!(!is_bot_token("123456"));
    }
}
