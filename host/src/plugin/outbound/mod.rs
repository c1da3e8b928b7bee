//! The one place a plugin's HTTP request leaves the sandbox: the
//! `WasiHttpHooks::send_request` hook. In order:
//!
//! 1. request count (`max_http_requests`, every attempt counts);
//! 2. scheme + host + port against the channel's `allowedHosts` (https
//!    unless the entry says `http://`) — `admit`;
//! 3. resolve once; drop the addresses [`crate::netguard`]'s policy refuses
//!    (loopback/private/link-local/CGNAT/… unless `allow_private_networks`;
//!    metadata, unspecified, multicast, broadcast, reserved and
//!    documentation addresses always) — `connect`;
//! 4. reuse the channel's kept-alive connection to a vetted address, or
//!    connect only to the vetted addresses (TLS with the original host name
//!    and the webpki roots), HTTP/1.1, header buffer capped — `keepalive`;
//! 5. timeouts clamped to the wall timeout; request and response bodies
//!    capped (`max_http_response_bytes`) — `body`.
//!
//! Refusals are typed wasi:http errors the guest sees
//! (`HttpRequestDenied`, `DestinationIpProhibited`, `ConnectionLimitReached`)
//! and a `[postern] denied: …` line in the delivery log. Paths and queries
//! are never logged: they often carry tokens (`/bot<token>/sendMessage`).

mod admit;
mod body;
mod connect;
mod keepalive;
mod tools;

use std::future::Future;
use std::sync::Arc;

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub(crate) use admit::EgressPolicy;
pub(crate) use connect::tls_config;
pub(crate) use keepalive::KeepAlive;
pub use tools::{Exchange, Recorded, ReplayFile, Tools, redact};

use super::journal::Journal;

/// Per-delivery hook state (lives in the store).
pub(crate) struct Egress {
    policy: Arc<EgressPolicy>,
    journal: Journal,
    sent: u32,
}

impl Egress {
    pub(crate) fn new(policy: Arc<EgressPolicy>, journal: Journal) -> Self {
        Self {
            policy,
            journal,
            sent: 0,
        }
    }

    /// Requests the guest has made (admitted or refused).
    pub(crate) fn sent(&self) -> u32 {
        self.sent
    }
}

type SendFuture = Box<dyn Future<Output = Result<connect::Sent, HttpError>> + Send>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        self.sent = self.sent.saturating_add(1);
        match admit::admit(&self.policy, &self.journal, self.sent, &request) {
            // Take the guest's body first, so that its writes succeed and it
            // sees the typed error rather than a closed stream.
            Err(e) => Box::new(async move {
                let _ = body::collect_body(request.into_body()).await;
                Err(e)
            }),
            Ok(target) => {
                let policy = self.policy.clone();
                let journal = self.journal.clone();
                Box::new(connect::send(policy, journal, target, request, options))
            }
        }
    }
}
