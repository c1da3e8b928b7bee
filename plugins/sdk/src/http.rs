//! Blocking outbound HTTP for plugins, on `wstd` over `wasi:http`.
//!
//! Each call runs its own `wstd::runtime::block_on`, so it can be used from
//! the synchronous `deliver` export (never call it from inside another
//! `block_on`). Timeouts: connect 5 s, first byte 10 s, between bytes 10 s.
//! The host additionally enforces the channel's `allowedHosts`, a request
//! count, a response-size cap and a wall-clock timeout per delivery.
//!
//! Transport failures (DNS, connect, TLS, timeout, a host denied by policy)
//! become `DeliveryError::Unavailable` with the wasi-http error code; the
//! request URL is never part of an error because URLs may carry tokens.

use crate::DeliveryError;
use wstd::http::body::util::BodyExt as _;
use wstd::http::{Body, Client, Method, Request};
use wstd::time::Duration;

/// Responses are read up to this many bytes; the rest is not read
/// ([`Response::truncated`] is then set).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

const USER_AGENT: &str = concat!("postern-plugin-sdk/", env!("CARGO_PKG_VERSION"));

/// A received response: status and (up to [`MAX_RESPONSE_BYTES`] of) the body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// True when the body was longer than [`MAX_RESPONSE_BYTES`].
    pub truncated: bool,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A short one-line excerpt of the body for error messages.
    pub fn snippet(&self) -> String {
        crate::snippet(&String::from_utf8_lossy(&self.body), 200)
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// [`crate::classify_status`] applied to this response.
    pub fn check(&self) -> Result<(), DeliveryError> {
        crate::classify_status(self.status, &self.snippet())
    }
}

/// `Authorization` header value for HTTP basic auth.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        crate::base64(format!("{user}:{password}").as_bytes())
    )
}

/// `Authorization` header value for a bearer token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `application/x-www-form-urlencoded` encoding of `fields`.
pub fn form_encode(fields: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&crate::percent_encode(k));
        out.push('=');
        out.push_str(&crate::percent_encode(v));
    }
    out
}

/// POST `body` serialized as JSON (`Content-Type: application/json`).
pub fn post_json(
    url: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> Result<Response, DeliveryError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| DeliveryError::Misconfigured(format!("cannot encode JSON body: {e}")))?;
    post_body(url, "application/json", bytes, headers)
}

/// POST `fields` form-encoded (`application/x-www-form-urlencoded`).
pub fn post_form(
    url: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Response, DeliveryError> {
    post_body(
        url,
        "application/x-www-form-urlencoded",
        form_encode(fields).into_bytes(),
        headers,
    )
}

/// POST raw bytes with the given `Content-Type`.
pub fn post_body(
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Result<Response, DeliveryError> {
    send("POST", url, Some(content_type), body, headers)
}

/// GET `url`.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Response, DeliveryError> {
    send("GET", url, None, Vec::new(), headers)
}

/// Sends one request and reads the response (capped at
/// [`MAX_RESPONSE_BYTES`]). Any status is `Ok` here; use
/// [`Response::check`] to classify it.
pub fn send(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Result<Response, DeliveryError> {
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| DeliveryError::Misconfigured("invalid HTTP method".to_string()))?;
    let mut builder = Request::builder()
        .method(method)
        .uri(url)
        .header("user-agent", USER_AGENT);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    if !body.is_empty() || content_type.is_some() {
        builder = builder.header("content-length", body.len());
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    // The error of an invalid URI or header does not contain the value.
    let request = builder
        .body(Body::from(body))
        .map_err(|e| DeliveryError::Misconfigured(format!("invalid request: {e}")))?;
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();

    wstd::runtime::block_on(async move {
        let mut client = Client::new();
        client.set_connect_timeout(Duration::from_secs(5));
        client.set_first_byte_timeout(Duration::from_secs(10));
        client.set_between_bytes_timeout(Duration::from_secs(10));
        let response = client
            .send(request)
            .await
            .map_err(|e| transport_error(&e, &path))?;
        let status = response.status().as_u16();
        let mut body = response.into_body().into_boxed_body();
        let mut buf = Vec::new();
        let mut truncated = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| transport_error(&e, &path))?;
            if let Ok(data) = frame.into_data() {
                let room = MAX_RESPONSE_BYTES - buf.len();
                if data.len() > room {
                    buf.extend_from_slice(&data[..room]);
                    truncated = true;
                    break;
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(Response {
            status,
            body: buf,
            truncated,
        })
    })
}

/// `Unavailable` with the error chain (which names the wasi-http error code,
/// e.g. `HttpRequestDenied`, `DestinationIpProhibited`, `ConnectionTimeout`),
/// with the request path scrubbed in case a layer echoed it.
fn transport_error(e: &wstd::http::Error, path: &str) -> DeliveryError {
    let mut msg = format!("{e:#}");
    if path.len() > 1 {
        msg = msg.replace(path, "<path>");
    }
    DeliveryError::Unavailable(format!(
        "HTTP request failed: {}",
        crate::snippet(&msg, 300)
    ))
}
