//! Exactly-once processing: a record per processed transaction id, claimed with one
//! atomic insert-if-absent, kept for `StoreConfig::dedup_ttl` (default 30 days).
//!
//! Because the claim commits in the same transaction as whatever the caller does with
//! the transaction (credit a balance, queue a capture), "processed" and "claimed" can
//! never disagree after a crash. After a commit whose outcome is unknown
//! ([`Error::CommitOutcomeUnknown`]), reopen the
//! store and ask [`DedupTx::get`]: the claim is there exactly when the work landed.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::record::{self, NewRecord, TtlKey};
use super::{unix_seconds, Expect};
use crate::clock::expiry_after;
use crate::codec::{self, envelope, keys};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{TtlTable, DEDUP};
use crate::store::Store;
use crate::txn::{ReadTx, WriteTx};

const TABLE: &str = "edgestate.dedup";

/// The record of a processed transaction: who it credited, how much, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessedTransaction {
    /// The transaction id; the record's key.
    pub txn_id: String,
    /// The user the transaction was processed for.
    pub user_pubkey: String,
    /// The amount credited (the seed's `cred_amount`).
    pub amount: u64,
    /// When it was claimed, in Unix seconds (the store's clock).
    pub processed_at: i64,
}

/// The outcome of [`DedupTx::claim`].
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

fn shown(txn_id: &str) -> impl Fn() -> String + '_ {
    move || txn_id.to_owned()
}

fn ttl_key(txn_id: &str) -> TtlKey {
    TtlKey {
        table: TtlTable::Dedup,
        packed: keys::pack(&[txn_id.as_bytes()]),
    }
}

fn get_in<T>(table: &T, txn_id: &str, now: u64) -> Result<Option<ProcessedTransaction>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    limits::check_key("txn_id", txn_id)?;
    match record::get_live(table, TABLE, txn_id, &shown(txn_id), now)? {
        Some(stored) if stored.format == envelope::FORMAT_POSTCARD_V1 => {
            Ok(Some(codec::from_postcard(TABLE, txn_id, &stored.payload)?))
        }
        Some(stored) => Err(Error::Decode {
            table: TABLE,
            key: txn_id.to_owned(),
            reason: format!("record format {} is not a dedup record", stored.format),
        }),
        None => Ok(None),
    }
}

/// Dedup records inside a write transaction: reads see the transaction's own writes.
/// Obtained from [`WriteTx::dedup`].
#[derive(Debug, Clone, Copy)]
pub struct DedupTx<'t> {
    tx: &'t WriteTx,
}

impl WriteTx {
    /// The processed-transaction (dedup) records.
    pub fn dedup(&self) -> DedupTx<'_> {
        DedupTx { tx: self }
    }
}

impl DedupTx<'_> {
    /// The live claim of `txn_id`, or `None` if unclaimed or expired.
    pub fn get(&self, txn_id: &str) -> Result<Option<ProcessedTransaction>> {
        let table = self.tx.raw().open_table(DEDUP)?;
        get_in(&table, txn_id, self.tx.now_ms())
    }

    /// Whether `txn_id` has a live claim.
    pub fn is_processed(&self, txn_id: &str) -> Result<bool> {
        Ok(self.get(txn_id)?.is_some())
    }

    /// Claims `txn_id` for `user` and `amount` if it has no live claim (an expired claim
    /// counts as none): one insert-if-absent, so of any number of concurrent claims of
    /// one id exactly one is [`Claim::New`]. A duplicate leaves the first claim, its
    /// metadata and its expiry untouched.
    pub fn claim(&self, txn_id: &str, user: &str, amount: u64) -> Result<Claim> {
        limits::check_key("txn_id", txn_id)?;
        limits::check_key("user", user)?;
        if let Some(first) = self.get(txn_id)? {
            return Ok(Claim::Duplicate(first));
        }
        let now = self.tx.now_ms();
        let claim = ProcessedTransaction {
            txn_id: txn_id.to_owned(),
            user_pubkey: user.to_owned(),
            amount,
            processed_at: unix_seconds(now),
        };
        let body = codec::to_postcard("dedup record", &claim)?;
        record::put(
            self.tx,
            DEDUP,
            txn_id,
            &shown(txn_id),
            Some(&|| ttl_key(txn_id)),
            NewRecord::postcard(
                &body,
                Some(expiry_after(now, self.tx.config().dedup_ttl)),
                Expect::Absent,
            ),
        )?;
        Ok(Claim::New)
    }

    /// The seed's `mark_transaction_processed`: records `txn_id` as processed. Returns
    /// `true` if this call recorded it, `false` if it already had a live claim.
    ///
    /// Unlike the seed's blind overwrite, an existing claim is never replaced (first
    /// writer wins, its TTL is not extended), so a second marker cannot make a
    /// transaction look as if it had been processed for someone else.
    pub fn mark_processed(&self, txn_id: &str, user: &str, amount: u64) -> Result<bool> {
        Ok(self.claim(txn_id, user, amount)?.is_new())
    }

    /// Removes the claim of `txn_id` (e.g. to allow a deliberate reprocessing); returns
    /// whether a live claim was removed.
    pub fn forget(&self, txn_id: &str) -> Result<bool> {
        limits::check_key("txn_id", txn_id)?;
        let removed = record::delete(
            self.tx,
            DEDUP,
            txn_id,
            &shown(txn_id),
            Some(&|| ttl_key(txn_id)),
        )?;
        Ok(removed.is_some())
    }
}

