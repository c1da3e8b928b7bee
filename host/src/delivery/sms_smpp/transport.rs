//! The byte stream under a session: TCP to `smsc_host:smsc_port`, with
//! TLS (verified against the web PKI roots) when `tls = true`. A tenant
//! channel's host must resolve to a public address.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::config::SmppSettings;

pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Connects (within the gateway's timeout); the error is said for `/readyz`.
pub async fn dial(s: &SmppSettings, public_only: bool) -> Result<Box<dyn Io>, String> {
    let connect = async {
        let addrs = resolve(s, public_only).await?;
        let mut last = String::from("no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return if s.tls {
                        tls(s, tcp).await
                    } else {
                        Ok(Box::new(tcp) as Box<dyn Io>)
                    };
                }
                Err(e) => last = format!("cannot connect to {addr}: {e}"),
            }
        }
        Err(last)
    };
    tokio::time::timeout(s.timeout, connect)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no connection to {}:{} within {:?}",
                s.host, s.port, s.timeout
            ))
        })
}

async fn resolve(s: &SmppSettings, public_only: bool) -> Result<Vec<SocketAddr>, String> {
    if public_only {
        return crate::netguard::resolve_public(&s.host, s.port)
            .await
            .map_err(|e| format!("SMSC {e}"));
    }
    tokio::net::lookup_host((s.host.as_str(), s.port))
        .await
        .map(Iterator::collect)
        .map_err(|e| format!("cannot resolve {}: {e}", s.host))
}

async fn tls(s: &SmppSettings, tcp: TcpStream) -> Result<Box<dyn Io>, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(s.host.clone())
        .map_err(|e| format!("smsc_host is not a TLS server name: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {}: {e}", s.host))?;
    Ok(Box::new(stream))
}
