//! What the HTTP senders share: a client that never follows redirects and
//! always times out, and the mapping of HTTP results onto outcome classes.

use std::time::Duration;

use reqwest::StatusCode;

use super::{OutcomeClass, SendOutcome};

/// Bytes of a provider's answer read at most; the rest is ignored.
const MAX_BODY: usize = 64 * 1024;

pub struct ClientOptions<'a> {
    pub timeout: Duration,
    pub check_ssl: bool,
    pub proxy: Option<&'a str>,
    /// Tenant channels: resolve to public addresses only.
    pub public_only: bool,
}

pub fn client(o: ClientOptions<'_>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(o.timeout)
        .connect_timeout(o.timeout.min(Duration::from_secs(5)))
        // Kept-alive connections: one client per channel (rebuilt when the
        // channel is saved), a few idle per host, closed after 15 s idle.
        .pool_max_idle_per_host(8)
        .pool_idle_timeout(Duration::from_secs(15))
        .user_agent(concat!("postern/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(!o.check_ssl);
    if o.public_only {
        b = b.dns_resolver(std::sync::Arc::new(crate::netguard::PublicOnlyResolver));
    }
    match o.proxy.filter(|p| !p.is_empty()) {
        Some(p) => {
            let proxy = reqwest::Proxy::all(p).map_err(|e| format!("invalid proxy: {e}"))?;
            b = b.proxy(proxy);
        }
        // Environment proxies would silently reroute codes; only explicit ones count.
        None => b = b.no_proxy(),
    }
    b.build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// SPEC §6: 408, 429 and 5xx are transient; other 4xx (and 3xx, since
/// redirects are not followed) are permanent.
pub fn classify_status(status: StatusCode) -> OutcomeClass {
    if status.is_success() {
        OutcomeClass::Delivered
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        OutcomeClass::Transient
    } else {
        OutcomeClass::Permanent
    }
}

/// A transport error as an outcome. The URL is dropped from the message: it
/// may carry credentials (a bot token in the path, a password in the query).
pub fn error_outcome(e: reqwest::Error) -> SendOutcome {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        return SendOutcome::permanent("redirect refused");
    } else if e.is_builder() {
        return SendOutcome::permanent(format!("invalid request: {}", e.without_url()));
    } else {
        "request failed"
    };
    SendOutcome::transient(format!("{what}: {}", chain(&e.without_url())))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// Reads up to [`MAX_BODY`] bytes of a response as text.
pub async fn read_body(mut resp: reqwest::Response) -> Result<String, SendOutcome> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(error_outcome)? {
        let room = MAX_BODY - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_BODY {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A short, single-line excerpt of a provider's answer for the record.
pub fn snippet(body: &str) -> String {
    let s: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    s.trim().to_string()
}

/// The usual shape: status decides the class, the detail names the status
/// and an excerpt of the body.
pub fn status_outcome(status: StatusCode, body: &str) -> SendOutcome {
    let class = classify_status(status);
    let detail = if status.is_redirection() {
        format!("HTTP {status}: redirect not followed")
    } else {
        format!("HTTP {status}: {}", snippet(body))
    };
    SendOutcome::new(class, detail.trim_end_matches(": ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify_status(StatusCode::OK), OutcomeClass::Delivered);
        assert_eq!(
            classify_status(StatusCode::NO_CONTENT),
            OutcomeClass::Delivered
        );
        assert_eq!(
            classify_status(StatusCode::REQUEST_TIMEOUT),
            OutcomeClass::Transient
        );
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS),
            OutcomeClass::Transient
        );
        assert_eq!(
            classify_status(StatusCode::BAD_GATEWAY),
            OutcomeClass::Transient
        );
        assert_eq!(
            classify_status(StatusCode::BAD_REQUEST),
            OutcomeClass::Permanent
        );
        assert_eq!(classify_status(StatusCode::FOUND), OutcomeClass::Permanent);
    }
}
