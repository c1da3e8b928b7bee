//! An admitted request on the wire: resolve once and vet the addresses
//! (the netguard policy), connect only to those, TLS with the original host
//! name, HTTP/1.1, every wait clamped to the wall timeout.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{Connection, SendRequest};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use super::admit::{EgressPolicy, Target};
use super::body::{CappedResponseBody, collect_body, content_length};
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

/// Resolve, vet, connect, send, and wait for the response head.
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
    let deadline = Instant::now() + t.connect;
    let tcp = connect_tcp(vetted, deadline).await?;
    let request = outgoing(parts, body, &target)?;
    let (sender, conn) = handshake(policy, &target, tcp, deadline).await?;
    let mut conn = Box::pin(conn);
    let head = await_head(sender, conn.as_mut(), request, t.first_byte).await?;
    capped(head, conn, policy, journal, target.shown, t.between_bytes)
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

/// The first vetted address that accepts before `deadline`.
async fn connect_tcp(vetted: Vec<SocketAddr>, deadline: Instant) -> Result<TcpStream, HttpError> {
    let mut last_err = HttpError::ConnectionRefused;
    for addr in vetted {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Ok(Err(_)) => last_err = HttpError::ConnectionRefused,
            Err(_) => return Err(HttpError::ConnectionTimeout),
        }
    }
    Err(last_err)
}

/// Only the path goes on the wire; `Host` is the allow-listed authority.
fn outgoing(
    mut parts: http::request::Parts,
    body: Bytes,
    target: &Target,
) -> Result<http::Request<Full<Bytes>>, HttpError> {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let host = http::HeaderValue::from_str(&target.host_header())
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    parts.headers.insert(http::header::HOST, host);
    Ok(http::Request::from_parts(parts, Full::new(body)))
}

/// TLS (for https, verifying the original host name) and the HTTP/1.1
/// handshake, both before `deadline`.
async fn handshake(
    policy: &EgressPolicy,
    target: &Target,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<(SendRequest<Full<Bytes>>, Conn), HttpError> {
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

/// Sends the request and waits for the response head, driving the
/// connection meanwhile.
async fn await_head(
    mut sender: SendRequest<Full<Bytes>>,
    mut conn: Pin<&mut Conn>,
    request: http::Request<Full<Bytes>>,
    first_byte: Duration,
) -> Result<http::Response<hyper::body::Incoming>, HttpError> {
    let send = timeout(first_byte, sender.send_request(request));
    tokio::pin!(send);
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
    .await
}

/// The response as the guest gets it: refused if it announces more than
/// `max_http_response_bytes`, else its body capped and timed.
fn capped(
    head: http::Response<hyper::body::Incoming>,
    conn: Pin<Box<Conn>>,
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
