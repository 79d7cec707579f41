//! The record life cycle shared by every table: read a live record, write one with the
//! next version and its expiry entry, delete one. Tables build on these so that version
//! and expiry bookkeeping exists once; a table is named by its [`RecordTable`]
//! descriptor, which says how its keys are shown and where its expiry entries go.
//!
//! A write goes through a [`Slot`]: the record under one key, read once, then written or
//! removed. Whatever a write needs to know about the record it replaces (its version,
//! its expiry, its body) comes from that one read.

use redb::ReadableTable;

use super::Expect;
use crate::access::{Reader, TableRef};
use crate::codec::envelope;
use crate::codec::keys::KeyShape;
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::RecordTable;
use crate::ttl;
use crate::txn::WriteTx;

/// A stored record, decoded and checksum-verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) version: u64,
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) format: u8,
    pub(crate) payload: Vec<u8>,
}

impl Stored {
    /// The body decoded as an edgestate type (postcard, of either schema's layout; a
    /// record of another format under this key is a decode error).
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        key: &str,
    ) -> Result<T> {
        crate::codec::from_postcard_record(table, key, self.format, &self.payload)
    }
}

/// Verifies raw record bytes found under `key` of `table` (a record bound to another
/// place, or damaged, is [`Error::Corrupt`]).
pub(crate) fn verify<'b, K: KeyShape>(
    table: &RecordTable<K>,
    key: &K::SelfType<'_>,
    bytes: &'b [u8],
) -> Result<envelope::Envelope<'b>> {
    let key_bytes = <K as redb::Value>::as_bytes(key);
    let found_at = envelope::Binding {
        table: table.name,
        key: key_bytes.as_ref(),
    };
    envelope::decode(bytes, found_at).map_err(|e| Error::Corrupt {
        table: table.name,
        key: K::show(key),
        reason: e.to_string(),
    })
}

/// The envelope of a record written now under `key` of `table`.
pub(crate) fn encode<K: KeyShape>(
    table: &RecordTable<K>,
    key: &K::SelfType<'_>,
    format: u8,
    version: u64,
    expires_at_ms: Option<u64>,
    payload: &[u8],
) -> Vec<u8> {
    let key_bytes = <K as redb::Value>::as_bytes(key);
    let bound_to = envelope::Binding {
        table: table.name,
        key: key_bytes.as_ref(),
    };
    envelope::encode(format, version, expires_at_ms, Some(bound_to), payload)
}

/// Decodes raw record bytes; `None` when expired at `now`.
pub(crate) fn decode_live<K: KeyShape>(
    table: &RecordTable<K>,
    key: &K::SelfType<'_>,
    bytes: &[u8],
    now: u64,
) -> Result<Option<Stored>> {
    let env = verify(table, key, bytes)?;
    if env.header.is_expired(now) {
        return Ok(None);
    }
    Ok(Some(Stored {
        version: env.header.version,
        expires_at_ms: env.header.expires_at_ms,
        format: env.header.format,
        payload: env.payload.to_vec(),
    }))
}

/// The live record under `key` in an opened table, or `None` if absent or expired.
pub(crate) fn get_in<K: KeyShape>(
    opened: &TableRef<'_, K, &'static [u8]>,
    table: &RecordTable<K>,
    key: K::SelfType<'_>,
    now: u64,
) -> Result<Option<Stored>> {
    match opened.get(&key)? {
        Some(guard) => decode_live(table, &key, guard.value(), now),
        None => Ok(None),
    }
}

/// The live record under `key`, or `None` if absent or expired.
pub(crate) fn get<K: KeyShape>(
    reader: &Reader<'_>,
    table: &RecordTable<K>,
    key: K::SelfType<'_>,
) -> Result<Option<Stored>> {
    let opened = reader.open(table.def)?;
    get_in(&opened, table, key, reader.now_ms())
}

/// The record under one key in a write transaction, read once. Writes through the slot
/// give the new record the next version and keep its expiry entry exact.
pub(crate) struct Slot<'t, 'k, K: KeyShape> {
    tx: &'t WriteTx,
    table: RecordTable<K>,
    opened: redb::Table<'t, K, &'static [u8]>,
    key: K::SelfType<'k>,
    /// The expiry of whatever is stored (live, expired, or damaged but with a readable
    /// header), which names the expiry entry to move.
    stored_expiry: Option<u64>,
    live: Option<Stored>,
    /// Whether anything is stored under the key (live, expired or damaged).
    present: bool,
}

impl<'t, 'k, K: KeyShape> Slot<'t, 'k, K> {
    /// Reads the record under `key`. A damaged record is an error: a write must not
    /// replace what it cannot see. (Deleting one is allowed: see [`Slot::delete`].)
    pub(crate) fn open(
        tx: &'t WriteTx,
        table: RecordTable<K>,
        key: K::SelfType<'k>,
    ) -> Result<Self> {
        let mut slot = Self::open_lenient(tx, table, key)?;
        if let Some(err) = slot.damage.take() {
            return Err(err);
        }
        Ok(slot.slot)
    }

