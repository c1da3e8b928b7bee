//! postern plugin: SMS through sipgate's XML-RPC API (`samurai.SessionInitiate`),
//! the interface privacyIDEA's sipgate provider uses.
//!
//! Request (docs: sipgate XML-RPC API, "samurai.SessionInitiate", see
//! <https://www.sipgate.de/> developer archive; method per privacyIDEA's
//! `SipgateSMSProvider`):
//!
//! ```text
//! POST {api_base}/RPC2
//! Authorization: Basic base64({username}:{password})
//! Content-Type: text/xml
//!
//! <?xml version="1.0" encoding="UTF-8"?>
//! <methodCall><methodName>samurai.SessionInitiate</methodName><params><param><value><struct>
//!   <member><name>RemoteUri</name><value><string>sip:{number without +}@{sip_domain}</string></value></member>
//!   <member><name>TOS</name><value><string>text</string></value></member>
//!   <member><name>Content</name><value><string>{message.text, XML-escaped}</string></value></member>
//! </struct></value></param></params></methodCall>
//! ```
//!
//! The answer is an XML-RPC struct with `StatusCode` (200 = accepted) and,
//! when present, `SessionID` (→ provider-id). An XML-RPC `<fault>` or another
//! `StatusCode` → rejected; HTTP 401 → misconfigured; HTTP 408/429/5xx →
//! unavailable; other HTTP 4xx → rejected.
//!
//! Config: `api_base` (default `https://samurai.sipgate.net`), `username`,
//! secret `password`, `sip_domain` (default `sipgate.net`).
//! Send-to: an E.164 number (`+4915123456789`) or its digits (`4915123456789`).

use postern_plugin_sdk::{
    DeliveryError, Guest, Message, PluginInfo, Receipt, classify_status, config, config_key, http,
    is_e164, snippet, url_join, xml_escape,
};

const DEFAULT_API_BASE: &str = "https://samurai.sipgate.net";

struct Sipgate;

impl Guest for Sipgate {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "sipgate".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description:
                "Sends the code as an SMS through sipgate (XML-RPC samurai.SessionInitiate)"
                    .to_string(),
            config_keys: vec![
                config_key(
                    "api_base",
                    false,
                    false,
                    "XML-RPC base URL (default https://samurai.sipgate.net)",
                ),
                config_key("username", true, false, "sipgate account user name"),
                config_key("password", true, true, "sipgate account password"),
                config_key(
                    "sip_domain",
                    false,
                    false,
                    "Domain of the RemoteUri (default sipgate.net)",
                ),
            ],
        }
    }

    fn validate_recipient(send_to: String) -> Result<(), String> {
        if is_e164(&send_to) || is_e164(&format!("+{send_to}")) {
            Ok(())
        } else {
            Err(
                "expected an international phone number: E.164 (+4915123456789) or the same \
                 digits without + (4915123456789)"
                    .to_string(),
            )
        }
    }

    fn deliver(message: Message) -> Result<Receipt, DeliveryError> {
        Self::validate_recipient(message.send_to.clone())
            .map_err(DeliveryError::InvalidRecipient)?;
        let user = config::required("username")?;
        let password = config::required("password")?;
        let domain = config::get_or("sip_domain", "sipgate.net");
        let base = config::api_base(Some(DEFAULT_API_BASE))?;
        let number = message.send_to.trim_start_matches('+');
        let member = |name: &str, value: &str| {
            format!(
                "<member><name>{name}</name><value><string>{}</string></value></member>",
                xml_escape(value)
            )
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodCall><methodName>samurai.SessionInitiate\
             </methodName><params><param><value><struct>{}{}{}</struct></value></param></params></methodCall>",
            member("RemoteUri", &format!("sip:{number}@{domain}")),
            member("TOS", "text"),
            member("Content", &message.text),
        );
        let auth = http::basic_auth(&user, &password);
        let resp = http::post_body(
            &url_join(&base, "RPC2"),
            "text/xml",
            body.into_bytes(),
            &[("authorization", &auth)],
        )?;
        postern_plugin_sdk::info!("sipgate answered HTTP {}", resp.status);
        if resp.status == 401 {
            return Err(DeliveryError::Misconfigured(
                "sipgate refused the credentials (HTTP 401)".to_string(),
            ));
        }
        classify_status(resp.status, &resp.snippet())?;

        let xml = resp.text();
        if xml.contains("<fault>") {
            let code = member_value(&xml, "faultCode").unwrap_or_default();
            let text = member_value(&xml, "faultString").unwrap_or_default();
            return Err(DeliveryError::Rejected(format!(
                "sipgate fault {code}: {}",
                snippet(&text, 200)
            )));
        }
        match member_value(&xml, "StatusCode").as_deref() {
            Some("200") => Ok(Receipt {
                provider_id: member_value(&xml, "SessionID"),
            }),
            status => {
                let text = member_value(&xml, "StatusString").unwrap_or_default();
                Err(DeliveryError::Rejected(format!(
                    "sipgate status {}: {}",
                    status.unwrap_or("missing"),
                    snippet(&text, 200)
                )))
            }
        }
    }
}

/// The text of the `<value>` of the struct member `name`, with any inner type
/// tag (`<i4>`, `<int>`, `<string>`) removed and entities decoded.
fn member_value(xml: &str, name: &str) -> Option<String> {
    let after_name = xml.split_once(&format!("<name>{name}</name>"))?.1;
    let value = after_name
        .split_once("<value>")?
        .1
        .split_once("</value>")?
        .0
        .trim();
    let inner = match value.strip_prefix('<') {
        Some(tagged) => tagged
            .split_once('>')?
            .1
            .split_once('<')
            .map_or("", |(t, _)| t),
        None => value,
    };
    let decoded = inner
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(decoded.trim().to_string())
}

postern_plugin_sdk::export!(Sipgate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xml_rpc_answers() {
        let ok = "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\n\
                  <member><name>SessionID</name><value><string>abc&amp;1</string></value></member>\n\
                  <member><name>StatusCode</name><value><i4>200</i4></value></member>\n\
                  <member><name>StatusString</name><value><string>Method success</string></value></member>\n\
                  </struct></value></param></params></methodResponse>";
        assert_eq!(member_value(ok, "StatusCode").as_deref(), Some("200"));
        assert_eq!(member_value(ok, "SessionID").as_deref(), Some("abc&1"));
        assert_eq!(member_value(ok, "Missing"), None);
        let fault = "<methodResponse><fault><value><struct><member><name>faultCode</name>\
                     <value><int>401</int></value></member><member><name>faultString</name>\
                     <value>Unauthorized</value></member></struct></value></fault></methodResponse>";
        assert_eq!(member_value(fault, "faultCode").as_deref(), Some("401"));
        assert_eq!(
            member_value(fault, "faultString").as_deref(),
            Some("Unauthorized")
        );
    }

    #[test]
    fn recipients() {
        for ok in ["+4915123456789", "4915123456789"] {
            assert!(Sipgate::validate_recipient(ok.to_string()).is_ok(), "{ok}");
        }
        for bad in ["", "+", "015123456789", "+49 151", "sip:49@x"] {
            assert!(
                Sipgate::validate_recipient(bad.to_string()).is_err(),
                "{bad}"
            );
        }
    }
}
