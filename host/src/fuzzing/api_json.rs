//! The JSON request bodies of the API against the real router (an app built
//! from the config on a SQLite file in a temporary folder): whatever the
//! body, the answer is never a 5xx, and every 4xx is the error shape
//! `{success: false, error, errorType}`.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::app::App;
use crate::config::{Config, Source};

const ADMIN_TOKEN: &str = "pat_fuzz";

struct Rig {
    rt: tokio::runtime::Runtime,
    router: Router,
    /// A user's session (`X-User-Id`, `X-Auth-Token`) for the `user` mode.
    session: (String, String),
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let router = rt.block_on(build_router());
        let session = rt.block_on(log_in(&router));
        Rig {
            rt,
            router,
            session,
        }
    })
}

async fn build_router() -> Router {
    let dir = std::env::temp_dir().join(format!("postern-fuzz-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let toml = format!(
        "[server]\ndata_dir = {:?}\nadmin_token = {ADMIN_TOKEN:?}\n",
        dir.display().to_string()
    );
    let config = Config::from_toml(&toml, Source::Embedded, Vec::new())
        .expect("fuzz config")
        .config;
    let app = App::build(config).await.expect("app");
    let hash = crate::crypto::sha256_hex(ADMIN_TOKEN.as_bytes());
    crate::api::router(app.app_state(hash))
}

/// Creates the user `fuzz` and logs it in.
async fn log_in(router: &Router) -> (String, String) {
    let user = r#"{"username":"fuzz","password":"fuzz-password-1","email":"fuzz@example.com"}"#;
    call(router, "POST", "/api/v1/users.create", true, user).await;
    let login = r#"{"user":"fuzz","password":"fuzz-password-1"}"#;
    let (_, answer) = call(router, "POST", "/api/v1/login", false, login).await;
    let v: Value = serde_json::from_slice(&answer).expect("login answer");
    let field = |k: &str| v["data"][k].as_str().expect("logged in").to_string();
    (field("userId"), field("authToken"))
}

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    admin: bool,
    body: &str,
) -> (axum::http::StatusCode, axum::body::Bytes) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if admin {
        req = req.header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"));
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    answer(router, req).await
}

async fn answer(
    router: &Router,
    req: Request<Body>,
) -> (axum::http::StatusCode, axum::body::Bytes) {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20).await;
    (status, bytes.expect("a readable answer"))
}

/// First line `METHOD /path` and optionally ` anon` (no credentials) or
/// ` user` (the session of user `fuzz`); otherwise the admin token, which
/// every tenant route takes. The rest is the body.
pub fn run(data: &[u8]) {
    let (head, body) = super::head_and_rest(data);
    let mut words = head.split(' ');
    let method = words.next().unwrap_or_default();
    let path = words.next().unwrap_or_default();
    let mode = words.next();
    let r = rig();
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    match mode {
        Some("anon") => {}
        Some("user") => {
            req = req
                .header("x-user-id", &r.session.0)
                .header("x-auth-token", &r.session.1);
        }
        _ => req = req.header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}")),
    }
    // A request line hyper would not accept never reaches the router.
    let Ok(req) = req.body(Body::from(body.to_vec())) else {
        return;
    };
    let (status, answer) = r.rt.block_on(answer(&r.router, req));
    assert!(
        !status.is_server_error(),
        "{status} for {head}: {}",
        String::from_utf8_lossy(&answer)
    );
    if status.is_client_error() {
        let v: Value = serde_json::from_slice(&answer)
            .unwrap_or_else(|_| panic!("{status} for {head} is not JSON: {answer:?}"));
        assert_eq!(v["success"], false, "{v}");
        assert!(v["errorType"].is_string(), "{v}");
    }
}
