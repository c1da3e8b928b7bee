//! The SMS-pumping (toll-fraud) guard on code sends to phone-like channels
//! (`sms-*` kinds; plugins whose send-to is E.164; email and the rest are
//! not affected): the `[fraud]` destination policy by country (from the
//! `phonenumber` crate's copy of libphonenumber's metadata) and by prefix,
//! then conversion tracking per prefix over a sliding window. A prefix
//! with more than `fraud.min_sends` sends in the window and fewer than
//! `fraud.min_conversion_percent` of them checked is blocked (policy
//! `allow`) or only reported (`monitor`). A refusal comes before a code exists.

use serde::Serialize;

use super::{R, TwoFaError, TwoFactor};
use crate::config::fraud::FraudAction;
use crate::domain::TenantName;
use crate::store::FlaggedPrefix;

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Refusal {
    /// The destination policy denies it.
    Denied,
    /// The pumping guard blocked its prefix.
    Blocked,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Blocked => "blocked",
        }
    }
}

/// A phone destination as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneDestination {
    /// `+` and the digits.
    pub e164: String,
    /// ISO 3166-1 alpha-2, when the numbering plan is known.
    pub country: Option<String>,
    /// `+<country code><first fraud.prefix_digits digits>`: what is tracked.
    pub prefix: String,
}

/// Reads a send-to as a phone number. `lenient` (SMS kinds): separators
/// are dropped, `00` or no prefix reads as `+`; otherwise (plugins) only a
/// `+` and digits count. None: not a phone number.
pub fn phone_destination(send_to: &str, lenient: bool, digits: u32) -> Option<PhoneDestination> {
    let compact: String = send_to
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '-' | '(' | ')' | '.' | '/')))
        .collect();
    let e164 = if !lenient {
        compact.clone()
    } else if let Some(rest) = compact.strip_prefix("00") {
        format!("+{rest}")
    } else if compact.starts_with('+') {
        compact.clone()
    } else {
        format!("+{compact}")
    };
    let digits_only = e164
        .strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.len() <= 17 && d.bytes().all(|b| b.is_ascii_digit()));
    if !digits_only || (!lenient && compact != send_to.trim()) {
        return None;
    }
    let parsed = phonenumber::parse(None, &e164).ok();
    let (country, cc_len) = match &parsed {
        Some(n) => (
            n.country().id().map(|id| id.as_ref().to_string()),
            n.code().value().to_string().len(),
        ),
        // Not in the numbering plan: a plugin's send-to must be a number it
        // knows; an SMS number is still guarded by prefix, its country unknown.
        None if !lenient => return None,
        None => (None, 3),
    };
    let len = (1 + cc_len + digits as usize).min(e164.len());
    Some(PhoneDestination {
        prefix: e164[..len].to_string(),
        e164,
        country,
    })
}

/// A send the guard let through, to record once the code is on its way.
pub(super) struct Tracked {
    prefix: String,
}

impl TwoFactor {
    /// The destination, if `channel` is phone-like for `send_to`.
    fn phone_of(
        &self,
        tenant: &TenantName,
        channel: &str,
        send_to: &str,
    ) -> Option<PhoneDestination> {
        let kind = self.registry.get(tenant, channel)?.sender.kind();
        let digits = self.config.fraud.prefix_digits;
        if kind.starts_with("sms") {
            phone_destination(send_to, true, digits)
        } else if kind == "plugin" {
            phone_destination(send_to, false, digits)
        } else {
            None
        }
    }

    /// Admits a send (or refuses it with 403 `error-destination-blocked`);
    /// `Some` when the send is to be tracked.
    pub(super) async fn fraud_admit(
        &self,
        tenant: &TenantName,
        channel: &str,
        send_to: &str,
    ) -> R<Option<Tracked>> {
        let Some(dest) = self.phone_of(tenant, channel, send_to) else {
            return Ok(None);
        };
        let f = &self.config.fraud;
        let (action, rule) = f.action_for(tenant.as_str(), &dest.e164, dest.country.as_deref());
        if action == FraudAction::Deny {
            let prefix = rule.unwrap_or_else(|| dest.prefix.clone());
            return Err(self
                .refuse(tenant, dest.country, prefix, Refusal::Denied)
                .await);
        }
        let t = tenant.as_str();
        let flagged = self.store.flagged_prefix(t, &dest.prefix).await?;
        if action == FraudAction::Allow && flagged.as_ref().is_some_and(|p| p.blocked) {
            return Err(self
                .refuse(tenant, dest.country, dest.prefix, Refusal::Blocked)
                .await);
        }
        let now = self.now_ms();
        let since = now - i64::from(f.window_minutes) * 60_000;
        let (sends, checks) = self.store.fraud_window(t, &dest.prefix, since).await?;
        let pumped = sends >= u64::from(f.min_sends)
            && checks * 100 < u64::from(f.min_conversion_percent) * sends;
        if pumped {
            let p = FlaggedPrefix {
                tenant: t.to_string(),
                prefix: dest.prefix.clone(),
                country: dest.country.clone(),
                blocked: action == FraudAction::Allow,
                sends,
                checks,
                since: now,
            };
            self.flag(&p).await?;
            if p.blocked {
                return Err(self
                    .refuse(tenant, dest.country, dest.prefix, Refusal::Blocked)
                    .await);
            }
        }
        Ok(Some(Tracked {
            prefix: dest.prefix,
        }))
    }

