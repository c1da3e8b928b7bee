//! An admitted request on the wire: resolve once and vet the addresses
//! (the netguard policy), reuse the channel's kept-alive connection to one
//! of those or connect only to those, TLS with the original host name,
//! HTTP/1.1, every wait clamped to the wall timeout.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::Connection;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use super::admit::{EgressPolicy, Target};
use super::body::{CappedResponseBody, collect_body, content_length};
use super::keepalive::{Key, Sender};
use crate::netguard;
use crate::plugin::journal::Journal;

/// hyper's read buffer: bounds the response header section.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// A connect attempt never waits longer than this, whatever the guest asks.
const MAX_CONNECT: Duration = Duration::from_secs(5);

/// What the hook hands back: the response head (body streaming) and the
/// connection's I/O future.
pub(super) type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}
type BoxIo = Box<dyn Io>;
type Conn = Connection<TokioIo<BoxIo>, Full<Bytes>>;

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

/// The guest's timeouts, each clamped to ours.
struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

impl Timeouts {
    fn new(options: Option<RequestOptions>, wall: Duration) -> Self {
        let clamp = |asked: Option<Duration>, max: Duration| {
            asked
                .map_or(max, |d| d.min(max))
                .max(Duration::from_millis(1))
        };
        Self {
            connect: clamp(
                options.and_then(|o| o.connect_timeout),
                MAX_CONNECT.min(wall),
            ),
            first_byte: clamp(options.and_then(|o| o.first_byte_timeout), wall),
            between_bytes: clamp(options.and_then(|o| o.between_bytes_timeout), wall),
        }
    }
}

pub(super) async fn send(
    policy: Arc<EgressPolicy>,
    journal: Journal,
    target: Target,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Sent, HttpError> {
    // The body first: the guest finishes writing before any outcome.
    let (parts, body) = request.into_parts();
    let body = timeout(policy.wall, collect_body(body))
        .await
        .map_err(|_| HttpError::ConnectionWriteTimeout)??;
    let Some(tools) = policy.tools.clone() else {
        return on_the_wire(&policy, journal, target, parts, body, options).await;
    };
    let mut x = tools.exchange(&parts, &target, body.len());
    let started = Instant::now();
    let sent = if tools.is_replay() {
        tools.replayed()
    } else {
        on_the_wire(&policy, journal, target, parts, body, options).await
    };
    x.elapsed = started.elapsed();
    x.result = match &sent {
        Ok((resp, _)) => Ok(resp.status().as_u16()),
        Err(e) => Err(format!("{e:?}")),
    };
    tools.record(x);
    sent
}

/// Resolve, vet, take a kept-alive connection or connect, send, and wait
/// for the response head; the connection goes back to the channel's pool.
async fn on_the_wire(
    policy: &EgressPolicy,
    journal: Journal,
    target: Target,
    parts: http::request::Parts,
    body: Bytes,
    options: Option<RequestOptions>,
) -> Result<Sent, HttpError> {
    let t = Timeouts::new(options, policy.wall);

    let vetted = resolve_vetted(policy, &journal, &target, t.connect).await?;
    let key = Key {
        https: target.https,
        host: target.host.clone(),
        port: target.port,
    };
    let request = || outgoing(&parts, body.clone(), &target);
    if let Some((sender, peer)) = policy.keepalive.take(&key, &vetted) {
        match await_head(sender, request()?, t.first_byte).await {
            Ok((head, sender)) => {
                policy.keepalive.put(key, sender, peer);
                return capped(head, policy, journal, target.shown, t.between_bytes);
            }
            // Closed by the peer before the request went out: nothing was
            // sent, so a fresh connection may carry it.
            Err(e) if e.is_canceled() => {}
            Err(e) => return Err(HttpError::from(e)),
        }
    }
    let deadline = Instant::now() + t.connect;
    let (tcp, peer) = connect_tcp(vetted, deadline).await?;
    let (sender, conn) = handshake(policy, &target, tcp, deadline).await?;
    // The connection outlives this request (kept alive for the next); it
    // closes when the pool drops its sender, or the peer closes it.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let (head, sender) = await_head(sender, request()?, t.first_byte)
        .await
        .map_err(HttpError::from)?;
    policy.keepalive.put(key, sender, peer);
    capped(head, policy, journal, target.shown, t.between_bytes)
}

/// Resolve once; the addresses vetted here are the only ones connected to.
async fn resolve_vetted(
    policy: &EgressPolicy,
    journal: &Journal,
    target: &Target,
    connect_timeout: Duration,
) -> Result<Vec<SocketAddr>, HttpError> {
    let candidates: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => {
            let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
            match timeout(connect_timeout, lookup).await {
                Err(_) => return Err(HttpError::DnsTimeout),
                Ok(Err(_)) => return Err(HttpError::DestinationNotFound),
                Ok(Ok(addrs)) => addrs.collect(),
            }
        }
    };
    let (vetted, refused) = netguard::partition(candidates, policy.allow_private);
    if !vetted.is_empty() {
        return Ok(vetted);
    }
    if refused.is_empty() {
        return Err(HttpError::DestinationNotFound);
    }
    let refused: Vec<String> = refused
        .iter()
        .map(|(ip, why)| format!("{ip} is {why}"))
        .collect();
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
    Err(HttpError::DestinationIpProhibited)
}

