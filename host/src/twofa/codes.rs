//! One-time codes: generated from a CSPRNG, stored only as an HMAC keyed by
//! the server secret, compared in constant time; sent through the queue
//! (`TwoFactor::send_code`) and checked at most `max_check_attempts` times
//! (`TwoFactor::check_stored`).

use std::collections::BTreeMap;

use rand::Rng;
use subtle::ConstantTimeEq;

use super::rate::SEND_WINDOW_MS;
use super::{Caller, R, TwoFaError, TwoFactor};
use crate::crypto::{Keys, sha256_hex};
use crate::delivery::Message;
use crate::delivery::queue::{Answer, Enqueue, QueueError};
use crate::domain::{CodePurpose, TenantName};
use crate::messages::Preferences;
use crate::store::{DeliveryRecord, DeliveryStatus, NewCode};

/// `len` random decimal digits.
pub fn generate(len: u32) -> String {
    // ThreadRng is a CSPRNG (ChaCha12) seeded and reseeded from the OS.
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Users type `123-456` or `123 456`; only the digits count.
pub fn normalize(input: &str) -> String {
    input.chars().filter(char::is_ascii_digit).collect()
}

/// The stored form of a code, bound to where it may be used.
pub fn mac(keys: &Keys, tenant: &str, subject: &str, purpose: &str, code: &str) -> String {
    let data = format!("code\0{tenant}\0{subject}\0{purpose}\0{code}");
    hex::encode(keys.mac(data.as_bytes()))
}

pub fn mac_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A code to send: where it is stored and where it goes.
pub(super) struct CodeRequest<'a> {
    pub tenant: &'a TenantName,
    /// `user:<id>` or `verify:<id>`.
    pub subject: &'a str,
    pub purpose: CodePurpose,
    pub channel: &'a str,
    pub send_to: &'a str,
    pub username: Option<&'a str>,
    /// The reader's stored language or a Verify `locale` (BCP 47), first
    /// in the locale chain.
    pub language: Option<&'a str>,
    /// Send-to values for the channel's fallbacks, by channel name.
    pub alternates: BTreeMap<String, String>,
}

/// How a code check on a stored code ended.
pub(super) enum CodeCheck {
    Approved,
    Invalid,
    MaxAttempts,
    /// No live code: none sent, expired, or dead after too many attempts.
    NoLiveCode,
}

impl TwoFactor {
    /// Sends a fresh code through the request's channel, replacing any live
    /// one for the same subject and purpose. Returns the expiry.
    pub(super) async fn send_code(&self, req: CodeRequest<'_>, caller: &Caller) -> R<i64> {
        let tenant = req.tenant.as_str();
        let tracked = self
            .fraud_admit(req.tenant, req.channel, req.send_to)
            .await?;
        let destination = sha256_hex(req.send_to.as_bytes());
        self.limit(
            &format!("send:{tenant}:{}:{destination}", req.channel),
            SEND_WINDOW_MS,
            self.config.limits.sends_per_destination,
        )
        .await?;
        let code = generate(self.config.limits.code_length);
        let now = self.now_ms();
        let expires_at = now + self.ttl_ms();
        let code_mac = mac(
            &self.keys,
            tenant,
            req.subject,
            &req.purpose.as_str(),
            &code,
        );
        self.store
            .put_code(
                tenant,
                req.subject,
                &req.purpose,
                &NewCode {
                    mac: &code_mac,
                    expires_at,
                    created_at: now,
                    fraud_tracked: tracked.is_some(),
                },
            )
            .await?;
        let submitted = self
            .queue
            .submit_as(
                Enqueue {
                    tenant: req.tenant.clone(),
                    channel: req.channel.to_string(),
                    message: self.message(code, &req, caller),
                    username: req.username.map(str::to_string),
                    expires_at,
                    alternates: req.alternates.clone(),
                },
                Answer::Status,
            )
            .await;
        let record = match submitted {
            Ok(r) => r,
            Err(e) => {
                self.store
                    .delete_code(tenant, req.subject, &req.purpose)
                    .await?;
                return Err(queue_error(e));
            }
        };
        if let Some(t) = &tracked {
            let purpose = req.purpose.as_str();
            self.fraud_record(req.tenant, t, req.subject, &purpose)
                .await?;
        }
        self.after_submit(&req, record).await?;
        Ok(expires_at)
    }