    /// Records a flagged prefix: audited and counted when it is new (or
    /// changed mode), once across hosts.
    async fn flag(&self, p: &FlaggedPrefix) -> R<()> {
        if !self.store.flag_prefix(p).await? {
            return Ok(());
        }
        let mode = if p.blocked { "blocked" } else { "monitor" };
        let detail = format!(
            "prefix={} country={} sends={} checks={} mode={mode}",
            p.prefix,
            p.country.as_deref().unwrap_or("-"),
            p.sends,
            p.checks
        );
        let action = if p.blocked {
            "fraud.blocked"
        } else {
            "fraud.flagged"
        };
        self.audit(&p.tenant, "guard", action, Some(&p.prefix), Some(&detail))
            .await;
        self.queue
            .metrics()
            .abuse
            .fraud_flagged
            .with_label_values(&[p.tenant.as_str(), mode])
            .inc();
        tracing::warn!(tenant = %p.tenant, prefix = %p.prefix, sends = p.sends, checks = p.checks, mode, "SMS pumping suspected");
        Ok(())
    }

    async fn refuse(
        &self,
        tenant: &TenantName,
        country: Option<String>,
        prefix: String,
        reason: Refusal,
    ) -> TwoFaError {
        self.queue
            .metrics()
            .abuse
            .fraud_refused
            .with_label_values(&[tenant.as_str(), reason.as_str()])
            .inc();
        let detail = format!(
            "prefix={prefix} country={} reason={}",
            country.as_deref().unwrap_or("-"),
            reason.as_str()
        );
        self.audit(
            tenant.as_str(),
            "guard",
            "fraud.refused",
            Some(&prefix),
            Some(&detail),
        )
        .await;
        TwoFaError::DestinationBlocked {
            country,
            prefix,
            reason,
        }
    }

    /// Counts a send the guard admitted.
    pub(super) async fn fraud_record(
        &self,
        tenant: &TenantName,
        tracked: &Tracked,
        subject: &str,
        purpose: &str,
    ) -> R<()> {
        let now = self.now_ms();
        let window = i64::from(self.config.fraud.window_minutes) * 60_000;
        self.store
            .record_fraud_send(
                tenant.as_str(),
                &tracked.prefix,
                subject,
                purpose,
                now,
                now - window,
            )
            .await?;
        Ok(())
    }

    /// A code was checked: its sends converted.
    pub(super) async fn fraud_converted(
        &self,
        tenant: &str,
        subject: &str,
        purpose: &str,
    ) -> R<()> {
        self.store.mark_converted(tenant, subject, purpose).await?;
        Ok(())
    }

    /// `GET /fraud`: the tenant's blocked and reported prefixes.
    pub async fn flagged_prefixes(&self, tenant: &TenantName) -> R<Vec<FlaggedPrefix>> {
        Ok(self.store.flagged_prefixes(tenant.as_str()).await?)
    }

    /// `DELETE /fraud/{prefix}`: unblocks it and starts its figures afresh.
    pub async fn unblock_prefix(&self, tenant: &TenantName, prefix: &str) -> R<()> {
        if !self.store.unflag_prefix(tenant.as_str(), prefix).await? {
            return Err(TwoFaError::NotFound(
                "No blocked or reported prefix like this".into(),
            ));
        }
        self.audit(
            tenant.as_str(),
            "api",
            "fraud.unblocked",
            Some(prefix),
            None,
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_numbers_read_leniently_plugin_send_tos_strictly() {
        let d = phone_destination("+44 7400 123456", true, 3).unwrap();
        assert_eq!(d.e164, "+447400123456");
        assert_eq!(d.country.as_deref(), Some("GB"));
        assert_eq!(d.prefix, "+44740");
        let d = phone_destination("004915112345678", true, 2).unwrap();
        assert_eq!(
            (d.country.as_deref(), d.prefix.as_str()),
            (Some("DE"), "+4915")
        );
        let d = phone_destination("12015550123", true, 3).unwrap();
        assert_eq!(
            (d.country.as_deref(), d.prefix.as_str()),
            (Some("US"), "+1201")
        );
        // A chat id is no phone number; a plugin's send-to must be E.164 as it stands.
        assert_eq!(phone_destination("-100123456", false, 3), None);
        assert_eq!(phone_destination("4242", false, 3), None);
        assert_eq!(phone_destination("+44 7400 123456", false, 3), None);
        assert!(phone_destination("+447400123456", false, 3).is_some());
        assert_eq!(phone_destination("user@example.com", true, 3), None);
    }
}
