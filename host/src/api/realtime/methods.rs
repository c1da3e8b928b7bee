//! The DDP methods of one connection. Every 2FA rule is the REST one: this
//! file only translates parameters and errors around `twofa::TwoFactor`.

use std::future::Future;

use serde_json::{Value, json};

use super::ddp::{MeteorError, MethodResult};
use crate::api::AppState;
use crate::crypto::sha256_hex;
use crate::domain::{Method, TenantName};
use crate::store::{StoreError, UserRow};
use crate::twofa::{Caller, LoginError, Supplied, TwoFaError, password};

/// Runs the methods of one connection, one at a time, in arrival order.
pub trait Methods: Send + 'static {
    fn call(
        &mut self,
        method: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = MethodResult> + Send;
}

/// The methods postern answers (besides `login` and `callWithTwoFactorRequired`).
const METHODS: &[&str] = &[
    "logout",
    "sendEmailCode",
    "2fa:enable-email",
    "2fa:disable-email",
    "2fa:enable",
    "2fa:validateTempToken",
    "2fa:regenerateCodes",
    "2fa:checkCodesRemaining",
];

const CALL_WITH_2FA: &str = "callWithTwoFactorRequired";

/// How a protected method learns about the second factor.
enum SecondFactor {
    /// `callWithTwoFactorRequired` already checked a code.
    Checked,
    /// A code from the `{twoFactorCode, twoFactorMethod}` last param, or none.
    Supplied(Supplied),
}

struct LoggedIn {
    user_id: String,
    token_hash: String,
}

/// One connection's state: who it is for and who logged in on it.
pub struct Session {
    state: AppState,
    tenant: TenantName,
    caller: Caller,
    login: Option<LoggedIn>,
}

impl Methods for Session {
    async fn call(&mut self, method: &str, mut params: Vec<Value>) -> MethodResult {
        let r = match method {
            "login" => self.login(params).await,
            CALL_WITH_2FA => self.call_with_two_factor(params).await,
            _ => {
                // The current Rocket.Chat form: the 2FA code rides as the last param.
                let supplied = take_two_factor(&mut params).unwrap_or_default();
                self.dispatch(method, params, SecondFactor::Supplied(supplied))
                    .await
            }
        };
        self.count(method, &r);
        r
    }
}

impl Session {
    /// `realtime_calls_total{method, outcome}`; labels come from fixed sets
    /// (client-chosen method names count as `other`).
    fn count(&self, method: &str, r: &MethodResult) {
        let method = if method == "login" || method == CALL_WITH_2FA || METHODS.contains(&method) {
            method
        } else {
            "other"
        };
        let numeric;
        let outcome = match r {
            Ok(_) => "ok",
            Err(e) => match &e.error {
                Value::String(id) => id.as_str(),
                other => {
                    numeric = other.to_string();
                    numeric.as_str()
                }
            },
        };
        self.state
            .metrics
            .realtime_calls
            .with_label_values(&[method, outcome])
            .inc();
    }
}

/// Pops a trailing `{twoFactorCode, twoFactorMethod}` (both required, as in
/// Rocket.Chat's `twoFactorRequired` wrapper).
fn take_two_factor(params: &mut Vec<Value>) -> Option<Supplied> {
    let last = params.last()?.as_object()?;
    let code = last.get("twoFactorCode")?.as_str()?.to_string();
    let method = last.get("twoFactorMethod")?.as_str()?.to_string();
    params.pop();
    Some(Supplied {
        code: Some(code).filter(|c| !c.trim().is_empty()),
        method: Method::parse(&method).ok(),
    })
}

