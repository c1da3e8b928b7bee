//! The plain row types callers see: no SQL, no driver types.

use serde::Serialize;

use crate::domain::{ChannelName, MethodSlot, VerificationStatus};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRow {
    pub name: String,
    pub created_at: i64,
}

/// A delivery about to be stored. When `lease_owner` is set the row is
/// stored as `sending`, leased to that worker (the inline first attempt).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub tenant: String,
    pub channel: String,
    pub send_to_masked: String,
    pub username: Option<String>,
    pub payload: Vec<u8>,
    pub next_attempt_at: i64,
    pub expires_at: i64,
    pub fallback_of: Option<String>,
    pub fallback_depth: u32,
    pub created_at: i64,
    pub lease: Option<(String, i64)>,
    /// What the message was written in, for the record.
    pub facts: MessageFacts,
}

/// A delivery's message as its record shows it: the locale and, for
/// texts, the SMS encoding and segment count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFacts {
    pub locale: Option<String>,
    pub sms: Option<SmsFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SmsFacts {
    /// `GSM-7` or `UCS-2`.
    pub encoding: String,
    pub segments: u32,
}

/// A delivery a worker holds a lease on.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub tenant: String,
    pub channel: String,
    pub send_to_masked: String,
    pub username: Option<String>,
    pub payload: Vec<u8>,
    pub attempt_count: u32,
    pub expires_at: i64,
    pub fallback_depth: u32,
    pub created_at: i64,
}

/// Where a delivery stands; stored and serialized as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Delivered,
    Failed,
    Expired,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets callers still compare with the stored name (`status == "failed"`).
impl PartialEq<&str> for DeliveryStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub at: i64,
    pub outcome: String,
    pub detail: String,
    pub duration_ms: i64,
    /// The plugin version (sha256) that ran it; `None` for built-in senders.
    pub plugin_sha256: Option<String>,
    /// What the plugin call used; `None` for built-in senders.
    pub resources: Option<crate::delivery::Resources>,
}

/// How a leased delivery leaves the worker's hands.
#[derive(Debug, Clone)]
pub struct Finish {
    pub attempt: Option<AttemptRow>,
    pub status: DeliveryStatus,
    /// For `Queued`: when the next attempt is due.
    pub next_attempt_at: Option<i64>,
    pub provider_id: Option<String>,
    pub log: Option<String>,
    /// Enqueued in the same transaction (the fallback channel's delivery).
    pub then_enqueue: Option<NewDelivery>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// RFC 3339 time of the attempt.
    pub at: String,
    /// delivered | transient | permanent
    pub outcome: String,
    pub detail: String,
    pub duration_ms: i64,
    /// The plugin version (sha256) that ran this attempt (plugin channels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_sha256: Option<String>,
    /// Guest CPU time of this attempt in milliseconds (plugin channels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<f64>,
    /// Peak linear memory of the plugin instance (plugin channels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<i64>,
    /// Outbound HTTP requests the plugin made (plugin channels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_requests: Option<i64>,
}

/// A delivery as the API shows it: never the code, the send-to masked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub id: String,
    pub channel: String,
    pub to: String,
    #[schema(inline)]
    pub status: DeliveryStatus,
    pub attempts: Vec<AttemptRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_of: Option<String>,
    /// What the SMSC reported about the message on the handset side (SMPP
    /// delivery receipts); absent until a receipt arrives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handset: Option<super::HandsetRecord>,
    /// The BCP 47 locale the message was written in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// A text's SMS encoding and segment count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsFacts>,
    pub expires_at: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub username: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub tenant: String,
    pub id: String,
    pub username: String,
    pub password_hash: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub default_method: Option<String>,
    pub created_at: i64,
    /// BCP 47 language messages to this user are written in.
    pub language: Option<String>,
}

/// A 2FA method row of a user: an enabled method, or a channel enrolment
/// waiting for its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodRow {
    pub method: MethodSlot,
    pub send_to: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TotpRow {
    pub secret: Option<Vec<u8>>,
    pub temp_secret: Option<Vec<u8>>,
    pub last_step: i64,
}

/// A stored code: only its MAC.
#[derive(Debug, Clone)]
pub struct CodeRow {
    pub code_mac: String,
    pub attempts: u32,
    pub expires_at: i64,
    /// Its send was counted by the fraud guard (see [`NewCode`]).
    pub fraud_tracked: bool,
}

/// A code to store: its MAC, never the code.
#[derive(Debug, Clone, Copy)]
pub struct NewCode<'a> {
    pub mac: &'a str,
    pub expires_at: i64,
    pub created_at: i64,
    /// The fraud guard counted its send, so a successful check marks that
    /// send converted; otherwise there is nothing to mark.
    pub fraud_tracked: bool,
}

/// A Verify-API verification, as stored and as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationRow {
    pub id: String,
    #[serde(skip)]
    pub tenant: String,
    pub channel: ChannelName,
    /// Masked.
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub status: VerificationStatus,
    #[serde(skip)]
    pub expires_at: i64,
    #[serde(skip)]
    pub created_at: i64,
    /// The consecutive-failure key its checks count against (the
    /// destination's), stored with it so a check reads both at once.
    #[serde(skip)]
    pub failure_key: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A channel a tenant configured over the API.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub tenant: String,
    pub name: String,
    pub kind: String,
    pub config: String,
    pub secrets: Option<Vec<u8>>,
    pub secret_keys: String,
    pub plugin: Option<String>,
    pub allowed_hosts: String,
    pub send_to_type: Option<String>,
    pub send_to_regex: Option<String>,
    pub fallback: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The channel's own templates as JSON; `None`: the built-in messages.
    pub templates: Option<String>,
}

/// An uploaded plugin version.
#[derive(Debug, Clone)]
pub struct PluginRow {
    pub tenant: String,
    pub name: String,
    pub sha256: String,
    pub size: i64,
    pub info: String,
    /// Empty in listings; filled by [`super::TenantStore::plugin_bytes`].
    pub wasm: Vec<u8>,
    pub uploaded_at: i64,
    /// The signature text it was accepted with, and its key id.
    pub signature: Option<String>,
    pub key_id: Option<String>,
    /// The instances it imports, as a JSON array of strings.
    pub imports: String,
}

/// A public key a tenant trusts to sign its plugins.
#[derive(Debug, Clone)]
pub struct PluginKeyRow {
    pub tenant: String,
    pub name: String,
    /// `ed25519:<base64>`.
    pub public_key: String,
    pub key_id: String,
    pub created_at: i64,
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_status_is_serialized_and_documented_as_its_stored_name() {
        use DeliveryStatus::*;
        let all = [Queued, Sending, Delivered, Failed, Expired];
        for s in all {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        let schema = serde_json::to_value(<DeliveryRecord as utoipa::PartialSchema>::schema());
        let names: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            schema.unwrap()["properties"]["status"]["enum"],
            serde_json::json!(names)
        );
    }
}
