//! Pending captures: a bounded ring buffer per user, newest first.
//!
//! Entries are keyed `(user, seq)`, where `seq` comes from a per-user counter that only
//! ever grows: it is never reused, not after an eviction, a deletion, a sweep or a reopen.
//! The seed keyed entries by the wall-clock second, so two captures in one second
//! overwrote each other; here both survive.
//!
//! A [`push`](Pending::push) that takes a user beyond
//! [`StoreConfig::pending_capacity`](crate::StoreConfig::pending_capacity) entries evicts
//! the oldest in the same transaction, counting expired entries that no sweep has removed
//! yet: after a push a user never holds more than `pending_capacity` rows. Every entry
//! expires [`StoreConfig::pending_ttl`](crate::StoreConfig::pending_ttl) after it was
//! pushed. The capture's own `created_at_s` and `expires_at_s` fields are the caller's
//! data: stored and returned, never interpreted (except by
//! [`delete_created_at`](Pending::delete_created_at)).
//!
//! The counter row of a user stays after their last entry is gone (a few bytes per user
//! ever seen); that is what keeps seqs from being reused.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::record::{self, Slot, Stored};
use super::{handle, Expect};
use crate::access::{Access, WriteAccess};
use crate::clock::expiry_after;
use crate::codec::keys::KeyShape;
use crate::codec::{self, envelope};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{PENDING, PENDING_SEQ};
use crate::txn::WriteTx;

/// The first seq a user gets.
const FIRST_SEQ: u64 = 1;

/// A card capture waiting to be processed, as the agent SDK seed stores it.
///
/// `Default` gives an empty capture (no merchant, 0 cents, times 0), to fill in with
/// struct update syntax.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingCapture {
    /// The merchant where the capture happened.
    pub merchant_id: String,
    /// The merchant's display name.
    pub merchant_name: Option<String>,
    /// The amount in cents.
    pub amount_cents: u64,
    /// Last four digits of the card.
    pub card_last4: Option<String>,
    /// Proof of the purchase (opaque to the store).
    pub proof_data: Option<String>,
    /// What kind of proof `proof_data` is.
    pub proof_type: Option<String>,
    /// Where the capture happened.
    pub location: Option<PendingLocation>,
    /// When the capture was made, in Unix seconds (caller's data). Serialized as
    /// `created_at`.
    #[serde(rename = "created_at")]
    pub created_at_s: i64,
    /// When the capture stops mattering, in Unix seconds (caller's data; the entry itself
    /// expires after `pending_ttl`). Serialized as `expires_at`.
    #[serde(rename = "expires_at")]
    pub expires_at_s: i64,
}

/// A capture's position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingLocation {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// Accuracy radius in metres.
    pub accuracy_m: f32,
}

/// What a [`push`](Pending::push) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingId {
    /// The new entry's sequence number: greater than every seq the user had before.
    pub seq: u64,
    /// When the new entry expires, ms since the epoch.
    pub expires_at_ms: u64,
    /// The seqs evicted to stay within capacity, oldest first.
    pub evicted: Vec<u64>,
}

/// One stored capture with its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    /// The entry's sequence number.
    pub seq: u64,
    /// The capture.
    pub capture: PendingCapture,
    /// When the entry expires, ms since the epoch.
    pub expires_at_ms: u64,
}

fn entry(user: &str, seq: u64, stored: &Stored) -> Result<PendingEntry> {
    let shown = <(&str, u64)>::show(&(user, seq));
    Ok(PendingEntry {
        seq,
        capture: stored.decode(PENDING.name, &shown)?,
        // Always written with an expiry; a record without one would never expire.
        expires_at_ms: stored.expires_at_ms.unwrap_or(u64::MAX),
    })
}

/// Every stored seq of the user (live or expired), oldest first. Reads keys only.
fn stored_seqs(tx: &WriteTx, user: &str) -> Result<Vec<u64>> {
    let table = tx.open_table(PENDING.def)?;
    let mut seqs = Vec::new();
    for item in ReadableTable::range(&table, (user, 0u64)..=(user, u64::MAX))? {
        seqs.push(item?.0.value().1);
    }
    Ok(seqs)
}

