//! Where senders report what became of a message after the provider took
//! it (SMPP delivery receipts): [`ReceiptSink`], and [`StoreReceipts`],
//! the one that records them in the store and counts them in `/metrics`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::{HandsetState, NewReceipt, Store};

/// A receipt as a session read it: the SMSC's message id and the state.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub message_id: String,
    pub state: HandsetState,
}

/// Takes the receipts of one host's sessions.
#[async_trait]
pub trait ReceiptSink: Send + Sync {
    /// Records a receipt of `tenant`'s `channel`; false when it could not
    /// be stored (the SMSC should send it again).
    async fn record(&self, tenant: &str, channel: &str, receipt: Receipt) -> bool;
}

pub type Receipts = Arc<dyn ReceiptSink>;

/// Receipts into the store (shared by every host on PostgreSQL, so the
/// session that gets a receipt need not be the one that sent the message).
pub struct StoreReceipts {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
}

#[async_trait]
impl ReceiptSink for StoreReceipts {
    async fn record(&self, tenant: &str, channel: &str, receipt: Receipt) -> bool {
        let row = NewReceipt {
            tenant: tenant.to_string(),
            channel: channel.to_string(),
            message_id: receipt.message_id,
            state: receipt.state,
            at: self.clock.now_ms(),
        };
        match self.store.record_receipt(&row).await {
            Ok(matched) => {
                let matched = if matched { "true" } else { "false" };
                self.metrics
                    .handset_receipts
                    .with_label_values(&[tenant, channel, row.state.as_str(), matched])
                    .inc();
                tracing::info!(tenant, channel, message_id = %row.message_id,
                    state = row.state.as_str(), matched, "delivery receipt");
                true
            }
            Err(e) => {
                tracing::warn!(tenant, channel, error = %e, "cannot record a delivery receipt");
                false
            }
        }
    }
}
