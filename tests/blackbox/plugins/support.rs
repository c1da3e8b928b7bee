//! Shared pieces of the plugin tests: building the guest plugins once per
//! process, loopback fakes of provider APIs, and runtime helpers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use postern::config::PluginsConfig;
use postern::delivery::{Message, OutcomeClass, SendOutcome, Sender};
use postern::netguard::AllowList;
use postern::plugin::{ChannelSandbox, LoadedPlugin, PluginRuntime};
use postern::secret::Secret;

pub const CODE: &str = "493817";
pub const TEXT: &str = "Your verification code is 493817. It expires in 10 minutes.";

pub fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins")
}

/// Builds every guest plugin once per test process (cheap when up to date)
/// and returns the directory holding the `.wasm` files.
pub fn wasm_dir() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = plugins_dir();
        let target = dir.join("target");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(&dir)
            .args([
                "build",
                "--release",
                "--quiet",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .map_err(|e| format!("cannot run cargo to build the plugins: {e}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("wasm32-wasip2")
                && (stderr.contains("not installed") || stderr.contains("can't find crate"))
            {
                return Err(
                    "the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`"
                        .to_string(),
                );
            }
            return Err(format!(
                "building the plugins (cd plugins && cargo build --release) failed:\n{stderr}"
            ));
        }
        Ok(target.join("wasm32-wasip2/release"))
    });
    match built {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

pub fn wasm(name: &str) -> Vec<u8> {
    let path = wasm_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compiled plugins are cached here across test runs (keyed by sha256 and
/// engine), so only the first run pays for compilation.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-tests")
}

/// Test limits: loopback allowed (fakes live on 127.0.0.1), short wall clock.
pub fn test_limits() -> PluginsConfig {
    PluginsConfig {
        allow_private_networks: true,
        wall_timeout_ms: 5_000,
        cpu_budget_ms: 200,
        ..PluginsConfig::default()
    }
}

pub fn runtime(cfg: &PluginsConfig) -> Arc<PluginRuntime> {
    PluginRuntime::new(cfg, Some(&cache_dir())).expect("plugin runtime")
}

pub async fn load(rt: &Arc<PluginRuntime>, name: &str) -> Arc<LoadedPlugin> {
    rt.load(wasm(name))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn sandbox(
    config: &[(&str, &str)],
    secrets: &[(&str, &str)],
    hosts: &[&str],
) -> ChannelSandbox {
    ChannelSandbox {
        name: "test".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: secrets
            .iter()
            .map(|(k, v)| (k.to_string(), Secret::new(*v)))
            .collect::<BTreeMap<_, _>>(),
        allow_list: AllowList::parse(hosts).expect("allow list"),
        limits: Default::default(),
    }
}

/// A sender for `plugin` with the given config/secrets/allowedHosts.
pub async fn sender(
    rt: &Arc<PluginRuntime>,
    plugin: &str,
    config: &[(&str, &str)],
    secrets: &[(&str, &str)],
    hosts: &[&str],
) -> Arc<dyn Sender> {
    let p = load(rt, plugin).await;
    rt.sender(p, sandbox(config, secrets, hosts))
}

pub fn message(send_to: &str) -> Message {
    Message {
        send_to: send_to.into(),
        code: CODE.into(),
        ttl_seconds: 600,
        text: TEXT.into(),
        username: "alice".into(),
        user_agent: Some("Mozilla/5.0".into()),
        remote_address: Some("203.0.113.9".into()),
        locale: None,
        email: None,
    }
}

pub fn assert_class(o: &SendOutcome, class: OutcomeClass) {
    assert_eq!(
        o.class,
        class,
        "detail: {}\nlog:\n{}",
        o.detail,
        o.log.as_deref().unwrap_or("")
    );
}

/// After a misbehaving delivery, the same runtime still delivers.
pub async fn assert_still_serves(rt: &Arc<PluginRuntime>) {
    let ok = sender(rt, "misbehave", &[("mode", "ok")], &[], &[]).await;
    let o = ok.send(&message("someone")).await;
    assert_class(&o, OutcomeClass::Delivered);
    assert_eq!(o.provider_id.as_deref(), Some("ok"));
}

/// One request as the fake provider received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, e.g. `/api/webhooks/1/x?wait=true`.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
    pub fn form(&self) -> BTreeMap<String, String> {
        serde_urlencoded::from_bytes(&self.body).expect("form body")
    }
}

type Responder = Arc<dyn Fn(&Seen) -> Response + Send + Sync>;

#[derive(Clone)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    respond: Responder,
    delay: Duration,
}

/// A loopback HTTP server standing in for a provider's API.
pub struct Fake {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    pub async fn start(respond: impl Fn(&Seen) -> Response + Send + Sync + 'static) -> Fake {
        Self::start_slow(Duration::ZERO, respond).await
    }

    /// Like `start`, but every answer waits `delay` first.
    pub async fn start_slow(
        delay: Duration,
        respond: impl Fn(&Seen) -> Response + Send + Sync + 'static,
    ) -> Fake {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            seen: seen.clone(),
            respond: Arc::new(respond),
            delay,
        };
        let app = axum::Router::new().fallback(handle).with_state(state);
        let addr = crate::support::http::serve_loopback(app).await;
        Fake { addr, seen }
    }

    /// `http://127.0.0.1:PORT`: both the plugin's `api_base` and the
    /// channel's allowedHosts entry.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn only_request(&self) -> Seen {
        let r = self.requests();
        assert_eq!(r.len(), 1, "expected exactly one request, got {r:?}");
        r[0].clone()
    }
}

async fn handle(State(s): State<FakeState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body: body.to_vec(),
    };
    s.seen.lock().unwrap().push(seen.clone());
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    (s.respond)(&seen)
}

pub fn json(status: u16, v: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

pub fn text(status: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "text/plain")],
        body.to_string(),
    )
        .into_response()
}

/// `size` bytes streamed in chunks, without a Content-Length.
pub fn streamed(size: usize) -> Response {
    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let n = size.div_ceil(chunk.len());
    let stream = futures::stream::iter((0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    Response::new(Body::from_stream(stream))
}
