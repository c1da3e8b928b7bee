//! The one error shape (SPEC §3):
//! `{"success": false, "error": "<message> [<errorType>]", "errorType": "<id>", "details": {…}}`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
    pub details: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn invalid_params(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "error-invalid-params", message)
            .with_details(json!({ "field": field }))
    }

    pub fn invalid_send_to(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "error-invalid-send-to", message)
            .with_details(json!({ "field": "sendTo" }))
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "error-unauthorized",
            "You must be logged in to do this.",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "error-forbidden", "Not allowed")
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "error-not-found", what)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "error-unavailable",
            message,
        )
    }

    /// A store or other internal failure: logged in full, answered vaguely.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "error-unavailable",
            "The server cannot complete this request right now",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "error": format!("{} [{}]", self.message, self.error_type),
            "errorType": self.error_type,
            "details": self.details,
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(v) = self
            .retry_after
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e)
    }
}

/// A JSON body whose rejections use the error shape: 415 without a JSON
/// content type, 413 over the body limit, 400 `error-invalid-json` for
/// syntax, 400 `error-invalid-params` naming the field for wrong data.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "error-unsupported-media-type",
                "Expected Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "error-too-large",
                    "Request body is too large",
                )
                .with_details(json!({ "maxBytes": super::MAX_BODY_BYTES }))
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "error-invalid-json",
                    "Cannot read the request body",
                )
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Query parameters whose rejection is a 400 in the error shape (axum's own
/// is plain text).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::invalid_params("query", e.body_text()))
    }
}

/// Path parameters; a segment that cannot name anything (not UTF-8, wrong
/// type) is a 404 in the error shape, like a name that names nothing.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|e| ApiError::not_found(format!("Not found: {}", e.body_text())))
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid_json = |e: &serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "error-invalid-json",
            format!("Malformed JSON: {e}"),
        )
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end().map_err(|e| invalid_json(&e))?;
            Ok(v)
        }
        Err(e) => {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(invalid_json(inner));
            }
            let path = e.path().to_string();
            let msg = inner.to_string();
            // serde reports a missing field at the parent's path.
            let field = msg
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
                .map(|f| {
                    if path == "." {
                        f.to_string()
                    } else {
                        format!("{path}.{f}")
                    }
                })
                .unwrap_or(path);
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            Err(ApiError::invalid_params(
                &field,
                format!("Invalid `{field}`: {msg}"),
            ))
        }
    }
}
