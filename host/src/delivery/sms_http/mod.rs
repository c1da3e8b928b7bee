//! privacyIDEA's HTTP SMS provider: GET query, POST form or POST JSON;
//! fixed `parameters` plus `options` with `{otp}`/`{phone}` tags; basic auth;
//! `return_success` / `return_fail`; `regexp` phone rewrite.
//!
//! Tags: `{otp}` is the code, `{phone}` the send-to after `regexp`, `{text}`
//! the whole message (postern addition; privacyIDEA's `{otp}` is the rendered
//! text, which is what `{text}` gives).
//!
//! [`config`] checks its keys (the table is `super::sms_gateway`'s); this
//! file holds the sender and the tenant adapter.

pub mod config;

/// The kind's wire name.
pub const NAME: &str = "sms-http";

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::http::{self, ClientOptions};
use super::sms_gateway::{PhoneRewrite, SmsGatewayConfig};
use super::spec::{KindAdapter, KindSpec, SpecError, TenantContext, check_url, err};
use super::template::render;
use super::{BuildContext, Message, OutcomeClass, SendOutcome, Sender};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Query,
    Form,
    Json,
}

pub struct SmsHttpSender {
    client: reqwest::Client,
    url: String,
    encoding: Encoding,
    basic_auth: Option<(String, Option<Secret>)>,
    return_success: String,
    return_fail: String,
    rewrite: Option<PhoneRewrite>,
    parameters: BTreeMap<String, serde_json::Value>,
    options: BTreeMap<String, serde_json::Value>,
    headers: HeaderMap,
}

impl SmsHttpSender {
    pub fn new(g: &SmsGatewayConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let to_json = |m: &BTreeMap<String, toml::Value>| -> Result<_, String> {
            m.iter()
                .map(|(k, v)| {
                    serde_json::to_value(v)
                        .map(|j| (k.clone(), j))
                        .map_err(|e| format!("{k}: {e}"))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &g.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("{k}: {e}"))?;
            let mut value = HeaderValue::from_str(v).map_err(|e| format!("{k}: {e}"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let encoding = match (
            g.http_method.to_ascii_uppercase().as_str(),
            g.send_data_as_json,
        ) {
            ("GET", _) => Encoding::Query,
            (_, true) => Encoding::Json,
            _ => Encoding::Form,
        };
        Ok(Self {
            client: http::client(ClientOptions {
                timeout: Duration::from_secs(g.timeout_seconds),
                check_ssl: g.check_ssl,
                proxy: Some(&g.proxy),
                public_only: ctx.public_only,
            })?,
            url: g.url.clone(),
            encoding,
            basic_auth: g
                .username
                .clone()
                .filter(|u| !u.is_empty())
                .map(|u| (u, g.password.clone())),
            return_success: g.return_success.clone(),
            return_fail: g.return_fail.clone(),
            rewrite: PhoneRewrite::parse_optional(&g.regexp)?,
            parameters: to_json(&g.parameters)?,
            options: to_json(&g.options)?,
            headers,
        })
    }

    /// The request fields: parameters as given, then options with tags
    /// replaced. In JSON mode a replaced option that reads as JSON becomes
    /// that JSON (privacyIDEA's `json.loads`), so `["{phone}"]` is a list.
    fn fields(&self, code: &str, phone: &str, text: &str) -> BTreeMap<String, serde_json::Value> {
        let tags = [("otp", code), ("phone", phone), ("text", text)];
        let mut out = self.parameters.clone();
        for (k, v) in &self.options {
            let value = match v {
                serde_json::Value::String(s) => {
                    let replaced = render(s, &tags);
                    if self.encoding == Encoding::Json {
                        serde_json::from_str(&replaced)
                            .unwrap_or(serde_json::Value::String(replaced))
                    } else {
                        serde_json::Value::String(replaced)
                    }
                }
                other => other.clone(),
            };
            out.insert(k.clone(), value);
        }
        out
    }
}

fn as_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Sender for SmsHttpSender {
    fn kind(&self) -> &'static str {
        NAME
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        let phone = match &self.rewrite {
            Some(r) => r.apply(&m.send_to),
            None => m.send_to.clone(),
        };
        let fields = self.fields(&m.code, &phone, &m.text);
        let pairs: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.clone(), as_text(v)))
            .collect();
        let req = match self.encoding {
            Encoding::Query => self.client.get(&self.url).query(&pairs),
            Encoding::Form => self.client.post(&self.url).form(&pairs),
            Encoding::Json => self.client.post(&self.url).json(&fields),
        };
        let mut req = req.headers(self.headers.clone());
        if let Some((user, pass)) = &self.basic_auth {
            req = req.basic_auth(user, pass.as_ref().map(|p| p.expose()));
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return http::error_outcome(e),
        };
        let status = resp.status();
        let body = match http::read_body(resp).await {
            Ok(b) => b,
            Err(o) => return o,
        };
        // privacyIDEA accepts 200, 201 and 202 only.
        if ![200, 201, 202].contains(&status.as_u16()) {
            let mut o = http::status_outcome(status, &body);
            if o.class == OutcomeClass::Delivered {
                o.class = OutcomeClass::Permanent;
            }
            return o;
        }
        if !self.return_success.is_empty() {
            if !body.contains(&self.return_success) {
                return SendOutcome::permanent(format!(
                    "HTTP {status}: reply lacks return_success text: {}",
                    http::snippet(&body)
                ));
            }
        } else if !self.return_fail.is_empty() && body.contains(&self.return_fail) {
            return SendOutcome::permanent(format!(
                "HTTP {status}: reply contains return_fail text: {}",
                http::snippet(&body)
            ));
        }
        SendOutcome::delivered(format!("HTTP {status}: {}", http::snippet(&body)))
    }
}

/// The tenant adapter of the `sms-http` kind.
pub struct Kind;

impl KindAdapter for Kind {
    fn name(&self) -> &'static str {
        NAME
    }

