//! The Rocket.Chat check on a protected call (or at login with
//! `password_fallback = false`): without a code, a code is sent (unless one
//! is live) and `totp-required` comes back; with one, it is checked.

use super::codes::{CodeCheck, CodeRequest};
use super::failures::{Counted, Standing, user_key};
use super::methods::{UserMethod, alternates, method_names};
use super::{
    Caller, Details, R, Supplied, TwoFaError, TwoFactor, password, tenant_of, user_subject,
};
use crate::domain::{CodePurpose, Method};
use crate::store::UserRow;

fn details(
    user: &UserRow,
    method: &Method,
    generated: bool,
    expires: Option<i64>,
    methods: &[UserMethod],
) -> Details {
    Details {
        method: method.clone(),
        code_generated: generated,
        code_count: u32::from(expires.is_some()),
        code_expires: expires.map(crate::store::rfc3339).into_iter().collect(),
        available_methods: method_names(methods),
        // What a client hands `sendEmailCode` to have the code resent.
        email_or_username: (*method == Method::Email).then(|| user.username.clone()),
    }
}

/// The method a check is about: the one named, else the user's default,
/// else the first.
fn pick<'a>(
    user: &UserRow,
    supplied: &Supplied,
    methods: &'a [UserMethod],
) -> Option<&'a UserMethod> {
    let find = |name: &str| methods.iter().find(|m| m.method.as_str() == name);
    supplied
        .method
        .as_ref()
        .and_then(|m| find(m.as_str()))
        .or_else(|| user.default_method.as_deref().and_then(find))
        .or(methods.first())
}

impl TwoFactor {
    pub async fn require(
        &self,
        user: &UserRow,
        supplied: &Supplied,
        caller: &Caller,
        password_fallback: bool,
    ) -> R<()> {
        let methods = self.methods(user).await?;
        if methods.is_empty() {
            return self
                .require_password(user, supplied, caller, password_fallback)
                .await;
        }
        let pick = pick(user, supplied, &methods)
            .cloned()
            .ok_or_else(|| TwoFaError::NotFound("no 2FA method".into()))?;
        // A locked method sends nothing and looks at no code.
        let standing = self.standing(&user_key(user, &pick.method)).await?;
        if standing.is_locked() {
            let d = details(user, &pick.method, false, None, &methods);
            return Err(TwoFaError::MaxAttempts(d));
        }
        match &supplied.code {
            None => {
                let (generated, expires) = self.ensure_code(user, &pick, &methods, caller).await?;
                Err(TwoFaError::Required(details(
                    user,
                    &pick.method,
                    generated,
                    expires,
                    &methods,
                )))
            }
            Some(code) => {
                self.check_supplied(user, &pick, &methods, code, caller, standing)
                    .await
            }
        }
    }

    /// A user without 2FA: the password is the second factor, where asked.
    async fn require_password(
        &self,
        user: &UserRow,
        supplied: &Supplied,
        caller: &Caller,
        password_fallback: bool,
    ) -> R<()> {
        let Some(hash) = user.password_hash.as_ref().filter(|_| password_fallback) else {
            return Ok(());
        };
        let details = details(user, &Method::Password, false, None, &[]);
        let Some(code) = &supplied.code else {
            return Err(TwoFaError::Required(details));
        };
        let standing = self.standing(&user_key(user, &Method::Password)).await?;
        if standing.is_locked() {
            return Err(TwoFaError::MaxAttempts(details));
        }
        self.limit_checks(user, caller).await?;
        let ok = password::verify_digest_blocking(code.clone(), Some(hash.clone())).await;
        let result = if ok {
            Ok(())
        } else {
            Err(TwoFaError::Invalid(details.clone()))
        };
        let result = self
            .counted(user, (&Method::Password, standing), result, || details)
            .await;
        let ok = result.is_ok();
        self.audit(
            &user.tenant,
            &user.username,
            if ok { "check.approved" } else { "check.failed" },
            Some(&user.username),
            Some("method=password"),
        )
        .await;
        result
    }

