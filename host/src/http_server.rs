//! The HTTP listener: the API router behind hyper connections, with the
//! timeouts `axum::serve` does not set. A client that sends half a request
//! line or half a body and then nothing would otherwise hold its connection
//! (and a task) forever; here it is cut after [`HEADER_READ_TIMEOUT`] or
//! [`BODY_IDLE_TIMEOUT`]. Shutdown stops accepting, lets requests in flight
//! finish for up to the grace period, and leaves upgraded (WebSocket)
//! connections to their own handlers.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// A request's headers must arrive within this long of its first byte.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body that sends nothing for this long fails (400 for JSON
/// bodies); a slow but moving upload is fine.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves `router` on `listener` until `shutdown` completes, then waits up
/// to `grace` for requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let connections = TaskTracker::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // e.g. out of file descriptors: back off, don't spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let service = router.clone().map_request(move |req: Request<Incoming>| {
            let mut req = req.map(|b| Body::new(TimeoutBody::new(BODY_IDLE_TIMEOUT, b)));
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
            req
        });
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder
                .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%addr, error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {grace:?}; closing them");
    }
}
