//! The DDP methods of one connection. Every 2FA rule is the REST one: this
//! file only runs `twofa::TwoFactor` with what `params.rs` parsed and maps
//! its answers (errors through `errors.rs`).

use std::future::Future;

use serde_json::{Value, json};

use super::ddp::{self, MeteorError, MethodResult};
use super::errors::{invalid_params, method_not_found, not_authorized, totp_flavour};
use super::params::{LoginRequest, login_request, str_param, take_two_factor};
use crate::api::AppState;
use crate::api::extract::session_user;
use crate::crypto::sha256_hex;
use crate::domain::{Method, TenantName};
use crate::store::UserRow;
use crate::twofa::{Caller, LoginError, Supplied};

/// Runs the methods of one connection, one at a time, in arrival order.
pub trait Methods: Send + 'static {
    fn call(
        &mut self,
        method: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = MethodResult> + Send;

    /// The collection messages the last call caused, sent before its result.
    fn take_changes(&mut self) -> Vec<String> {
        Vec::new()
    }
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
    /// The user whose document this connection was sent (`added`).
    published: Option<String>,
    changes: Vec<String>,
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

    fn take_changes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.changes)
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
            published: None,
            changes: Vec::new(),
        }
    }

    /// As Meteor after a login: the user's own document on `users`
    /// (`username`, `emails`, `name`; never the password or any secret), so
    /// clients such as `@rocket.chat/ddp-client` fill `account.user`.
    fn publish_user(&mut self, user: &UserRow) {
        if self.published.as_deref() == Some(user.id.as_str()) {
            return;
        }
        self.unpublish_user();
        let mut fields = json!({ "username": user.username });
        if let Some(email) = &user.email {
            fields["emails"] = json!([{ "address": email, "verified": user.email_verified }]);
        }
        if let Some(name) = &user.name {
            fields["name"] = json!(name);
        }
        self.changes.push(ddp::added("users", &user.id, fields));
        self.published = Some(user.id.clone());
    }

    /// As Meteor after a logout: the document is withdrawn.
    fn unpublish_user(&mut self) {
        if let Some(id) = self.published.take() {
            self.changes.push(ddp::removed("users", &id));
        }
    }

    /// The logged-in user, re-read on every call so a session ended
    /// elsewhere (REST logout, expiry) ends here too.
    async fn user(&mut self, method: &str) -> Result<UserRow, MeteorError> {
        let Some(login) = &self.login else {
            return Err(not_authorized(method));
        };
        let (store, now) = (self.state.store.as_ref(), self.state.clock.now_ms());
        match session_user(store, &self.tenant, &login.token_hash, &login.user_id, now).await? {
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
        match login_request(params)? {
            LoginRequest::Resume(token) => self.resume(&token).await,
            LoginRequest::Password {
                ident,
                digest,
                code,
            } => self.password_login(&ident, &digest, code).await,
        }
    }

    async fn password_login(
        &mut self,
        ident: &str,
        digest: &str,
        code: Option<String>,
    ) -> MethodResult {
        let supplied = Supplied { code, method: None };
        // Taken before the session is created: never later than its real expiry.
        let expires = self.session_expiry();
        match self
            .state
            .twofa
            .login(&self.tenant, ident, digest, &supplied, &self.caller)
            .await
        {
            Ok(ok) => {
                self.login = Some(LoggedIn {
                    user_id: ok.user.id.clone(),
                    token_hash: sha256_hex(ok.token.as_bytes()),
                });
                self.publish_user(&ok.user);
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
        let user = match self.user("login").await {
            Ok(u) => u,
            Err(e) if e.error == "not-authorized" => return Err(logged_out()),
            Err(e) => return Err(e),
        };
        self.publish_user(&user);
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
            return Err(method_not_found(ddp_method));
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
        match method {
            "logout" => {
                if let Some(login) = self.login.take() {
                    self.state.store.delete_session(&login.token_hash).await?;
                }
                self.unpublish_user();
                Ok(None)
            }
            "sendEmailCode" => self.send_email_code(method, &params).await,
            "2fa:enable-email" => {
                let user = self.user(method).await?;
                self.state.twofa.enable_email(&user).await?;
                Ok(Some(Value::Bool(true)))
            }
            "2fa:disable-email" => {
                let mut user = self.user(method).await?;
                self.protect(&user, &second).await?;
                self.state
                    .twofa
                    .disable(&mut user, Some(Method::Email))
                    .await?;
                Ok(Some(Value::Bool(true)))
            }
            "2fa:enable" => {
                let user = self.user(method).await?;
                let e = self.state.twofa.enable_totp(&user).await;
                let e = e.map_err(totp_flavour)?;
                Ok(Some(
                    json!({ "secret": e.secret, "url": e.url, "qr": e.qr }),
                ))
            }
            "2fa:validateTempToken" => self.validate_temp_token(method, &params).await,
            "2fa:regenerateCodes" => self.regenerate_codes(method, &params, second).await,
            "2fa:checkCodesRemaining" => {
                let user = self.user(method).await?;
                let remaining = self.state.twofa.codes_remaining(&user).await;
                let remaining = remaining.map_err(totp_flavour)?;
                Ok(Some(json!({ "remaining": remaining })))
            }
            _ => Err(method_not_found(method)),
        }
    }

    async fn send_email_code(&mut self, method: &str, params: &[Value]) -> MethodResult {
        // As Rocket.Chat: a logged-in caller may leave the name out.
        let who = match str_param(params, 0) {
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
        self.state
            .twofa
            .send_email_code(&self.tenant, &who, &self.caller)
            .await?;
        Ok(None)
    }

    async fn validate_temp_token(&mut self, method: &str, params: &[Value]) -> MethodResult {
        let user = self.user(method).await?;
        let code = str_param(params, 0)
            .ok_or_else(|| invalid_params("userToken", "userToken is required"))?;
        let codes = self
            .state
            .twofa
            .validate_temp_token(&user, code, &self.caller)
            .await
            .map_err(totp_flavour)?;
        Ok(Some(json!({ "codes": codes })))
    }

    async fn regenerate_codes(
        &mut self,
        method: &str,
        params: &[Value],
        second: SecondFactor,
    ) -> MethodResult {
        let user = self.user(method).await?;
        // Rocket.Chat's positional `userToken` is a TOTP or backup code.
        let second = match (second, str_param(params, 0)) {
            (SecondFactor::Supplied(s), Some(code)) if s.code.is_none() => {
                SecondFactor::Supplied(Supplied {
                    code: Some(code.to_string()),
                    method: Some(Method::Totp),
                })
            }
            (second, _) => second,
        };
        self.protect(&user, &second).await?;
        let twofa = &self.state.twofa;
        twofa.codes_remaining(&user).await.map_err(totp_flavour)?;
        let codes = twofa.regenerate_codes(&user).await?;
        Ok(Some(json!({ "codes": codes })))
    }
}
