//! The REST error mapping in Meteor's shape: what a method answers when the
//! 2FA core or the store says no. Ids and wording match Rocket.Chat's.

use serde_json::json;

use super::ddp::MeteorError;
use crate::store::StoreError;
use crate::twofa::TwoFaError;

pub fn invalid_params(field: &str, reason: impl Into<String>) -> MeteorError {
    MeteorError::new("error-invalid-params", reason).with_details(json!({ "field": field }))
}

pub fn not_authorized(method: &str) -> MeteorError {
    MeteorError::new("not-authorized", "Not authorized").with_details(json!({ "method": method }))
}

/// Meteor's answer to an unknown method.
pub fn method_not_found(method: &str) -> MeteorError {
    MeteorError::numeric(404, format!("Method '{method}' not found"))
}

/// Meteor's answer to `login` options it does not know.
pub fn unrecognized_login() -> MeteorError {
    MeteorError::numeric(400, "Unrecognized options for login request")
}

pub fn unavailable(e: impl std::fmt::Display) -> MeteorError {
    tracing::error!(error = %e, "realtime: internal error");
    MeteorError::new(
        "error-unavailable",
        "The server cannot complete this request right now",
    )
}

impl From<StoreError> for MeteorError {
    fn from(e: StoreError) -> Self {
        unavailable(e)
    }
}

/// The REST mapping of the 2FA core's errors, in Meteor's shape.
impl From<TwoFaError> for MeteorError {
    fn from(e: TwoFaError) -> Self {
        if let Some((kind, reason, details)) = e.totp_kind() {
            return MeteorError::new(kind, reason)
                .with_details(serde_json::to_value(details).unwrap_or_default());
        }
        match e {
            TwoFaError::TooManyRequests { retry_after } => too_many_requests(retry_after * 1000),
            TwoFaError::Locked(lock) => MeteorError::new(
                "error-too-many-requests",
                "Too many failed checks: this destination is locked",
            )
            .with_details(json!({ "locked": true, "retryAfter": lock.retry_after })),
            TwoFaError::DeliveryFailed(record) => {
                MeteorError::new("error-delivery-failed", "The code could not be delivered")
                    .with_details(json!({
                        "channel": record.channel, "status": record.status, "deliveryId": record.id,
                    }))
            }
            TwoFaError::InvalidSendTo(why) => MeteorError::new("error-invalid-send-to", why)
                .with_details(json!({ "field": "sendTo" })),
            TwoFaError::DestinationBlocked {
                country,
                prefix,
                reason,
            } => MeteorError::new(
                "error-destination-blocked",
                "Codes to this destination are blocked",
            )
            .with_details(json!({ "country": country, "prefix": prefix, "reason": reason })),
            TwoFaError::BadRequest { field, message } => invalid_params(field, message),
            TwoFaError::NotFound(what) => MeteorError::new("error-not-found", what),
            TwoFaError::Store(e) => unavailable(e),
            TwoFaError::Required(_) | TwoFaError::Invalid(_) | TwoFaError::MaxAttempts(_) => {
                unavailable("unreachable 2FA error mapping")
            }
        }
    }
}

/// Meteor's `DDPRateLimiter` error.
pub fn too_many_requests(time_to_reset_ms: u64) -> MeteorError {
    let seconds = time_to_reset_ms.div_ceil(1000).max(1);
    MeteorError::new(
        "too-many-requests",
        format!(
            "Error, too many requests. Please slow down. You must wait {seconds} seconds before trying again."
        ),
    )
    .with_details(json!({ "timeToReset": time_to_reset_ms }))
}

/// Rocket.Chat's TOTP enrolment methods answer `invalid-totp` for a wrong
/// code or a TOTP state that does not allow the call.
pub fn totp_flavour(e: TwoFaError) -> MeteorError {
    match e {
        TwoFaError::Invalid(_) => MeteorError::new("invalid-totp", "Invalid TOTP provided"),
        TwoFaError::BadRequest { message, .. } => MeteorError::new("invalid-totp", message),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_error_names_the_wait() {
        let e = too_many_requests(6_500).to_json();
        assert_eq!(e["error"], "too-many-requests");
        assert_eq!(e["details"]["timeToReset"], 6_500);
        assert_eq!(
            e["message"],
            "Error, too many requests. Please slow down. You must wait 7 seconds before trying again. [too-many-requests]"
        );
    }

    #[test]
    fn two_fa_errors_keep_rocket_chat_ids() {
        let d = crate::twofa::Details {
            method: crate::domain::Method::Email,
            code_generated: false,
            code_count: 1,
            code_expires: vec!["2030-01-01T00:00:00.000Z".into()],
            available_methods: vec![crate::domain::Method::Email],
            email_or_username: Some("ann".into()),
        };
        let e: MeteorError = TwoFaError::MaxAttempts(d).into();
        let j = e.to_json();
        assert_eq!(j["error"], "totp-max-attempts");
        assert_eq!(j["details"]["availableMethods"], json!(["email"]));
        assert_eq!(
            j["message"],
            format!("{} [totp-max-attempts]", j["reason"].as_str().unwrap())
        );
    }
}
