//! Body, query and path extractors whose rejections use the error shape
//! (axum's own are plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::api::MAX_BODY_BYTES;
use crate::api::error::ApiError;

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
                .with_details(json!({ "maxBytes": MAX_BODY_BYTES }))
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
