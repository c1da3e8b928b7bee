//! The 2FA rules, shared by the REST API and the realtime API: which method
//! a user has, when a code is generated and sent, how a supplied code is
//! checked, rate limits, and the audit trail. It knows codes and users, not
//! SMTP or HTTP: delivery goes through the queue.

pub mod codes;
pub mod password;
pub mod totp;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::crypto::{Keys, random_token, sha256_hex};
use crate::delivery::Message;
use crate::delivery::queue::{Enqueue, Queue, QueueError, now_ms};
use crate::delivery::registry::Registry;
use crate::delivery::template::default_text;
use crate::domain::{EmailAddress, TenantName, mask_destination};
use crate::store::{DeliveryRecord, MethodRow, Store, StoreError, UserRow, VerificationRow};

/// Methods that are not channels.
pub const TOTP: &str = "totp";
pub const PASSWORD: &str = "password";
pub const EMAIL: &str = "email";
/// A channel enrolment waiting for its confirmation code.
const PENDING_PREFIX: &str = "pending:";

/// Who is asking: for rate limits, audit and the message's "requested from".
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

/// `details` of the totp-* errors (Rocket.Chat's shape).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    pub method: String,
    pub code_generated: bool,
    pub code_count: u32,
    pub code_expires: Vec<String>,
    pub available_methods: Vec<String>,
}

#[derive(Debug)]
pub enum TwoFaError {
    Required(Details),
    Invalid(Details),
    MaxAttempts(Details),
    TooManyRequests {
        retry_after: u64,
    },
    DeliveryFailed(Box<DeliveryRecord>),
    InvalidSendTo(String),
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
}

type R<T> = Result<T, TwoFaError>;

/// A code the caller supplied, and the method it names.
#[derive(Debug, Clone, Default)]
pub struct Supplied {
    pub code: Option<String>,
    pub method: Option<String>,
}

pub struct LoginOk {
    pub user: UserRow,
    pub token: String,
}

pub enum LoginError {
    BadCredentials,
    TwoFa(TwoFaError),
}

impl From<TwoFaError> for LoginError {
    fn from(e: TwoFaError) -> Self {
        Self::TwoFa(e)
    }
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        Self::TwoFa(e.into())
    }
}

/// What `enableTOTP` hands the user.
#[derive(Debug, Serialize)]
pub struct TotpEnrolment {
    pub secret: String,
    pub url: String,
    pub qr: String,
}

/// How a code check on a stored code ended.
enum CodeCheck {
    Approved,
    Invalid,
    MaxAttempts,
    /// No live code: none sent, expired, or dead after too many attempts.
    NoLiveCode,
}

