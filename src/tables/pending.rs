//! Pending captures: a bounded ring buffer per user, newest first.
//!
//! Entries are keyed `(user, seq)`, where `seq` comes from a per-user counter that only
//! ever grows: it is never reused, not after an eviction, a removal, a sweep or a reopen.
//! The seed keyed entries by the wall-clock second, so two captures in one second
//! overwrote each other; here both survive.
//!
//! An [`add`](PendingTx::add) that takes a user beyond
//! [`StoreConfig::pending_capacity`](crate::StoreConfig::pending_capacity) entries evicts
//! the oldest in the same transaction, counting expired entries that no sweep has removed
//! yet: after an add a user never holds more than `pending_capacity` rows. Every entry
//! expires [`StoreConfig::pending_ttl`](crate::StoreConfig::pending_ttl) after it was
//! added. The capture's own `created_at` and `expires_at` fields are the caller's data:
//! stored and returned, never interpreted (except by
//! [`remove_by_timestamp`](PendingTx::remove_by_timestamp)).
//!
//! The counter row of a user stays after their last entry is gone (a few bytes per user
//! ever seen); that is what keeps seqs from being reused.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::record::{self, NewRecord, Stored, TtlKey};
use super::Expect;
use crate::clock::expiry_after;
use crate::codec::{self, keys};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{TtlTable, PENDING, PENDING_SEQ};
use crate::store::Store;
use crate::txn::{ReadTx, WriteTx};

const TABLE: &str = "edgestate.pending";
/// The first seq a user gets.
const FIRST_SEQ: u64 = 1;

/// A card capture waiting to be processed, as the agent SDK seed stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// When the capture was made, in unix seconds (caller's data).
    pub created_at: i64,
    /// When the capture stops mattering, in unix seconds (caller's data; the entry itself
    /// expires after `pending_ttl`).
    pub expires_at: i64,
}

/// A capture's position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PendingLocation {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// Accuracy radius in metres.
    pub accuracy_m: f32,
}

/// What an [`add`](PendingTx::add) did.
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

fn shown(user: &str, seq: u64) -> impl Fn() -> String + '_ {
    move || format!("{user}#{seq}")
}

fn ttl_key(user: &str, seq: u64) -> TtlKey {
    TtlKey {
        table: TtlTable::Pending,
        packed: keys::pack(&[user.as_bytes(), &seq.to_be_bytes()]),
    }
}

fn entry(user: &str, seq: u64, stored: &Stored) -> Result<PendingEntry> {
    Ok(PendingEntry {
        seq,
        capture: codec::from_postcard(TABLE, &shown(user, seq)(), &stored.payload)?,
        // Always written with an expiry; a record without one would never expire.
        expires_at_ms: stored.expires_at_ms.unwrap_or(u64::MAX),
    })
}

// Reads, generic over read and write transactions.

