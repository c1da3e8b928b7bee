//! The `email` method: codes on request (`sendEmailCode`) and turning it on.

use std::sync::Arc;

use super::codes::CodeRequest;
use super::methods::{UserMethod, alternates};
use super::rate::MINUTE_MS;
use super::{Caller, R, TwoFaError, TwoFactor, tenant_of, user_subject};
use crate::crypto::sha256_hex;
use crate::domain::{CodePurpose, Method, TenantName};
use crate::store::UserRow;

impl TwoFactor {
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
        self.limit(&format!("codereq:ip:{}", caller.ip), MINUTE_MS, n)
            .await?;
        let id = sha256_hex(email_or_username.to_lowercase().as_bytes());
        self.limit(&format!("codereq:id:{tenant}:{id}"), MINUTE_MS, n)
            .await?;
        let Some(user) = self.user_by_ident(tenant, email_or_username).await? else {
            return Ok(());
        };
        let me = self.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            if let Err(e) = me.send_email_code_now(&user, &caller).await {
                tracing::info!(user = %user.username, error = ?e, "sendEmailCode did not send");
            }
        });
        Ok(())
    }

    /// Sends an email code if the user has the `email` method and an address.
    async fn send_email_code_now(&self, user: &UserRow, caller: &Caller) -> R<()> {
        let methods = self.methods(user).await?;
        if !methods.iter().any(|m| m.method == Method::Email) {
            return Ok(());
        }
        let Some(dest) = user.email.clone() else {
            return Ok(());
        };
        if self
            .is_locked(&super::failures::user_key(user, &Method::Email))
            .await?
        {
            return Ok(());
        }
        let req = CodeRequest {
            tenant: &tenant_of(user),
            subject: &user_subject(user),
            purpose: CodePurpose::Method(Method::Email),
            channel: Method::EMAIL,
            send_to: &dest,
            username: Some(&user.username),
            language: user.language.as_deref(),
            alternates: alternates(user, &methods),
        };
        self.send_code(req, caller).await.map(|_| ())
    }

    pub async fn enable_email(&self, user: &UserRow) -> R<()> {
        if user.email.is_none() || !user.email_verified {
            return Err(TwoFaError::bad_request(
                "email",
                "You need to verify your email before setting up 2FA",
            ));
        }
        self.require_email_channel(&tenant_of(user))?;
        self.store
            .put_method(
                &user.tenant,
                &user.id,
                &UserMethod::row(&Method::Email, None),
                self.now_ms(),
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

    pub(super) fn require_email_channel(&self, tenant: &TenantName) -> R<()> {
        match self.registry.get(tenant, Method::EMAIL) {
            Some(_) => Ok(()),
            None => Err(TwoFaError::bad_request(
                "method",
                "this tenant has no `email` channel",
            )),
        }
    }
}