pub struct TwoFactor {
    store: Arc<dyn Store>,
    keys: Keys,
    queue: Arc<Queue>,
    registry: Arc<Registry>,
    config: Arc<Config>,
}

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
    ) -> Self {
        Self {
            store,
            keys,
            queue,
            registry,
            config,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn ttl_ms(&self) -> i64 {
        i64::from(self.config.api.two_fa_token_ttl_seconds) * 1000
    }

    async fn audit(
        &self,
        tenant: &str,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&str>,
    ) {
        if let Err(e) = self
            .store
            .audit(tenant, actor, action, subject, detail, now_ms())
            .await
        {
            tracing::error!(error = %e, action, "cannot write audit record");
        }
    }

    /// Counts one hit against a fixed window; 429 past `max`.
    pub async fn limit(&self, key: &str, window_ms: i64, max: u32) -> R<()> {
        let now = now_ms();
        let (count, start) = self.store.rate_hit(key, now, window_ms).await?;
        if count > u64::from(max) {
            let retry_after = ((start + window_ms - now) as f64 / 1000.0).ceil().max(1.0) as u64;
            return Err(TwoFaError::TooManyRequests { retry_after });
        }
        Ok(())
    }

    async fn limit_checks(&self, user: &UserRow, caller: &Caller) -> R<()> {
        let l = &self.config.limits;
        self.limit(
            &format!("check:user:{}:{}", user.tenant, user.id),
            60_000,
            l.checks_per_user_per_minute,
        )
        .await?;
        self.limit(
            &format!("check:ip:{}", caller.ip),
            60_000,
            l.checks_per_ip_per_minute,
        )
        .await
    }

    /// The user's enabled methods: `totp` first, then `email`, then channels.
    pub async fn methods(&self, user: &UserRow) -> R<Vec<MethodRow>> {
        let mut m: Vec<MethodRow> = self
            .store
            .methods(&user.tenant, &user.id)
            .await?
            .into_iter()
            .filter(|m| !m.method.starts_with(PENDING_PREFIX))
            .collect();
        let rank = |m: &MethodRow| match m.method.as_str() {
            TOTP => 0,
            EMAIL => 1,
            _ => 2,
        };
        m.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.method.cmp(&b.method)));
        Ok(m)
    }

    pub fn method_names(methods: &[MethodRow]) -> Vec<String> {
        methods.iter().map(|m| m.method.clone()).collect()
    }

    /// The send-to of a code-delivering method.
    fn destination(user: &UserRow, m: &MethodRow) -> Option<String> {
        if m.method == EMAIL {
            user.email.clone()
        } else {
            m.send_to.clone()
        }
    }

    /// Sends a fresh code for `purpose` through `channel` to `send_to`,
    /// replacing any live one. Returns the expiry.
    #[allow(clippy::too_many_arguments)]
    async fn send_code(
        &self,
        tenant: &TenantName,
        subject: &str,
        purpose: &str,
        channel: &str,
        send_to: &str,
        username: Option<&str>,
        alternates: BTreeMap<String, String>,
        caller: &Caller,
    ) -> R<i64> {
        let limit = self.config.limits.sends_per_destination;
        self.limit(
            &format!("send:{tenant}:{channel}:{}", sha256_hex(send_to.as_bytes())),
            600_000,
            limit,
        )
        .await?;
        let code = codes::generate(self.config.limits.code_length);
        let now = now_ms();
        let expires_at = now + self.ttl_ms();
        let mac = codes::mac(&self.keys, tenant.as_str(), subject, purpose, &code);
        self.store
            .put_code(tenant.as_str(), subject, purpose, &mac, expires_at, now)
            .await?;
        let ttl = self.config.api.two_fa_token_ttl_seconds;
        let message = Message {
            send_to: send_to.to_string(),
            text: default_text(&code, ttl),
            code,
            ttl_seconds: ttl,
            username: username.unwrap_or_default().to_string(),
            user_agent: caller.user_agent.clone(),
            remote_address: Some(caller.ip.to_string()),
            locale: None,
        };
        let record = self
            .queue
            .submit(Enqueue {
                tenant: tenant.clone(),
                channel: channel.to_string(),
                message,
                username: username.map(str::to_string),
                expires_at,
                alternates,
            })
            .await;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                self.store
                    .delete_code(tenant.as_str(), subject, purpose)
                    .await?;
                return Err(match e {
                    QueueError::UnknownChannel(c) => TwoFaError::BadRequest {
                        field: "method",
                        message: format!("channel `{c}` does not exist"),
                    },
                    QueueError::InvalidSendTo(why) => TwoFaError::InvalidSendTo(why),
                    QueueError::TooManyRequests { retry_after } => {
                        TwoFaError::TooManyRequests { retry_after }
                    }
                    QueueError::Store(e) => TwoFaError::Store(e),
                });
            }
        };
        self.audit(
            tenant.as_str(),
            username.unwrap_or("-"),
            "code.sent",
            Some(subject),
            Some(&format!(
                "channel={channel} to={} delivery={} status={}",
                record.to, record.id, record.status
            )),
        )
        .await;
        if record.status == "failed" || record.status == "expired" {
            // A fallback may still be on its way; keep the code if so.
            let fallback_pending = self
                .registry
                .get(tenant, channel)
                .is_some_and(|c| c.fallback.is_some());
            if !fallback_pending {
                self.store
                    .delete_code(tenant.as_str(), subject, purpose)
                    .await?;
                return Err(TwoFaError::DeliveryFailed(Box::new(record)));
            }
        }
        Ok(expires_at)
    }

    fn alternates(user: &UserRow, methods: &[MethodRow]) -> BTreeMap<String, String> {
        methods
            .iter()
            .filter_map(|m| Self::destination(user, m).map(|d| (m.method.clone(), d)))
            .collect()
    }

    /// A live code for `method`, or a fresh one sent now: (generated, expiry).
    async fn ensure_code(
        &self,
        user: &UserRow,
        method: &MethodRow,
        methods: &[MethodRow],
        caller: &Caller,
    ) -> R<(bool, Option<i64>)> {
        if method.method == TOTP {
            return Ok((false, None));
        }
        let now = now_ms();
        let max = self.config.limits.max_check_attempts;
        if let Some(c) = self
            .store
            .code(&user.tenant, &user_subject(user), &method.method)
            .await?
            && c.expires_at > now
            && c.attempts < max
        {
            return Ok((false, Some(c.expires_at)));
        }
        let dest = Self::destination(user, method).ok_or_else(|| TwoFaError::BadRequest {
            field: "method",
            message: format!("method `{}` has no address to send to", method.method),
        })?;
        let expires = self
            .send_code(
                &tenant_of(user),
                &user_subject(user),
                &method.method,
                &method.method,
                &dest,
                Some(&user.username),
                Self::alternates(user, methods),
                caller,
            )
            .await?;
        Ok((true, Some(expires)))
    }

    fn details(
        method: &str,
        generated: bool,
        expires: Option<i64>,
        methods: &[MethodRow],
    ) -> Details {
        Details {
            method: method.to_string(),
            code_generated: generated,
            code_count: u32::from(expires.is_some()),
            code_expires: expires.map(crate::store::rfc3339).into_iter().collect(),
            available_methods: Self::method_names(methods),
        }
    }

    /// Checks a code against the stored one; counts failures.
    async fn check_stored(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &str,
        code: &str,
    ) -> R<CodeCheck> {
        let now = now_ms();
        let max = self.config.limits.max_check_attempts;
        let Some(row) = self.store.code(tenant, subject, purpose).await? else {
            return Ok(CodeCheck::NoLiveCode);
        };
        if row.expires_at <= now || row.attempts >= max {
            return Ok(CodeCheck::NoLiveCode);
        }
        let candidate = codes::mac(
            &self.keys,
            tenant,
            subject,
            purpose,
            &codes::normalize(code),
        );
        if codes::mac_eq(&candidate, &row.code_mac) {
            // Consumed at most once, even if two checks race.
            return Ok(
                if self
                    .store
                    .consume_code(tenant, subject, purpose, &row.code_mac, now, max)
                    .await?
                {
                    CodeCheck::Approved
                } else {
                    CodeCheck::Invalid
                },
            );
        }
        Ok(
            match self
                .store
                .fail_code(tenant, subject, purpose, now, max)
                .await?
            {
                Some(n) if n >= max => CodeCheck::MaxAttempts,
                Some(_) => CodeCheck::Invalid,
                None => CodeCheck::NoLiveCode,
            },
        )
    }

    /// TOTP code (with replay guard) or a backup code (8 characters).
    async fn check_totp(&self, user: &UserRow, code: &str) -> R<bool> {
        let code = code.trim();
        // As Rocket.Chat: 8 characters is a backup code, single use.
        if code.len() == 8 {
            let mac = self.backup_mac(user, code);
            return Ok(self
                .store
                .use_backup_code(&user.tenant, &user.id, &mac)
                .await?);
        }
        let Some(row) = self.store.totp(&user.tenant, &user.id).await? else {
            return Ok(false);
        };
        let Some(secret) = row.secret.and_then(|s| self.open_secret(user, &s)) else {
            return Ok(false);
        };
        let now = (now_ms() / 1000) as u64;
        match totp::matching_step(&secret, &codes::normalize(code), now) {
            Some(step) => Ok(self
                .store
                .advance_totp_step(&user.tenant, &user.id, step)
                .await?),
            None => Ok(false),
        }
    }

    fn seal_secret(&self, user: &UserRow, secret: &[u8]) -> Vec<u8> {
        self.keys
            .seal(&format!("totp:{}:{}", user.tenant, user.id), secret)
    }

    fn open_secret(&self, user: &UserRow, sealed: &[u8]) -> Option<Vec<u8>> {
        self.keys
            .open(&format!("totp:{}:{}", user.tenant, user.id), sealed)
            .ok()
    }

    fn backup_mac(&self, user: &UserRow, code: &str) -> String {
        hex::encode(
            self.keys
                .mac(format!("backup\0{}\0{}\0{code}", user.tenant, user.id).as_bytes()),
        )
    }

    /// The Rocket.Chat check on a protected call (or at login with
    /// `password_fallback = false`): without a code, a code is sent (unless
    /// one is live) and `totp-required` comes back; with one, it is checked.
    pub async fn require(
        &self,
        user: &UserRow,
        supplied: &Supplied,
        caller: &Caller,
        password_fallback: bool,
    ) -> R<()> {
        let methods = self.methods(user).await?;
        if methods.is_empty() {
            let Some(hash) = user.password_hash.as_ref().filter(|_| password_fallback) else {
                return Ok(());
            };
            let details = Self::details(PASSWORD, false, None, &methods);
            let Some(code) = &supplied.code else {
                return Err(TwoFaError::Required(details));
            };
            self.limit_checks(user, caller).await?;
            let ok = password::verify_digest_blocking(code.clone(), Some(hash.clone())).await;
            self.audit(
                &user.tenant,
                &user.username,
                if ok { "check.approved" } else { "check.failed" },
                Some(&user.username),
                Some("method=password"),
            )
            .await;
            return if ok {
                Ok(())
            } else {
                Err(TwoFaError::Invalid(details))
            };
        }
        let pick = supplied
            .method
            .as_deref()
            .and_then(|name| methods.iter().find(|m| m.method == name))
            .or_else(|| {
                user.default_method
                    .as_deref()
                    .and_then(|d| methods.iter().find(|m| m.method == d))
            })
            .or(methods.first())
            .cloned()
            .ok_or_else(|| TwoFaError::NotFound("no 2FA method".into()))?;
        match &supplied.code {
            None => {
                let (generated, expires) = self.ensure_code(user, &pick, &methods, caller).await?;
                Err(TwoFaError::Required(Self::details(
                    &pick.method,
                    generated,
                    expires,
                    &methods,
                )))
            }
            Some(code) => self.verify(user, &pick, &methods, code, caller).await,
        }
    }

    async fn verify(
        &self,
        user: &UserRow,
        method: &MethodRow,
        methods: &[MethodRow],
        code: &str,
        caller: &Caller,
    ) -> R<()> {
        self.limit_checks(user, caller).await?;
        let detail = format!("method={}", method.method);
        let fail = |generated: bool, expires: Option<i64>| {
            Self::details(&method.method, generated, expires, methods)
        };
        let result = if method.method == TOTP {
            if self.check_totp(user, code).await? {
                Ok(())
            } else {
                Err(TwoFaError::Invalid(fail(false, None)))
            }
        } else {
            match self
                .check_stored(&user.tenant, &user_subject(user), &method.method, code)
                .await?
            {
                CodeCheck::Approved => Ok(()),
                CodeCheck::Invalid => {
                    let live = self
                        .store
                        .code(&user.tenant, &user_subject(user), &method.method)
                        .await?;
                    Err(TwoFaError::Invalid(fail(false, live.map(|c| c.expires_at))))
                }
                CodeCheck::MaxAttempts => Err(TwoFaError::MaxAttempts(fail(false, None))),
                CodeCheck::NoLiveCode => {
                    // As Rocket.Chat: a dead or missing code is replaced by a fresh one.
                    let (generated, expires) =
                        self.ensure_code(user, method, methods, caller).await?;
                    Err(TwoFaError::Invalid(fail(generated, expires)))
                }
            }
        };
        let action = match &result {
            Ok(()) => "check.approved",
            Err(TwoFaError::MaxAttempts(_)) => "check.max_attempts",
            Err(_) => "check.failed",
        };
        self.audit(
            &user.tenant,
            &user.username,
            action,
            Some(&user.username),
            Some(&detail),
        )
        .await;
        result
    }

    /// Password (as hex SHA-256 digest) and, with 2FA, a second factor.
    pub async fn login(
        &self,
        tenant: &TenantName,
        ident: &str,
        digest: &str,
        supplied: &Supplied,
        caller: &Caller,
    ) -> Result<LoginOk, LoginError> {
        self.limit(
            &format!("login:ip:{}", caller.ip),
            60_000,
            self.config.limits.logins_per_ip_per_minute,
        )
        .await?;
        let user = if ident.contains('@') {
            self.store.user_by_email(tenant.as_str(), ident).await?
        } else {
            self.store.user_by_username(tenant.as_str(), ident).await?
        };
        // Unknown users cost one verification too, so timing does not tell.
        let ok = password::verify_digest_blocking(
            digest.to_string(),
            user.as_ref().and_then(|u| u.password_hash.clone()),
        )
        .await;
        let user = match user {
            Some(u) if ok => u,
            Some(u) => {
                self.audit(
                    tenant.as_str(),
                    &u.username,
                    "login.failed",
                    Some(&u.username),
                    Some("bad password"),
                )
                .await;
                return Err(LoginError::BadCredentials);
            }
            None => return Err(LoginError::BadCredentials),
        };
        self.require(&user, supplied, caller, false).await?;
        let token = random_token("");
        let now = now_ms();
        let expires = now + i64::from(self.config.limits.session_hours) * 3_600_000;
        self.store
            .create_session(
                &sha256_hex(token.as_bytes()),
                tenant.as_str(),
                &user.id,
                now,
                expires,
            )
            .await?;
        self.audit(
            tenant.as_str(),
            &user.username,
            "login",
            Some(&user.username),
            Some(&format!("ip={}", caller.ip)),
        )
        .await;
        Ok(LoginOk { user, token })
    }

    /// `users.2fa.sendEmailCode`: the same answer whether or not the user
    /// exists; the send itself happens in the background so timing does not
    /// tell either.
    pub async fn send_email_code(
        self: &Arc<Self>,
        tenant: &TenantName,
        email_or_username: &str,
        caller: &Caller,
    ) -> R<()> {
        let n = self.config.limits.code_requests_per_minute;
        self.limit(&format!("codereq:ip:{}", caller.ip), 60_000, n)
            .await?;
        self.limit(
            &format!(
                "codereq:id:{tenant}:{}",
                sha256_hex(email_or_username.to_lowercase().as_bytes())
            ),
            60_000,
            n,
        )
        .await?;
        let user = if email_or_username.contains('@') {
            self.store
                .user_by_email(tenant.as_str(), email_or_username)
                .await?
        } else {
            self.store
                .user_by_username(tenant.as_str(), email_or_username)
                .await?
        };
        let Some(user) = user else {
            return Ok(());
        };
        let me = self.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            let methods = match me.methods(&user).await {
                Ok(m) => m,
                Err(_) => return,
            };
            if !methods.iter().any(|m| m.method == EMAIL) {
                return;
            }
            let Some(dest) = user.email.clone() else {
                return;
            };
            if let Err(e) = me
                .send_code(
                    &tenant_of(&user),
                    &user_subject(&user),
                    EMAIL,
                    EMAIL,
                    &dest,
                    Some(&user.username),
                    Self::alternates(&user, &methods),
                    &caller,
                )
                .await
            {
                tracing::info!(user = %user.username, error = ?e, "sendEmailCode did not send");
            }
        });
        Ok(())
    }

    pub async fn enable_email(&self, user: &UserRow) -> R<()> {
        if user.email.is_none() || !user.email_verified {
            return Err(TwoFaError::BadRequest {
                field: "email",
                message: "You need to verify your email before setting up 2FA".into(),
            });
        }
        if self.registry.get(&tenant_of(user), EMAIL).is_none() {
            return Err(TwoFaError::BadRequest {
                field: "method",
                message: "this tenant has no `email` channel".into(),
            });
        }
        self.store
            .put_method(
                &user.tenant,
                &user.id,
                &MethodRow {
                    method: EMAIL.into(),
                    send_to: None,
                },
                now_ms(),
            )
            .await?;
        self.audit(
            &user.tenant,
            &user.username,
            "enrol.email",
            Some(&user.username),
            None,
        )
        .await;
        Ok(())
    }

    /// Removes one method (`email`, a channel or `totp`), or every one.
    pub async fn disable(&self, user: &mut UserRow, method: Option<&str>) -> R<()> {
        let methods = self.methods(user).await?;
        for m in methods
            .iter()
            .filter(|m| method.is_none_or(|x| x == m.method))
        {
            self.store
                .delete_method(&user.tenant, &user.id, &m.method)
                .await?;
            self.store
                .delete_code(&user.tenant, &user_subject(user), &m.method)
                .await?;
            if m.method == TOTP {
                self.store.delete_totp(&user.tenant, &user.id).await?;
            }
        }
        if method.is_none() || user.default_method.as_deref() == method {
            user.default_method = None;
            self.store.update_user(user).await?;
        }
        self.audit(
            &user.tenant,
            &user.username,
            "enrol.disable",
            Some(&user.username),
            Some(method.unwrap_or("all")),
        )
        .await;
        Ok(())
    }

    /// `enableChannel`: proves the send-to with a code through the channel.
    pub async fn enable_channel(
        &self,
        user: &UserRow,
        channel: &str,
        send_to: &str,
        caller: &Caller,
    ) -> R<(bool, i64)> {
        let tenant = tenant_of(user);
        let ch = self
            .registry
            .get(&tenant, channel)
            .ok_or_else(|| TwoFaError::BadRequest {
                field: "channel",
                message: format!("no channel named `{channel}`"),
            })?;
        ch.validate_recipient(send_to)
            .await
            .map_err(TwoFaError::InvalidSendTo)?;
        self.store
            .put_method(
                &user.tenant,
                &user.id,
                &MethodRow {
                    method: format!("{PENDING_PREFIX}{channel}"),
                    send_to: Some(send_to.to_string()),
                },
                now_ms(),
            )
            .await?;
        let purpose = format!("enrol:{channel}");
        let expires = self
            .send_code(
                &tenant,
                &user_subject(user),
                &purpose,
                channel,
                send_to,
                Some(&user.username),
                BTreeMap::new(),
                caller,
            )
            .await?;
        Ok((true, expires))
    }

    /// `confirmChannel`: the code from `enableChannel` turns the channel on.
    pub async fn confirm_channel(
        &self,
        user: &mut UserRow,
        channel: &str,
        code: &str,
        caller: &Caller,
    ) -> R<()> {
        let pending_name = format!("{PENDING_PREFIX}{channel}");
        let pending = self
            .store
            .methods(&user.tenant, &user.id)
            .await?
            .into_iter()
            .find(|m| m.method == pending_name)
            .ok_or_else(|| TwoFaError::BadRequest {
                field: "channel",
                message: format!(
                    "no enrolment of `{channel}` is pending; call users.2fa.enableChannel first"
                ),
            })?;
        self.limit_checks(user, caller).await?;
        let details = |generated| Details {
            method: channel.to_string(),
            code_generated: generated,
            code_count: 0,
            code_expires: Vec::new(),
            available_methods: Vec::new(),
        };
        match self
            .check_stored(
                &user.tenant,
                &user_subject(user),
                &format!("enrol:{channel}"),
                code,
            )
            .await?
        {
            CodeCheck::Approved => {}
            CodeCheck::Invalid => return Err(TwoFaError::Invalid(details(false))),
            CodeCheck::MaxAttempts => return Err(TwoFaError::MaxAttempts(details(false))),
            CodeCheck::NoLiveCode => return Err(TwoFaError::Invalid(details(false))),
        }
        self.store
            .delete_method(&user.tenant, &user.id, &pending_name)
            .await?;
        self.store
            .put_method(
                &user.tenant,
                &user.id,
                &MethodRow {
                    method: channel.to_string(),
                    send_to: pending.send_to.clone(),
                },
                now_ms(),
            )
            .await?;
        if user.default_method.is_none() {
            user.default_method = Some(channel.to_string());
            self.store.update_user(user).await?;
        }
        self.audit(
            &user.tenant,
            &user.username,
            "enrol.channel",
            Some(&user.username),
            Some(&format!("channel={channel}")),
        )
        .await;
        Ok(())
    }

    /// Admin enrolment without confirmation (`users.setTwoFactor`).
    pub async fn set_method(
        &self,
        user: &mut UserRow,
        method: &str,
        send_to: Option<&str>,
    ) -> R<()> {
        let tenant = tenant_of(user);
        match method {
            TOTP => {
                return Err(TwoFaError::BadRequest {
                    field: "method",
                    message: "TOTP needs the user's own enrolment (users.2fa.enableTOTP)".into(),
                });
            }
            "none" => return self.disable(user, None).await,
            EMAIL => {
                if self.registry.get(&tenant, EMAIL).is_none() {
                    return Err(TwoFaError::BadRequest {
                        field: "method",
                        message: "this tenant has no `email` channel".into(),
                    });
                }
                if let Some(addr) = send_to {
                    EmailAddress::parse(addr).map_err(TwoFaError::InvalidSendTo)?;
                    user.email = Some(addr.to_string());
                    user.email_verified = true;
                } else if user.email.is_none() {
                    return Err(TwoFaError::BadRequest {
                        field: "sendTo",
                        message: "the user has no email; give sendTo".into(),
                    });
                }
                self.store
                    .put_method(
                        &user.tenant,
                        &user.id,
                        &MethodRow {
                            method: EMAIL.into(),
                            send_to: None,
                        },
                        now_ms(),
                    )
                    .await?;
            }
            channel => {
                let ch =
                    self.registry
                        .get(&tenant, channel)
                        .ok_or_else(|| TwoFaError::BadRequest {
                            field: "method",
                            message: format!("no channel named `{channel}`"),
                        })?;
                let to = send_to.ok_or_else(|| TwoFaError::BadRequest {
                    field: "sendTo",
                    message: "sendTo is required for this method".into(),
                })?;
                ch.validate_recipient(to)
                    .await
                    .map_err(TwoFaError::InvalidSendTo)?;
                self.store
                    .put_method(
                        &user.tenant,
                        &user.id,
                        &MethodRow {
                            method: channel.into(),
                            send_to: Some(to.to_string()),
                        },
                        now_ms(),
                    )
                    .await?;
            }
        }
        user.default_method = Some(method.to_string());
        self.store.update_user(user).await?;
        self.audit(
            &user.tenant,
            "admin",
            "enrol.set",
            Some(&user.username),
            Some(&format!("method={method}")),
        )
        .await;
        Ok(())
    }

    pub async fn enable_totp(&self, user: &UserRow) -> R<TotpEnrolment> {
        if self.methods(user).await?.iter().any(|m| m.method == TOTP) {
            return Err(TwoFaError::BadRequest {
                field: "totp",
                message: "TOTP is already enabled; disable it first".into(),
            });
        }
        let secret = totp::new_secret();
        self.store
            .set_totp_temp(&user.tenant, &user.id, &self.seal_secret(user, &secret))
            .await?;
        let url = totp::otpauth_url(&secret, "postern", &user.username);
        let qr = totp::qr_data_uri(&url).map_err(|m| TwoFaError::BadRequest {
            field: "totp",
            message: m,
        })?;
        Ok(TotpEnrolment {
            secret: totp::base32(&secret),
            url,
            qr,
        })
    }

    /// Confirms a pending TOTP enrolment; returns 12 backup codes.
    pub async fn validate_temp_token(
        &self,
        user: &UserRow,
        code: &str,
        caller: &Caller,
    ) -> R<Vec<String>> {
        self.limit_checks(user, caller).await?;
        let invalid = || {
            TwoFaError::Invalid(Details {
                method: TOTP.into(),
                code_generated: false,
                code_count: 0,
                code_expires: vec![],
                available_methods: vec![],
            })
        };
        let row = self
            .store
            .totp(&user.tenant, &user.id)
            .await?
            .unwrap_or_default();
        let Some(sealed) = row.temp_secret else {
            return Err(TwoFaError::BadRequest {
                field: "code",
                message: "no TOTP enrolment is pending; call users.2fa.enableTOTP first".into(),
            });
        };
        let secret = self.open_secret(user, &sealed).ok_or_else(invalid)?;
        let now = (now_ms() / 1000) as u64;
        let Some(step) = totp::matching_step(&secret, &codes::normalize(code), now) else {
            self.audit(
                &user.tenant,
                &user.username,
                "check.failed",
                Some(&user.username),
                Some("method=totp enrolment"),
            )
            .await;
            return Err(invalid());
        };
        // The confirming code spends its step.
        if !self
            .store
            .confirm_totp(&user.tenant, &user.id, &sealed, step)
            .await?
        {
            return Err(invalid());
        }
        self.store
            .put_method(
                &user.tenant,
                &user.id,
                &MethodRow {
                    method: TOTP.into(),
                    send_to: None,
                },
                now_ms(),
            )
            .await?;
        let codes = self.regenerate_codes(user).await?;
        self.audit(
            &user.tenant,
            &user.username,
            "enrol.totp",
            Some(&user.username),
            None,
        )
        .await;
        Ok(codes)
    }

    pub async fn regenerate_codes(&self, user: &UserRow) -> R<Vec<String>> {
        let codes = totp::backup_codes();
        let macs: Vec<String> = codes.iter().map(|c| self.backup_mac(user, c)).collect();
        self.store
            .replace_backup_codes(&user.tenant, &user.id, &macs)
            .await?;
        Ok(codes)
    }

    pub async fn codes_remaining(&self, user: &UserRow) -> R<u64> {
        if !self.methods(user).await?.iter().any(|m| m.method == TOTP) {
            return Err(TwoFaError::BadRequest {
                field: "totp",
                message: "TOTP is not enabled".into(),
            });
        }
        Ok(self
            .store
            .count_backup_codes(&user.tenant, &user.id)
            .await?)
    }

    /// Starts a Verify-API verification of `to` through `channel`.
    pub async fn start_verification(
        &self,
        tenant: &TenantName,
        channel: &str,
        to: &str,
        username: Option<&str>,
        caller: &Caller,
    ) -> R<VerificationRow> {
        let ch = self
            .registry
            .get(tenant, channel)
            .ok_or_else(|| TwoFaError::BadRequest {
                field: "channel",
                message: format!("no channel named `{channel}`"),
            })?;
        ch.validate_recipient(to)
            .await
            .map_err(TwoFaError::InvalidSendTo)?;
        let now = now_ms();
        let v = VerificationRow {
            id: format!("ver_{}", uuid::Uuid::new_v4().simple()),
            tenant: tenant.to_string(),
            channel: channel.to_string(),
            to: mask_destination(to),
            username: username.map(str::to_string),
            status: "pending".into(),
            expires_at: now + self.ttl_ms(),
            created_at: now,
        };
        self.store.insert_verification(&v).await?;
        let subject = format!("verify:{}", v.id);
        match self
            .send_code(
                tenant,
                &subject,
                channel,
                channel,
                to,
                username,
                BTreeMap::new(),
                caller,
            )
            .await
        {
            Ok(expires_at) => Ok(VerificationRow { expires_at, ..v }),
            Err(e) => {
                self.store
                    .finish_verification(tenant.as_str(), &v.id, "canceled", now_ms())
                    .await?;
                Err(e)
            }
        }
    }

    /// A verification, its status brought up to date (pending past its
    /// expiry becomes expired).
    pub async fn verification(&self, tenant: &TenantName, id: &str) -> R<VerificationRow> {
        let mut v = self
            .store
            .verification(tenant.as_str(), id)
            .await?
            .ok_or_else(|| TwoFaError::NotFound("No such verification".into()))?;
        if v.status == "pending" && v.expires_at <= now_ms() {
            self.store
                .finish_verification(tenant.as_str(), id, "expired", now_ms())
                .await?;
            v.status = "expired".into();
        }
        Ok(v)
    }

    pub async fn check_verification(
        &self,
        tenant: &TenantName,
        id: &str,
        code: &str,
        caller: &Caller,
    ) -> R<VerificationRow> {
        let mut v = self.verification(tenant, id).await?;
        if v.status != "pending" {
            return Err(TwoFaError::NotFound(
                "No pending verification with this id".into(),
            ));
        }
        self.limit(
            &format!("check:verify:{tenant}:{id}"),
            60_000,
            self.config.limits.checks_per_user_per_minute,
        )
        .await?;
        self.limit(
            &format!("check:ip:{}", caller.ip),
            60_000,
            self.config.limits.checks_per_ip_per_minute,
        )
        .await?;
        let subject = format!("verify:{id}");
        let next = match self
            .check_stored(tenant.as_str(), &subject, &v.channel, code)
            .await?
        {
            CodeCheck::Approved => Some("approved"),
            CodeCheck::Invalid => None,
            CodeCheck::MaxAttempts => Some("max_attempts_reached"),
            // A live verification whose code is gone: a concurrent check
            // (maybe on another host) used up the last attempt.
            CodeCheck::NoLiveCode if now_ms() < v.expires_at => Some("max_attempts_reached"),
            CodeCheck::NoLiveCode => Some("expired"),
        };
        let actor = v.username.clone().unwrap_or_else(|| "api".into());
        self.audit(
            tenant.as_str(),
            &actor,
            if next == Some("approved") {
                "check.approved"
            } else {
                "check.failed"
            },
            Some(id),
            Some(&format!("verification channel={}", v.channel)),
        )
        .await;
        if let Some(status) = next {
            if self
                .store
                .finish_verification(tenant.as_str(), id, status, now_ms())
                .await?
            {
                v.status = status.into();
            } else {
                // A concurrent check finished it first: answer what it recorded.
                v = self.verification(tenant, id).await?;
            }
        }
        Ok(v)
    }

    pub async fn cancel_verification(&self, tenant: &TenantName, id: &str) -> R<VerificationRow> {
        let mut v = self.verification(tenant, id).await?;
        if !self
            .store
            .finish_verification(tenant.as_str(), id, "canceled", now_ms())
            .await?
        {
            return Err(TwoFaError::NotFound(
                "No pending verification with this id".into(),
            ));
        }
        self.store
            .delete_code(tenant.as_str(), &format!("verify:{id}"), &v.channel)
            .await?;
        v.status = "canceled".into();
        Ok(v)
    }

    /// A verification of a user through their default delivering method.
    pub async fn start_user_verification(
        &self,
        tenant: &TenantName,
        username: &str,
        caller: &Caller,
    ) -> R<VerificationRow> {
        let user = self
            .store
            .user_by_username(tenant.as_str(), username)
            .await?
            .ok_or_else(|| TwoFaError::NotFound("No such user".into()))?;
        let methods = self.methods(&user).await?;
        let preferred = user.default_method.as_deref();
        let m = methods
            .iter()
            .filter(|m| m.method != TOTP)
            .find(|m| Some(m.method.as_str()) == preferred)
            .or_else(|| methods.iter().find(|m| m.method != TOTP))
            .ok_or_else(|| TwoFaError::BadRequest {
                field: "username",
                message: "the user has no method that delivers codes".into(),
            })?;
        let to = Self::destination(&user, m).ok_or_else(|| TwoFaError::BadRequest {
            field: "username",
            message: "the user has no address for their method".into(),
        })?;
        self.start_verification(tenant, &m.method, &to, Some(&user.username), caller)
            .await
    }
}