handle! {
    /// The per-user pending capture ring buffers, from `tx.pending()`, `read.pending()`
    /// or `store.pending()`. On a [`Store`](crate::Store) each call is its own
    /// transaction; inside [`Store::write`](crate::Store::write) reads see the
    /// transaction's own writes.
    ///
    /// ```
    /// use edgestate::{PendingCapture, Store};
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::builder().pending_capacity(2).in_memory()?;
    /// let capture = |cents| PendingCapture {
    ///     merchant_id: "coffee-42".into(),
    ///     amount_cents: cents,
    ///     card_last4: Some("4242".into()),
    ///     created_at_s: 1_700_000_000, // the same second for all three
    ///     expires_at_s: 1_700_086_400,
    ///     ..PendingCapture::default()
    /// };
    /// let pending = store.pending();
    /// let first = pending.push("alice", &capture(100))?;
    /// pending.push("alice", &capture(200))?;
    /// let third = pending.push("alice", &capture(300))?; // evicts the oldest
    /// assert_eq!(third.evicted, vec![first.seq]);
    ///
    /// let amounts: Vec<u64> = pending.list("alice")?.iter().map(|e| e.capture.amount_cents).collect();
    /// assert_eq!(amounts, vec![300, 200]); // newest first
    /// assert!(pending.delete("alice", third.seq)?.is_some());
    /// assert_eq!(pending.count("alice")?, 1);
    ///
    /// // Inside a transaction, with other families, all or nothing.
    /// store.write(|tx| {
    ///     let pending = tx.pending();
    ///     pending.push("bob", &capture(500))?;
    ///     assert_eq!(pending.count("bob")?, 1);
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    /// assert_eq!(pending.delete_created_at("bob", 1_700_000_000)?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    Pending
}

impl<A: Access> Pending<'_, A> {
    /// The live entry `seq` of the user, if any.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized user;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged entry; storage errors.
    pub fn get(&self, user: &str, seq: u64) -> Result<Option<PendingEntry>> {
        limits::check_key("user", user)?;
        self.src
            .with_reader(|r| match record::get(r, &PENDING, (user, seq))? {
                Some(stored) => Ok(Some(entry(user, seq, &stored)?)),
                None => Ok(None),
            })
    }

    /// The user's live entries, newest first.
    ///
    /// # Errors
    /// As [`get`](Self::get), for any of the user's entries.
    pub fn list(&self, user: &str) -> Result<Vec<PendingEntry>> {
        limits::check_key("user", user)?;
        self.src.with_reader(|r| {
            let table = r.open(PENDING.def)?;
            let mut out = Vec::new();
            for item in table.range((user, 0u64)..=(user, u64::MAX))?.rev() {
                let (k, v) = item?;
                let seq = k.value().1;
                if let Some(stored) =
                    record::decode_live(&PENDING, &(user, seq), v.value(), r.now_ms())?
                {
                    out.push(entry(user, seq, &stored)?);
                }
            }
            Ok(out)
        })
    }

    /// How many live entries the user has.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad user;
    /// [`Corrupt`](crate::Error::Corrupt) for an entry with a damaged envelope; storage
    /// errors.
    pub fn count(&self, user: &str) -> Result<usize> {
        limits::check_key("user", user)?;
        self.src.with_reader(|r| {
            let table = r.open(PENDING.def)?;
            let mut live = 0;
            for item in table.range((user, 0u64)..=(user, u64::MAX))? {
                let (k, v) = item?;
                let seq = k.value().1;
                // Liveness comes from the checked header; the capture is not deserialized.
                if record::decode_live(&PENDING, &(user, seq), v.value(), r.now_ms())?.is_some() {
                    live += 1;
                }
            }
            Ok(live)
        })
    }
}

