//! The one error shape (SPEC §3):
//! `{"success": false, "error": "<message> [<errorType>]", "errorType": "<id>", "details": {…}}`,
//! and how every domain error maps onto it (status, type, wording).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::delivery::queue::QueueError;
use crate::delivery::tenant_channels::save::ChannelError;
use crate::plugin::upload::UploadError;
use crate::store::StoreError;
use crate::twofa::{LoginError, TwoFaError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
    pub details: Value,
    pub retry_after: Option<u64>,
}

/// The error shape every endpoint uses.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub success: bool,
    /// "<message> [<errorType>]"
    pub error: String,
    pub error_type: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
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

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "error-conflict", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "error-unavailable",
            message,
        )
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "error-too-many-requests",
            format!("Too many requests; retry in {retry_after} s"),
        )
        .with_details(json!({ "retryAfter": retry_after }));
        err.retry_after = Some(retry_after);
        err
    }

    /// A store or other internal failure: logged in full, answered vaguely.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::unavailable("The server cannot complete this request right now")
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
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(v) = self
            .retry_after
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<TwoFaError> for ApiError {
    fn from(e: TwoFaError) -> Self {
        if let Some((kind, reason, details)) = e.totp_kind() {
            return ApiError::new(StatusCode::BAD_REQUEST, kind, reason)
                .with_details(serde_json::to_value(details).unwrap_or_default());
        }
        match e {
            TwoFaError::TooManyRequests { retry_after } => Self::too_many_requests(retry_after),
            TwoFaError::DeliveryFailed(record) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "error-delivery-failed",
                "The code could not be delivered",
            )
            .with_details(json!({ "channel": record.channel, "status": record.status, "deliveryId": record.id })),
            TwoFaError::InvalidSendTo(why) => ApiError::invalid_send_to(why),
            TwoFaError::DestinationBlocked {
                country,
                prefix,
                reason,
            } => ApiError::new(
                StatusCode::FORBIDDEN,
                "error-destination-blocked",
                "Codes to this destination are blocked",
            )
            .with_details(json!({ "country": country, "prefix": prefix, "reason": reason })),
            TwoFaError::BadRequest { field, message } => ApiError::invalid_params(field, message),
            TwoFaError::NotFound(what) => ApiError::not_found(what),
            TwoFaError::Store(e) => ApiError::internal(e),
            TwoFaError::Required(_) | TwoFaError::Invalid(_) | TwoFaError::MaxAttempts(_) => {
                ApiError::internal("unreachable 2FA error mapping")
            }
        }
    }
}

/// A failed `login` carries both shapes (SPEC §6): 401
/// `{success:false, status:"error", error:"<type>", errorType, message:"<reason>", details}`;
/// `message` is the bare reason ("TOTP Required"), as Rocket.Chat's `/login`
/// sends it. Other 2FA errors (rate limits, store) are the usual shape.
pub fn login_failure(e: LoginError) -> Result<Response, ApiError> {
    match e {
        LoginError::BadCredentials => {
            Ok(login_error("error-unauthorized", "Unauthorized", json!({})))
        }
        LoginError::TwoFa(e) => match e.totp_kind() {
            Some((kind, reason, details)) => Ok(login_error(
                kind,
                reason,
                serde_json::to_value(details).unwrap_or_default(),
            )),
            None => Err(e.into()),
        },
    }
}

fn login_error(kind: &str, reason: &str, details: Value) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "success": false,
            "status": "error",
            "error": kind,
            "errorType": kind,
            "message": reason,
            "details": details,
        })),
    )
        .into_response()
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::UnknownChannel(name) => {
                ApiError::not_found(format!("No channel named `{name}`"))
            }
            QueueError::InvalidSendTo(why) => ApiError::invalid_send_to(why),
            QueueError::TooManyRequests { retry_after } => Self::too_many_requests(retry_after),
            QueueError::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::InvalidName(m) => ApiError::invalid_params("name", m),
            UploadError::NotWasm => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "error-unsupported-media-type",
                "Expected Content-Type: application/wasm",
            ),
            UploadError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "error-too-large",
                format!("The plugin is over {limit} bytes (plugins.max_upload_bytes)"),
            )
            .with_details(json!({ "maxBytes": limit })),
            UploadError::TooMany { count, limit } => {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "error-too-many-requests",
                    format!(
                        "The tenant has {count} plugins, the most allowed (limits.tenant_max_plugins)"
                    ),
                )
                .with_details(json!({ "limit": limit }));
                e.retry_after = Some(3600);
                e
            }
            UploadError::Unreadable => ApiError::new(
                StatusCode::BAD_REQUEST,
                "error-invalid-params",
                "Cannot read the request body",
            ),
            UploadError::Invalid(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "error-invalid-plugin",
                format!("Not a valid plugin: {e}"),
            )
            .with_details(json!({ "reason": e.reason() })),
            UploadError::Untrusted(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "error-invalid-plugin",
                format!("The plugin is not trusted: {e}"),
            )
            .with_details(json!({ "reason": e.reason() })),
            UploadError::Widens(w) => ApiError::conflict(
                "The new version can do more than the live one; re-upload with ?accept=permissions to accept",
            )
            .with_details(serde_json::to_value(&w).unwrap_or_default()),
            UploadError::Rollout(e) => e.into(),
            UploadError::Compile(e) => {
                ApiError::unavailable(format!("The plugin could not be compiled now: {e}"))
            }
            UploadError::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Invalid {
                field,
                message,
                position,
            } => match position {
                Some((line, column)) => ApiError::invalid_params(&field, message)
                    .with_details(json!({ "field": field, "line": line, "column": column })),
                None => ApiError::invalid_params(&field, message),
            },
            ChannelError::Conflict { message, field } => {
                let e = ApiError::new(StatusCode::CONFLICT, "error-conflict", message);
                match field {
                    Some(f) => e.with_details(json!({ "field": f })),
                    None => e,
                }
            }
            ChannelError::NotFound => ApiError::not_found("No such channel"),
            ChannelError::Internal(m) => ApiError::internal(m),
            ChannelError::Store(e) => e.into(),
        }
    }
}
