//! The authenticator-app method: TOTP enrolment (`enableTOTP`, then
//! `validateTempToken`), the check of a TOTP or backup code, and the 12
//! single-use backup codes. The RFC 6238 maths is in `totp`.

use serde::Serialize;

use super::methods::UserMethod;
use super::{Caller, Details, R, TwoFaError, TwoFactor, codes, totp};
use crate::domain::Method;
use crate::store::UserRow;

/// What `enableTOTP` hands the user.
#[derive(Debug, Serialize)]
pub struct TotpEnrolment {
    pub secret: String,
    pub url: String,
    pub qr: String,
}

fn invalid() -> TwoFaError {
    TwoFaError::Invalid(Details::bare(Method::Totp, false))
}

impl TwoFactor {
    fn unix_seconds(&self) -> u64 {
        (self.now_ms() / 1000) as u64
    }

    /// TOTP code (with replay guard) or a backup code (8 characters).
    pub(super) async fn check_totp(&self, user: &UserRow, code: &str) -> R<bool> {
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
        match totp::matching_step(&secret, &codes::normalize(code), self.unix_seconds()) {
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

    async fn has_totp(&self, user: &UserRow) -> R<bool> {
        Ok(self
            .methods(user)
            .await?
            .iter()
            .any(|m| m.method == Method::Totp))
    }

    pub async fn enable_totp(&self, user: &UserRow) -> R<TotpEnrolment> {
        if self.has_totp(user).await? {
            return Err(TwoFaError::bad_request(
                "totp",
                "TOTP is already enabled; disable it first",
            ));
        }
        let secret = totp::new_secret();
        self.store
            .set_totp_temp(&user.tenant, &user.id, &self.seal_secret(user, &secret))
            .await?;
        let url = totp::otpauth_url(&secret, "postern", &user.username);
        let qr = totp::qr_data_uri(&url).map_err(|m| TwoFaError::bad_request("totp", m))?;
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
        self.confirm_totp(user, code).await?;
        let row = UserMethod::row(&Method::Totp, None);
        self.store
            .put_method(&user.tenant, &user.id, &row, self.now_ms())
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

    /// The pending secret becomes the user's if `code` matches it; the
    /// confirming code spends its step.
    async fn confirm_totp(&self, user: &UserRow, code: &str) -> R<()> {
        let row = self
            .store
            .totp(&user.tenant, &user.id)
            .await?
            .unwrap_or_default();
        let Some(sealed) = row.temp_secret else {
            return Err(TwoFaError::bad_request(
                "code",
                "no TOTP enrolment is pending; call users.2fa.enableTOTP first",
            ));
        };
        let secret = self.open_secret(user, &sealed).ok_or_else(invalid)?;
        let now = self.unix_seconds();
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
        if self
            .store
            .confirm_totp(&user.tenant, &user.id, &sealed, step)
            .await?
        {
            Ok(())
        } else {
            Err(invalid())
        }
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
        if !self.has_totp(user).await? {
            return Err(TwoFaError::bad_request("totp", "TOTP is not enabled"));
        }
        Ok(self
            .store
            .count_backup_codes(&user.tenant, &user.id)
            .await?)
    }
}