fn get_in<T>(table: &T, user: &str, seq: u64, now: u64) -> Result<Option<PendingEntry>>
where
    T: ReadableTable<(&'static str, u64), &'static [u8]>,
{
    limits::check_key("user", user)?;
    match record::get_live(table, TABLE, (user, seq), &shown(user, seq), now)? {
        Some(stored) => Ok(Some(entry(user, seq, &stored)?)),
        None => Ok(None),
    }
}

/// The user's live entries, newest first.
fn list_in<T>(table: &T, user: &str, now: u64) -> Result<Vec<PendingEntry>>
where
    T: ReadableTable<(&'static str, u64), &'static [u8]>,
{
    limits::check_key("user", user)?;
    let mut out = Vec::new();
    for item in table.range((user, 0u64)..=(user, u64::MAX))?.rev() {
        let (k, v) = item?;
        let seq = k.value().1;
        if let Some(stored) = record::decode_live(TABLE, &shown(user, seq), v.value(), now)? {
            out.push(entry(user, seq, &stored)?);
        }
    }
    Ok(out)
}

fn count_in<T>(table: &T, user: &str, now: u64) -> Result<usize>
where
    T: ReadableTable<(&'static str, u64), &'static [u8]>,
{
    limits::check_key("user", user)?;
    let mut live = 0;
    for item in table.range((user, 0u64)..=(user, u64::MAX))? {
        let (k, v) = item?;
        let seq = k.value().1;
        // Liveness comes from the checked header; the capture itself is not deserialized.
        if record::decode_live(TABLE, &shown(user, seq), v.value(), now)?.is_some() {
            live += 1;
        }
    }
    Ok(live)
}

/// Pending captures inside a write transaction. Obtained from [`WriteTx::pending`].
#[derive(Debug, Clone, Copy)]
pub struct PendingTx<'t> {
    tx: &'t WriteTx,
}

impl WriteTx {
    /// The per-user pending capture ring buffers.
    pub fn pending(&self) -> PendingTx<'_> {
        PendingTx { tx: self }
    }
}

impl PendingTx<'_> {
    /// Adds a capture under the user's next seq and evicts the oldest entries beyond
    /// `pending_capacity`, all in this transaction. The entry expires `pending_ttl` from
    /// now.
    ///
    /// A store configured with `pending_capacity == 0` refuses with
    /// [`Error::InvalidInput`] (field `pending_capacity`) and writes nothing: storing a
    /// capture only to evict it at once would lose it without a word.
    pub fn add(&self, user: &str, capture: &PendingCapture) -> Result<PendingId> {
        limits::check_key("user", user)?;
        let capacity = self.tx.config().pending_capacity;
        if capacity == 0 {
            return Err(Error::invalid(
                "pending_capacity",
                "is 0, so no capture could be kept",
            ));
        }
        let expires_at_ms = expiry_after(self.tx.now_ms(), self.tx.config().pending_ttl);
        let payload = codec::to_postcard("pending capture", capture)?;
        let seq = self.take_seq(user)?;
        record::put(
            self.tx,
            PENDING,
            (user, seq),
            &shown(user, seq),
            Some(&|| ttl_key(user, seq)),
            NewRecord::postcard(&payload, Some(expires_at_ms), Expect::Absent),
        )?;
        let evicted = self.evict_beyond(user, capacity)?;
        Ok(PendingId {
            seq,
            expires_at_ms,
            evicted,
        })
    }

    /// Hands out the user's next seq and advances the counter.
    fn take_seq(&self, user: &str) -> Result<u64> {
        let mut seqs = self.tx.raw().open_table(PENDING_SEQ)?;
        let seq = seqs.get(user)?.map_or(FIRST_SEQ, |g| g.value());
        let next = seq
            .checked_add(1)
            .ok_or_else(|| Error::invalid("user", "has used every pending sequence number"))?;
        seqs.insert(user, next)?;
        Ok(seq)
    }

    /// Removes the oldest rows (live or expired) until at most `capacity` remain.
    fn evict_beyond(&self, user: &str, capacity: usize) -> Result<Vec<u64>> {
        let doomed: Vec<u64> = {
            let table = self.tx.raw().open_table(PENDING)?;
            let mut seqs = Vec::new();
            for item in table.range((user, 0u64)..=(user, u64::MAX))? {
                seqs.push(item?.0.value().1);
            }
            let excess = seqs.len().saturating_sub(capacity);
            seqs.truncate(excess);
            seqs
        };
        for &seq in &doomed {
            record::delete(
                self.tx,
                PENDING,
                (user, seq),
                &shown(user, seq),
                Some(&|| ttl_key(user, seq)),
            )?;
        }
        Ok(doomed)
    }

    /// The live entry `seq` of the user, if any.
    pub fn get(&self, user: &str, seq: u64) -> Result<Option<PendingEntry>> {
        let table = self.tx.raw().open_table(PENDING)?;
        get_in(&table, user, seq, self.tx.now_ms())
    }

    /// The user's live entries, newest first.
    pub fn list(&self, user: &str) -> Result<Vec<PendingEntry>> {
        let table = self.tx.raw().open_table(PENDING)?;
        list_in(&table, user, self.tx.now_ms())
    }

    /// How many live entries the user has.
    pub fn count(&self, user: &str) -> Result<usize> {
        let table = self.tx.raw().open_table(PENDING)?;
        count_in(&table, user, self.tx.now_ms())
    }

    /// Removes entry `seq` (live or expired). Returns its capture if it was live.
    pub fn remove(&self, user: &str, seq: u64) -> Result<Option<PendingCapture>> {
        limits::check_key("user", user)?;
        let removed = record::delete(
            self.tx,
            PENDING,
            (user, seq),
            &shown(user, seq),
            Some(&|| ttl_key(user, seq)),
        )?;
        match removed {
            Some(stored) => Ok(Some(entry(user, seq, &stored)?.capture)),
            None => Ok(None),
        }
    }

    /// The seed's removal by timestamp: removes every live entry of the user whose
    /// capture has `created_at == created_at` (there may be several, since two captures
    /// can share a second) and returns them, newest first.
    pub fn remove_by_timestamp(&self, user: &str, created_at: i64) -> Result<Vec<PendingEntry>> {
        let matching: Vec<PendingEntry> = self
            .list(user)?
            .into_iter()
            .filter(|e| e.capture.created_at == created_at)
            .collect();
        for e in &matching {
            self.remove(user, e.seq)?;
        }
        Ok(matching)
    }
}