    /// Counts a check against the method's consecutive failures: a success
    /// clears them, a wrong code adds one, and the one that locks the
    /// method answers max-attempts (`locked` gives its details).
    async fn counted(
        &self,
        user: &UserRow,
        (method, before): (&Method, Standing),
        result: R<()>,
        locked: impl FnOnce() -> Details,
    ) -> R<()> {
        let key = user_key(user, method);
        match &result {
            Ok(()) => self.count_success(&key, before).await?,
            Err(TwoFaError::Invalid(_) | TwoFaError::MaxAttempts(_)) => {
                let what = format!("method={method}");
                let counted = self
                    .count_failure(&key, &user.tenant, &user.username, &what)
                    .await?;
                if counted == Counted::Locked {
                    return Err(TwoFaError::MaxAttempts(locked()));
                }
            }
            Err(_) => {}
        }
        result
    }

    /// A live code for `method`, or a fresh one sent now: (generated, expiry).
    pub(super) async fn ensure_code(
        &self,
        user: &UserRow,
        method: &UserMethod,
        methods: &[UserMethod],
        caller: &Caller,
    ) -> R<(bool, Option<i64>)> {
        let Some(channel) = method.method.channel() else {
            return Ok((false, None));
        };
        let purpose = CodePurpose::Method(method.method.clone());
        let now = self.now_ms();
        let max = self.config.limits.max_check_attempts;
        let subject = user_subject(user);
        if let Some(c) = self.store.code(&user.tenant, &subject, &purpose).await?
            && c.expires_at > now
            && c.attempts < max
        {
            return Ok((false, Some(c.expires_at)));
        }
        let dest = method.destination(user).ok_or_else(|| {
            TwoFaError::bad_request(
                "method",
                format!("method `{}` has no address to send to", method.method),
            )
        })?;
        let req = CodeRequest {
            tenant: &tenant_of(user),
            subject: &subject,
            purpose,
            channel,
            send_to: &dest,
            username: Some(&user.username),
            language: user.language.as_deref(),
            alternates: alternates(user, methods),
        };
        let expires = self.send_code(req, caller).await?;
        Ok((true, Some(expires)))
    }

    /// Checks the code a caller supplied for `method`; audits the outcome.
    async fn check_supplied(
        &self,
        user: &UserRow,
        method: &UserMethod,
        methods: &[UserMethod],
        code: &str,
        caller: &Caller,
        before: Standing,
    ) -> R<()> {
        self.limit_checks(user, caller).await?;
        let result = if method.method == Method::Totp {
            if self.check_totp(user, code).await? {
                Ok(())
            } else {
                Err(TwoFaError::Invalid(details(
                    user,
                    &method.method,
                    false,
                    None,
                    methods,
                )))
            }
        } else {
            self.check_code(user, method, methods, code, caller).await
        };
        let locked = || details(user, &method.method, false, None, methods);
        let result = self
            .counted(user, (&method.method, before), result, locked)
            .await;
        let action = match &result {
            Ok(()) => "check.approved",
            Err(TwoFaError::MaxAttempts(_)) => "check.max_attempts",
            Err(_) => "check.failed",
        };
        let detail = format!("method={}", method.method);
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

    /// A sent code's check. As Rocket.Chat: a dead or missing code is
    /// replaced by a fresh one (and the answer is `totp-invalid`).
    async fn check_code(
        &self,
        user: &UserRow,
        method: &UserMethod,
        methods: &[UserMethod],
        code: &str,
        caller: &Caller,
    ) -> R<()> {
        let fail = |generated, expires| details(user, &method.method, generated, expires, methods);
        let purpose = CodePurpose::Method(method.method.clone());
        let subject = user_subject(user);
        match self
            .check_stored(&user.tenant, &subject, &purpose, code)
            .await?
        {
            CodeCheck::Approved => Ok(()),
            CodeCheck::Invalid => {
                let live = self.store.code(&user.tenant, &subject, &purpose).await?;
                Err(TwoFaError::Invalid(fail(false, live.map(|c| c.expires_at))))
            }
            CodeCheck::MaxAttempts => Err(TwoFaError::MaxAttempts(fail(false, None))),
            CodeCheck::NoLiveCode => {
                let (generated, expires) = self.ensure_code(user, method, methods, caller).await?;
                Err(TwoFaError::Invalid(fail(generated, expires)))
            }
        }
    }
}
