//! For `postern plugin test`: every admitted exchange recorded (method,
//! where, the path with tokens redacted, body size, status, time), and
//! with `--replay` answered from recorded responses instead of the
//! network. Servers never set these.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use wasmtime_wasi_http::Error as HttpError;

use super::admit::Target;
use super::connect::Sent;

/// One outbound request and how it ended.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
    /// Path and query, `/bot…` tokens and known secrets redacted.
    pub path: String,
    pub body_bytes: usize,
    /// The response status, or why there was none.
    pub result: Result<u16, String>,
    pub elapsed: Duration,
    pub replayed: bool,
}

/// A recorded response: `{"status": 200, "headers": {…}, "body": "…" | {…}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Recorded {
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: serde_json::Value,
}

/// A replay file: `{"responses": [Recorded, …]}`, answered in order.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayFile {
    pub responses: Vec<Recorded>,
}

/// What the author tools add to a channel's egress.
#[derive(Default)]
pub struct Tools {
    exchanges: Mutex<Vec<Exchange>>,
    replay: Option<Mutex<VecDeque<Recorded>>>,
    /// Values redacted wherever a path shows them (the `--secret` values).
    secrets: Vec<String>,
}

impl Tools {
    pub fn new(replay: Option<ReplayFile>, secrets: Vec<String>) -> Self {
        Self {
            exchanges: Mutex::new(Vec::new()),
            replay: replay.map(|r| Mutex::new(r.responses.into())),
            secrets,
        }
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub(super) fn is_replay(&self) -> bool {
        self.replay.is_some()
    }

    pub(super) fn exchange(
        &self,
        parts: &http::request::Parts,
        t: &Target,
        body: usize,
    ) -> Exchange {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        Exchange {
            method: parts.method.to_string(),
            scheme: if t.https { "https" } else { "http" },
            host: t.host.clone(),
            port: t.port,
            path: redact(path, &self.secrets),
            body_bytes: body,
            result: Err("no answer".into()),
            elapsed: Duration::ZERO,
            replayed: self.is_replay(),
        }
    }

    pub(super) fn record(&self, x: Exchange) {
        if let Ok(mut all) = self.exchanges.lock() {
            all.push(x);
        }
    }

    /// The next recorded response; none left is a refused connection.
    pub(super) fn replayed(&self) -> Result<Sent, HttpError> {
        let next = self
            .replay
            .as_ref()
            .and_then(|q| q.lock().ok().and_then(|mut q| q.pop_front()));
        let Some(r) = next else {
            return Err(HttpError::ConnectionRefused);
        };
        let body = match r.body {
            serde_json::Value::String(s) => Bytes::from(s),
            serde_json::Value::Null => Bytes::new(),
            other => Bytes::from(other.to_string()),
        };
        let mut resp = http::Response::builder().status(r.status);
        for (k, v) in &r.headers {
            resp = resp.header(k, v);
        }
        let body = Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync();
        let resp = resp.body(body).map_err(|_| HttpError::HttpProtocolError)?;
        Ok((resp, Box::new(async { Ok(()) })))
    }
}

/// The path with `/bot<token>` segments and known secrets replaced.
pub fn redact(path: &str, secrets: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    for (i, seg) in path.split('/').enumerate() {
        let is_token = i > 0
            && seg.len() > 3
            && seg[..3].eq_ignore_ascii_case("bot")
            && seg[3..].bytes().any(|b| b.is_ascii_digit());
        out.push(if is_token {
            "bot<redacted>".into()
        } else {
            seg.to_string()
        });
    }
    let mut path = out.join("/");
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        path = path.replace(s.as_str(), "<redacted>");
    }
    path
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn tokens_in_paths_are_redacted() {
        assert_eq!(
            redact("/bot123:ABC/sendMessage?x=1", &[]),
            "/bot<redacted>/sendMessage?x=1"
        );
        assert_eq!(
            redact("/hooks/2fa?key=s3cret-k", &["s3cret-k".into()]),
            "/hooks/2fa?key=<redacted>"
        );
        assert_eq!(redact("/bots/list", &[]), "/bots/list");
        assert_eq!(redact("/about", &[]), "/about");
    }
}
