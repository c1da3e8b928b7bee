//! The audit trail of 2FA events. A record that cannot be written is
//! logged, never turned into a failed request.

use super::TwoFactor;

impl TwoFactor {
    pub(super) async fn audit(
        &self,
        tenant: &str,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&str>,
    ) {
        if let Err(e) = self
            .store
            .audit(tenant, actor, action, subject, detail, self.now_ms())
            .await
        {
            tracing::error!(error = %e, action, "cannot write audit record");
        }
    }
}
