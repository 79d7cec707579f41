//! Stored bodies decoded to JSON, for `get`, `ls` and `dump`: each family's type as
//! serde shows it, opaque bytes as UTF-8 text or base64.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::raw::{Body, RawRecord};
use super::{b64, Family};
use crate::codec::{self, envelope};
use crate::error::{Error, Result};
use crate::tables::idempotency::IdempotencyState;
use crate::{
    CardMapping, ExecutionSnapshot, PendingCapture, ProcessedTransaction, SessionKeyData,
    UserContext,
};

/// The body of an idempotency record. Mirrors the private layout in
/// `tables::idempotency` (postcard encodes fields in order, so the names are free, the
/// order and types are not); the import test reads such records back through the
/// typed handle.
#[derive(Serialize, Deserialize)]
pub(crate) struct IdempotencyBody {
    pub(crate) payload_fingerprint: Vec<u8>,
    pub(crate) state: IdempotencyState,
}

/// The body of a location-cache record. Mirrors the private layout in
/// `tables::location` (same caveat as [`IdempotencyBody`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct LocationBody {
    pub(crate) merchant_id: String,
    pub(crate) entered_at_ms: u64,
}

/// Opaque bytes: text when they are UTF-8, otherwise `{"base64": ...}`.
pub(crate) fn bytes_value(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({ "base64": b64::encode(bytes) }),
    }
}

fn typed<T: serde::de::DeserializeOwned + Serialize>(
    table: &'static str,
    key: &str,
    format: u8,
    payload: &[u8],
) -> Result<Value> {
    let value: T = codec::from_postcard_record(table, key, format, payload)?;
    serde_json::to_value(&value).map_err(|e| Error::Encode {
        what: "record as JSON",
        reason: e.to_string(),
    })
}

/// The stored body of a record of `family` as JSON.
///
/// # Errors
/// [`Error::Decode`] when the body is not of the family's type.
pub(crate) fn decode_body(family: Family, key: &str, format: u8, payload: &[u8]) -> Result<Value> {
    let t = family.table_name();
    match family {
        Family::Kv | Family::WorkingMemory => Ok(match format {
            envelope::FORMAT_BYTES => bytes_value(payload),
            envelope::FORMAT_JSON => codec::from_json::<Value>(t, key, payload)?,
            // A typed value: postcard is not self-describing, so only its bytes can be shown.
            _ => json!({ "postcard_base64": b64::encode(payload) }),
        }),
        Family::Contexts => typed::<UserContext>(t, key, format, payload),
        Family::Cards => typed::<CardMapping>(t, key, format, payload),
        Family::Dedup => typed::<ProcessedTransaction>(t, key, format, payload),
        Family::Idempotency => {
            let body: IdempotencyBody = codec::from_postcard_record(t, key, format, payload)?;
            Ok(json!({
                "payload_fingerprint": b64::encode(&body.payload_fingerprint),
                "state": serde_json::to_value(&body.state).unwrap_or(Value::Null),
            }))
        }
        Family::Sessions => typed::<SessionKeyData>(t, key, format, payload),
        Family::Locations => typed::<LocationBody>(t, key, format, payload),
        Family::Pending => typed::<PendingCapture>(t, key, format, payload),
        Family::Snapshots => typed::<ExecutionSnapshot>(t, key, format, payload),
        Family::UserCards | Family::SnapshotsByTenant | Family::PendingSeq => Ok(Value::Null),
    }
}

/// A record as `get`, `ls` and `dump` show it: its key, version, expiry and value
/// decoded to its type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecordView {
    /// The family it belongs to.
    pub family: Family,
    /// The key as the CLI takes it (`namespace/key`, `user#seq`, `user`).
    pub key: String,
    /// The record version (absent for index entries and sequence counters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The absolute expiry instant, ms since the epoch, if the record expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// Whether the record had expired at the snapshot's now (invisible, awaiting a sweep).
    pub expired: bool,
    /// The value: the family's type as JSON; opaque bytes as text or `{"base64": ...}`;
    /// `null` for an index entry; the next sequence number for `pending_seq`.
    pub value: Value,
}

impl RecordView {
    pub(crate) fn from_raw(rec: &RawRecord, now_ms: u64) -> Result<RecordView> {
        let key = rec.shown_key();
        Ok(match &rec.body {
            Body::Record {
                version,
                expires_at_ms,
                format,
                payload,
            } => RecordView {
                family: rec.family,
                value: decode_body(rec.family, &key, *format, payload)?,
                key,
                version: Some(*version),
                expires_at_ms: *expires_at_ms,
                expired: expires_at_ms.is_some_and(|at| now_ms >= at),
            },
            Body::Entry => RecordView {
                family: rec.family,
                key,
                version: None,
                expires_at_ms: None,
                expired: false,
                value: Value::Null,
            },
            Body::NextSeq(n) => RecordView {
                family: rec.family,
                key,
                version: None,
                expires_at_ms: None,
                expired: false,
                value: Value::from(*n),
            },
        })
    }
}
