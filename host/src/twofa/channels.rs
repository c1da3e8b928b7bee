//! A channel as a user's method: self-service enrolment that proves the
//! send-to with a code (`enableChannel`, then `confirmChannel`), and the
//! admin's `setTwoFactor`, which enrols without one.

use std::collections::BTreeMap;

use super::codes::{CodeCheck, CodeRequest};
use super::methods::UserMethod;
use super::{Caller, Details, R, TwoFaError, TwoFactor, tenant_of, user_subject};
use crate::domain::{ChannelName, CodePurpose, EmailAddress, Method, MethodSlot, TenantName};
use crate::store::{MethodRow, UserRow};

impl TwoFactor {
    /// `enableChannel`: proves the send-to with a code through the channel.
    pub async fn enable_channel(
        &self,
        user: &UserRow,
        channel: &str,
        send_to: &str,
        caller: &Caller,
    ) -> R<(bool, i64)> {
        let tenant = tenant_of(user);
        let ch = self.registry.get(&tenant, channel).ok_or_else(|| {
            TwoFaError::bad_request("channel", format!("no channel named `{channel}`"))
        })?;
        ch.validate_recipient(send_to)
            .await
            .map_err(TwoFaError::InvalidSendTo)?;
        let row = MethodRow {
            method: MethodSlot::Pending(ch.name.clone()),
            send_to: Some(send_to.to_string()),
        };
        self.store
            .put_method(&user.tenant, &user.id, &row, self.now_ms())
            .await?;
        let req = CodeRequest {
            tenant: &tenant,
            subject: &user_subject(user),
            purpose: CodePurpose::Enrol(ch.name.clone()),
            channel,
            send_to,
            username: Some(&user.username),
            language: user.language.as_deref(),
            alternates: BTreeMap::new(),
        };
        let expires = self.send_code(req, caller).await?;
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
        let not_pending = || {
            TwoFaError::bad_request(
                "channel",
                format!(
                    "no enrolment of `{channel}` is pending; call users.2fa.enableChannel first"
                ),
            )
        };
        let name = ChannelName::parse(channel).map_err(|_| not_pending())?;
        let slot = MethodSlot::Pending(name.clone());
        let pending = self
            .store
            .methods(&user.tenant, &user.id)
            .await?
            .into_iter()
            .find(|m| m.method == slot)
            .ok_or_else(not_pending)?;
        self.limit_checks(user, caller).await?;
        let method = Method::from_channel(name.clone());
        let details = || Details::bare(method.clone(), false);
        let purpose = CodePurpose::Enrol(name);
        match self
            .check_stored(&user.tenant, &user_subject(user), &purpose, code)
            .await?
        {
            CodeCheck::Approved => {}
            CodeCheck::Invalid | CodeCheck::NoLiveCode => {
                return Err(TwoFaError::Invalid(details()));
            }
            CodeCheck::MaxAttempts => return Err(TwoFaError::MaxAttempts(details())),
        }
        self.store
            .delete_method(&user.tenant, &user.id, &slot)
            .await?;
        let row = UserMethod::row(&method, pending.send_to.clone());
        self.store
            .put_method(&user.tenant, &user.id, &row, self.now_ms())
            .await?;
        if user.default_method.is_none() {
            user.default_method = Some(method.to_string());
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

    /// Admin enrolment without confirmation (`users.setTwoFactor`):
    /// `none`, `email` or a channel name.
    pub async fn set_method(
        &self,
        user: &mut UserRow,
        method: &str,
        send_to: Option<&str>,
    ) -> R<()> {
        let tenant = tenant_of(user);
        let method = match method {
            Method::TOTP => {
                return Err(TwoFaError::bad_request(
                    "method",
                    "TOTP needs the user's own enrolment (users.2fa.enableTOTP)",
                ));
            }
            "none" => return self.disable(user, None).await,
            Method::EMAIL => self.set_email(user, &tenant, send_to).await?,
            channel => self.set_channel(user, &tenant, channel, send_to).await?,
        };
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

    async fn set_email(
        &self,
        user: &mut UserRow,
        tenant: &TenantName,
        send_to: Option<&str>,
    ) -> R<Method> {
        self.require_email_channel(tenant)?;
        if let Some(addr) = send_to {
            EmailAddress::parse(addr).map_err(TwoFaError::InvalidSendTo)?;
            user.email = Some(addr.to_string());
            user.email_verified = true;
        } else if user.email.is_none() {
            return Err(TwoFaError::bad_request(
                "sendTo",
                "the user has no email; give sendTo",
            ));
        }
        let row = UserMethod::row(&Method::Email, None);
        self.store
            .put_method(&user.tenant, &user.id, &row, self.now_ms())
            .await?;
        Ok(Method::Email)
    }

    async fn set_channel(
        &self,
        user: &UserRow,
        tenant: &TenantName,
        channel: &str,
        send_to: Option<&str>,
    ) -> R<Method> {
        let ch = self.registry.get(tenant, channel).ok_or_else(|| {
            TwoFaError::bad_request("method", format!("no channel named `{channel}`"))
        })?;
        let to = send_to.ok_or_else(|| {
            TwoFaError::bad_request("sendTo", "sendTo is required for this method")
        })?;
        ch.validate_recipient(to)
            .await
            .map_err(TwoFaError::InvalidSendTo)?;
        let method = Method::from_channel(ch.name.clone());
        let row = UserMethod::row(&method, Some(to.to_string()));
        self.store
            .put_method(&user.tenant, &user.id, &row, self.now_ms())
            .await?;
        Ok(method)
    }
}
