//! The one place a plugin's HTTP request leaves the sandbox: the
//! `WasiHttpHooks::send_request` hook. In order:
//!
//! 1. request count (`max_http_requests`, every attempt counts);
//! 2. scheme + host + port against the channel's `allowedHosts` (https
//!    unless the entry says `http://`);
//! 3. resolve once; drop loopback/private/link-local/CGNAT/… addresses
//!    unless `allow_private_networks` (metadata, unspecified, multicast and
//!    broadcast addresses are always refused);
//! 4. connect only to the vetted addresses (TLS with the original host name
//!    and the webpki roots), HTTP/1.1, header buffer capped;
//! 5. timeouts clamped to the wall timeout; request and response bodies
//!    capped (`max_http_response_bytes`).
//!
//! Refusals are typed wasi:http errors the guest sees
//! (`HttpRequestDenied`, `DestinationIpProhibited`, `ConnectionLimitReached`)
//! and a `[postern] denied: …` line in the delivery log. Paths and queries
//! are never logged: they often carry tokens (`/bot<token>/sendMessage`).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::allowed_hosts::AllowList;
use super::host_api::Journal;

/// Largest request body a plugin may send.
const MAX_REQUEST_BODY: u64 = 1 << 20;
/// hyper's read buffer: bounds the response header section.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// A connect attempt never waits longer than this, whatever the guest asks.
const MAX_CONNECT: Duration = Duration::from_secs(5);

/// A channel's egress policy, shared by all its deliveries.
pub(crate) struct EgressPolicy {
    pub(crate) allow: AllowList,
    pub(crate) allow_private: bool,
    pub(crate) max_requests: u32,
    pub(crate) max_response_bytes: u64,
    pub(crate) wall: Duration,
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

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

    /// Synchronous checks: count, scheme, allow-list.
    fn admit(&mut self, req: &http::Request<WasiBody>) -> Result<Target, HttpError> {
        self.sent = self.sent.saturating_add(1);
        let uri = req.uri();
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => {
                self.journal
                    .deny("request with a scheme other than http/https".into());
                return Err(HttpError::HttpRequestDenied);
            }
        };
        let Some(authority) = uri.authority() else {
            self.journal.deny("request without a host".into());
            return Err(HttpError::HttpRequestUriInvalid);
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
        if self.sent > self.policy.max_requests {
            self.journal.deny(format!(
                "request {} to {shown}: over the limit of {} requests per delivery (plugins.max_http_requests)",
                self.sent, self.policy.max_requests
            ));
            return Err(HttpError::ConnectionLimitReached);
        }
        if !self.policy.allow.allows(https, &host, port) {
            let hint = if !https && self.policy.allow.allows(true, &host, port) {
                " (plain http needs an `http://` entry)"
            } else {
                ""
            };
            self.journal.deny(format!(
                "request to {shown}: not in the channel's allowedHosts{hint}"
            ));
            return Err(HttpError::HttpRequestDenied);
        }
        if let Some(len) = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > MAX_REQUEST_BODY
        {
            self.journal.deny(format!(
                "request to {shown}: body of {len} bytes is over {MAX_REQUEST_BODY}"
            ));
            return Err(HttpError::HttpRequestBodySize(Some(len)));
        }
        Ok(Target {
            https,
            host,
            port,
            shown,
        })
    }
}

struct Target {
    https: bool,
    host: String,
    port: u16,
    shown: String,
}

fn host_for_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        match self.admit(&request) {
            // Take the guest's body first, so that its writes succeed and it
            // sees the typed error rather than a closed stream.
            Err(e) => Box::new(async move {
                let _ = collect_body(request.into_body()).await;
                Err(e)
            }),
            Ok(target) => {
                let policy = self.policy.clone();
                let journal = self.journal.clone();
                Box::new(send(policy, journal, target, request, options))
            }
        }
    }
}

