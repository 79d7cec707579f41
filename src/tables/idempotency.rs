//! Idempotency keys for requests that must run at most once even when retried: a key
//! is begun (in progress, under a lease), then completed with its result, which retries
//! of the same request get back instead of running it again.
//!
//! Each record remembers the fingerprint of the request payload it was begun with (a
//! hash the caller computes), so reusing a key for a different request is refused with
//! [`Error::IdempotencyMismatch`]. An in-progress record expires with its lease
//! (`StoreConfig::idempotency_lease`, default 30 s): if its holder crashed, the next
//! caller takes over once the lease has run out. A completed record lives for
//! `StoreConfig::idempotency_ttl` (default 24 h). Expired records are invisible at once
//! and removed by sweeps.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::record::{self, NewRecord, TtlKey};
use super::Expect;
use crate::clock::expiry_after;
use crate::codec::{self, envelope, keys};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{TtlTable, IDEMPOTENCY};
use crate::store::Store;
use crate::txn::{ReadTx, WriteTx};

const TABLE: &str = "edgestate.idempotency";

/// Where a request under an idempotency key stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdempotencyState {
    /// A holder is running the request.
    InProgress {
        /// When the holder began (ms since the epoch).
        started_at_ms: u64,
        /// When the lease runs out and another caller may take over.
        lease_expires_at_ms: u64,
    },
    /// The request ran; retries get `result`.
    Completed {
        /// The stored result bytes.
        result: Vec<u8>,
        /// When it completed (ms since the epoch).
        completed_at_ms: u64,
    },
}

/// An idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The idempotency key.
    pub key: String,
    /// The fingerprint of the payload the key was begun with.
    pub payload_fingerprint: Vec<u8>,
    /// In progress or completed.
    pub state: IdempotencyState,
    /// When the record disappears: the lease's end while in progress, the result's
    /// expiry once completed.
    pub expires_at_ms: Option<u64>,
}

/// The outcome of [`IdempotencyTx::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The caller holds the key until `lease_expires_at_ms`: run the request, then
    /// [`complete`](IdempotencyTx::complete) (or [`abandon`](IdempotencyTx::abandon)).
    Started {
        /// When the lease runs out (ms since the epoch).
        lease_expires_at_ms: u64,
    },
    /// The request already ran; here is its stored result. Do not run it again.
    Completed(Vec<u8>),
}

/// The stored body; the key is the record's key.
#[derive(Serialize, Deserialize)]
struct Body {
    payload_fingerprint: Vec<u8>,
    state: IdempotencyState,
}

fn shown(key: &str) -> impl Fn() -> String + '_ {
    move || key.to_owned()
}

fn ttl_key(key: &str) -> TtlKey {
    TtlKey {
        table: TtlTable::Idempotency,
        packed: keys::pack(&[key.as_bytes()]),
    }
}

/// A fingerprint is a hash; anything longer than a key is a mistake (a whole payload).
fn check_fingerprint(fingerprint: &[u8]) -> Result<()> {
    if fingerprint.len() > limits::MAX_KEY_LEN {
        return Err(Error::invalid(
            "payload_fingerprint",
            format!(
                "is {} bytes, more than the maximum of {}; pass a hash of the payload",
                fingerprint.len(),
                limits::MAX_KEY_LEN
            ),
        ));
    }
    Ok(())
}

fn get_in<T>(table: &T, key: &str, now: u64) -> Result<Option<IdempotencyRecord>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    limits::check_key("key", key)?;
    let Some(stored) = record::get_live(table, TABLE, key, &shown(key), now)? else {
        return Ok(None);
    };
    if stored.format != envelope::FORMAT_POSTCARD_V1 {
        return Err(Error::Decode {
            table: TABLE,
            key: key.to_owned(),
            reason: format!(
                "record format {} is not an idempotency record",
                stored.format
            ),
        });
    }
    let body: Body = codec::from_postcard(TABLE, key, &stored.payload)?;
    Ok(Some(IdempotencyRecord {
        key: key.to_owned(),
        payload_fingerprint: body.payload_fingerprint,
        state: body.state,
        expires_at_ms: stored.expires_at_ms,
    }))
}

