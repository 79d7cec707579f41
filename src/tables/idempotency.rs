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

use serde::{Deserialize, Serialize};

use super::handle;
use super::record::{self, Slot, Stored};
use crate::access::{Access, WriteAccess};
use crate::clock::expiry_after;
use crate::codec::{self, envelope};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::IDEMPOTENCY;

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

/// The outcome of [`Idempotency::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The caller holds the key until `lease_expires_at_ms`: run the request, then
    /// [`complete`](Idempotency::complete) (or [`abandon`](Idempotency::abandon)).
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

fn decode(key: &str, stored: &Stored) -> Result<IdempotencyRecord> {
    let body: Body = stored.decode(IDEMPOTENCY.name, key)?;
    Ok(IdempotencyRecord {
        key: key.to_owned(),
        payload_fingerprint: body.payload_fingerprint,
        state: body.state,
        expires_at_ms: stored.expires_at_ms,
    })
}

fn encode(payload_fingerprint: &[u8], state: IdempotencyState) -> Result<Vec<u8>> {
    codec::to_postcard(
        "idempotency record",
        &Body {
            payload_fingerprint: payload_fingerprint.to_vec(),
            state,
        },
    )
}

/// What [`begin`](Idempotency::begin) answers given the live record, or `None` when the
/// caller may take the key (no live record).
fn begin_answer(
    key: &str,
    payload_fingerprint: &[u8],
    live: Option<IdempotencyRecord>,
) -> Result<Option<Begin>> {
    match live {
        None => Ok(None),
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
        }) => Ok(Some(Begin::Completed(result))),
    }
}

/// What [`complete`](Idempotency::complete) answers given the live record, or `None`
/// when the result is to be stored (no live record, or one in progress).
fn complete_answer(
    key: &str,
    payload_fingerprint: &[u8],
    live: Option<&IdempotencyRecord>,
) -> Result<Option<bool>> {
    match live {
        Some(rec) if rec.payload_fingerprint != payload_fingerprint => {
            Err(Error::IdempotencyMismatch {
                key: key.to_owned(),
            })
        }
        Some(IdempotencyRecord {
            state: IdempotencyState::Completed { .. },
            ..
        }) => Ok(Some(false)),
        Some(_) | None => Ok(None),
    }
}

fn is_in_progress(live: Option<&IdempotencyRecord>) -> bool {
    matches!(
        live,
        Some(IdempotencyRecord {
            state: IdempotencyState::InProgress { .. },
            ..
        })
    )
}

handle! {
    /// The idempotency records, from `tx.idempotency()`, `read.idempotency()` or
    /// `store.idempotency()`: a key's life cycle is [`begin`](Self::begin) (take the
    /// lease), then [`complete`](Self::complete) (store the result) or
    /// [`abandon`](Self::abandon) (give the lease up). On a [`Store`](crate::Store) each
    /// call is its own transaction; inside [`Store::write`](crate::Store::write) reads
    /// see the transaction's own writes.
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
    ///
    /// // Inside a transaction: the result is stored with the request's own writes.
    /// store.write(|tx| {
    ///     let idem = tx.idempotency();
    ///     assert!(matches!(idem.begin("req-43", payload_hash)?, Begin::Started { .. }));
    ///     tx.kv().put("orders", "o-18", b"placed", None)?;
    ///     idem.complete("req-43", payload_hash, b"order o-18 placed")?;
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    /// assert!(!idem.abandon("req-43")?); // completed records are kept
    /// # Ok(())
    /// # }
    /// ```
    Idempotency
}

impl<A: Access> Idempotency<'_, A> {
    /// The live record of `key`, or `None` (never begun, lease run out, or result
    /// expired).
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged record; storage errors.
    pub fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        limits::check_key("key", key)?;
        self.src.with_reader(|r| read_live(r, key))
    }
}

fn read_live(r: &crate::access::Reader<'_>, key: &str) -> Result<Option<IdempotencyRecord>> {
    match record::get(r, &IDEMPOTENCY, key)? {
        Some(stored) => Ok(Some(decode(key, &stored)?)),
        None => Ok(None),
    }
}

