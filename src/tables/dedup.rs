//! Exactly-once processing: a record per processed transaction id, claimed with one
//! atomic insert-if-absent ([`Dedup::claim`]), kept for `StoreConfig::dedup_ttl`
//! (default 30 days).
//!
//! Because the claim commits in the same transaction as whatever the caller does with
//! the transaction (credit a balance, queue a capture), "processed" and "claimed" can
//! never disagree after a crash. After a commit whose outcome is unknown
//! ([`Error::CommitOutcomeUnknown`](crate::Error::CommitOutcomeUnknown)), reopen the store and ask [`Dedup::get`] (or
//! [`Dedup::contains`]): the claim is there exactly when the work landed.

use serde::{Deserialize, Serialize};

use super::record::{self, Slot, Stored};
use super::{handle, unix_seconds, Expect};
use crate::access::{Access, Reader, WriteAccess};
use crate::clock::expiry_after;
use crate::codec::{self, envelope};
use crate::error::Result;
use crate::limits;
use crate::schema::DEDUP;

/// The record of a processed transaction: who it credited, how much, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessedTransaction {
    /// The transaction id; the record's key.
    pub txn_id: String,
    /// The user the transaction was processed for.
    pub user_pubkey: String,
    /// The amount credited (the seed's `cred_amount`).
    pub amount: u64,
    /// When it was claimed, in Unix seconds (the store's clock).
    #[serde(rename = "processed_at")]
    pub processed_at_s: i64,
}

/// The outcome of [`Dedup::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This call claimed the id: process the transaction.
    New,
    /// The id was already claimed (and has not expired): do not process it again. Holds
    /// the first claim, unchanged.
    Duplicate(ProcessedTransaction),
}

impl Claim {
    /// True for [`Claim::New`].
    pub fn is_new(&self) -> bool {
        matches!(self, Claim::New)
    }
}

fn decode(txn_id: &str, stored: &Stored) -> Result<ProcessedTransaction> {
    stored.decode(DEDUP.name, txn_id)
}

/// The live claim of an already validated `txn_id` in a snapshot.
fn get_in(r: &Reader<'_>, txn_id: &str) -> Result<Option<ProcessedTransaction>> {
    record::get(r, &DEDUP, txn_id)?
        .map(|stored| decode(txn_id, &stored))
        .transpose()
}

handle! {
    /// The processed-transaction (dedup) records, from `tx.dedup()`, `read.dedup()` or
    /// `store.dedup()`. On a [`Store`](crate::Store) each call is its own transaction;
    /// to make the claim and the processing one atomic step, claim through `tx.dedup()`
    /// inside [`Store::write`](crate::Store::write).
    ///
    /// ```
    /// use edgestate::{Claim, Store};
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::in_memory()?;
    ///
    /// assert_eq!(store.dedup().claim("txn-1", "alice", 500)?, Claim::New);
    /// match store.dedup().claim("txn-1", "alice", 500)? {
    ///     Claim::Duplicate(first) => assert_eq!(first.amount, 500),
    ///     Claim::New => unreachable!("a second claim never wins"),
    /// }
    ///
    /// // Claim and credit in one commit: both land or neither does.
    /// store.write(|tx| {
    ///     if tx.dedup().claim("txn-2", "alice", 300)?.is_new() {
    ///         tx.kv().update_value("balances", "alice", None, |balance: Option<u64>| {
    ///             Ok(balance.unwrap_or(0) + 300)
    ///         })?;
    ///     }
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    /// assert!(store.dedup().contains("txn-2")?);
    ///
    /// // A deliberate reprocessing: forget the claim, and the id can be claimed again.
    /// assert!(store.dedup().delete("txn-1")?);
    /// assert!(store.dedup().claim("txn-1", "alice", 500)?.is_new());
    /// # Ok(())
    /// # }
    /// ```
    Dedup
}

impl<A: Access> Dedup<'_, A> {
    /// The live claim of `txn_id`, or `None` if unclaimed or expired.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized `txn_id`;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged record; storage errors.
    pub fn get(&self, txn_id: &str) -> Result<Option<ProcessedTransaction>> {
        limits::check_key("txn_id", txn_id)?;
        self.src.with_reader(|r| get_in(r, txn_id))
    }

    /// Whether `txn_id` has a live claim.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn contains(&self, txn_id: &str) -> Result<bool> {
        Ok(self.get(txn_id)?.is_some())
    }
}

impl<A: WriteAccess> Dedup<'_, A> {
    /// Claims `txn_id` for `user` and `amount` if it has no live claim (an expired claim
    /// counts as none): one insert-if-absent, so of any number of concurrent claims of
    /// one id exactly one is [`Claim::New`]. A duplicate leaves the first claim, its
    /// metadata and its expiry untouched. The claim expires after the store's
    /// `dedup_ttl`.
    ///
    /// On a [`Store`](crate::Store), a duplicate already visible in a read snapshot is
    /// answered without taking the write lock.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized `txn_id`
    /// (checked first) or `user`; [`Corrupt`](crate::Error::Corrupt) or
    /// [`Decode`](crate::Error::Decode) when the stored claim is damaged (nothing is
    /// written; [`delete`](Self::delete) removes it); storage and commit errors.
    pub fn claim(&self, txn_id: &str, user: &str, amount: u64) -> Result<Claim> {
        limits::check_key("txn_id", txn_id)?;
        limits::check_key("user", user)?;
        if A::PER_CALL {
            if let Some(first) = self.src.with_reader(|r| get_in(r, txn_id))? {
                return Ok(Claim::Duplicate(first));
            }
        }
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, DEDUP, txn_id)?;
            if let Some(live) = slot.live() {
                return Ok(Claim::Duplicate(decode(txn_id, live)?));
            }
            slot.check(Expect::Absent)?;
            let now = tx.now_ms();
            let claim = ProcessedTransaction {
                txn_id: txn_id.to_owned(),
                user_pubkey: user.to_owned(),
                amount,
                processed_at_s: unix_seconds(now),
            };
            let body = codec::to_postcard("dedup record", &claim)?;
            let expires_at_ms = expiry_after(now, tx.config().dedup_ttl);
            slot.put(envelope::FORMAT_POSTCARD, &body, Some(expires_at_ms))?;
            Ok(Claim::New)
        })
    }

    /// Removes the claim of `txn_id` (e.g. to allow a deliberate reprocessing), damaged
    /// or not, with its expiry entry; returns whether a live claim was removed.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized `txn_id`;
    /// storage and commit errors.
    pub fn delete(&self, txn_id: &str) -> Result<bool> {
        limits::check_key("txn_id", txn_id)?;
        self.src
            .with_writer(|tx| Ok(record::delete(tx, DEDUP, txn_id)?.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processed_at_keeps_its_json_name() {
        let claim = ProcessedTransaction {
            processed_at_s: 9,
            ..ProcessedTransaction::default()
        };
        let json = serde_json::to_value(&claim).unwrap();
        assert_eq!(json["processed_at"], 9);
        assert!(json.get("processed_at_s").is_none());
    }
}