/// Idempotency records inside a write transaction: reads see the transaction's own
/// writes. Obtained from [`WriteTx::idempotency`].
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyTx<'t> {
    tx: &'t WriteTx,
}

impl WriteTx {
    /// The idempotency records.
    pub fn idempotency(&self) -> IdempotencyTx<'_> {
        IdempotencyTx { tx: self }
    }
}

impl IdempotencyTx<'_> {
    /// The live record of `key`, or `None` (never begun, lease run out, or result
    /// expired).
    pub fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        let table = self.tx.raw().open_table(IDEMPOTENCY)?;
        get_in(&table, key, self.tx.now_ms())
    }

    /// Starts the request under `key`, or tells why not:
    /// - no live record (never begun, or the previous holder's lease ran out): the
    ///   caller now holds the key, [`Begin::Started`];
    /// - a record begun with another fingerprint: [`Error::IdempotencyMismatch`];
    /// - in progress under a lease that has not run out:
    ///   [`Error::IdempotencyInProgress`] (retry after `lease_expires_at_ms`);
    /// - completed: [`Begin::Completed`] with the stored result.
    pub fn begin(&self, key: &str, payload_fingerprint: &[u8]) -> Result<Begin> {
        limits::check_key("key", key)?;
        check_fingerprint(payload_fingerprint)?;
        match self.get(key)? {
            Some(rec) if rec.payload_fingerprint != payload_fingerprint => {
                Err(Error::IdempotencyMismatch {
                    key: key.to_owned(),
                })
            }
            Some(IdempotencyRecord {
                state:
                    IdempotencyState::InProgress {
                        lease_expires_at_ms,
                        ..
                    },
                ..
            }) => Err(Error::IdempotencyInProgress {
                key: key.to_owned(),
                lease_expires_at_ms,
            }),
            Some(IdempotencyRecord {
                state: IdempotencyState::Completed { result, .. },
                ..
            }) => Ok(Begin::Completed(result)),
            None => {
                let now = self.tx.now_ms();
                let lease_expires_at_ms = expiry_after(now, self.tx.config().idempotency_lease);
                let state = IdempotencyState::InProgress {
                    started_at_ms: now,
                    lease_expires_at_ms,
                };
                self.write(
                    key,
                    payload_fingerprint,
                    state,
                    lease_expires_at_ms,
                    Expect::Absent,
                )?;
                Ok(Begin::Started {
                    lease_expires_at_ms,
                })
            }
        }
    }

    /// Stores `result` for `key`, to be returned to retries for
    /// `StoreConfig::idempotency_ttl`. Returns `true` if stored, `false` if a result
    /// was already stored (the first result is kept). Completing after the lease ran
    /// out still stores the result, unless another caller has completed meanwhile.
    /// A record begun with another fingerprint gives [`Error::IdempotencyMismatch`].
    pub fn complete(&self, key: &str, payload_fingerprint: &[u8], result: &[u8]) -> Result<bool> {
        limits::check_key("key", key)?;
        check_fingerprint(payload_fingerprint)?;
        let expect = match self.get(key)? {
            Some(rec) if rec.payload_fingerprint != payload_fingerprint => {
                return Err(Error::IdempotencyMismatch {
                    key: key.to_owned(),
                })
            }
            Some(IdempotencyRecord {
                state: IdempotencyState::Completed { .. },
                ..
            }) => return Ok(false),
            Some(_) => Expect::Any,
            None => Expect::Absent,
        };
        let now = self.tx.now_ms();
        let state = IdempotencyState::Completed {
            result: result.to_vec(),
            completed_at_ms: now,
        };
        let expires = expiry_after(now, self.tx.config().idempotency_ttl);
        self.write(key, payload_fingerprint, state, expires, expect)?;
        Ok(true)
    }

    /// Gives up an in-progress key so the next caller may begin at once (e.g. after the
    /// request failed in a retryable way). Returns whether an in-progress record was
    /// removed; a completed record is kept.
    pub fn abandon(&self, key: &str) -> Result<bool> {
        limits::check_key("key", key)?;
        match self.get(key)? {
            Some(IdempotencyRecord {
                state: IdempotencyState::InProgress { .. },
                ..
            }) => {
                let removed = record::delete(
                    self.tx,
                    IDEMPOTENCY,
                    key,
                    &shown(key),
                    Some(&|| ttl_key(key)),
                )?;
                Ok(removed.is_some())
            }
            _ => Ok(false),
        }
    }

    fn write(
        &self,
        key: &str,
        payload_fingerprint: &[u8],
        state: IdempotencyState,
        expires_at_ms: u64,
        expect: Expect,
    ) -> Result<u64> {
        let body = codec::to_postcard(
            "idempotency record",
            &Body {
                payload_fingerprint: payload_fingerprint.to_vec(),
                state,
            },
        )?;
        record::put(
            self.tx,
            IDEMPOTENCY,
            key,
            &shown(key),
            Some(&|| ttl_key(key)),
            NewRecord::postcard(&body, Some(expires_at_ms), expect),
        )
    }
}

