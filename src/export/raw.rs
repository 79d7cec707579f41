//! Raw access to every record family, below the typed handles: records with their
//! version, expiry and stored body exactly as they are in the file, for export, import,
//! dump and inspection. Writing a record here keeps the expiry index exact; the other
//! derived structures (the card reverse index, pending sequence numbers, the tenant
//! index) are families of their own and are carried as they are.

use redb::{ReadableMultimapTable, ReadableTable};
use serde_json::Value;

use super::Family;
use crate::codec::envelope;
use crate::codec::keys::KeyShape;
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{self, RecordTable};
use crate::tables::record;
use crate::ttl;
use crate::txn::WriteTx;

/// What is stored under one key of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// An enveloped record.
    Record {
        /// Record version (1 on create, +1 per write).
        version: u64,
        /// Absolute expiry instant, ms since the epoch.
        expires_at_ms: Option<u64>,
        /// Envelope format byte.
        format: u8,
        /// Stored body bytes.
        payload: Vec<u8>,
    },
    /// An entry of an index (the card reverse index, the tenant index): the key is all.
    Entry,
    /// The next pending sequence number of a user.
    NextSeq(u64),
}

/// One stored item of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRecord {
    pub(crate) family: Family,
    /// Key parts: strings, and a number for a pending entry's sequence.
    pub(crate) key: Vec<Value>,
    pub(crate) body: Body,
}

impl RawRecord {
    /// The key as the CLI shows and takes it: parts joined by `/` (`#` before a pending
    /// sequence number).
    pub(crate) fn shown_key(&self) -> String {
        show_key(self.family, &self.key)
    }
}

/// The key parts joined as [`RawRecord::shown_key`] does.
pub(crate) fn show_key(family: Family, key: &[Value]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    match family {
        Family::Pending => parts.join("#"),
        _ => parts.join("/"),
    }
}

/// Key shapes that convert to and from JSON key parts.
pub(crate) trait KeyJson: KeyShape {
    fn to_json(key: &Self::SelfType<'_>) -> Vec<Value>;
    fn from_json(parts: &[Value]) -> Option<Self::SelfType<'_>>;
}

fn str_part(v: &Value) -> Option<&str> {
    v.as_str()
}

impl KeyJson for &'static str {
    fn to_json(key: &&str) -> Vec<Value> {
        vec![Value::String((*key).to_owned())]
    }
    fn from_json(parts: &[Value]) -> Option<&str> {
        match parts {
            [a] => str_part(a),
            _ => None,
        }
    }
}

impl KeyJson for (&'static str, &'static str) {
    fn to_json(key: &(&str, &str)) -> Vec<Value> {
        vec![
            Value::String(key.0.to_owned()),
            Value::String(key.1.to_owned()),
        ]
    }
    fn from_json(parts: &[Value]) -> Option<(&str, &str)> {
        match parts {
            [a, b] => Some((str_part(a)?, str_part(b)?)),
            _ => None,
        }
    }
}

impl KeyJson for (&'static str, u64) {
    fn to_json(key: &(&str, u64)) -> Vec<Value> {
        vec![Value::String(key.0.to_owned()), Value::from(key.1)]
    }
    fn from_json(parts: &[Value]) -> Option<(&str, u64)> {
        match parts {
            [a, b] => Some((str_part(a)?, b.as_u64()?)),
            _ => None,
        }
    }
}

