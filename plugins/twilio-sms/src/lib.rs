//! postern plugin: SMS through Twilio Programmable Messaging.
//!
//! Request (docs: <https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource>):
//!
//! ```text
//! POST {api_base}/2010-04-01/Accounts/{account_sid}/Messages.json
//! Authorization: Basic base64({account_sid}:{auth_token})
//! Content-Type: application/x-www-form-urlencoded
//!
//! To=<send-to>&From=<from>&Body=<message.text>
//! ```
//!
//! (`MessagingServiceSid=<messaging_service_sid>` replaces `From` when that key
//! is configured.) Success is `201` with JSON `{"sid":"SM…",…}`; the sid
//! becomes the provider-id. Errors are JSON `{"code":N,"message":"…",
//! "status":S}`: 401 → misconfigured; codes 21211/21214/21610/21612/21614
//! (invalid, unreachable, opted-out or non-mobile `To`) → invalid-recipient;
//! 429/5xx → unavailable; other 4xx → rejected.
//!
//! Config: `api_base` (default `https://api.twilio.com`), `account_sid`,
//! secret `auth_token`, and `from` (an E.164 number or alphanumeric sender)
//! or `messaging_service_sid`.
//! Send-to: an E.164 number (`+` and 2 to 15 digits).

use postern_plugin_sdk::serde_json::Value;
use postern_plugin_sdk::{
    DeliveryError, Guest, Message, PluginInfo, Receipt, classify_status, config, config_key, http,
    is_e164, redact, snippet, url_join,
};

const DEFAULT_API_BASE: &str = "https://api.twilio.com";

struct TwilioSms;

impl Guest for TwilioSms {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "twilio-sms".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Sends the code as an SMS through Twilio".to_string(),
            config_keys: vec![
                config_key(
                    "api_base",
                    false,
                    false,
                    "API base URL (default https://api.twilio.com)",
                ),
                config_key(
                    "account_sid",
                    true,
                    false,
                    "Account SID (AC + 32 hex digits)",
                ),
                config_key("auth_token", true, true, "Auth token of the account"),
                config_key(
                    "from",
                    false,
                    false,
                    "Sender number (E.164) or alphanumeric sender id",
                ),
                config_key(
                    "messaging_service_sid",
                    false,
                    false,
                    "Messaging service SID (MG…), used instead of `from` when set",
                ),
            ],
        }
    }

    fn validate_recipient(send_to: String) -> Result<(), String> {
        if is_e164(&send_to) {
            Ok(())
        } else {
            Err(
                "expected an E.164 phone number: + then country code and number, digits only, \
                 e.g. +14155550123"
                    .to_string(),
            )
        }
    }

    fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
        Self::validate_recipient(message.send_to.clone())
            .map_err(DeliveryError::InvalidRecipient)?;
        let sid = config::required("account_sid")?;
        if !(sid.len() == 34
            && sid.starts_with("AC")
            && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(DeliveryError::Misconfigured(
                "config key `account_sid` must be AC followed by 32 hex digits".to_string(),
            ));
        }
        let token = config::required("auth_token")?;
        let base = config::api_base(Some(DEFAULT_API_BASE))?;
        let sender = match (config::get("messaging_service_sid"), config::get("from")) {
            (Some(mg), _) => ("MessagingServiceSid", mg),
            (None, Some(from)) => ("From", from),
            (None, None) => {
                return Err(DeliveryError::Misconfigured(
                    "missing config key `from` (or `messaging_service_sid`)".to_string(),
                ));
            }
        };
        let url = url_join(&base, &format!("2010-04-01/Accounts/{sid}/Messages.json"));
        let fields = [
            ("To", message.send_to.as_str()),
            (sender.0, sender.1.as_str()),
            ("Body", message.text.as_str()),
        ];
        let auth = http::basic_auth(&sid, &token);
        let resp = http::post_form(&url, &fields, &[("authorization", &auth)])?;

        postern_plugin_sdk::info!("Twilio answered HTTP {}", resp.status);
        let parsed = resp.json().unwrap_or(Value::Null);
        if resp.is_success() {
            let id = parsed["sid"].as_str().map(str::to_string);
            return Ok(Receipt { provider_id: id });
        }
        let code = parsed["code"].as_u64().unwrap_or(0);
        // Twilio's messages quote the number; keep it out of delivery records.
        let detail = match parsed["message"].as_str() {
            Some(m) => format!(
                "Twilio error {code}: {}",
                snippet(&redact(m, &[&message.send_to]), 200)
            ),
            None => resp.snippet(),
        };
        match (resp.status, code) {
            (401, _) => Err(DeliveryError::Misconfigured(format!("HTTP 401: {detail}"))),
            (_, 21211 | 21214 | 21610 | 21612 | 21614) => {
                Err(DeliveryError::InvalidRecipient(detail))
            }
            _ => classify_status(resp.status, &detail).map(|()| Receipt { provider_id: None }),
        }
    }
}

postern_plugin_sdk::export!(TwilioSms);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients() {
        assert!(TwilioSms::validate_recipient("+14155550123".to_string()).is_ok());
        for bad in ["", "14155550123", "+1 415", "+0415"] {
            assert!(
                TwilioSms::validate_recipient(bad.to_string()).is_err(),
                "{bad}"
            );
        }
    }
}
