//! The Verify API (Twilio Verify style): a verification of a send-to (or of
//! a user through their default delivering method) with one code, checked
//! until approved, expired, canceled or out of attempts.

use std::collections::BTreeMap;

use super::codes::{CodeCheck, CodeRequest};
use super::failures::{Counted, Standing, verify_key};
use super::{Caller, R, TwoFaError, TwoFactor};
use crate::domain::{CodePurpose, Method, TenantName, VerificationStatus, mask_destination};
use crate::store::VerificationRow;

/// A verification as the API shows it: the store's row, typed there.
pub type Verification = VerificationRow;

impl Verification {
    /// Where its code is stored.
    fn subject(&self) -> String {
        subject(&self.id)
    }

    fn purpose(&self) -> CodePurpose {
        CodePurpose::Method(Method::from_channel(self.channel.clone()))
    }
}

fn subject(id: &str) -> String {
    format!("verify:{id}")
}

fn no_such() -> TwoFaError {
    TwoFaError::NotFound("No such verification".into())
}

fn not_pending() -> TwoFaError {
    TwoFaError::NotFound("No pending verification with this id".into())
}

impl TwoFactor {
    /// Starts a Verify-API verification of `to` through `channel`.
    pub async fn start_verification(
        &self,
        tenant: &TenantName,
        channel: &str,
        to: &str,
        username: Option<&str>,
        language: Option<&str>,
        caller: &Caller,
    ) -> R<Verification> {
        let ch = self.registry.get(tenant, channel).ok_or_else(|| {
            TwoFaError::bad_request("channel", format!("no channel named `{channel}`"))
        })?;
        ch.validate_recipient(to)
            .await
            .map_err(TwoFaError::InvalidSendTo)?;
        let key = verify_key(tenant, ch.name.as_str(), to);
        // A locked destination gets no new code: it could not be checked.
        if let Some(lock) = self.lock_of(&key).await? {
            return Err(TwoFaError::Locked(lock));
        }
        let now = self.now_ms();
        let v = Verification {
            id: format!("ver_{}", uuid::Uuid::new_v4().simple()),
            tenant: tenant.to_string(),
            channel: ch.name.clone(),
            to: mask_destination(to),
            username: username.map(str::to_string),
            status: VerificationStatus::Pending,
            expires_at: now + self.ttl_ms(),
            created_at: now,
            failure_key: Some(key),
        };
        self.store.insert_verification(&v).await?;
        let req = CodeRequest {
            tenant,
            subject: &v.subject(),
            purpose: v.purpose(),
            channel,
            send_to: to,
            username,
            language,
            alternates: BTreeMap::new(),
        };
        match self.send_code(req, caller).await {
            Ok(expires_at) => Ok(Verification { expires_at, ..v }),
            Err(e) => {
                self.finish_verification(tenant, &v.id, VerificationStatus::Canceled)
                    .await?;
                Err(e)
            }
        }
    }

    /// `pending` → `status`; false if it was no longer pending.
    async fn finish_verification(
        &self,
        tenant: &TenantName,
        id: &str,
        status: VerificationStatus,
    ) -> R<bool> {
        Ok(self
            .store
            .finish_verification(tenant.as_str(), id, status, self.now_ms())
            .await?)
    }

    /// A verification, its status brought up to date (pending past its
    /// expiry becomes expired).
    pub async fn verification(&self, tenant: &TenantName, id: &str) -> R<Verification> {
        let v = self.store.verification(tenant.as_str(), id).await?;
        self.up_to_date(tenant, v.ok_or_else(no_such)?).await
    }

    /// Pending past its expiry: expired, in the store too.
    async fn up_to_date(&self, tenant: &TenantName, mut v: Verification) -> R<Verification> {
        if v.status == VerificationStatus::Pending && v.expires_at <= self.now_ms() {
            self.finish_verification(tenant, &v.id, VerificationStatus::Expired)
                .await?;
            v.status = VerificationStatus::Expired;
        }
        Ok(v)
    }

