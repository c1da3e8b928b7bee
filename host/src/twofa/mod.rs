//! The 2FA rules, shared by the REST API and the realtime API: which method
//! a user has, when a code is generated and sent, how a supplied code is
//! checked, rate limits, and the audit trail. It knows codes and users, not
//! SMTP or HTTP: delivery goes through the queue.
//!
//! One `TwoFactor`, its `impl` split by concern:
//! - `login`: password + second factor, the session;
//! - `challenge`: the check on a protected call (`require`, `totp-required`);
//! - `codes`: one-time codes: generate, send through the queue, check;
//! - `methods`: a user's enabled methods, their order and send-to; disabling;
//! - `email`: `sendEmailCode`, `enableEmail`;
//! - `channels`: enrolment of a channel (`enableChannel`/`confirmChannel`) and
//!   the admin's `setTwoFactor`;
//! - `totp` (the RFC 6238 maths) and `authenticator` (TOTP enrolment, backup codes);
//! - `verify`: the Verify API;
//! - `fraud`: the destination policy and SMS-pumping guard on phone sends;
//! - `failures`: consecutive failed checks across codes, and the lock past them;
//! - `rate`: fixed-window limits; `audit`: the audit trail.
//!
//! Time comes from the injected [`crate::clock::Clock`], never read inline.

mod audit;
pub mod authenticator;
mod challenge;
mod channels;
pub mod codes;
mod email;
mod failures;
pub mod fraud;
mod login;
mod methods;
pub mod password;
mod rate;
pub mod totp;
mod verify;

#[cfg(test)]
mod abuse_tests;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::Keys;
use crate::delivery::queue::Queue;
use crate::delivery::registry::Registry;
use crate::domain::{Method, TenantName};
use crate::store::{DeliveryRecord, Store, StoreError, UserRow};

pub use authenticator::TotpEnrolment;
pub use failures::Lock;
pub use login::{LoginError, LoginOk};
pub use methods::UserMethod;
pub use verify::Verification;

/// Who is asking: for rate limits, audit and the message's "requested from".
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    /// The request's `Accept-Language`, for the message's language.
    pub accept_language: Option<String>,
}

/// `details` of the totp-* errors (Rocket.Chat's shape).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    pub method: Method,
    pub code_generated: bool,
    pub code_count: u32,
    pub code_expires: Vec<String>,
    pub available_methods: Vec<Method>,
    /// For email codes, who to name to `users.2fa.sendEmailCode` for a
    /// resend: the username (Rocket.Chat's `user.username || emails[0]`;
    /// a postern user always has a username).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_or_username: Option<String>,
}

impl Details {
    /// The details of a check outside sign-in (enrolments): no list of methods.
    fn bare(method: Method, code_generated: bool) -> Self {
        Self {
            method,
            code_generated,
            code_count: 0,
            code_expires: Vec::new(),
            available_methods: Vec::new(),
            email_or_username: None,
        }
    }
}

#[derive(Debug)]
pub enum TwoFaError {
    Required(Details),
    Invalid(Details),
    MaxAttempts(Details),
    TooManyRequests {
        retry_after: u64,
    },
    /// Too many consecutive failures: the destination gets no new code.
    Locked(failures::Lock),
    DeliveryFailed(Box<DeliveryRecord>),
    InvalidSendTo(String),
    /// The destination policy or the pumping guard refused the send.
    DestinationBlocked {
        country: Option<String>,
        prefix: String,
        reason: fraud::Refusal,
    },
    /// Bad input that names a field.
    BadRequest {
        field: &'static str,
        message: String,
    },
    NotFound(String),
    Store(StoreError),
}

impl From<StoreError> for TwoFaError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl TwoFaError {
    /// The Rocket.Chat error id and reason of the totp-* errors.
    pub fn totp_kind(&self) -> Option<(&'static str, &'static str, &Details)> {
        match self {
            Self::Required(d) => Some(("totp-required", "TOTP Required", d)),
            Self::Invalid(d) => Some(("totp-invalid", "TOTP Invalid", d)),
            Self::MaxAttempts(d) => Some((
                "totp-max-attempts",
                "TOTP Maximum Failed Attempts Reached",
                d,
            )),
            _ => None,
        }
    }

    fn bad_request(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field,
            message: message.into(),
        }
    }
}

type R<T> = Result<T, TwoFaError>;

/// A code the caller supplied, and the method it names (a name that is no
/// method at all counts as none named).
#[derive(Debug, Clone, Default)]
pub struct Supplied {
    pub code: Option<String>,
    pub method: Option<Method>,
}

pub struct TwoFactor {
    store: Arc<dyn Store>,
    keys: Keys,
    queue: Arc<Queue>,
    registry: Arc<Registry>,
    config: Arc<Config>,
    clock: SharedClock,
}

/// The subject a user's codes are stored under.
fn user_subject(u: &UserRow) -> String {
    format!("user:{}", u.id)
}

fn tenant_of(u: &UserRow) -> TenantName {
    TenantName::parse(&u.tenant).unwrap_or_else(|_| TenantName::default_tenant())
}

impl TwoFactor {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Keys,
        queue: Arc<Queue>,
        registry: Arc<Registry>,
        config: Arc<Config>,
        clock: SharedClock,
    ) -> Self {
        Self {
            store,
            keys,
            queue,
            registry,
            config,
            clock,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn ttl_ms(&self) -> i64 {
        i64::from(self.config.api.two_fa_token_ttl_seconds) * 1000
    }
}
