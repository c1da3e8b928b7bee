//! Sign-in: the password (as hex SHA-256 digest), then the second factor,
//! then a session.

use super::rate::MINUTE_MS;
use super::{Caller, Supplied, TwoFaError, TwoFactor, password};
use crate::crypto::{random_token, sha256_hex};
use crate::domain::TenantName;
use crate::store::{StoreError, UserRow};

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

impl TwoFactor {
    /// Password and, with 2FA, a second factor.
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
            MINUTE_MS,
            self.config.limits.logins_per_ip_per_minute,
        )
        .await?;
        let user = self.check_password(tenant, ident, digest).await?;
        self.require(&user, supplied, caller, false).await?;
        let token = random_token("");
        let now = self.now_ms();
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

    /// The user `ident` (a username, or an email) if `digest` is their password.
    async fn check_password(
        &self,
        tenant: &TenantName,
        ident: &str,
        digest: &str,
    ) -> Result<UserRow, LoginError> {
        let user = self.user_by_ident(tenant, ident).await?;
        // Unknown users cost one verification too, so timing does not tell.
        let ok = password::verify_digest_blocking(
            digest.to_string(),
            user.as_ref().and_then(|u| u.password_hash.clone()),
        )
        .await;
        match user {
            Some(u) if ok => Ok(u),
            Some(u) => {
                self.audit(
                    tenant.as_str(),
                    &u.username,
                    "login.failed",
                    Some(&u.username),
                    Some("bad password"),
                )
                .await;
                Err(LoginError::BadCredentials)
            }
            None => Err(LoginError::BadCredentials),
        }
    }

    /// A user by email (when `ident` has an `@`) or by username.
    pub(super) async fn user_by_ident(
        &self,
        tenant: &TenantName,
        ident: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        if ident.contains('@') {
            self.store.user_by_email(tenant.as_str(), ident).await
        } else {
            self.store.user_by_username(tenant.as_str(), ident).await
        }
    }
}