impl<A: WriteAccess> Pending<'_, A> {
    /// Appends a capture under the user's next seq and evicts the oldest entries beyond
    /// `pending_capacity`, all in one transaction. The entry expires `pending_ttl` from
    /// the transaction's now.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad user, for a store
    /// configured with `pending_capacity == 0` (field `pending_capacity`: storing a
    /// capture only to evict it at once would lose it without a word), or when the user
    /// has used every sequence number; [`Encode`](crate::Error::Encode) when the capture
    /// does not serialize; storage and commit errors. Nothing is written on error.
    /// (Evicting a damaged entry is not an error: it is removed like any other.)
    pub fn push(&self, user: &str, capture: &PendingCapture) -> Result<PendingId> {
        limits::check_key("user", user)?;
        let payload = codec::to_postcard("pending capture", capture)?;
        limits::check_value_len("value", payload.len())?;
        self.src.with_writer(|tx| {
            let capacity = tx.config().pending_capacity;
            if capacity == 0 {
                return Err(Error::invalid(
                    "pending_capacity",
                    "is 0, so no capture could be kept",
                ));
            }
            let expires_at_ms = expiry_after(tx.now_ms(), tx.config().pending_ttl);
            let seq = take_seq(tx, user)?;
            record::put(
                tx,
                PENDING,
                (user, seq),
                envelope::FORMAT_POSTCARD,
                &payload,
                Some(expires_at_ms),
                Expect::Absent,
            )?;
            let evicted = evict_beyond(tx, user, capacity)?;
            Ok(PendingId {
                seq,
                expires_at_ms,
                evicted,
            })
        })
    }

    /// Deletes entry `seq` (live or expired). Returns its capture if it was live.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad user;
    /// [`Decode`](crate::Error::Decode) when the removed live entry does not decode
    /// (nothing is removed then); storage and commit errors.
    pub fn delete(&self, user: &str, seq: u64) -> Result<Option<PendingCapture>> {
        limits::check_key("user", user)?;
        self.src
            .with_writer(|tx| match record::delete(tx, PENDING, (user, seq))? {
                Some(stored) => Ok(Some(entry(user, seq, &stored)?.capture)),
                None => Ok(None),
            })
    }

    /// The seed's removal by timestamp: deletes every live entry of the user whose
    /// capture has `created_at_s == created_at_s` (there may be several, since two
    /// captures can share a second) and returns them, newest first.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad user;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged entry of the user (nothing is removed then); storage and commit errors.
    pub fn delete_created_at(&self, user: &str, created_at_s: i64) -> Result<Vec<PendingEntry>> {
        limits::check_key("user", user)?;
        self.src.with_writer(|tx| {
            let mut removed = Vec::new();
            for seq in stored_seqs(tx, user)?.into_iter().rev() {
                let slot = Slot::open(tx, PENDING, (user, seq))?;
                let Some(stored) = slot.live() else {
                    continue;
                };
                let found = entry(user, seq, stored)?;
                if found.capture.created_at_s == created_at_s {
                    slot.delete()?;
                    removed.push(found);
                }
            }
            Ok(removed)
        })
    }
}

/// Hands out the user's next seq and advances the counter.
fn take_seq(tx: &WriteTx, user: &str) -> Result<u64> {
    let mut seqs = tx.open_table(PENDING_SEQ)?;
    let seq = seqs.get(user)?.map_or(FIRST_SEQ, |g| g.value());
    let next = seq
        .checked_add(1)
        .ok_or_else(|| Error::invalid("user", "has used every pending sequence number"))?;
    seqs.insert(user, next)?;
    Ok(seq)
}

/// Removes the oldest rows (live or expired) until at most `capacity` remain.
fn evict_beyond(tx: &WriteTx, user: &str, capacity: usize) -> Result<Vec<u64>> {
    let mut doomed = stored_seqs(tx, user)?;
    let excess = doomed.len().saturating_sub(capacity);
    doomed.truncate(excess);
    for &seq in &doomed {
        record::delete(tx, PENDING, (user, seq))?;
    }
    Ok(doomed)
}
