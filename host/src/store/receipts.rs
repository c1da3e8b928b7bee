//! Handset receipts: what an SMSC reported about a message it accepted
//! (SMPP delivery receipts), by the SMSC's message id. A delivery's
//! `handset` is the receipt whose message id is its `provider_id`.

use async_trait::async_trait;
use serde::Serialize;

use super::backend::{Backend, Cols, SqlStore};
use super::{Result, rfc3339};

/// What became of a message on the handset side, as the SMSC reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HandsetState {
    Delivered,
    Undeliverable,
    Expired,
    Rejected,
    Unknown,
}

impl HandsetState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Undeliverable => "undeliverable",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "delivered" => Self::Delivered,
            "undeliverable" => Self::Undeliverable,
            "expired" => Self::Expired,
            "rejected" => Self::Rejected,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }
}

/// A receipt as it arrived on a channel's session.
#[derive(Debug, Clone)]
pub struct NewReceipt {
    pub tenant: String,
    pub channel: String,
    pub message_id: String,
    pub state: HandsetState,
    /// Unix ms, when postern got it.
    pub at: i64,
}

/// A delivery's handset state as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HandsetRecord {
    #[schema(inline)]
    pub state: HandsetState,
    /// RFC 3339 time postern got the receipt.
    pub at: String,
}

/// Receipts older than this are pruned as new ones arrive.
const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// Records a receipt (a later one for the same message replaces it);
    /// true when a delivery of that channel carries the message id.
    async fn record_receipt(&self, r: &NewReceipt) -> Result<bool>;

    /// The handset state of a channel's message, if a receipt came.
    async fn handset_of(
        &self,
        tenant: &str,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<HandsetRecord>>;
}

#[async_trait]
impl<B: Backend> ReceiptStore for SqlStore<B> {
    async fn record_receipt(&self, r: &NewReceipt) -> Result<bool> {
        self.exec(
            "INSERT INTO handset_receipts (tenant, channel, message_id, state, at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant, channel, message_id) DO UPDATE SET
                state = excluded.state, at = excluded.at",
            &[
                r.tenant.as_str().into(),
                r.channel.as_str().into(),
                r.message_id.as_str().into(),
                r.state.as_str().into(),
                r.at.into(),
            ],
        )
        .await?;
        self.exec(
            "DELETE FROM handset_receipts WHERE at < $1",
            &[(r.at - KEEP_MS).into()],
        )
        .await?;
        let matched = self
            .opt(
                "SELECT id FROM deliveries WHERE tenant = $1 AND channel = $2 AND provider_id = $3
                 LIMIT 1",
                &[
                    r.tenant.as_str().into(),
                    r.channel.as_str().into(),
                    r.message_id.as_str().into(),
                ],
            )
            .await?;
        Ok(matched.is_some())
    }

    async fn handset_of(
        &self,
        tenant: &str,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<HandsetRecord>> {
        let row = self
            .opt(
                "SELECT state, at FROM handset_receipts
                 WHERE tenant = $1 AND channel = $2 AND message_id = $3",
                &[tenant.into(), channel.into(), message_id.into()],
            )
            .await?;
        row.map(|r| {
            Ok(HandsetRecord {
                state: r.parsed(0, "handset state", |s| {
                    HandsetState::parse(s).ok_or("not a handset state")
                })?,
                at: rfc3339(r.int(1)?),
            })
        })
        .transpose()
    }
}