impl<A: WriteAccess> Idempotency<'_, A> {
    /// Starts the request under `key`, or tells why not:
    /// - no live record (never begun, or the previous holder's lease ran out): the
    ///   caller now holds the key until `idempotency_lease` from now,
    ///   [`Begin::Started`];
    /// - completed with the same fingerprint: [`Begin::Completed`] with the stored
    ///   result (on a store, answered from a read snapshot without taking the write
    ///   lock).
    ///
    /// # Errors
    /// [`IdempotencyMismatch`](crate::Error::IdempotencyMismatch) for a record begun
    /// with another fingerprint;
    /// [`IdempotencyInProgress`](crate::Error::IdempotencyInProgress) while another
    /// holder's lease has not run out (retry after `lease_expires_at_ms`);
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad key or a fingerprint
    /// longer than a key (pass a hash); [`Corrupt`](crate::Error::Corrupt) or
    /// [`Decode`](crate::Error::Decode) for a damaged record; storage and commit errors.
    pub fn begin(&self, key: &str, payload_fingerprint: &[u8]) -> Result<Begin> {
        limits::check_key("key", key)?;
        check_fingerprint(payload_fingerprint)?;
        if A::PER_CALL {
            let live = self.src.with_reader(|r| read_live(r, key))?;
            if let Some(answer) = begin_answer(key, payload_fingerprint, live)? {
                return Ok(answer);
            }
        }
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, IDEMPOTENCY, key)?;
            let live = slot.live().map(|s| decode(key, s)).transpose()?;
            if let Some(answer) = begin_answer(key, payload_fingerprint, live)? {
                return Ok(answer);
            }
            let now = tx.now_ms();
            let lease_expires_at_ms = expiry_after(now, tx.config().idempotency_lease);
            let state = IdempotencyState::InProgress {
                started_at_ms: now,
                lease_expires_at_ms,
            };
            let body = encode(payload_fingerprint, state)?;
            slot.put(envelope::FORMAT_POSTCARD, &body, Some(lease_expires_at_ms))?;
            Ok(Begin::Started {
                lease_expires_at_ms,
            })
        })
    }

    /// Stores `result` for `key`, to be returned to retries for
    /// `StoreConfig::idempotency_ttl`. Returns `true` if stored, `false` if a result
    /// was already stored (the first result is kept). Completing after the lease ran
    /// out still stores the result, unless another caller has completed meanwhile.
    ///
    /// # Errors
    /// [`IdempotencyMismatch`](crate::Error::IdempotencyMismatch) for a record begun
    /// with another fingerprint; [`InvalidInput`](crate::Error::InvalidInput) for a bad
    /// key or fingerprint, or an oversized result; [`Corrupt`](crate::Error::Corrupt) or
    /// [`Decode`](crate::Error::Decode) for a damaged record; storage and commit errors.
    pub fn complete(&self, key: &str, payload_fingerprint: &[u8], result: &[u8]) -> Result<bool> {
        limits::check_key("key", key)?;
        check_fingerprint(payload_fingerprint)?;
        if A::PER_CALL {
            let live = self.src.with_reader(|r| read_live(r, key))?;
            if let Some(answer) = complete_answer(key, payload_fingerprint, live.as_ref())? {
                return Ok(answer);
            }
        }
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, IDEMPOTENCY, key)?;
            let live = slot.live().map(|s| decode(key, s)).transpose()?;
            if let Some(answer) = complete_answer(key, payload_fingerprint, live.as_ref())? {
                return Ok(answer);
            }
            let now = tx.now_ms();
            let state = IdempotencyState::Completed {
                result: result.to_vec(),
                completed_at_ms: now,
            };
            let body = encode(payload_fingerprint, state)?;
            let expires_at_ms = expiry_after(now, tx.config().idempotency_ttl);
            slot.put(envelope::FORMAT_POSTCARD, &body, Some(expires_at_ms))?;
            Ok(true)
        })
    }

    /// Gives up an in-progress key so the next caller may begin at once (e.g. after the
    /// request failed in a retryable way). Returns whether an in-progress record was
    /// removed; a completed record is kept.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad key;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged record; storage and commit errors.
    pub fn abandon(&self, key: &str) -> Result<bool> {
        limits::check_key("key", key)?;
        if A::PER_CALL {
            let live = self.src.with_reader(|r| read_live(r, key))?;
            if !is_in_progress(live.as_ref()) {
                return Ok(false);
            }
        }
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, IDEMPOTENCY, key)?;
            let live = slot.live().map(|s| decode(key, s)).transpose()?;
            if !is_in_progress(live.as_ref()) {
                return Ok(false);
            }
            Ok(slot.delete()?.is_some())
        })
    }
}