fn str_param(params: &[Value], i: usize) -> Option<&str> {
    params
        .get(i)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn invalid_params(field: &str, reason: impl Into<String>) -> MeteorError {
    MeteorError::new("error-invalid-params", reason).with_details(json!({ "field": field }))
}

fn not_authorized(method: &str) -> MeteorError {
    MeteorError::new("not-authorized", "Not authorized").with_details(json!({ "method": method }))
}

fn unavailable(e: impl std::fmt::Display) -> MeteorError {
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
            TwoFaError::DeliveryFailed(record) => {
                MeteorError::new("error-delivery-failed", "The code could not be delivered")
                    .with_details(json!({
                        "channel": record.channel, "status": record.status, "deliveryId": record.id,
                    }))
            }
            TwoFaError::InvalidSendTo(why) => MeteorError::new("error-invalid-send-to", why)
                .with_details(json!({ "field": "sendTo" })),
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
fn totp_flavour(e: TwoFaError) -> MeteorError {
    match e {
        TwoFaError::Invalid(_) => MeteorError::new("invalid-totp", "Invalid TOTP provided"),
        TwoFaError::BadRequest { message, .. } => MeteorError::new("invalid-totp", message),
        other => other.into(),
    }
}

/// `tokenExpires` as EJSON, which Meteor clients store as a Date.
fn ejson_date(ms: i64) -> Value {
    json!({ "$date": ms })
}

impl Session {
    pub fn new(state: AppState, tenant: TenantName, caller: Caller) -> Self {
        Self {
            state,
            tenant,
            caller,
            login: None,
        }
    }

    /// The logged-in user, re-read on every call so a session ended
    /// elsewhere (REST logout, expiry) ends here too.
    async fn user(&mut self, method: &str) -> Result<UserRow, MeteorError> {
        let Some(login) = &self.login else {
            return Err(not_authorized(method));
        };
        let owner = self
            .state
            .store
            .session_user(
                &login.token_hash,
                self.tenant.as_str(),
                self.state.clock.now_ms(),
            )
            .await?;
        let user = match owner {
            Some(id) if id == login.user_id => {
                self.state
                    .store
                    .user_by_id(self.tenant.as_str(), &id)
                    .await?
            }
            _ => None,
        };
        match user {
            Some(u) => Ok(u),
            None => {
                self.login = None;
                Err(not_authorized(method))
            }
        }
    }

    async fn protect(&self, user: &UserRow, second: &SecondFactor) -> Result<(), MeteorError> {
        match second {
            SecondFactor::Checked => Ok(()),
            SecondFactor::Supplied(s) => Ok(self
                .state
                .twofa
                .require(user, s, &self.caller, true)
                .await?),
        }
    }

    fn session_expiry(&self) -> i64 {
        self.state.clock.now_ms() + i64::from(self.state.config.limits.session_hours) * 3_600_000
    }

    /// `login`: `{user, password}`, `{totp: {login: {user, password}, code}}`
    /// or `{resume: token}`.
    async fn login(&mut self, params: Vec<Value>) -> MethodResult {
        let Some(Value::Object(opts)) = params.into_iter().next() else {
            return Err(MeteorError::numeric(
                400,
                "Unrecognized options for login request",
            ));
        };
        if let Some(resume) = opts.get("resume") {
            return self.resume(resume.as_str().unwrap_or_default()).await;
        }
        let (inner, code) = match opts.get("totp") {
            Some(totp) => {
                let code = totp
                    .get("code")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| invalid_params("totp.code", "totp.code is required"))?;
                let login = totp
                    .get("login")
                    .and_then(Value::as_object)
                    .ok_or_else(|| invalid_params("totp.login", "totp.login is required"))?;
                (login, Some(code.to_string()))
            }
            None => (&opts, None),
        };
        let (Some(user), Some(pass)) = (inner.get("user"), inner.get("password")) else {
            return Err(MeteorError::numeric(
                400,
                "Unrecognized options for login request",
            ));
        };
        let ident = match user {
            Value::String(s) => Some(s.as_str()),
            Value::Object(u) => u
                .get("username")
                .or_else(|| u.get("email"))
                .and_then(Value::as_str),
            _ => None,
        }
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid_params("user", "user must be {username} or {email}"))?;
        let digest = match pass {
            Value::String(plain) => password::digest(plain),
            Value::Object(p) => {
                let algorithm = p.get("algorithm").and_then(Value::as_str);
                match (p.get("digest").and_then(Value::as_str), algorithm) {
                    (Some(d), Some(a)) if a.eq_ignore_ascii_case("sha-256") => d.to_string(),
                    _ => {
                        return Err(invalid_params(
                            "password",
                            "password must be {digest, algorithm: \"sha-256\"} or a string",
                        ));
                    }
                }
            }
            _ => return Err(invalid_params("password", "password is required")),
        };
        let supplied = Supplied { code, method: None };
        // Taken before the session is created: never later than its real expiry.
        let expires = self.session_expiry();
        match self
            .state
            .twofa
            .login(&self.tenant, ident, &digest, &supplied, &self.caller)
            .await
        {
            Ok(ok) => {
                self.login = Some(LoggedIn {
                    user_id: ok.user.id.clone(),
                    token_hash: sha256_hex(ok.token.as_bytes()),
                });
                Ok(Some(json!({
                    "id": ok.user.id,
                    "token": ok.token,
                    "tokenExpires": ejson_date(expires),
                    "type": "password",
                })))
            }
            // One answer for an unknown user and a wrong password.
            Err(LoginError::BadCredentials) => Err(MeteorError::numeric(
                403,
                "Something went wrong. Please check your credentials.",
            )),
            Err(LoginError::TwoFa(e)) => Err(e.into()),
        }
    }

    async fn resume(&mut self, token: &str) -> MethodResult {
        let logged_out = || {
            MeteorError::numeric(
                403,
                "You've been logged out by the server. Please log in again.",
            )
        };
        if token.is_empty() {
            return Err(logged_out());
        }
        let token_hash = sha256_hex(token.as_bytes());
        let Some(user_id) = self
            .state
            .store
            .session_user(&token_hash, self.tenant.as_str(), self.state.clock.now_ms())
            .await?
        else {
            return Err(logged_out());
        };
        self.login = Some(LoggedIn {
            user_id: user_id.clone(),
            token_hash,
        });
        Ok(Some(json!({
            "id": user_id,
            "token": token,
            // The store keeps the expiry but does not hand it out; this is
            // the latest it can be.
            "tokenExpires": ejson_date(self.session_expiry()),
            "type": "resume",
        })))
    }

    /// Rocket.Chat's `callWithTwoFactorRequired({code, ddpMethod, method, params})`:
    /// checks the code, then runs `ddpMethod` as already checked.
    async fn call_with_two_factor(&mut self, params: Vec<Value>) -> MethodResult {
        let Some(Value::Object(wrap)) = params.into_iter().next() else {
            return Err(invalid_params(
                "params",
                "expected {code, ddpMethod, method, params}",
            ));
        };
        let ddp_method = wrap
            .get("ddpMethod")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_params("ddpMethod", "ddpMethod is required"))?;
        if !METHODS.contains(&ddp_method) {
            return Err(MeteorError::numeric(
                404,
                format!("Method '{ddp_method}' not found"),
            ));
        }
        let inner_params = match wrap.get("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(invalid_params("params", "params must be an array")),
        };
        let text = |k: &str| {
            wrap.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let supplied = Supplied {
            code: text("code"),
            method: text("method").and_then(|m| Method::parse(&m).ok()),
        };
        // As Rocket.Chat: this wrapper needs a logged-in user to check against.
        let user = match self.user(CALL_WITH_2FA).await {
            Ok(u) => u,
            Err(e) if e.error == "not-authorized" => {
                return Err(MeteorError::new("error-invalid-user", "Invalid user")
                    .with_details(json!({ "method": CALL_WITH_2FA })));
            }
            Err(e) => return Err(e),
        };
        self.state
            .twofa
            .require(&user, &supplied, &self.caller, true)
            .await?;
        self.dispatch(ddp_method, inner_params, SecondFactor::Checked)
            .await
    }

    async fn dispatch(
        &mut self,
        method: &str,
        params: Vec<Value>,
        second: SecondFactor,
    ) -> MethodResult {
        let twofa = self.state.twofa.clone();
        match method {
            "logout" => {
                if let Some(login) = self.login.take() {
                    self.state.store.delete_session(&login.token_hash).await?;
                }
                Ok(None)
            }
            "sendEmailCode" => {
                // As Rocket.Chat: a logged-in caller may leave the name out.
                let who = match str_param(&params, 0) {
                    Some(w) => w.to_string(),
                    None if self.login.is_some() => self.user(method).await?.username,
                    None => {
                        return Err(MeteorError::new(
                            "error-parameter-required",
                            "emailOrUsername is required",
                        )
                        .with_details(json!({ "method": method })));
                    }
                };
                twofa
                    .send_email_code(&self.tenant, &who, &self.caller)
                    .await?;
                Ok(None)
            }
            "2fa:enable-email" => {
                let user = self.user(method).await?;
                twofa.enable_email(&user).await?;
                Ok(Some(Value::Bool(true)))
            }
            "2fa:disable-email" => {
                let mut user = self.user(method).await?;
                self.protect(&user, &second).await?;
                twofa.disable(&mut user, Some(Method::Email)).await?;
                Ok(Some(Value::Bool(true)))
            }
            "2fa:enable" => {
                let user = self.user(method).await?;
                let e = twofa.enable_totp(&user).await.map_err(totp_flavour)?;
                Ok(Some(
                    json!({ "secret": e.secret, "url": e.url, "qr": e.qr }),
                ))
            }
            "2fa:validateTempToken" => {
                let user = self.user(method).await?;
                let code = str_param(&params, 0)
                    .ok_or_else(|| invalid_params("userToken", "userToken is required"))?;
                let codes = twofa
                    .validate_temp_token(&user, code, &self.caller)
                    .await
                    .map_err(totp_flavour)?;
                Ok(Some(json!({ "codes": codes })))
            }
            "2fa:regenerateCodes" => {
                let user = self.user(method).await?;
                // Rocket.Chat's positional `userToken` is a TOTP or backup code.
                let second = match (second, str_param(&params, 0)) {
                    (SecondFactor::Supplied(s), Some(code)) if s.code.is_none() => {
                        SecondFactor::Supplied(Supplied {
                            code: Some(code.to_string()),
                            method: Some(Method::Totp),
                        })
                    }
                    (second, _) => second,
                };
                self.protect(&user, &second).await?;
                twofa.codes_remaining(&user).await.map_err(totp_flavour)?;
                let codes = twofa.regenerate_codes(&user).await?;
                Ok(Some(json!({ "codes": codes })))
            }
            "2fa:checkCodesRemaining" => {
                let user = self.user(method).await?;
                let remaining = twofa.codes_remaining(&user).await.map_err(totp_flavour)?;
                Ok(Some(json!({ "remaining": remaining })))
            }
            _ => Err(MeteorError::numeric(
                404,
                format!("Method '{method}' not found"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_param_form_needs_both_keys() {
        let mut p = vec![
            json!("x"),
            json!({ "twoFactorCode": "123456", "twoFactorMethod": "email" }),
        ];
        let s = take_two_factor(&mut p).unwrap();
        assert_eq!(s.code.as_deref(), Some("123456"));
        assert_eq!(s.method.as_ref().map(Method::as_str), Some("email"));
        assert_eq!(p, vec![json!("x")]);

        let mut only_code = vec![json!({ "twoFactorCode": "123456" })];
        assert!(take_two_factor(&mut only_code).is_none());
        assert_eq!(only_code.len(), 1);
        assert!(take_two_factor(&mut Vec::new()).is_none());
    }

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
            method: Method::Email,
            code_generated: false,
            code_count: 1,
            code_expires: vec!["2030-01-01T00:00:00.000Z".into()],
            available_methods: vec![Method::Email],
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