/// The guest's whole request body (≤ [`MAX_REQUEST_BODY`]). Buffering it
/// keeps the guest's stream open until it has finished writing, whatever
/// the connection does, and gives hyper an exact length.
async fn collect_body(mut body: WasiBody) -> Result<Bytes, HttpError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if (buf.len() + data.len()) as u64 > MAX_REQUEST_BODY {
                return Err(HttpError::HttpRequestBodySize(Some(
                    (buf.len() + data.len()) as u64,
                )));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Why an address may not be reached, or `None` if it is a public unicast
/// address. `allow_private` opens loopback, private, link-local, CGNAT and
/// unique-local ranges, never the rest.
pub fn refused_address(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    let (always, private) = classify(ip);
    match (always, private) {
        (Some(why), _) => Some(why),
        (None, Some(why)) if !allow_private => Some(why),
        _ => None,
    }
}

/// (always refused, refused unless private networks are allowed)
fn classify(ip: IpAddr) -> (Option<&'static str>, Option<&'static str>) {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return classify_v4(v4);
            }
            let s = v6.segments();
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                (Some("a cloud metadata address"), None)
            } else if v6.is_unspecified() {
                (Some("the unspecified address"), None)
            } else if v6.is_multicast() {
                (Some("a multicast address"), None)
            } else if v6.is_loopback() {
                (None, Some("a loopback address"))
            } else if s[0] & 0xfe00 == 0xfc00 {
                (None, Some("a unique-local (private) address"))
            } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
                (None, Some("a link-local address"))
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                (Some("a documentation address"), None)
            } else if s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 {
                (Some("a discard-only address"), None)
            } else if s[0] == 0x2001 && s[1] < 0x0200 {
                // 2001::/23 IETF protocol assignments (incl. Teredo 2001::/32)
                (None, Some("an IETF special-purpose address"))
            } else if s[0] & 0xe000 != 0x2000 {
                // Only 2000::/3 is global unicast.
                (None, Some("a non-global IPv6 address"))
            } else {
                (None, None)
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> (Option<&'static str>, Option<&'static str>) {
    let o = ip.octets();
    if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
        (Some("a cloud metadata address"), None)
    } else if o[0] == 0 {
        (Some("the unspecified (\"this network\") range"), None)
    } else if ip.is_broadcast() {
        (Some("the broadcast address"), None)
    } else if ip.is_multicast() {
        (Some("a multicast address"), None)
    } else if o[0] >= 240 {
        (Some("a reserved address"), None)
    } else if ip.is_loopback() {
        (None, Some("a loopback address"))
    } else if ip.is_private() {
        (None, Some("a private address"))
    } else if ip.is_link_local() {
        (None, Some("a link-local address"))
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        (None, Some("a carrier-grade NAT address"))
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        (None, Some("a benchmarking address"))
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        (None, Some("an IETF protocol-assignment address"))
    } else if (o[0] == 192 && o[1] == 0 && o[2] == 2)
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
    {
        (Some("a documentation address"), None)
    } else {
        (None, None)
    }
}

/// IPv4 addresses hiding in IPv6 forms: mapped, compatible, NAT64, 6to4.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail()); // ::a.b.c.d (deprecated "compatible")
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail()); // 64:ff9b::/96 NAT64
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some(tail()); // 64:ff9b:1::/48 local NAT64
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

fn clamp(asked: Option<Duration>, max: Duration) -> Duration {
    asked
        .map_or(max, |d| d.min(max))
        .max(Duration::from_millis(1))
}

