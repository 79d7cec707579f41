//! The record life cycle shared by every table: read a live record, write one with the
//! next version and its expiry entry, delete one. Tables build on these so that version
//! and expiry bookkeeping exists once.

use redb::{ReadableTable, TableDefinition};

use super::Expect;
use crate::codec::envelope;
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::TtlTable;
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

/// Where a record's expiry entry lives: its TTL table tag and packed key.
pub(crate) struct TtlKey {
    pub(crate) table: TtlTable,
    pub(crate) packed: Vec<u8>,
}

/// Decodes raw record bytes; `None` when expired at `now`.
pub(crate) fn decode_live(
    table: &'static str,
    shown_key: &dyn Fn() -> String,
    bytes: &[u8],
    now: u64,
) -> Result<Option<Stored>> {
    let env = envelope::decode(bytes).map_err(|e| Error::Corrupt {
        table,
        key: shown_key(),
        reason: e.to_string(),
    })?;
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

/// The live record under `key`, or `None` if absent or expired.
pub(crate) fn get_live<K, T>(
    table: &T,
    name: &'static str,
    key: K::SelfType<'_>,
    shown_key: &dyn Fn() -> String,
    now: u64,
) -> Result<Option<Stored>>
where
    K: redb::Key + 'static,
    T: ReadableTable<K, &'static [u8]>,
{
    match table.get(&key)? {
        Some(guard) => decode_live(name, shown_key, guard.value(), now),
        None => Ok(None),
    }
}

/// What to write.
pub(crate) struct NewRecord<'a> {
    pub(crate) format: u8,
    pub(crate) payload: &'a [u8],
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) expect: Expect,
}

impl<'a> NewRecord<'a> {
    /// A record whose body is a postcard-encoded edgestate type (every table's records
    /// except raw KV bytes and JSON).
    pub(crate) fn postcard(payload: &'a [u8], expires_at_ms: Option<u64>, expect: Expect) -> Self {
        NewRecord {
            format: envelope::FORMAT_POSTCARD_V1,
            payload,
            expires_at_ms,
            expect,
        }
    }
}

/// Writes a record under `key` after checking `expect` against the live version. The new
/// version is the live one + 1, or 1 if there is none (an expired record counts as none,
/// whether or not it has been swept). Returns the new version.
pub(crate) fn put<K: redb::Key + 'static>(
    tx: &WriteTx,
    def: TableDefinition<'static, K, &'static [u8]>,
    key: K::SelfType<'_>,
    shown_key: &dyn Fn() -> String,
    ttl_key: Option<&dyn Fn() -> TtlKey>,
    new: NewRecord<'_>,
) -> Result<u64> {
    limits::check_value_len("value", new.payload.len())?;
    let header = NewHeader {
        format: new.format,
        expires_at_ms: new.expires_at_ms,
        expect: new.expect,
    };
    put_with(
        tx,
        def,
        key,
        shown_key,
        ttl_key,
        header,
        |_| Ok(new.payload),
    )
}

/// The envelope fields of a record whose body is built by [`put_with`].
pub(crate) struct NewHeader {
    pub(crate) format: u8,
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) expect: Expect,
}

/// Like [`put`], for bodies that contain their own version (a context carries its
/// version inside): `build` receives the new version once `expect` has passed, so the
/// live record is read once.
pub(crate) fn put_with<K: redb::Key + 'static, P: AsRef<[u8]>>(
    tx: &WriteTx,
    def: TableDefinition<'static, K, &'static [u8]>,
    key: K::SelfType<'_>,
    shown_key: &dyn Fn() -> String,
    ttl_key: Option<&dyn Fn() -> TtlKey>,
    new: NewHeader,
    build: impl FnOnce(u64) -> Result<P>,
) -> Result<u64> {
    let name = def.name_static();
    let mut table = tx.raw().open_table(def)?;
    let (old_expiry, live_version) = match table.get(&key)? {
        Some(guard) => {
            let env = envelope::decode(guard.value()).map_err(|e| Error::Corrupt {
                table: name,
                key: shown_key(),
                reason: e.to_string(),
            })?;
            let live = (!env.header.is_expired(tx.now_ms())).then_some(env.header.version);
            (env.header.expires_at_ms, live)
        }
        None => (None, None),
    };
    new.expect.check(name, shown_key, live_version)?;
    let version = live_version.map_or(1, |v| v.saturating_add(1));
    let payload = build(version)?;
    let payload = payload.as_ref();
    limits::check_value_len("value", payload.len())?;
    let bytes = envelope::encode(new.format, version, new.expires_at_ms, payload);
    table.insert(&key, bytes.as_slice())?;
    drop(table);
    if old_expiry.is_some() || new.expires_at_ms.is_some() {
        let ttl_key = ttl_key
            .ok_or_else(|| Error::invalid("ttl", format!("{name} records cannot expire")))?(
        );
        ttl::reindex(
            tx,
            ttl_key.table,
            &ttl_key.packed,
            old_expiry,
            new.expires_at_ms,
        )?;
    }
    Ok(version)
}

/// Removes the record under `key` (live, expired or damaged) with its expiry entry.
/// Returns the live record that was removed, if any.
pub(crate) fn delete<K: redb::Key + 'static>(
    tx: &WriteTx,
    def: TableDefinition<'static, K, &'static [u8]>,
    key: K::SelfType<'_>,
    shown_key: &dyn Fn() -> String,
    ttl_key: Option<&dyn Fn() -> TtlKey>,
) -> Result<Option<Stored>> {
    let name = def.name_static();
    let mut table = tx.raw().open_table(def)?;
    let removed = table.remove(&key)?.map(|g| g.value().to_vec());
    drop(table);
    let Some(bytes) = removed else {
        return Ok(None);
    };
    // A damaged record is still removed; its header tells where its expiry entry is.
    if let (Ok(header), Some(ttl_key)) = (envelope::peek_header(&bytes), ttl_key) {
        if let Some(at) = header.expires_at_ms {
            let ttl_key = ttl_key();
            ttl::reindex(tx, ttl_key.table, &ttl_key.packed, Some(at), None)?;
        }
    }
    match decode_live(name, shown_key, &bytes, tx.now_ms()) {
        Ok(live) => Ok(live),
        Err(Error::Corrupt { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A helper trait so generic code can name a table for errors.
pub(crate) trait TableName {
    fn name_static(&self) -> &'static str;
}

impl<K: redb::Key + 'static, V: redb::Value + 'static> TableName
    for TableDefinition<'static, K, V>
{
    fn name_static(&self) -> &'static str {
        use redb::TableHandle;
        // Definitions in `schema` are consts with 'static names; redb returns &str tied
        // to the definition, so map back through the known list.
        let name = self.name();
        crate::schema::ALL_TABLES
            .iter()
            .copied()
            .find(|t| *t == name)
            .unwrap_or("edgestate.unknown")
    }
}
