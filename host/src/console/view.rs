//! The templates (embedded; MiniJinja escapes every `.html` value) and the
//! console's errors as pages.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::Environment;
use serde::Serialize;
use serde_json::json;

use crate::api::error::ApiError;
use crate::store::StoreError;
use crate::twofa::TwoFaError;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("chart.html", include_str!("templates/chart.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("error.html", include_str!("templates/error.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("delivery.html", include_str!("templates/delivery.html")),
    ("channels.html", include_str!("templates/channels.html")),
    ("plugins.html", include_str!("templates/plugins.html")),
    ("plugin.html", include_str!("templates/plugin.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("tenants.html", include_str!("templates/tenants.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        // Embedded at build time; every one is rendered by the unit tests.
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("console template {name}: {e}"));
    }
    env
});

/// Renders one page; a template error is logged and shown as a 500 page
/// without detail (it is a bug, not the viewer's input).
pub fn render(name: &str, ctx: impl Serialize) -> Result<Html<String>, ConsoleError> {
    ENV.get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
        .map(Html)
        .map_err(|e| {
            tracing::error!(template = name, error = %e, "console template failed");
            ConsoleError::Api(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error-internal",
                "The page could not be drawn.",
            ))
        })
}

/// What a page failed with: no session (to the sign-in form), or an error
/// page with the API error's status and message (which never hold secrets).
#[derive(Debug)]
pub enum ConsoleError {
    SignIn,
    Api(ApiError),
}

impl ConsoleError {
    pub fn forbidden(message: &str) -> Self {
        Self::Api(ApiError::new(
            StatusCode::FORBIDDEN,
            "error-forbidden",
            message,
        ))
    }

    pub fn bad_request(message: &str) -> Self {
        Self::Api(ApiError::new(
            StatusCode::BAD_REQUEST,
            "error-invalid-params",
            message,
        ))
    }

    pub fn not_found(message: &str) -> Self {
        Self::Api(ApiError::not_found(message))
    }
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}
impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        Self::Api(e.into())
    }
}
impl From<TwoFaError> for ConsoleError {
    fn from(e: TwoFaError) -> Self {
        Self::Api(e.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let e = match self {
            Self::SignIn => return Redirect::to("/console/sign-in").into_response(),
            Self::Api(e) => e,
        };
        let ctx = json!({ "status": e.status.as_u16(), "message": e.message });
        let body = ENV
            .get_template("error.html")
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
            .unwrap_or_else(|_| "error".into());
        let mut resp = (e.status, Html(body)).into_response();
        if let Some(s) = e.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// Milliseconds since the epoch as the console shows them (UTC).
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}
