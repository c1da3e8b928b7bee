//! The operator console at `/console`: server-rendered HTML (MiniJinja
//! templates and one stylesheet, embedded in the binary), charts as SVG
//! drawn on the server, no script at all. Signed in with the admin token
//! (the operator: every tenant) or a tenant's API key (that tenant only).
//!
//! - `session`: sign-in, sign-out, the session cookie, CSRF tokens and the
//!   cross-site checks every form post passes;
//! - `overview`, `deliveries`, `resources` (channels, plugins, audit,
//!   tenants): the pages, reading the store and the health board;
//! - `chart`: the bar charts; `view`: templates, the page frame, errors.
//!
//! Every response carries a strict Content-Security-Policy (nothing inline,
//! nothing from elsewhere, no framing) and `Cache-Control: no-store`.
//! See docs/console.md.

mod chart;
mod deliveries;
mod frame;
mod overview;
mod resources;
mod rollup;
mod session;
mod view;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::AppState;

pub use session::{COOKIE, Viewer};

/// The stylesheet every page links (the only asset).
const STYLESHEET: &str = include_str!("assets/console.css");

/// No inline script or style, nothing from another origin, no framing,
/// forms post only here.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, with its security headers; the caller adds the state.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/console", get(overview::page))
        .route(
            "/console/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/deliveries", get(deliveries::list))
        .route("/console/deliveries/{id}", get(deliveries::one))
        .route("/console/channels", get(resources::channels))
        .route("/console/channels/{name}/test", post(resources::send_test))
        .route("/console/plugins", get(resources::plugins))
        .route("/console/plugins/{name}", get(resources::plugin))
        .route("/console/audit", get(resources::audit))
        .route("/console/tenants", get(resources::tenants))
        .route("/console/assets/console.css", get(stylesheet))
        .layer(axum::Extension(Arc::new(rollup::HourCache::default())))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The security headers, and `Server-Timing: app;dur=<ms>` (the time the
/// server took, which the bench reads).
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={took:.1}")) {
        h.insert("server-timing", v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        // `same-origin`, not `no-referrer`: with the latter Chromium sends
        // `Origin: null` on the console's own form posts.
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
