//! Realtime 2FA: the Rocket.Chat DDP subset over WebSocket, on
//! `GET /websocket` (the `default` tenant) and `GET /t/{tenant}/websocket`.
//!
//! One connection is one reader loop (this file) and, from the first method
//! on, one worker task that runs the methods in arrival order (`methods.rs`,
//! which hands every 2FA rule to `twofa::TwoFactor`; `errors.rs` maps its
//! errors onto Meteor's shape). The loop answers
//! `ping` while a method runs, pings a quiet client as Meteor does
//! (`heartbeat.rs`), enforces the limits (`limits.rs`) and closes with 1008
//! (flood), 1009 (too big) or 1000 (idle, or a server ping unanswered).

mod admission;
pub(crate) mod ddp;
mod errors;
mod heartbeat;
mod limits;
mod methods;
pub(crate) mod params;

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, WebSocketUpgrade, close_code, rejection::WebSocketUpgradeRejection,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::AppState;
use super::error::ApiError;
use super::extract::{ClientInfo, PublicTenant};
use crate::crypto::random_token;
pub use admission::{Connections, Refusal};
use ddp::{Incoming, MeteorError, MethodResult};
use errors::too_many_requests;
use heartbeat::{Due, Heartbeat};
pub use limits::Limits;
use limits::{RateLimiter, Verdict};
use methods::{Methods, Session};

/// `GET /websocket`, `GET /t/{tenant}/websocket`.
#[utoipa::path(get, path = "/t/{tenant}/websocket", tag = "realtime",
    params(("tenant" = String, Path, description = "Tenant name; /websocket is the `default` tenant")),
    responses(
        (status = 101, description = "WebSocket upgrade: the Rocket.Chat DDP subset (connect, ping, method: login, logout, callWithTwoFactorRequired, sendEmailCode, 2fa:*)"),
        (status = 400, body = crate::api::error::ErrorBody, description = "Not a WebSocket upgrade"),
        (status = 404, body = crate::api::error::ErrorBody, description = "Unknown tenant"),
        (status = 429, body = crate::api::error::ErrorBody, description = "realtime.max_connections_per_ip connections already open from this address"),
        (status = 503, body = crate::api::error::ErrorBody, description = "realtime.max_connections connections already open on this host")))]
pub async fn websocket(
    PublicTenant(tenant): PublicTenant,
    State(state): State<AppState>,
    ClientInfo(caller): ClientInfo,
    headers: axum::http::HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(r) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "error-invalid-params",
                format!("This endpoint speaks DDP over WebSocket: {r}"),
            )
            .with_details(json!({ "field": "upgrade" }))
            .into_response();
        }
    };
    if !is_nonce(headers.get("sec-websocket-key")) {
        return ApiError::invalid_params(
            "sec-websocket-key",
            "Sec-WebSocket-Key must be a base64-encoded 16-byte nonce",
        )
        .into_response();
    }
    let permit = match state.realtime.admit(caller.ip) {
        Ok(p) => p,
        Err(refusal) => return refused(&state, refusal).into_response(),
    };
    let limits = Limits::from_config(&state.config.realtime);
    upgrade
        .read_buffer_size(limits.read_buffer_bytes)
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let _permit = permit;
            let ip = caller.ip;
            let metrics = state.metrics.clone();
            let (out, incoming) = socket.split();
            let end = run(incoming, out, Session::new(state, tenant, caller), limits).await;
            metrics
                .realtime_closed
                .with_label_values(&[end.label()])
                .inc();
            match end {
                End::Flood(_) | End::TooBig => {
                    tracing::info!(%ip, ?end, "realtime connection closed for breaking a limit");
                }
                _ => tracing::debug!(%ip, ?end, "realtime connection closed"),
            }
        })
}

/// RFC 6455 §4.2.1: the key is a base64-encoded 16-byte nonce (axum only
/// checks that it is there).
fn is_nonce(key: Option<&axum::http::HeaderValue>) -> bool {
    let nonce = key.and_then(|k| {
        base64::engine::general_purpose::STANDARD
            .decode(k.as_bytes())
            .ok()
    });
    nonce.is_some_and(|n| n.len() == 16)
}