    pub async fn check_verification(
        &self,
        tenant: &TenantName,
        id: &str,
        code: &str,
        caller: &Caller,
    ) -> R<Verification> {
        // The verification and its destination's failure count in one read.
        let (v, count) = self
            .store
            .verification_for_check(tenant.as_str(), id)
            .await?
            .ok_or_else(no_such)?;
        let mut v = self.up_to_date(tenant, v).await?;
        if v.status != VerificationStatus::Pending {
            return Err(not_pending());
        }
        self.limit_checks_of(&format!("check:verify:{tenant}:{id}"), caller)
            .await?;
        let actor = v.username.clone().unwrap_or_else(|| "api".into());
        let standing = self.standing_of(count);
        let next = self.check_counted(&v, standing, code, &actor).await?;
        let action = if next == Some(VerificationStatus::Approved) {
            "check.approved"
        } else {
            "check.failed"
        };
        let detail = format!("verification channel={}", v.channel);
        self.audit(tenant.as_str(), &actor, action, Some(id), Some(&detail))
            .await;
        if let Some(status) = next {
            if self.finish_verification(tenant, id, status).await? {
                v.status = status;
            } else {
                // A concurrent check finished it first: answer what it recorded.
                v = self.verification(tenant, id).await?;
            }
        }
        Ok(v)
    }

    /// The check, counted against the destination's consecutive failures:
    /// a locked destination's verification ends as max_attempts_reached
    /// without its code being looked at.
    async fn check_counted(
        &self,
        v: &Verification,
        standing: Standing,
        code: &str,
        actor: &str,
    ) -> R<Option<VerificationStatus>> {
        let Some(key) = &v.failure_key else {
            return self.check_verification_code(v, code).await;
        };
        if standing.is_locked() {
            self.store
                .delete_code(&v.tenant, &v.subject(), &v.purpose())
                .await?;
            return Ok(Some(VerificationStatus::MaxAttemptsReached));
        }
        let next = self.check_verification_code(v, code).await?;
        match next {
            Some(VerificationStatus::Approved) => self.count_success(key, standing).await?,
            None | Some(VerificationStatus::MaxAttemptsReached) => {
                let what = format!("verification channel={}", v.channel);
                if self.count_failure(key, &v.tenant, actor, &what).await? == Counted::Locked {
                    return Ok(Some(VerificationStatus::MaxAttemptsReached));
                }
            }
            Some(_) => {}
        }
        Ok(next)
    }

    /// The status a check moves the verification to; none while it stays pending.
    async fn check_verification_code(
        &self,
        v: &Verification,
        code: &str,
    ) -> R<Option<VerificationStatus>> {
        let checked = self
            .check_stored(&v.tenant, &v.subject(), &v.purpose(), code)
            .await?;
        Ok(match checked {
            CodeCheck::Approved => Some(VerificationStatus::Approved),
            CodeCheck::Invalid => None,
            CodeCheck::MaxAttempts => Some(VerificationStatus::MaxAttemptsReached),
            // A live verification whose code is gone: a concurrent check
            // (maybe on another host) used up the last attempt.
            CodeCheck::NoLiveCode if self.now_ms() < v.expires_at => {
                Some(VerificationStatus::MaxAttemptsReached)
            }
            CodeCheck::NoLiveCode => Some(VerificationStatus::Expired),
        })
    }

    pub async fn cancel_verification(&self, tenant: &TenantName, id: &str) -> R<Verification> {
        let mut v = self.verification(tenant, id).await?;
        if !self
            .finish_verification(tenant, id, VerificationStatus::Canceled)
            .await?
        {
            return Err(not_pending());
        }
        self.store
            .delete_code(tenant.as_str(), &v.subject(), &v.purpose())
            .await?;
        v.status = VerificationStatus::Canceled;
        Ok(v)
    }

    /// A verification of a user through their default delivering method.
    pub async fn start_user_verification(
        &self,
        tenant: &TenantName,
        username: &str,
        locale: Option<&str>,
        caller: &Caller,
    ) -> R<Verification> {
        let user = self
            .store
            .user_by_username(tenant.as_str(), username)
            .await?
            .ok_or_else(|| TwoFaError::NotFound("No such user".into()))?;
        let methods = self.methods(&user).await?;
        let delivering = || methods.iter().filter(|m| m.method.channel().is_some());
        let preferred = user.default_method.as_deref();
        let m = delivering()
            .find(|m| Some(m.method.as_str()) == preferred)
            .or_else(|| delivering().next())
            .ok_or_else(|| {
                TwoFaError::bad_request("username", "the user has no method that delivers codes")
            })?;
        let to = m.destination(&user).ok_or_else(|| {
            TwoFaError::bad_request("username", "the user has no address for their method")
        })?;
        // A `locale` the call gives wins over the user's stored language.
        let language = locale.or(user.language.as_deref());
        self.start_verification(
            tenant,
            m.method.as_str(),
            &to,
            Some(&user.username),
            language,
            caller,
        )
        .await
    }
}