/// Dedup reads on a snapshot. Obtained from [`ReadTx::dedup`].
#[derive(Debug, Clone, Copy)]
pub struct DedupRead<'t> {
    tx: &'t ReadTx,
}

impl ReadTx {
    /// The processed-transaction (dedup) records.
    pub fn dedup(&self) -> DedupRead<'_> {
        DedupRead { tx: self }
    }
}

impl DedupRead<'_> {
    /// The live claim of `txn_id`, or `None` if unclaimed or expired.
    pub fn get(&self, txn_id: &str) -> Result<Option<ProcessedTransaction>> {
        let table = self.tx.raw().open_table(DEDUP)?;
        get_in(&table, txn_id, self.tx.now_ms())
    }

    /// Whether `txn_id` has a live claim.
    pub fn is_processed(&self, txn_id: &str) -> Result<bool> {
        Ok(self.get(txn_id)?.is_some())
    }
}

/// Dedup calls on the store, each in its own transaction. Obtained from
/// [`Store::dedup`]. To make the claim and the processing one atomic step, call
/// [`DedupTx::claim`] inside [`Store::write`] instead.
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
///         tx.contexts().update_or_init("alice", |ctx| {
///             ctx.vault.cred_balance += 300;
///             Ok(())
///         })?;
///     }
///     Ok::<_, edgestate::Error>(())
/// })?;
/// assert!(store.dedup().is_processed("txn-2")?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Dedup<'s> {
    store: &'s Store,
}

impl Store {
    /// The processed-transaction (dedup) records.
    pub fn dedup(&self) -> Dedup<'_> {
        Dedup { store: self }
    }
}

impl Dedup<'_> {
    /// The live claim of `txn_id`, or `None` if unclaimed or expired.
    pub fn get(&self, txn_id: &str) -> Result<Option<ProcessedTransaction>> {
        self.store.read(|tx| tx.dedup().get(txn_id))
    }

    /// Whether `txn_id` has a live claim.
    pub fn is_processed(&self, txn_id: &str) -> Result<bool> {
        self.store.read(|tx| tx.dedup().is_processed(txn_id))
    }

    /// Atomic insert-if-absent; see [`DedupTx::claim`]. A duplicate already visible in
    /// a read snapshot is answered without taking the write lock.
    pub fn claim(&self, txn_id: &str, user: &str, amount: u64) -> Result<Claim> {
        // Same validation order as the transaction handle, so errors name the same field.
        limits::check_key("txn_id", txn_id)?;
        limits::check_key("user", user)?;
        if let Some(first) = self.get(txn_id)? {
            return Ok(Claim::Duplicate(first));
        }
        self.store
            .write(|tx| tx.dedup().claim(txn_id, user, amount))
    }

    /// Records `txn_id` as processed unless already claimed; see
    /// [`DedupTx::mark_processed`].
    pub fn mark_processed(&self, txn_id: &str, user: &str, amount: u64) -> Result<bool> {
        self.store
            .write(|tx| tx.dedup().mark_processed(txn_id, user, amount))
    }

    /// Removes the claim of `txn_id`; see [`DedupTx::forget`].
    pub fn forget(&self, txn_id: &str) -> Result<bool> {
        self.store.write(|tx| tx.dedup().forget(txn_id))
    }
}
