//! privacyIDEA's SMS gateway table, shared by the three SMS kinds: one
//! `[[sms_gateway]]` holds the keys of `kind = "http"` ([`super::sms_http`]),
//! of `kind = "smtp"` ([`super::sms_smtp`]) and of `kind = "smpp"`
//! ([`super::sms_smpp`]), and all rewrite phone numbers with its `regexp`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::lenient::lenient_opt_string;
use crate::delivery::recipient::SendToType;
use crate::messages::TemplatesSpec;
use crate::secret::Secret;

/// One `[[sms_gateway]]`: privacyIDEA's HTTP provider (`kind = "http"`), its
/// SMTP provider (`kind = "smtp"`, mail to an SMS gateway through `[smtp]`)
/// or its SMPP provider (`kind = "smpp"`, a bound session to an SMSC).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmsGatewayConfig {
    pub name: String,
    pub kind: String,
    // kind = "http"
    pub url: String,
    pub http_method: String,
    pub send_data_as_json: bool,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub return_success: String,
    pub return_fail: String,
    pub check_ssl: bool,
    pub timeout_seconds: u64,
    pub proxy: String,
    pub regexp: String,
    pub parameters: BTreeMap<String, toml::Value>,
    pub options: BTreeMap<String, toml::Value>,
    pub headers: BTreeMap<String, String>,
    // kind = "smtp"
    pub mailto: String,
    pub subject: String,
    pub body: String,
    // kind = "smpp" (`password`, `timeout_seconds` and `regexp` too)
    pub smsc_host: String,
    pub smsc_port: u16,
    pub system_id: String,
    pub system_type: String,
    pub s_addr: String,
    pub s_addr_ton: u8,
    pub s_addr_npi: u8,
    pub d_addr_ton: u8,
    pub d_addr_npi: u8,
    pub tls: bool,
    pub window: u32,
    pub enquire_link_seconds: u64,
    // all
    pub send_to_type: Option<SendToType>,
    pub send_to_regex: Option<String>,
    pub fallback: Option<String>,
    /// Own messages per locale (`crate::messages::TemplatesSpec`).
    pub templates: TemplatesSpec,
}

impl Default for SmsGatewayConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: String::new(),
            url: String::new(),
            http_method: "GET".into(),
            send_data_as_json: false,
            username: None,
            password: None,
            return_success: String::new(),
            return_fail: String::new(),
            check_ssl: true,
            timeout_seconds: 3,
            proxy: String::new(),
            regexp: String::new(),
            parameters: BTreeMap::new(),
            options: BTreeMap::new(),
            headers: BTreeMap::new(),
            mailto: String::new(),
            subject: "{phone}".into(),
            body: "{otp}".into(),
            smsc_host: String::new(),
            smsc_port: 2775,
            system_id: String::new(),
            system_type: String::new(),
            s_addr: String::new(),
            s_addr_ton: 0,
            s_addr_npi: 0,
            d_addr_ton: 1,
            d_addr_npi: 1,
            tls: false,
            window: 10,
            enquire_link_seconds: 30,
            send_to_type: None,
            send_to_regex: None,
            fallback: None,
            templates: TemplatesSpec::default(),
        }
    }
}

/// privacyIDEA's `REGEXP` phone rewrite, written `/pattern/replacement/`.
#[derive(Debug, Clone)]
pub struct PhoneRewrite {
    pub pattern: regex::Regex,
    pub replacement: String,
}

impl PhoneRewrite {
    pub fn parse(spec: &str) -> Result<Self, String> {
        // Same split as privacyIDEA's `^/(.*)/(.*)/$`: the first group is greedy.
        let inner = spec
            .strip_prefix('/')
            .and_then(|s| s.strip_suffix('/'))
            .ok_or_else(|| "expected the form /pattern/replacement/".to_string())?;
        let (pattern, replacement) = inner
            .rsplit_once('/')
            .ok_or_else(|| "expected the form /pattern/replacement/".to_string())?;
        let pattern = super::recipient::bounded_regex(pattern)
            .map_err(|e| format!("invalid pattern: {e}"))?;
        // Python's `\1` becomes regex's `${1}`.
        let replacement = python_backrefs(replacement);
        Ok(Self {
            pattern,
            replacement,
        })
    }

    /// `None` for an empty `regexp` (no rewrite).
    pub fn parse_optional(spec: &str) -> Result<Option<Self>, String> {
        if spec.is_empty() {
            Ok(None)
        } else {
            Self::parse(spec).map(Some)
        }
    }

    pub fn apply(&self, phone: &str) -> String {
        self.pattern
            .replace_all(phone, self.replacement.as_str())
            .into_owned()
    }
}

fn python_backrefs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().copied().filter(|d| d.is_ascii_digit()) {
                    n.push(d);
                    chars.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_rewrite_follows_privacyidea() {
        let r = PhoneRewrite::parse(r"/[\+/]//").unwrap();
        assert_eq!(r.apply("+49/123"), "49123");
        let r = PhoneRewrite::parse("/^0/0049/").unwrap();
        assert_eq!(r.apply("0123"), "0049123");
        let r = PhoneRewrite::parse(r"/^([0-9]+).*/\1/").unwrap();
        assert_eq!(r.apply("123abc"), "123");
    }
}