/// Pending capture reads on a snapshot. Obtained from [`ReadTx::pending`].
#[derive(Debug, Clone, Copy)]
pub struct PendingRead<'t> {
    tx: &'t ReadTx,
}

impl ReadTx {
    /// The per-user pending capture ring buffers.
    pub fn pending(&self) -> PendingRead<'_> {
        PendingRead { tx: self }
    }
}

impl PendingRead<'_> {
    /// The live entry `seq` of the user, if any.
    pub fn get(&self, user: &str, seq: u64) -> Result<Option<PendingEntry>> {
        let table = self.tx.raw().open_table(PENDING)?;
        get_in(&table, user, seq, self.tx.now_ms())
    }

    /// The user's live entries, newest first.
    pub fn list(&self, user: &str) -> Result<Vec<PendingEntry>> {
        let table = self.tx.raw().open_table(PENDING)?;
        list_in(&table, user, self.tx.now_ms())
    }

    /// How many live entries the user has.
    pub fn count(&self, user: &str) -> Result<usize> {
        let table = self.tx.raw().open_table(PENDING)?;
        count_in(&table, user, self.tx.now_ms())
    }
}

/// Pending capture calls on the store, each in its own transaction. Obtained from
/// [`Store::pending`].
///
/// ```
/// use edgestate::{PendingCapture, Store};
///
/// # fn main() -> edgestate::Result<()> {
/// let store = Store::builder().pending_capacity(2).in_memory()?;
/// let capture = |cents| PendingCapture {
///     merchant_id: "coffee-42".into(),
///     merchant_name: None,
///     amount_cents: cents,
///     card_last4: Some("4242".into()),
///     proof_data: None,
///     proof_type: None,
///     location: None,
///     created_at: 1_700_000_000, // the same second for all three
///     expires_at: 1_700_086_400,
/// };
/// let pending = store.pending();
/// let first = pending.add("alice", &capture(100))?;
/// pending.add("alice", &capture(200))?;
/// let third = pending.add("alice", &capture(300))?; // evicts the oldest
/// assert_eq!(third.evicted, vec![first.seq]);
///
/// let amounts: Vec<u64> = pending.list("alice")?.iter().map(|e| e.capture.amount_cents).collect();
/// assert_eq!(amounts, vec![300, 200]); // newest first
/// assert!(pending.remove("alice", third.seq)?.is_some());
/// assert_eq!(pending.count("alice")?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Pending<'s> {
    store: &'s Store,
}

impl Store {
    /// The per-user pending capture ring buffers, one transaction per call.
    pub fn pending(&self) -> Pending<'_> {
        Pending { store: self }
    }
}

impl Pending<'_> {
    /// Adds a capture, evicting beyond capacity: see [`PendingTx::add`].
    pub fn add(&self, user: &str, capture: &PendingCapture) -> Result<PendingId> {
        self.store.write(|tx| tx.pending().add(user, capture))
    }

    /// The live entry `seq` of the user, if any.
    pub fn get(&self, user: &str, seq: u64) -> Result<Option<PendingEntry>> {
        self.store.read(|tx| tx.pending().get(user, seq))
    }

    /// The user's live entries, newest first.
    pub fn list(&self, user: &str) -> Result<Vec<PendingEntry>> {
        self.store.read(|tx| tx.pending().list(user))
    }

    /// How many live entries the user has.
    pub fn count(&self, user: &str) -> Result<usize> {
        self.store.read(|tx| tx.pending().count(user))
    }

    /// Removes entry `seq`. Returns its capture if it was live.
    pub fn remove(&self, user: &str, seq: u64) -> Result<Option<PendingCapture>> {
        self.store.write(|tx| tx.pending().remove(user, seq))
    }

    /// Removes the entries whose capture has this `created_at`: see
    /// [`PendingTx::remove_by_timestamp`].
    pub fn remove_by_timestamp(&self, user: &str, created_at: i64) -> Result<Vec<PendingEntry>> {
        self.store
            .write(|tx| tx.pending().remove_by_timestamp(user, created_at))
    }
}
