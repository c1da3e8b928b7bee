//! A loopback receiver for many URL deliveries (rport's form POST): answers
//! every request with the current status and records who got which code
//! when. Cheaper than [`super::http::Receiver`] for thousands of requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

#[derive(Debug, Clone)]
pub struct Hit {
    pub email: String,
    /// The status this request was answered with.
    pub status: u16,
    /// When the request arrived, unix ms (the clock postern records with).
    pub at_ms: i64,
}

#[derive(Default)]
struct Shared {
    status: AtomicU16,
    delay_ms: AtomicU64,
    hits: Mutex<Vec<Hit>>,
    /// The last code each address received.
    codes: Mutex<HashMap<String, String>>,
    ok: AtomicU64,
}

/// A handle; clones share the same receiver.
#[derive(Clone)]
pub struct Sink {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Sink {
    pub async fn start(status: u16) -> Self {
        let shared = Arc::new(Shared::default());
        shared.status.store(status, Ordering::SeqCst);
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let port = super::http::serve_loopback(app).await.port();
        Self { port, shared }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// From now on, answer `status` after `delay`.
    pub fn answer(&self, status: u16, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
        self.shared.status.store(status, Ordering::SeqCst);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Requests answered with 200 so far.
    pub fn delivered(&self) -> u64 {
        self.shared.ok.load(Ordering::SeqCst)
    }

    pub fn code_for(&self, email: &str) -> Option<String> {
        self.shared.codes.lock().unwrap().get(email).cloned()
    }
}

async fn handle(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> StatusCode {
    let at_ms = chrono::Utc::now().timestamp_millis();
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (email, token) = (get("email"), get("token"));
    let status = s.status.load(Ordering::SeqCst);
    if status == 200 {
        s.ok.fetch_add(1, Ordering::SeqCst);
        s.codes.lock().unwrap().insert(email.clone(), token);
    }
    s.hits.lock().unwrap().push(Hit {
        email,
        status,
        at_ms,
    });
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
