//! The synchronous checks before anything leaves: scheme, request count,
//! the channel's `allowedHosts`, the announced body size.

use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use tokio_rustls::rustls;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::body::{MAX_REQUEST_BODY, content_length};
use crate::netguard::AllowList;
use crate::plugin::journal::Journal;

/// A channel's egress policy, shared by all its deliveries.
pub(crate) struct EgressPolicy {
    pub(crate) allow: AllowList,
    pub(crate) allow_private: bool,
    pub(crate) max_requests: u32,
    pub(crate) max_response_bytes: u64,
    pub(crate) wall: Duration,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// `postern plugin test` only: record (and maybe replay) exchanges.
    pub(crate) tools: Option<Arc<super::Tools>>,
    /// This channel's kept-alive connections (never another channel's).
    pub(crate) keepalive: super::KeepAlive,
}

/// Where an admitted request goes; `host` is normalised (lowercase, no
/// brackets, no trailing dot).
pub(super) struct Target {
    pub(super) https: bool,
    pub(super) host: String,
    pub(super) port: u16,
    /// `scheme://host:port`, for the log (never the path: it carries tokens).
    pub(super) shown: String,
}

impl Target {
    fn of(uri: &http::Uri) -> Result<Self, (HttpError, &'static str)> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => {
                return Err((
                    HttpError::HttpRequestDenied,
                    "request with a scheme other than http/https",
                ));
            }
        };
        let Some(authority) = uri.authority() else {
            return Err((HttpError::HttpRequestUriInvalid, "request without a host"));
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let scheme = if https { "https" } else { "http" };
        let shown = format!("{scheme}://{}:{port}", host_for_url(&host));
        Ok(Self {
            https,
            host,
            port,
            shown,
        })
    }

    /// The `Host` header: the allow-listed authority, port only if not the
    /// scheme's default.
    pub(super) fn host_header(&self) -> String {
        if (self.https && self.port == 443) || (!self.https && self.port == 80) {
            host_for_url(&self.host)
        } else {
            format!("{}:{}", host_for_url(&self.host), self.port)
        }
    }
}

fn host_for_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Admits the guest's `nth` request of this delivery, or logs why not and
/// returns the typed error the guest sees.
pub(super) fn admit(
    policy: &EgressPolicy,
    journal: &Journal,
    nth: u32,
    req: &http::Request<WasiBody>,
) -> Result<Target, HttpError> {
    let target = Target::of(req.uri()).map_err(|(e, why)| {
        journal.deny(why.into());
        e
    })?;
    let shown = &target.shown;
    if nth > policy.max_requests {
        journal.deny(format!(
            "request {nth} to {shown}: over the limit of {} requests per delivery (plugins.max_http_requests)",
            policy.max_requests
        ));
        return Err(HttpError::ConnectionLimitReached);
    }
    if !policy.allow.allows(target.https, &target.host, target.port) {
        let hint = if !target.https && policy.allow.allows(true, &target.host, target.port) {
            " (plain http needs an `http://` entry)"
        } else {
            ""
        };
        journal.deny(format!(
            "request to {shown}: not in the channel's allowedHosts{hint}"
        ));
        return Err(HttpError::HttpRequestDenied);
    }
    if let Some(len) = content_length(req.headers())
        && len > MAX_REQUEST_BODY
    {
        journal.deny(format!(
            "request to {shown}: body of {len} bytes is over {MAX_REQUEST_BODY}"
        ));
        return Err(HttpError::HttpRequestBodySize(Some(len)));
    }
    Ok(target)
}
