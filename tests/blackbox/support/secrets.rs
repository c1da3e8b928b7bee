//! A suite-wide secrets sweep. Every secret a test hands postern (config
//! passwords and tokens, channel `secrets`, user passwords, tenant API keys)
//! is remembered here. Every server's log is checked against all of them when
//! the server is dropped, and every API response read through the harness
//! (`Postern::get/post`, `api::req`) as it arrives. So each test proves that
//! no server printed or answered any secret handed over so far, not just its
//! own.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::Value;

static KNOWN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Too short a value could turn up in a log by chance.
const MIN_LEN: usize = 8;

pub fn remember(value: &str) {
    if value.len() >= MIN_LEN {
        KNOWN.lock().unwrap().insert(value.to_string());
    }
}

/// Key names whose values are secrets, in config files and API bodies.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "token", "secret", "api_key", "apikey"]
        .iter()
        .any(|s| k.contains(s))
}

/// Remembers the values under secret-looking keys of a TOML config.
pub fn remember_in_config(config: &str) {
    fn walk(v: &toml::Value, secret: bool) {
        match v {
            toml::Value::String(s) if secret => remember(s),
            toml::Value::Table(t) => t.iter().for_each(|(k, v)| walk(v, is_secret_key(k))),
            toml::Value::Array(a) => a.iter().for_each(|v| walk(v, secret)),
            _ => {}
        }
    }
    if let Ok(t) = config.parse::<toml::Table>() {
        walk(&toml::Value::Table(t), false);
    }
}

/// Remembers the values under secret-looking keys (and everything in a
/// `secrets` object) of a JSON request or response body.
pub fn remember_in_json(v: &Value) {
    fn walk(v: &Value, secret: bool) {
        match v {
            Value::String(s) if secret && s != "***" => remember(s),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, v)| walk(v, secret || is_secret_key(k))),
            Value::Array(a) => a.iter().for_each(|v| walk(v, secret)),
            _ => {}
        }
    }
    walk(v, false);
}

/// The first remembered secret that `log` contains.
pub fn leaked_in(log: &str) -> Option<String> {
    KNOWN
        .lock()
        .unwrap()
        .iter()
        .find(|s| log.contains(s.as_str()))
        .cloned()
}

/// Reads a response's JSON body after checking that it holds no secret
/// handed to postern so far (a key shown once is remembered only after the
/// response that shows it).
pub async fn checked_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let url = r.url().path().to_string();
    let text = r.text().await.unwrap_or_default();
    if let Some(secret) = leaked_in(&text) {
        panic!("a secret (`{secret}`) is in the response of {url}: {text}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
