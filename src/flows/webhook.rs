//! The payment webhook, atomically: look up the card's user, claim the transaction id,
//! append a pending capture, and record the event in the user's context, in one
//! transaction and one commit. A duplicate or an unknown card writes nothing.
//!
//! The seed ran these as four independent DynamoDB calls, so a crash between them could
//! leave a claimed id with no capture (lost payment) or a capture without a claim
//! (double credit on retry). Here a retry after a crash either finds the whole webhook
//! applied (and is told `Duplicate`) or none of it.

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::limits;
use crate::tables::contexts::ContextEvent;
use crate::tables::dedup::{Claim, ProcessedTransaction};
use crate::tables::pending::{PendingCapture, PendingLocation};
use crate::txn::WriteTx;

/// The event type recorded in the user's context for a processed webhook.
pub const CAPTURE_EVENT_TYPE: &str = "capture_pending";

/// A card payment notification from a point-of-sale provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentWebhook {
    /// The provider's transaction id: the exactly-once key.
    pub txn_id: String,
    /// Fingerprint of the card that paid.
    pub card_fingerprint: String,
    /// Amount in cents.
    pub amount_cents: u64,
    /// Merchant id.
    pub merchant_id: String,
    /// Merchant display name.
    pub merchant_name: Option<String>,
    /// Proof of purchase, opaque to the store.
    pub proof_data: Option<String>,
    /// Kind of proof.
    pub proof_type: Option<String>,
    /// Where the payment happened.
    pub location: Option<PendingLocation>,
}

/// What [`process_webhook`](crate::WriteTx::process_webhook) did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookOutcome {
    /// Applied: the id is claimed, the capture appended, the context updated.
    Processed {
        /// The card's owner.
        user: String,
        /// The pending capture's sequence number.
        pending_seq: u64,
        /// Pending captures evicted to stay within capacity.
        evicted: Vec<u64>,
        /// The context's version after the update.
        context_version: u64,
    },
    /// The id was processed before; nothing was written.
    Duplicate(ProcessedTransaction),
    /// No user has this card; nothing was written (not even the claim, so a retry after
    /// the card is linked is processed).
    UnknownCard,
}

impl WebhookOutcome {
    /// True for [`WebhookOutcome::Processed`].
    pub fn is_processed(&self) -> bool {
        matches!(self, WebhookOutcome::Processed { .. })
    }
}

fn check(webhook: &PaymentWebhook) -> Result<()> {
    limits::check_key("txn_id", &webhook.txn_id)?;
    limits::check_key("card_fingerprint", &webhook.card_fingerprint)?;
    limits::check_key("merchant_id", &webhook.merchant_id)
}

impl WriteTx {
    /// Applies a payment webhook inside this transaction. On `Duplicate` or `UnknownCard`
    /// nothing has been written by this call; on an error the caller's transaction rolls
    /// back whole, so no step is left half-done.
    ///
    /// # Errors
    /// [`InvalidInput`](Error::InvalidInput) for an empty or oversized id, fingerprint or
    /// merchant id; whatever a step's table returns (a damaged record, storage errors).
    pub fn process_webhook(&self, webhook: &PaymentWebhook) -> Result<WebhookOutcome> {
        check(webhook)?;
        let Some(card) = self.cards().get(&webhook.card_fingerprint)? else {
            return Ok(WebhookOutcome::UnknownCard);
        };
        let user = card.user_pubkey;
        match self
            .dedup()
            .claim(&webhook.txn_id, &user, webhook.amount_cents)?
        {
            Claim::Duplicate(first) => return Ok(WebhookOutcome::Duplicate(first)),
            Claim::New => {}
        }
        let now_s = crate::tables::unix_seconds(self.now_ms());
        let ttl_s = i64::try_from(self.config().pending_ttl.as_secs()).unwrap_or(i64::MAX);
        let capture = PendingCapture {
            merchant_id: webhook.merchant_id.clone(),
            merchant_name: webhook.merchant_name.clone(),
            amount_cents: webhook.amount_cents,
            card_last4: Some(card.card_last4),
            proof_data: webhook.proof_data.clone(),
            proof_type: webhook.proof_type.clone(),
            location: webhook.location,
            created_at_s: now_s,
            expires_at_s: now_s.saturating_add(ttl_s),
        };
        let pending = self.pending().push(&user, &capture)?;
        let merchant = webhook
            .merchant_name
            .as_deref()
            .unwrap_or(&webhook.merchant_id);
        let ctx = self.contexts().push_event(
            &user,
            ContextEvent {
                event_type: CAPTURE_EVENT_TYPE.to_owned(),
                timestamp_s: now_s,
                summary: format!(
                    "{} cents at {merchant} (txn {})",
                    webhook.amount_cents, webhook.txn_id
                ),
                amount: Some(webhook.amount_cents),
            },
        )?;
        Ok(WebhookOutcome::Processed {
            user,
            pending_seq: pending.seq,
            evicted: pending.evicted,
            context_version: ctx.version,
        })
    }
}