/// A connection the caps do not admit: counted, then 503 (host full) or
/// 429 (this address's share used up).
fn refused(state: &AppState, refusal: Refusal) -> ApiError {
    state
        .metrics
        .realtime_refused
        .with_label_values(&[refusal.label()])
        .inc();
    match refusal {
        Refusal::HostFull => {
            ApiError::unavailable("Too many realtime connections; try again later")
        }
        Refusal::AddressFull => {
            let mut e = ApiError::too_many_requests(5);
            e.message = "Too many realtime connections from this address".into();
            e
        }
    }
}

/// Why a connection ended.
#[derive(Debug, PartialEq)]
pub enum End {
    /// The client closed or the socket failed.
    Gone,
    Idle,
    /// A server `ping` went unanswered for the heartbeat timeout.
    Unanswered,
    TooBig,
    Flood(&'static str),
    UnsupportedVersion,
    /// The client stopped reading its answers.
    SendFailed,
}

impl End {
    /// The close frame the server sends, if the client is still there to read it.
    fn close_frame(&self) -> Option<Message> {
        let (code, reason) = match self {
            End::Gone | End::SendFailed => return None,
            End::Idle => (close_code::NORMAL, "idle timeout"),
            End::Unanswered => (close_code::NORMAL, "heartbeat timeout"),
            End::TooBig => (close_code::SIZE, "message too big"),
            End::Flood(why) => (close_code::POLICY, *why),
            End::UnsupportedVersion => (close_code::PROTOCOL, "unsupported DDP version"),
        };
        Some(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
    }

    /// The metrics label.
    fn label(&self) -> &'static str {
        match self {
            End::Gone => "gone",
            End::Idle => "idle",
            End::Unanswered => "heartbeat_timeout",
            End::TooBig => "too_big",
            End::Flood(_) => "flood",
            End::UnsupportedVersion => "unsupported_version",
            End::SendFailed => "send_failed",
        }
    }
}

struct Call {
    id: String,
    method: String,
    params: Vec<Value>,
}

/// A method's answer and the collection messages (`added`, `removed`) it
/// caused, which Meteor sends before the `result`.
struct Finished {
    id: String,
    result: MethodResult,
    changes: Vec<String>,
}

/// The worker: runs one connection's methods one at a time, in order.
fn spawn_worker<M: Methods>(
    mut methods: M,
    mut calls: mpsc::Receiver<Call>,
    done: mpsc::Sender<Finished>,
) {
    tokio::spawn(async move {
        while let Some(c) = calls.recv().await {
            let result = methods.call(&c.method, c.params).await;
            let changes = methods.take_changes();
            let f = Finished {
                id: c.id,
                result,
                changes,
            };
            if done.send(f).await.is_err() {
                break;
            }
        }
    });
}

struct Conn<O, M> {
    out: O,
    limits: Limits,
    limiter: RateLimiter,
    heartbeat: Heartbeat,
    connected: bool,
    /// The methods, until the first call moves them into the worker.
    methods: Option<M>,
    calls: Option<mpsc::Sender<Call>>,
    done: mpsc::Sender<Finished>,
    in_flight: usize,
}

/// Serves one connection until it ends; returns why.
pub async fn run<I, O, M>(mut incoming: I, out: O, methods: M, limits: Limits) -> End
where
    I: Stream<Item = Result<Message, axum::Error>> + Unpin,
    O: Sink<Message> + Unpin,
    M: Methods,
{
    let (done, mut finished) = mpsc::channel(limits.max_in_flight.max(1));
    let now = Instant::now();
    let mut c = Conn {
        out,
        limiter: RateLimiter::new(&limits, now),
        heartbeat: Heartbeat::new(limits.idle_timeout, limits.heartbeat_timeout, now),
        limits,
        connected: false,
        methods: Some(methods),
        calls: None,
        done,
        in_flight: 0,
    };
    let end = loop {
        let (at, due) = c.heartbeat.next();
        let step = tokio::select! {
            frame = incoming.next() => match frame {
                None => Err(End::Gone),
                Some(Err(e)) if is_too_big(&e) => Err(End::TooBig),
                Some(Err(_)) => Err(End::Gone),
                Some(Ok(frame)) => {
                    c.heartbeat.seen(Instant::now());
                    c.on_frame(frame).await
                }
            },
            Some(f) = finished.recv() => c.on_finished(f).await,
            () = tokio::time::sleep_until(at) => c.on_due(due).await,
        };
        if let Err(end) = step {
            break end;
        }
    };
    let Some(frame) = end.close_frame() else {
        return end;
    };
    let _ = tokio::time::timeout(c.limits.send_timeout, c.out.send(frame)).await;
    let linger = Duration::from_secs(1);
    if end == End::TooBig {
        // The rest of the oversize frame cannot be read; give the client a
        // moment to read the close frame before the socket goes away.
        tokio::time::sleep(linger).await;
    } else {
        // Let the close handshake finish; discard whatever still arrives.
        let _ = tokio::time::timeout(linger, async {
            while let Some(Ok(_)) = incoming.next().await {}
        })
        .await;
    }
    end
}

/// tungstenite's "Space limit exceeded" (a frame or message over the limit);
/// axum hides the error type, so it is told by its text.
fn is_too_big(e: &axum::Error) -> bool {
    e.to_string().contains("Space limit exceeded")
}

fn offending(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

impl<O, M> Conn<O, M>
where
    O: Sink<Message> + Unpin,
    M: Methods,
{
    async fn send(&mut self, text: String) -> Result<(), End> {
        match tokio::time::timeout(
            self.limits.send_timeout,
            self.out.send(Message::Text(text.into())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::SendFailed),
        }
    }

    async fn on_frame(&mut self, frame: Message) -> Result<(), End> {
        if !self.limiter.frame(Instant::now()) {
            return Err(End::Flood("too many messages"));
        }
        match frame {
            Message::Text(t) => self.on_text(t.as_str()).await,
            Message::Binary(_) => {
                self.send(ddp::error(
                    "Bad request: DDP messages are text frames",
                    None,
                ))
                .await
            }
            // tungstenite answers pings itself; a pong only counts as traffic.
            Message::Ping(_) | Message::Pong(_) => Ok(()),
            Message::Close(_) => Err(End::Gone),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let msg = match ddp::parse(text) {
            Ok(m) => m,
            Err(refused) => return self.send(ddp::refused(refused)).await,
        };
        match msg {
            Incoming::Connect { .. } if self.connected => {
                self.send(ddp::error("Already connected", offending(text)))
                    .await
            }
            Incoming::Connect { version } => {
                if !ddp::version_supported(&version) {
                    self.send(ddp::failed()).await?;
                    return Err(End::UnsupportedVersion);
                }
                self.connected = true;
                // As Meteor: no heartbeat for `pre1`, which has no ping.
                if version != "pre1" {
                    self.heartbeat.start(self.limits.heartbeat_interval);
                }
                self.send(ddp::connected(&random_token(""))).await
            }
            _ if !self.connected => {
                self.send(ddp::error("Must connect first", offending(text)))
                    .await
            }
            Incoming::Ping { id } => self.send(ddp::pong(id)).await,
            Incoming::Pong => Ok(()),
            Incoming::Sub { id, name } => {
                let name = name.as_str().unwrap_or_default().to_string();
                let e = MeteorError::numeric(404, format!("Subscription '{name}' not found"));
                self.send(ddp::nosub(id, Some(&e))).await
            }
            Incoming::Unsub { id } => self.send(ddp::nosub(id, None)).await,
            Incoming::Method { id, method, params } => self.on_method(id, method, params).await,
        }
    }

    async fn on_method(
        &mut self,
        id: String,
        method: String,
        params: Vec<Value>,
    ) -> Result<(), End> {
        let now = Instant::now();
        let verdict = match self.limiter.method(&method, now) {
            Verdict::Allow if self.in_flight >= self.limits.max_in_flight => {
                self.limiter.refuse(now, Duration::from_secs(1))
            }
            v => v,
        };
        match verdict {
            Verdict::Close => Err(End::Flood("rate limit exceeded")),
            Verdict::Refuse { time_to_reset } => {
                let ms = u64::try_from(time_to_reset.as_millis()).unwrap_or(u64::MAX);
                self.answer(&id, &Err(too_many_requests(ms))).await
            }
            Verdict::Allow => {
                if self.calls.is_none()
                    && let Some(m) = self.methods.take()
                {
                    let (tx, rx) = mpsc::channel(self.limits.max_in_flight.max(1));
                    spawn_worker(m, rx, self.done.clone());
                    self.calls = Some(tx);
                }
                let queued = self.calls.as_ref().map(|tx| {
                    tx.try_send(Call {
                        id: id.clone(),
                        method,
                        params,
                    })
                });
                match queued {
                    Some(Ok(())) => {
                        self.in_flight += 1;
                        Ok(())
                    }
                    _ => {
                        tracing::error!("realtime: the method worker is gone");
                        let e = MeteorError::new(
                            "error-unavailable",
                            "The server cannot complete this request right now",
                        );
                        self.answer(&id, &Err(e)).await
                    }
                }
            }
        }
    }

    async fn on_finished(&mut self, f: Finished) -> Result<(), End> {
        self.in_flight = self.in_flight.saturating_sub(1);
        for change in f.changes {
            self.send(change).await?;
        }
        self.answer(&f.id, &f.result).await
    }

    async fn on_due(&mut self, due: Due) -> Result<(), End> {
        match due {
            Due::Ping => {
                self.heartbeat.pinged(Instant::now());
                self.send(ddp::ping()).await
            }
            Due::Unanswered => Err(End::Unanswered),
            Due::Idle => Err(End::Idle),
        }
    }

    async fn answer(&mut self, id: &str, r: &MethodResult) -> Result<(), End> {
        self.send(ddp::result(id, r)).await?;
        self.send(ddp::updated(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};

    /// Echoes its params after a pause; enough to drive the loop.
    struct Slow(Duration);

    impl Methods for Slow {
        async fn call(&mut self, method: &str, params: Vec<Value>) -> MethodResult {
            tokio::time::sleep(self.0).await;
            match method {
                "echo" => Ok(Some(Value::Array(params))),
                _ => Err(MeteorError::numeric(404, "nope")),
            }
        }
    }

    struct Client {
        to: UnboundedSender<Result<Message, axum::Error>>,
        from: UnboundedReceiver<Message>,
        task: tokio::task::JoinHandle<End>,
    }

    fn start(limits: Limits, delay: Duration) -> Client {
        let (to, incoming) = unbounded();
        let (out, from) = unbounded();
        let task = tokio::spawn(run(incoming, out, Slow(delay), limits));
        Client { to, from, task }
    }

    impl Client {
        fn send(&self, v: Value) {
            self.raw(&v.to_string());
        }
        fn raw(&self, s: &str) {
            let _ = self
                .to
                .unbounded_send(Ok(Message::Text(s.to_string().into())));
        }
        async fn next(&mut self) -> Message {
            tokio::time::timeout(Duration::from_secs(5), self.from.next())
                .await
                .expect("an answer in time")
                .expect("the connection is open")
        }
        async fn json(&mut self) -> Value {
            match self.next().await {
                Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
                other => panic!("expected text, got {other:?}"),
            }
        }
        async fn connect(&mut self) {
            self.send(json!({ "msg": "connect", "version": "1", "support": ["1"] }));
            assert_eq!(self.json().await["msg"], "connected");
        }
    }

    fn close_code_of(m: Message) -> u16 {
        match m {
            Message::Close(Some(f)) => f.code,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn idle_connections_close_and_pings_keep_them_open() {
        let limits = Limits {
            idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let mut c = start(limits, Duration::ZERO);
        c.connect().await;
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            c.send(json!({ "msg": "ping", "id": "k" }));
            assert_eq!(c.json().await, json!({ "msg": "pong", "id": "k" }));
        }
        assert_eq!(close_code_of(c.next().await), close_code::NORMAL);
        drop(c.to);
        assert_eq!(c.task.await.unwrap(), End::Idle);
    }

    #[tokio::test]
    async fn a_quiet_client_is_pinged_and_closed_only_if_it_does_not_answer() {
        let limits = Limits {
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        let mut c = start(limits, Duration::ZERO);
        c.connect().await;
        for _ in 0..3 {
            assert_eq!(c.json().await, json!({ "msg": "ping" }));
            c.send(json!({ "msg": "pong" }));
        }
        assert_eq!(c.json().await, json!({ "msg": "ping" }));
        let m = c.next().await;
        assert_eq!(close_code_of(m), close_code::NORMAL);
        drop(c.to);
        assert_eq!(c.task.await.unwrap(), End::Unanswered);
    }

    #[tokio::test]
    async fn methods_beyond_the_in_flight_cap_are_refused_and_pings_still_answered() {
        let mut c = start(Limits::default(), Duration::from_millis(300));
        c.connect().await;
        for i in 0..6 {
            c.send(
                json!({ "msg": "method", "id": i.to_string(), "method": "echo", "params": [i] }),
            );
        }
        c.send(json!({ "msg": "ping" }));
        // Calls 4 and 5 are refused at once; the ping is answered while
        // the first call still runs.
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(c.json().await);
        }
        let refused: Vec<&Value> = seen.iter().filter(|m| m["msg"] == "result").collect();
        assert_eq!(refused.len(), 2, "{seen:?}");
        for r in refused {
            assert_eq!(r["error"]["error"], "too-many-requests");
            assert!(["4", "5"].contains(&r["id"].as_str().unwrap()));
        }
        assert!(seen.contains(&json!({ "msg": "pong" })), "{seen:?}");
        // The four accepted calls answer in order.
        let mut results = Vec::new();
        while results.len() < 4 {
            let m = c.json().await;
            if m["msg"] == "result" {
                results.push(m);
            }
        }
        let ids: Vec<&str> = results.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["0", "1", "2", "3"]);
        assert_eq!(results[2]["result"], json!([2]));
    }

    #[tokio::test]
    async fn a_ping_flood_closes_with_policy_violation() {
        let mut c = start(Limits::default(), Duration::ZERO);
        c.connect().await;
        for _ in 0..300 {
            c.send(json!({ "msg": "ping" }));
        }
        loop {
            match c.next().await {
                Message::Text(_) => continue,
                m => {
                    assert_eq!(close_code_of(m), close_code::POLICY);
                    break;
                }
            }
        }
        drop(c.to);
        assert_eq!(c.task.await.unwrap(), End::Flood("too many messages"));
    }

    #[tokio::test]
    async fn protocol_mistakes_get_errors_and_the_connection_survives() {
        let mut c = start(Limits::default(), Duration::ZERO);
        c.send(json!({ "msg": "method", "id": "1", "method": "echo" }));
        assert_eq!(c.json().await["reason"], "Must connect first");
        c.connect().await;
        c.raw("{not json");
        assert_eq!(
            c.json().await,
            json!({ "msg": "error", "reason": "Parse error" })
        );
        c.send(json!({ "msg": "teleport" }));
        assert_eq!(c.json().await["reason"], "Bad request");
        c.send(json!({ "msg": "sub", "id": "s1", "name": "stream-notify-user" }));
        let nosub = c.json().await;
        assert_eq!(nosub["msg"], "nosub");
        assert_eq!(nosub["error"]["error"], 404);
        c.send(json!({ "msg": "method", "id": "2", "method": "echo", "params": ["hi"] }));
        assert_eq!(
            c.json().await,
            json!({ "msg": "result", "id": "2", "result": ["hi"] })
        );
        assert_eq!(
            c.json().await,
            json!({ "msg": "updated", "methods": ["2"] })
        );
    }

    #[tokio::test]
    async fn an_unsupported_version_fails_and_closes() {
        let mut c = start(Limits::default(), Duration::ZERO);
        c.send(json!({ "msg": "connect", "version": "2" }));
        assert_eq!(c.json().await, json!({ "msg": "failed", "version": "1" }));
        assert_eq!(close_code_of(c.next().await), close_code::PROTOCOL);
    }

    #[test]
    fn oversize_frames_are_recognised() {
        use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
        let e = axum::Error::new(Error::Capacity(CapacityError::MessageTooLong {
            size: 70_000,
            max_size: 65_536,
        }));
        assert!(is_too_big(&e));
        assert!(!is_too_big(&axum::Error::new(Error::ConnectionClosed)));
    }
}
