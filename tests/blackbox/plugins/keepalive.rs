//! A channel's plugin requests reuse its kept-alive connections; another
//! channel (another tenant's, or the same one saved with new
//! `allowedHosts`) never gets them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use postern::delivery::{OutcomeClass, Sender};

use super::support::*;

/// A Bot API fake that records the client address of every request (one
/// per connection) and may ask for the connection to be closed.
struct Peers {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SocketAddr>>>,
}

#[derive(Clone)]
struct PeerState {
    seen: Arc<Mutex<Vec<SocketAddr>>>,
    close: bool,
}

async fn answer(
    State(s): State<PeerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    s.seen.lock().unwrap().push(peer);
    let body = r#"{"ok":true,"result":{"message_id":1}}"#;
    let connection = if s.close { "close" } else { "keep-alive" };
    (
        [
            ("content-type", "application/json"),
            ("connection", connection),
        ],
        body,
    )
        .into_response()
}

impl Peers {
    async fn start(close: bool) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = PeerState {
            seen: seen.clone(),
            close,
        };
        let app = axum::Router::new().fallback(answer).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let svc = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, svc).await;
        });
        Self { addr, seen }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Distinct client connections seen so far.
    fn connections(&self) -> usize {
        let mut v = self.seen.lock().unwrap().clone();
        v.sort();
        v.dedup();
        v.len()
    }
}

async fn telegram(
    rt: &Arc<postern::plugin::PluginRuntime>,
    base: &str,
    hosts: &[&str],
) -> Arc<dyn Sender> {
    sender(
        rt,
        "telegram",
        &[("api_base", base)],
        &[("bot_token", "42:keepalive")],
        hosts,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_of_a_channel_reuse_its_connection_and_no_other_channel_does() {
    let bot = Peers::start(false).await;
    let rt = runtime(&test_limits());
    let base = bot.base();
    let channel = telegram(&rt, &base, &[&base]).await;
    for _ in 0..5 {
        assert_class(
            &channel.send(&message("4242")).await,
            OutcomeClass::Delivered,
        );
    }
    assert_eq!(bot.connections(), 1, "five deliveries, one connection");

    // The same plugin and destination in another channel (another
    // tenant's, or this one saved again with a changed allowedHosts):
    // a connection of its own.
    let other = telegram(&rt, &base, &[&base, "https://api.telegram.org"]).await;
    assert_class(&other.send(&message("4242")).await, OutcomeClass::Delivered);
    assert_eq!(bot.connections(), 2);
    assert_class(
        &channel.send(&message("4242")).await,
        OutcomeClass::Delivered,
    );
    assert_eq!(bot.connections(), 2, "the first channel still has its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_peer_closes_is_not_reused() {
    let bot = Peers::start(true).await;
    let rt = runtime(&test_limits());
    let base = bot.base();
    let channel = telegram(&rt, &base, &[&base]).await;
    for _ in 0..3 {
        assert_class(
            &channel.send(&message("4242")).await,
            OutcomeClass::Delivered,
        );
    }
    assert_eq!(bot.connections(), 3, "Connection: close is honoured");
}
