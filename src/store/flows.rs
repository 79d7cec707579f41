//! The store-level entry points of the flows in [`crate::flows`]: each runs in its own
//! transaction.

use super::Store;
use crate::error::{Error, Result};
use crate::flows::webhook::{PaymentWebhook, WebhookOutcome};
#[cfg(doc)]
use crate::txn::WriteTx;

/// Carries a no-write outcome out of a transaction while rolling it back, so that a
/// duplicate costs no commit (and no fsync).
enum Rollback {
    Outcome(WebhookOutcome),
    Failed(Error),
}

impl From<Error> for Rollback {
    fn from(e: Error) -> Self {
        Rollback::Failed(e)
    }
}

impl Store {
    /// Applies a payment webhook in one transaction and one commit. Replaying the same
    /// webhook any number of times changes the store once.
    ///
    /// ```
    /// use edgestate::{PaymentWebhook, Store, WebhookOutcome};
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::in_memory()?;
    /// store.cards().put("fp_visa_1", "user-1", "4242")?;
    /// let hook = PaymentWebhook {
    ///     txn_id: "txn_001".into(),
    ///     card_fingerprint: "fp_visa_1".into(),
    ///     amount_cents: 1250,
    ///     merchant_id: "m_cafe".into(),
    ///     merchant_name: Some("Cafe".into()),
    ///     ..PaymentWebhook::default()
    /// };
    /// assert!(store.process_webhook(&hook)?.is_processed());
    /// assert!(matches!(store.process_webhook(&hook)?, WebhookOutcome::Duplicate(_)));
    /// assert_eq!(store.pending().list("user-1")?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`WriteTx::process_webhook`], and commit errors.
    pub fn process_webhook(&self, webhook: &PaymentWebhook) -> Result<WebhookOutcome> {
        let result = self.write(|tx| match tx.process_webhook(webhook)? {
            processed @ WebhookOutcome::Processed { .. } => Ok(processed),
            other => Err(Rollback::Outcome(other)),
        });
        match result {
            Ok(outcome) | Err(Rollback::Outcome(outcome)) => Ok(outcome),
            Err(Rollback::Failed(e)) => Err(e),
        }
    }
}