    fn secret_keys(&self) -> Option<&'static [&'static str]> {
        Some(config::SECRET_KEYS)
    }

    fn sender(
        &self,
        spec: &KindSpec,
        ctx: &TenantContext<'_>,
    ) -> Result<Arc<dyn Sender>, SpecError> {
        let g: SmsGatewayConfig = spec.typed(
            self.name(),
            &[
                ("kind", serde_json::Value::String("http".into())),
                ("name", serde_json::Value::String(ctx.name.to_string())),
            ],
        )?;
        config::validate(&g, "config")?;
        check_url(&g.url, "config.url", ctx.build.public_only)?;
        let sender = SmsHttpSender::new(&g, &ctx.build).map_err(|m| err("config", m))?;
        Ok(Arc::new(sender))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(json: bool) -> SmsHttpSender {
        let mut g = SmsGatewayConfig {
            name: "g".into(),
            kind: "http".into(),
            url: "http://127.0.0.1:9/send".into(),
            http_method: if json { "POST" } else { "GET" }.into(),
            send_data_as_json: json,
            ..Default::default()
        };
        g.parameters
            .insert("api_id".into(), toml::Value::String("{otp}".into()));
        g.options
            .insert("text".into(), toml::Value::String("Code {otp}".into()));
        g.options
            .insert("to".into(), toml::Value::String("[\"{phone}\"]".into()));
        g.options
            .insert("otp".into(), toml::Value::String("{otp}".into()));
        SmsHttpSender::new(&g, &BuildContext::file(None)).unwrap()
    }

    #[test]
    fn parameters_are_fixed_and_options_tagged() {
        let f = gateway(false).fields("012345", "4917", "t");
        assert_eq!(f["api_id"], "{otp}");
        assert_eq!(f["text"], "Code 012345");
        assert_eq!(f["to"], "[\"4917\"]");
    }

    #[test]
    fn json_mode_parses_replaced_options_like_privacyidea() {
        let f = gateway(true).fields("012345", "4917", "t");
        assert_eq!(f["to"], serde_json::json!(["4917"]));
        // A leading zero is not a JSON number, so the code stays a string.
        assert_eq!(f["otp"], "012345");
        assert_eq!(f["text"], "Code 012345");
    }
}