    fn message(&self, code: String, req: &CodeRequest<'_>, caller: &Caller) -> Message {
        let ttl = self.config.api.two_fa_token_ttl_seconds;
        let prefs =
            Preferences::chain(req.language, caller.accept_language.as_deref(), req.send_to);
        let locale = self
            .registry
            .get(req.tenant, req.channel)
            .map(|c| c.messages.choose(&prefs).to_string());
        Message {
            send_to: req.send_to.to_string(),
            // Rendered by each channel before its attempt.
            text: String::new(),
            code,
            ttl_seconds: ttl,
            username: req.username.unwrap_or_default().to_string(),
            user_agent: caller.user_agent.clone(),
            remote_address: Some(caller.ip.to_string()),
            locale,
            email: None,
        }
    }

    /// Audits the first attempt; a code whose delivery already failed (and
    /// has no fallback on its way) is withdrawn and the failure returned.
    async fn after_submit(&self, req: &CodeRequest<'_>, record: DeliveryRecord) -> R<()> {
        self.audit(
            req.tenant.as_str(),
            req.username.unwrap_or("-"),
            "code.sent",
            Some(req.subject),
            Some(&format!(
                "channel={} to={} delivery={} status={}",
                req.channel,
                record.to,
                record.id,
                record.status.as_str()
            )),
        )
        .await;
        if !matches!(
            record.status,
            DeliveryStatus::Failed | DeliveryStatus::Expired
        ) {
            return Ok(());
        }
        // A fallback may still be on its way; keep the code if so.
        let fallback_pending = self
            .registry
            .get(req.tenant, req.channel)
            .is_some_and(|c| c.fallback.is_some());
        if fallback_pending {
            return Ok(());
        }
        self.store
            .delete_code(req.tenant.as_str(), req.subject, &req.purpose)
            .await?;
        Err(TwoFaError::DeliveryFailed(Box::new(record)))
    }

    /// Checks a code against the stored one; counts failures.
    pub(super) async fn check_stored(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &CodePurpose,
        code: &str,
    ) -> R<CodeCheck> {
        let now = self.now_ms();
        let max = self.config.limits.max_check_attempts;
        let Some(row) = self.store.code(tenant, subject, purpose).await? else {
            return Ok(CodeCheck::NoLiveCode);
        };
        if row.expires_at <= now || row.attempts >= max {
            return Ok(CodeCheck::NoLiveCode);
        }
        let candidate = mac(
            &self.keys,
            tenant,
            subject,
            &purpose.as_str(),
            &normalize(code),
        );
        if mac_eq(&candidate, &row.code_mac) {
            // Consumed at most once, even if two checks race.
            let consumed = self
                .store
                .consume_code(tenant, subject, purpose, &row.code_mac, now, max)
                .await?;
            if consumed && row.fraud_tracked {
                self.fraud_converted(tenant, subject, &purpose.as_str())
                    .await?;
            }
            return Ok(if consumed {
                CodeCheck::Approved
            } else {
                CodeCheck::Invalid
            });
        }
        let failed = self
            .store
            .fail_code(tenant, subject, purpose, now, max)
            .await?;
        Ok(match failed {
            Some(n) if n >= max => CodeCheck::MaxAttempts,
            Some(_) => CodeCheck::Invalid,
            None => CodeCheck::NoLiveCode,
        })
    }
}

fn queue_error(e: QueueError) -> TwoFaError {
    match e {
        QueueError::UnknownChannel(c) => {
            TwoFaError::bad_request("method", format!("channel `{c}` does not exist"))
        }
        QueueError::InvalidSendTo(why) => TwoFaError::InvalidSendTo(why),
        QueueError::TooManyRequests { retry_after } => TwoFaError::TooManyRequests { retry_after },
        QueueError::Store(e) => TwoFaError::Store(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_digits_of_the_length_asked() {
        for len in 6..=10 {
            let c = generate(len);
            assert_eq!(c.len(), len as usize);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(generate(10), generate(10));
    }

    #[test]
    fn mac_binds_tenant_subject_and_purpose() {
        let k = Keys::from_master(&[1; 32]);
        let m = mac(&k, "t", "user:1", "email", "123456");
        assert!(mac_eq(&m, &mac(&k, "t", "user:1", "email", "123456")));
        assert!(!mac_eq(&m, &mac(&k, "t", "user:2", "email", "123456")));
        assert!(!mac_eq(&m, &mac(&k, "t2", "user:1", "email", "123456")));
        assert!(!mac_eq(&m, &mac(&k, "t", "user:1", "sms", "123456")));
        assert!(!m.contains("123456"));
        assert_eq!(normalize("123-456 "), "123456");
    }
}