/// The first vetted address that accepts before `deadline`, and that
/// address.
async fn connect_tcp(
    vetted: Vec<SocketAddr>,
    deadline: Instant,
) -> Result<(TcpStream, SocketAddr), HttpError> {
    let mut last_err = HttpError::ConnectionRefused;
    for addr in vetted {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                return Ok((tcp, addr));
            }
            Ok(Err(_)) => last_err = HttpError::ConnectionRefused,
            Err(_) => return Err(HttpError::ConnectionTimeout),
        }
    }
    Err(last_err)
}

/// Only the path goes on the wire; `Host` is the allow-listed authority.
fn outgoing(
    parts: &http::request::Parts,
    body: Bytes,
    target: &Target,
) -> Result<http::Request<Full<Bytes>>, HttpError> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = http::Request::new(Full::new(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    *request.headers_mut() = parts.headers.clone();
    let host = http::HeaderValue::from_str(&target.host_header())
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    request.headers_mut().insert(http::header::HOST, host);
    Ok(request)
}

/// TLS (for https, verifying the original host name) and the HTTP/1.1
/// handshake, both before `deadline`.
async fn handshake(
    policy: &EgressPolicy,
    target: &Target,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<(Sender, Conn), HttpError> {
    let io: BoxIo = if target.https {
        let name = match target.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(target.host.clone())
                .map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let tls = timeout_at(
            deadline,
            TlsConnector::from(policy.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let handshake = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_RESPONSE_HEAD)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io));
    timeout_at(deadline, handshake)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::from)
}

/// Sends the request once the connection is ready and waits for the
/// response head; hands the sender back for the next request.
async fn await_head(
    mut sender: Sender,
    request: http::Request<Full<Bytes>>,
    first_byte: Duration,
) -> Result<(http::Response<hyper::body::Incoming>, Sender), HeadError> {
    let exchange = async {
        sender.ready().await?;
        let head = sender.send_request(request).await?;
        Ok::<_, hyper::Error>(head)
    };
    match timeout(first_byte, exchange).await {
        Err(_) => Err(HeadError::Timeout),
        Ok(Err(e)) => Err(HeadError::Hyper(e)),
        Ok(Ok(head)) => Ok((head, sender)),
    }
}

enum HeadError {
    Timeout,
    Hyper(hyper::Error),
}

impl HeadError {
    fn is_canceled(&self) -> bool {
        matches!(self, HeadError::Hyper(e) if e.is_canceled() || e.is_closed())
    }
}

impl From<HeadError> for HttpError {
    fn from(e: HeadError) -> Self {
        match e {
            HeadError::Timeout => HttpError::ConnectionReadTimeout,
            HeadError::Hyper(e) => HttpError::from(e),
        }
    }
}

/// The response as the guest gets it: refused if it announces more than
/// `max_http_response_bytes`, else its body capped and timed.
fn capped(
    head: http::Response<hyper::body::Incoming>,
    policy: &EgressPolicy,
    journal: Journal,
    shown: String,
    between_bytes: Duration,
) -> Result<Sent, HttpError> {
    let limit = policy.max_response_bytes;
    if let Some(len) = content_length(head.headers())
        && len > limit
    {
        journal.host_line(format!(
            "response from {shown} announced {len} bytes, over the limit of {limit} (plugins.max_http_response_bytes)"
        ));
        return Err(HttpError::HttpResponseBodySize(Some(len)));
    }
    let response = head.map(|incoming| {
        CappedResponseBody::new(incoming, limit, between_bytes, journal, shown).boxed_unsync()
    });
    // The connection runs on its own task (see `on_the_wire`); its errors
    // reach the guest through the response body.
    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async { Ok(()) });
    Ok((response, io))
}