/// Idempotency reads on a snapshot. Obtained from [`ReadTx::idempotency`].
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyRead<'t> {
    tx: &'t ReadTx,
}

impl ReadTx {
    /// The idempotency records.
    pub fn idempotency(&self) -> IdempotencyRead<'_> {
        IdempotencyRead { tx: self }
    }
}

impl IdempotencyRead<'_> {
    /// The live record of `key`, or `None`.
    pub fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        let table = self.tx.raw().open_table(IDEMPOTENCY)?;
        get_in(&table, key, self.tx.now_ms())
    }
}

/// Idempotency calls on the store, each in its own transaction. Obtained from
/// [`Store::idempotency`]; see [`IdempotencyTx`] for the semantics.
///
/// ```
/// use edgestate::{Begin, Error, Store};
///
/// # fn main() -> edgestate::Result<()> {
/// let store = Store::in_memory()?;
/// let idem = store.idempotency();
/// let payload_hash = b"sha256-of-the-request-body";
///
/// match idem.begin("req-42", payload_hash)? {
///     Begin::Started { .. } => {
///         let result = b"order o-17 placed"; // ... run the request ...
///         idem.complete("req-42", payload_hash, result)?;
///     }
///     Begin::Completed(_) => unreachable!("first attempt"),
/// }
///
/// // A retry gets the stored result instead of running again.
/// assert_eq!(
///     idem.begin("req-42", payload_hash)?,
///     Begin::Completed(b"order o-17 placed".to_vec())
/// );
/// // The same key with another payload is refused.
/// let err = idem.begin("req-42", b"another body").expect_err("mismatch");
/// assert!(matches!(err, Error::IdempotencyMismatch { .. }));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'s> {
    store: &'s Store,
}

impl Store {
    /// The idempotency records.
    pub fn idempotency(&self) -> Idempotency<'_> {
        Idempotency { store: self }
    }
}

impl Idempotency<'_> {
    /// The live record of `key`, or `None`.
    pub fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        self.store.read(|tx| tx.idempotency().get(key))
    }

    /// Starts the request under `key`; see [`IdempotencyTx::begin`].
    pub fn begin(&self, key: &str, payload_fingerprint: &[u8]) -> Result<Begin> {
        self.store
            .write(|tx| tx.idempotency().begin(key, payload_fingerprint))
    }

    /// Stores the result; see [`IdempotencyTx::complete`].
    pub fn complete(&self, key: &str, payload_fingerprint: &[u8], result: &[u8]) -> Result<bool> {
        self.store
            .write(|tx| tx.idempotency().complete(key, payload_fingerprint, result))
    }

    /// Gives up an in-progress key; see [`IdempotencyTx::abandon`].
    pub fn abandon(&self, key: &str) -> Result<bool> {
        self.store.write(|tx| tx.idempotency().abandon(key))
    }
}