fn each_record<K: KeyJson>(
    read: &redb::ReadTransaction,
    family: Family,
    table: RecordTable<K>,
    f: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<()> {
    let opened = read.open_table(table.def)?;
    for row in opened.iter()? {
        let (k, v) = row?;
        let key = k.value();
        let env = record::verify(&table, &key, v.value())?;
        f(RawRecord {
            family,
            key: K::to_json(&key),
            body: Body::Record {
                version: env.header.version,
                expires_at_ms: env.header.expires_at_ms,
                format: env.header.format,
                payload: env.payload.to_vec(),
            },
        })?;
    }
    Ok(())
}

fn each_entry(
    read: &redb::ReadTransaction,
    family: Family,
    def: redb::MultimapTableDefinition<&'static str, &'static str>,
    f: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<()> {
    let opened = read.open_multimap_table(def)?;
    for row in opened.iter()? {
        let (k, values) = row?;
        for v in values {
            let v = v?;
            f(RawRecord {
                family,
                key: vec![
                    Value::String(k.value().to_owned()),
                    Value::String(v.value().to_owned()),
                ],
                body: Body::Entry,
            })?;
        }
    }
    Ok(())
}

/// Calls `f` for every item of `family`, in key order, from one snapshot.
pub(crate) fn for_each(
    read: &redb::ReadTransaction,
    family: Family,
    f: &mut dyn FnMut(RawRecord) -> Result<()>,
) -> Result<()> {
    match family {
        Family::Kv => each_record(read, family, schema::KV, f),
        Family::Contexts => each_record(read, family, schema::CONTEXTS, f),
        Family::Cards => each_record(read, family, schema::CARDS, f),
        Family::UserCards => each_entry(read, family, schema::USER_CARDS, f),
        Family::Dedup => each_record(read, family, schema::DEDUP, f),
        Family::Idempotency => each_record(read, family, schema::IDEMPOTENCY, f),
        Family::Sessions => each_record(read, family, schema::SESSIONS, f),
        Family::Locations => each_record(read, family, schema::LOCATIONS, f),
        Family::Pending => each_record(read, family, schema::PENDING, f),
        Family::PendingSeq => {
            let opened = read.open_table(schema::PENDING_SEQ)?;
            for row in opened.iter()? {
                let (k, v) = row?;
                f(RawRecord {
                    family,
                    key: vec![Value::String(k.value().to_owned())],
                    body: Body::NextSeq(v.value()),
                })?;
            }
            Ok(())
        }
        Family::Snapshots => each_record(read, family, schema::SNAPSHOTS, f),
        Family::SnapshotsByTenant => each_entry(read, family, schema::SNAPSHOTS_BY_TENANT, f),
        Family::WorkingMemory => each_record(read, family, schema::WORKING_MEMORY, f),
    }
}

fn bad_key(family: Family, key: &[Value]) -> Error {
    Error::invalid(
        "key",
        format!(
            "{} is not a key of {} (expected {})",
            Value::Array(key.to_vec()),
            family.name(),
            family.key_shape()
        ),
    )
}

fn put_record<K: KeyJson>(
    tx: &WriteTx,
    family: Family,
    table: RecordTable<K>,
    key: &[Value],
    body: &Body,
) -> Result<()> {
    let Body::Record {
        version,
        expires_at_ms,
        format,
        payload,
    } = body
    else {
        return Err(Error::invalid(
            "record",
            format!("{} needs version, format and payload", family.name()),
        ));
    };
    let k = K::from_json(key).ok_or_else(|| bad_key(family, key))?;
    if *version == 0 {
        return Err(Error::invalid("version", "must be at least 1"));
    }
    if expires_at_ms.is_some() && table.ttl.is_none() {
        return Err(Error::invalid(
            "expires_at_ms",
            format!("records of {} never expire", family.name()),
        ));
    }
    limits::check_value_len("payload", payload.len())?;
    let bytes = record::encode(&table, &k, *format, *version, *expires_at_ms, payload);
    // The format must be one this build reads.
    envelope::peek_header(&bytes).map_err(|e| Error::invalid("format", e.to_string()))?;
    let old_expiry = {
        let mut opened = tx.open_table(table.def)?;
        let old = opened
            .get(&k)?
            .and_then(|g| envelope::peek_header(g.value()).ok())
            .and_then(|h| h.expires_at_ms);
        opened.insert(&k, bytes.as_slice())?;
        old
    };
    if let Some(tag) = table.ttl {
        ttl::reindex(tx, tag, &K::pack(&k), old_expiry, *expires_at_ms)?;
    }
    Ok(())
}

fn put_entry(
    tx: &WriteTx,
    family: Family,
    def: redb::MultimapTableDefinition<&'static str, &'static str>,
    key: &[Value],
) -> Result<()> {
    let (a, b) = <(&str, &str)>::from_json(key).ok_or_else(|| bad_key(family, key))?;
    tx.open_multimap_table(def)?.insert(a, b)?;
    Ok(())
}

/// Stores `rec` as it is, replacing whatever its key holds, and keeps the expiry index
/// exact.
pub(crate) fn put(tx: &WriteTx, rec: &RawRecord) -> Result<()> {
    let (family, key, body) = (rec.family, rec.key.as_slice(), &rec.body);
    for part in key {
        if let Some(s) = part.as_str() {
            limits::check_key("key", s)?;
        }
    }
    match family {
        Family::Kv => put_record(tx, family, schema::KV, key, body),
        Family::Contexts => put_record(tx, family, schema::CONTEXTS, key, body),
        Family::Cards => put_record(tx, family, schema::CARDS, key, body),
        Family::UserCards => put_entry(tx, family, schema::USER_CARDS, key),
        Family::Dedup => put_record(tx, family, schema::DEDUP, key, body),
        Family::Idempotency => put_record(tx, family, schema::IDEMPOTENCY, key, body),
        Family::Sessions => put_record(tx, family, schema::SESSIONS, key, body),
        Family::Locations => put_record(tx, family, schema::LOCATIONS, key, body),
        Family::Pending => put_record(tx, family, schema::PENDING, key, body),
        Family::PendingSeq => {
            let user = <&str>::from_json(key).ok_or_else(|| bad_key(family, key))?;
            let Body::NextSeq(next) = body else {
                return Err(Error::invalid("next_seq", "pending_seq needs next_seq"));
            };
            tx.raw()
                .open_table(schema::PENDING_SEQ)?
                .insert(user, *next)?;
            Ok(())
        }
        Family::Snapshots => put_record(tx, family, schema::SNAPSHOTS, key, body),
        Family::SnapshotsByTenant => put_entry(tx, family, schema::SNAPSHOTS_BY_TENANT, key),
        Family::WorkingMemory => put_record(tx, family, schema::WORKING_MEMORY, key, body),
    }
}

/// Raises a user's next pending sequence number to at least `next` (after importing
/// entries whose sequence numbers came from elsewhere).
pub(crate) fn raise_next_seq(tx: &WriteTx, user: &str, next: u64) -> Result<()> {
    let mut seqs = tx.open_table(schema::PENDING_SEQ)?;
    let current = seqs.get(user)?.map_or(0, |g| g.value());
    if next > current {
        seqs.insert(user, next)?;
    }
    Ok(())
}

/// Records whose expiry has passed at `now_ms` but that no sweep has removed yet.
pub(crate) fn expired_awaiting_sweep(read: &redb::ReadTransaction, now_ms: u64) -> Result<u64> {
    ttl::count_due(read, now_ms)
}