    fn open_lenient(
        tx: &'t WriteTx,
        table: RecordTable<K>,
        key: K::SelfType<'k>,
    ) -> Result<Lenient<'t, 'k, K>> {
        let opened = tx.open_table(table.def)?;
        let mut damage = None;
        let mut present = false;
        let (stored_expiry, live) = match opened.get(&key)? {
            Some(guard) => match verify(&table, &key, guard.value()) {
                Ok(env) => {
                    present = true;
                    let live = (!env.header.is_expired(tx.now_ms())).then(|| Stored {
                        version: env.header.version,
                        expires_at_ms: env.header.expires_at_ms,
                        format: env.header.format,
                        payload: env.payload.to_vec(),
                    });
                    (env.header.expires_at_ms, live)
                }
                Err(e) => {
                    present = true;
                    damage = Some(e);
                    let expiry = envelope::peek_header(guard.value())
                        .ok()
                        .and_then(|h| h.expires_at_ms);
                    (expiry, None)
                }
            },
            None => (None, None),
        };
        Ok(Lenient {
            slot: Slot {
                tx,
                table,
                opened,
                key,
                stored_expiry,
                live,
                present,
            },
            damage,
        })
    }

    /// The live record, if any (an expired record counts as none, swept or not).
    pub(crate) fn live(&self) -> Option<&Stored> {
        self.live.as_ref()
    }

    /// Whether a record is stored under the key at all: a live one, or an expired one
    /// that no sweep has removed yet.
    pub(crate) fn is_stored(&self) -> bool {
        self.present
    }

    /// The version the next write gets: the live one + 1, or 1.
    pub(crate) fn next_version(&self) -> u64 {
        self.live
            .as_ref()
            .map_or(1, |live| live.version.saturating_add(1))
    }

    /// Checks `expect` against the live version.
    pub(crate) fn check(&self, expect: Expect) -> Result<()> {
        expect.check(
            self.table.name,
            || K::show(&self.key),
            self.live.as_ref().map(|l| l.version),
        )
    }

    /// Writes a record with the next version; returns that version. The caller has
    /// checked whatever it expects of the live record.
    pub(crate) fn put(
        mut self,
        format: u8,
        payload: &[u8],
        expires_at_ms: Option<u64>,
    ) -> Result<u64> {
        limits::check_value_len("value", payload.len())?;
        let version = self.next_version();
        let bytes = encode(
            &self.table,
            &self.key,
            format,
            version,
            expires_at_ms,
            payload,
        );
        self.opened.insert(&self.key, bytes.as_slice())?;
        self.move_expiry(expires_at_ms)?;
        Ok(version)
    }

    /// Removes the record (live, expired or damaged) with its expiry entry. Returns the
    /// live record that was removed, if any.
    pub(crate) fn delete(mut self) -> Result<Option<Stored>> {
        if self.opened.remove(&self.key)?.is_some() {
            self.move_expiry(None)?;
        }
        Ok(self.live.take())
    }

    fn move_expiry(&self, new: Option<u64>) -> Result<()> {
        if self.stored_expiry == new {
            return Ok(());
        }
        let Some(tag) = self.table.ttl else {
            return Err(Error::invalid(
                "ttl",
                format!("{} records cannot expire", self.table.name),
            ));
        };
        ttl::reindex(self.tx, tag, &K::pack(&self.key), self.stored_expiry, new)
    }
}

/// A slot opened without refusing a damaged record, and the damage found.
struct Lenient<'t, 'k, K: KeyShape> {
    slot: Slot<'t, 'k, K>,
    damage: Option<Error>,
}

/// Checks `expect` and writes a record under `key`; the one-call form of a [`Slot`].
pub(crate) fn put<K: KeyShape>(
    tx: &WriteTx,
    table: RecordTable<K>,
    key: K::SelfType<'_>,
    format: u8,
    payload: &[u8],
    expires_at_ms: Option<u64>,
    expect: Expect,
) -> Result<u64> {
    let slot = Slot::open(tx, table, key)?;
    slot.check(expect)?;
    slot.put(format, payload, expires_at_ms)
}

/// Removes the record under `key`, whatever its state (a damaged record is removed
/// too, with its expiry entry when its header is readable). Returns the live record that
/// was removed, if any.
pub(crate) fn delete<K: KeyShape>(
    tx: &WriteTx,
    table: RecordTable<K>,
    key: K::SelfType<'_>,
) -> Result<Option<Stored>> {
    Slot::open_lenient(tx, table, key)?.slot.delete()
}

/// Checks `expect` against the live record and removes it if it matches.
pub(crate) fn delete_if<K: KeyShape>(
    tx: &WriteTx,
    table: RecordTable<K>,
    key: K::SelfType<'_>,
    expect: Expect,
) -> Result<Option<Stored>> {
    let slot = Slot::open(tx, table, key)?;
    slot.check(expect)?;
    slot.delete()
}