async fn send(
    policy: Arc<EgressPolicy>,
    journal: Journal,
    target: Target,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
> {
    // The body first: the guest finishes writing before any outcome.
    let (parts, body) = request.into_parts();
    let body = tokio::time::timeout(policy.wall, collect_body(body))
        .await
        .map_err(|_| HttpError::ConnectionWriteTimeout)??;

    let connect_timeout = clamp(
        options.and_then(|o| o.connect_timeout),
        MAX_CONNECT.min(policy.wall),
    );
    let first_byte = clamp(options.and_then(|o| o.first_byte_timeout), policy.wall);
    let between_bytes = clamp(options.and_then(|o| o.between_bytes_timeout), policy.wall);

    // Resolve once; the addresses vetted here are the only ones connected to.
    let candidates: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => {
            let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
            match tokio::time::timeout(connect_timeout, lookup).await {
                Err(_) => return Err(HttpError::DnsTimeout),
                Ok(Err(_)) => return Err(HttpError::DestinationNotFound),
                Ok(Ok(addrs)) => addrs.collect(),
            }
        }
    };
    let mut vetted = Vec::new();
    let mut refused = Vec::new();
    for addr in candidates {
        match refused_address(addr.ip(), policy.allow_private) {
            None => vetted.push(addr),
            Some(why) => refused.push(format!("{} is {why}", addr.ip())),
        }
    }
    if vetted.is_empty() {
        if refused.is_empty() {
            return Err(HttpError::DestinationNotFound);
        }
        journal.deny(format!(
            "request to {}: {}{}",
            target.shown,
            refused.join(", "),
            if policy.allow_private {
                ""
            } else {
                " (plugins.allow_private_networks = false)"
            }
        ));
        return Err(HttpError::DestinationIpProhibited);
    }

    let deadline = Instant::now() + connect_timeout;
    let mut last_err = HttpError::ConnectionRefused;
    let mut stream = None;
    for addr in vetted {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(_)) => last_err = HttpError::ConnectionRefused,
            Err(_) => {
                last_err = HttpError::ConnectionTimeout;
                break;
            }
        }
    }
    let Some(tcp) = stream else {
        return Err(last_err);
    };
    let _ = tcp.set_nodelay(true);

    // Only the path goes on the wire; Host is the allow-listed authority.
    let mut parts = parts;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let host_header =
        if (target.https && target.port == 443) || (!target.https && target.port == 80) {
            host_for_url(&target.host)
        } else {
            format!("{}:{}", host_for_url(&target.host), target.port)
        };
    let host_value =
        http::HeaderValue::from_str(&host_header).map_err(|_| HttpError::HttpRequestUriInvalid)?;
    parts.headers.insert(http::header::HOST, host_value);
    let request = http::Request::from_parts(parts, Full::new(body));

    let handshake = |io| {
        hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_RESPONSE_HEAD)
            .handshake::<_, Full<Bytes>>(io)
    };
    let (mut sender, conn) = if target.https {
        let name = match target.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(target.host.clone())
                .map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let tls = tokio::time::timeout_at(
            deadline,
            TlsConnector::from(policy.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Tls)?;
        let (s, c) =
            tokio::time::timeout_at(deadline, handshake(TokioIo::new(Box::new(tls) as BoxIo)))
                .await
                .map_err(|_| HttpError::ConnectionTimeout)??;
        (s, c)
    } else {
        tokio::time::timeout_at(deadline, handshake(TokioIo::new(Box::new(tcp) as BoxIo)))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??
    };

    let mut conn = Box::pin(conn);
    let response = {
        let send = tokio::time::timeout(first_byte, sender.send_request(request));
        tokio::pin!(send);
        // Drive the connection while waiting for the head.
        let mut conn_done = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = send.as_mut().poll(cx) {
                return Poll::Ready(match r {
                    Err(_) => Err(HttpError::ConnectionReadTimeout),
                    Ok(r) => r.map_err(HttpError::from),
                });
            }
            if !conn_done && let Poll::Ready(r) = conn.as_mut().poll(cx) {
                conn_done = true;
                if let Err(e) = r {
                    return Poll::Ready(Err(HttpError::from(e)));
                }
                return send.as_mut().poll(cx).map(|r| match r {
                    Err(_) => Err(HttpError::ConnectionReadTimeout),
                    Ok(r) => r.map_err(HttpError::from),
                });
            }
            Poll::Pending
        })
        .await?
    };

    let limit = policy.max_response_bytes;
    if let Some(len) = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        journal.host_line(format!(
            "response from {} announced {len} bytes, over the limit of {limit} (plugins.max_http_response_bytes)",
            target.shown
        ));
        return Err(HttpError::HttpResponseBodySize(Some(len)));
    }
    let shown = target.shown;
    let response = response.map(|incoming| {
        CappedResponseBody {
            inner: incoming,
            seen: 0,
            limit,
            between_bytes,
            timer: Box::pin(tokio::time::sleep(between_bytes)),
            journal,
            shown,
            failed: false,
        }
        .boxed_unsync()
    });
    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async move {
        conn.await.map_err(|e| {
            if e.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                HttpError::from(e)
            }
        })
    });
    Ok((response, io))
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}
type BoxIo = Box<dyn Io>;

/// The provider's response body: capped at `max_http_response_bytes`, with
/// a between-bytes timeout.
struct CappedResponseBody {
    inner: hyper::body::Incoming,
    seen: u64,
    limit: u64,
    between_bytes: Duration,
    timer: Pin<Box<Sleep>>,
    journal: Journal,
    shown: String,
    failed: bool,
}

impl Body for CappedResponseBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                self.failed = true;
                Poll::Ready(Some(Err(if e.is_timeout() {
                    HttpError::HttpResponseTimeout
                } else {
                    HttpError::from(e)
                })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                    if self.seen > self.limit {
                        self.failed = true;
                        let line = format!(
                            "response from {} cut after {} bytes (plugins.max_http_response_bytes = {})",
                            self.shown, self.limit, self.limit
                        );
                        self.journal.host_line(line);
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            self.limit,
                        )))));
                    }
                }
                let next = Instant::now() + self.between_bytes;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timer.as_mut().poll(cx));
                self.failed = true;
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }
    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str, private: bool) -> Option<&'static str> {
        refused_address(s.parse().unwrap(), private)
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "149.154.167.220",
            "1.1.1.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
        ] {
            assert_eq!(refused(ip, false), None, "{ip}");
        }
    }

    #[test]
    fn private_ranges_need_allow_private() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:c0a8:0101::1",
            "198.18.0.1",
        ] {
            assert!(refused(ip, false).is_some(), "{ip}");
            assert_eq!(refused(ip, true), None, "{ip}");
        }
    }

    #[test]
    fn metadata_and_special_addresses_are_always_refused() {
        for ip in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "0.0.0.0",
            "::",
            "255.255.255.255",
            "224.0.0.1",
            "ff02::1",
            "240.0.0.1",
            "192.0.2.1",
            "2001:db8::1",
        ] {
            assert!(refused(ip, true).is_some(), "{ip}");
        }
        assert_eq!(
            refused("169.254.169.254", true),
            Some("a cloud metadata address")
        );
    }
}
