//! Generic namespaced key/value records with versions, TTL, CAS, prefix listing and batch
//! get: the layer the agent, trading and solver stores of the seeds sit on.
//!
//! Keys are `(namespace, key)`; listing is in key order within a namespace. Values are
//! bytes, or any serde type through [`KvTx::put_value`] (postcard) and
//! [`KvTx::put_json`] (JSON, for schema-less values such as `serde_json::Value`).

use std::time::Duration;

use redb::ReadableTable;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::record::{self, NewRecord, Stored, TtlKey};
use super::{Expect, Versioned};
use crate::clock::expiry_after;
use crate::codec::{self, envelope, keys};
use crate::error::Result;
use crate::limits;
use crate::schema::{TtlTable, KV};
use crate::store::Store;
use crate::txn::{ReadTx, WriteTx};

const TABLE: &str = "edgestate.kv";

/// One key/value record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The key within its namespace.
    pub key: String,
    /// The stored bytes (for typed values, their encoding).
    pub value: Vec<u8>,
    /// 1 on create, +1 on every write.
    pub version: u64,
    /// When the record stops being visible (ms since the epoch), if ever.
    pub expires_at_ms: Option<u64>,
}

fn shown<'a>(ns: &'a str, key: &'a str) -> impl Fn() -> String + 'a {
    move || format!("{ns}/{key}")
}

fn ttl_key(ns: &str, key: &str) -> TtlKey {
    TtlKey {
        table: TtlTable::Kv,
        packed: keys::pack(&[ns.as_bytes(), key.as_bytes()]),
    }
}

fn check(ns: &str, key: &str) -> Result<()> {
    limits::check_namespace("namespace", ns)?;
    limits::check_key("key", key)
}

fn entry(key: &str, stored: Stored) -> KvEntry {
    KvEntry {
        key: key.to_owned(),
        value: stored.payload,
        version: stored.version,
        expires_at_ms: stored.expires_at_ms,
    }
}

fn decode_typed<T: DeserializeOwned>(ns: &str, e: KvEntry, format: u8) -> Result<Versioned<T>> {
    let shown_key = format!("{ns}/{}", e.key);
    let value = if format == envelope::FORMAT_JSON {
        codec::from_json(TABLE, &shown_key, &e.value)?
    } else {
        codec::from_postcard(TABLE, &shown_key, &e.value)?
    };
    Ok(Versioned {
        value,
        version: e.version,
        expires_at_ms: e.expires_at_ms,
    })
}

// Reads, generic over read and write transactions.

fn get_in<T>(table: &T, ns: &str, key: &str, now: u64) -> Result<Option<(KvEntry, u8)>>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    check(ns, key)?;
    let stored = record::get_live(table, TABLE, (ns, key), &shown(ns, key), now)?;
    Ok(stored.map(|s| {
        let format = s.format;
        (entry(key, s), format)
    }))
}

fn list_in<T>(table: &T, ns: &str, prefix: &str, limit: usize, now: u64) -> Result<Vec<KvEntry>>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    limits::check_namespace("namespace", ns)?;
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for item in table.range((ns, prefix)..)? {
        let (k, v) = item?;
        let (k_ns, k_key) = k.value();
        if k_ns != ns || !k_key.starts_with(prefix) {
            break;
        }
        let live = record::decode_live(TABLE, &shown(ns, k_key), v.value(), now)?;
        if let Some(stored) = live {
            out.push(entry(k_key, stored));
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

fn get_many_in<T>(table: &T, ns: &str, keys: &[&str], now: u64) -> Result<Vec<Option<KvEntry>>>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    keys.iter()
        .map(|k| Ok(get_in(table, ns, k, now)?.map(|(e, _)| e)))
        .collect()
}

/// Key/value access inside a write transaction: reads see the transaction's own writes.
/// Obtained from [`WriteTx::kv`].
#[derive(Debug, Clone, Copy)]
pub struct KvTx<'t> {
    tx: &'t WriteTx,
}

impl WriteTx {
    /// The generic key/value records.
    pub fn kv(&self) -> KvTx<'_> {
        KvTx { tx: self }
    }
}

impl<'t> KvTx<'t> {
    /// The live record, or `None` if absent or expired.
    pub fn get(&self, ns: &str, key: &str) -> Result<Option<KvEntry>> {
        let table = self.tx.raw().open_table(KV)?;
        Ok(get_in(&table, ns, key, self.tx.now_ms())?.map(|(e, _)| e))
    }

    /// Stores `value`, replacing any record; `ttl` makes it expire that long after the
    /// transaction's now. Returns the new version.
    pub fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<u64> {
        self.put_if(ns, key, value, ttl, Expect::Any)
    }

    /// Stores `value` only if the live record matches `expect`; otherwise returns
    /// [`Error::VersionConflict`](crate::Error::VersionConflict) and writes nothing.
    pub fn put_if(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        expect: Expect,
    ) -> Result<u64> {
        self.put_format(ns, key, envelope::FORMAT_BYTES, value, ttl, expect)
    }

    fn put_format(
        &self,
        ns: &str,
        key: &str,
        format: u8,
        value: &[u8],
        ttl: Option<Duration>,
        expect: Expect,
    ) -> Result<u64> {
        check(ns, key)?;
        let expires_at_ms = ttl.map(|d| expiry_after(self.tx.now_ms(), d));
        record::put(
            self.tx,
            KV,
            (ns, key),
            &shown(ns, key),
            Some(&|| ttl_key(ns, key)),
            NewRecord {
                format,
                payload: value,
                expires_at_ms,
                expect,
            },
        )
    }

    /// Removes the record. Returns whether a live record was removed.
    pub fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        check(ns, key)?;
        let removed = record::delete(
            self.tx,
            KV,
            (ns, key),
            &shown(ns, key),
            Some(&|| ttl_key(ns, key)),
        )?;
        Ok(removed.is_some())
    }

    /// Removes the record only if it matches `expect`.
    pub fn delete_if(&self, ns: &str, key: &str, expect: Expect) -> Result<bool> {
        let current = self.get(ns, key)?.map(|e| e.version);
        expect.check(TABLE, &shown(ns, key), current)?;
        self.delete(ns, key)
    }

    /// Read-modify-write in this transaction: `f` sees the live value (or `None`) and
    /// returns the new value, or `None` to delete. The TTL of the new value is `ttl`.
    /// Returns the new version (`None` if deleted).
    pub fn update<F>(&self, ns: &str, key: &str, ttl: Option<Duration>, f: F) -> Result<Option<u64>>
    where
        F: FnOnce(Option<&KvEntry>) -> Result<Option<Vec<u8>>>,
    {
        let current = self.get(ns, key)?;
        let expect = current
            .as_ref()
            .map_or(Expect::Absent, |e| Expect::Version(e.version));
        match f(current.as_ref())? {
            Some(value) => Ok(Some(self.put_if(ns, key, &value, ttl, expect)?)),
            None => {
                self.delete(ns, key)?;
                Ok(None)
            }
        }
    }

    /// Live records whose key starts with `prefix`, in key order, at most `limit`.
    pub fn list_prefix(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<KvEntry>> {
        let table = self.tx.raw().open_table(KV)?;
        list_in(&table, ns, prefix, limit, self.tx.now_ms())
    }

    /// Several records, in the order of `keys` (`None` where absent).
    pub fn get_many(&self, ns: &str, keys: &[&str]) -> Result<Vec<Option<KvEntry>>> {
        let table = self.tx.raw().open_table(KV)?;
        get_many_in(&table, ns, keys, self.tx.now_ms())
    }

    /// Removes every record (live or expired) whose key starts with `prefix`; returns
    /// how many live records were removed.
    pub fn delete_prefix(&self, ns: &str, prefix: &str) -> Result<usize> {
        limits::check_namespace("namespace", ns)?;
        let doomed: Vec<String> = {
            let table = self.tx.raw().open_table(KV)?;
            let mut doomed = Vec::new();
            for item in table.range((ns, prefix)..)? {
                let (k, _) = item?;
                let (k_ns, k_key) = k.value();
                if k_ns != ns || !k_key.starts_with(prefix) {
                    break;
                }
                doomed.push(k_key.to_owned());
            }
            doomed
        };
        let mut removed = 0;
        for key in doomed {
            if record::delete(
                self.tx,
                KV,
                (ns, key.as_str()),
                &shown(ns, &key),
                Some(&|| ttl_key(ns, &key)),
            )?
            .is_some()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Stores a serde value (postcard encoding). Returns the new version.
    pub fn put_value<T: Serialize + ?Sized>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        let bytes = codec::to_postcard("kv value", value)?;
        self.put_format(
            ns,
            key,
            envelope::FORMAT_POSTCARD_V1,
            &bytes,
            ttl,
            Expect::Any,
        )
    }

    /// Stores a serde value (postcard) only if the live record matches `expect`.
    pub fn put_value_if<T: Serialize + ?Sized>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        expect: Expect,
    ) -> Result<u64> {
        let bytes = codec::to_postcard("kv value", value)?;
        self.put_format(ns, key, envelope::FORMAT_POSTCARD_V1, &bytes, ttl, expect)
    }

    /// Stores a serde value as JSON text (for self-describing values such as
    /// `serde_json::Value`, which postcard cannot read back). Returns the new version.
    pub fn put_json<T: Serialize + ?Sized>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        let bytes = codec::to_json("kv value", value)?;
        self.put_format(ns, key, envelope::FORMAT_JSON, &bytes, ttl, Expect::Any)
    }

    /// Reads a value stored by [`put_value`](Self::put_value) or [`put_json`](Self::put_json).
    pub fn get_value<T: DeserializeOwned>(
        &self,
        ns: &str,
        key: &str,
    ) -> Result<Option<Versioned<T>>> {
        let table = self.tx.raw().open_table(KV)?;
        match get_in(&table, ns, key, self.tx.now_ms())? {
            Some((e, format)) => Ok(Some(decode_typed(ns, e, format)?)),
            None => Ok(None),
        }
    }

    /// Read-modify-write of a typed value in this transaction (postcard encoding).
    pub fn update_value<T, F>(
        &self,
        ns: &str,
        key: &str,
        ttl: Option<Duration>,
        f: F,
    ) -> Result<u64>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Option<T>) -> Result<T>,
    {
        let current = self.get_value::<T>(ns, key)?;
        let expect = current
            .as_ref()
            .map_or(Expect::Absent, |v| Expect::Version(v.version));
        let next = f(current.map(|v| v.value))?;
        self.put_value_if(ns, key, &next, ttl, expect)
    }
}

/// Key/value reads on a snapshot. Obtained from [`ReadTx::kv`].
#[derive(Debug, Clone, Copy)]
pub struct KvRead<'t> {
    tx: &'t ReadTx,
}

impl ReadTx {
    /// The generic key/value records.
    pub fn kv(&self) -> KvRead<'_> {
        KvRead { tx: self }
    }
}

impl KvRead<'_> {
    /// The live record, or `None` if absent or expired.
    pub fn get(&self, ns: &str, key: &str) -> Result<Option<KvEntry>> {
        let table = self.tx.raw().open_table(KV)?;
        Ok(get_in(&table, ns, key, self.tx.now_ms())?.map(|(e, _)| e))
    }

    /// Live records whose key starts with `prefix`, in key order, at most `limit`.
    pub fn list_prefix(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<KvEntry>> {
        let table = self.tx.raw().open_table(KV)?;
        list_in(&table, ns, prefix, limit, self.tx.now_ms())
    }

    /// Several records from this one snapshot, in the order of `keys`.
    pub fn get_many(&self, ns: &str, keys: &[&str]) -> Result<Vec<Option<KvEntry>>> {
        let table = self.tx.raw().open_table(KV)?;
        get_many_in(&table, ns, keys, self.tx.now_ms())
    }

    /// Reads a typed value.
    pub fn get_value<T: DeserializeOwned>(
        &self,
        ns: &str,
        key: &str,
    ) -> Result<Option<Versioned<T>>> {
        let table = self.tx.raw().open_table(KV)?;
        match get_in(&table, ns, key, self.tx.now_ms())? {
            Some((e, format)) => Ok(Some(decode_typed(ns, e, format)?)),
            None => Ok(None),
        }
    }
}

/// Key/value calls on the store, each in its own transaction. Obtained from
/// [`Store::kv`]. For several calls in one atomic step, use [`Store::write`].
///
/// ```
/// use edgestate::{Expect, Store};
///
/// # fn main() -> edgestate::Result<()> {
/// let store = Store::in_memory()?;
/// let kv = store.kv();
/// let v1 = kv.put("orders", "o-1", b"open", None)?;
/// // Optimistic locking: this write only lands if nobody wrote in between.
/// let v2 = kv.put_if("orders", "o-1", b"filled", None, Expect::Version(v1))?;
/// assert_eq!(v2, 2);
/// assert!(kv.put_if("orders", "o-1", b"stale", None, Expect::Version(v1)).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Kv<'s> {
    store: &'s Store,
}

impl Store {
    /// The generic key/value records, one transaction per call.
    pub fn kv(&self) -> Kv<'_> {
        Kv { store: self }
    }
}

impl Kv<'_> {
    /// The live record, or `None` if absent or expired.
    pub fn get(&self, ns: &str, key: &str) -> Result<Option<KvEntry>> {
        self.store.read(|tx| tx.kv().get(ns, key))
    }

    /// Stores `value` with an optional TTL. Returns the new version.
    pub fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<u64> {
        self.store.write(|tx| tx.kv().put(ns, key, value, ttl))
    }

    /// Conditional put: see [`KvTx::put_if`].
    pub fn put_if(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        expect: Expect,
    ) -> Result<u64> {
        self.store
            .write(|tx| tx.kv().put_if(ns, key, value, ttl, expect))
    }

    /// Removes the record. Returns whether a live record was removed.
    pub fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        self.store.write(|tx| tx.kv().delete(ns, key))
    }

    /// Conditional delete: see [`KvTx::delete_if`].
    pub fn delete_if(&self, ns: &str, key: &str, expect: Expect) -> Result<bool> {
        self.store.write(|tx| tx.kv().delete_if(ns, key, expect))
    }

    /// Read-modify-write in one transaction: see [`KvTx::update`].
    pub fn update<F>(&self, ns: &str, key: &str, ttl: Option<Duration>, f: F) -> Result<Option<u64>>
    where
        F: FnOnce(Option<&KvEntry>) -> Result<Option<Vec<u8>>>,
    {
        self.store.write(|tx| tx.kv().update(ns, key, ttl, f))
    }

    /// Live records whose key starts with `prefix`, in key order, at most `limit`.
    pub fn list_prefix(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<KvEntry>> {
        self.store.read(|tx| tx.kv().list_prefix(ns, prefix, limit))
    }

    /// Several records from one consistent snapshot, in the order of `keys`.
    pub fn get_many(&self, ns: &str, keys: &[&str]) -> Result<Vec<Option<KvEntry>>> {
        self.store.read(|tx| tx.kv().get_many(ns, keys))
    }

    /// Removes every record whose key starts with `prefix`.
    pub fn delete_prefix(&self, ns: &str, prefix: &str) -> Result<usize> {
        self.store.write(|tx| tx.kv().delete_prefix(ns, prefix))
    }

    /// Stores a serde value (postcard encoding).
    pub fn put_value<T: Serialize + ?Sized>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        self.store
            .write(|tx| tx.kv().put_value(ns, key, value, ttl))
    }

    /// Stores a serde value as JSON text.
    pub fn put_json<T: Serialize + ?Sized>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        self.store.write(|tx| tx.kv().put_json(ns, key, value, ttl))
    }

    /// Reads a typed value.
    pub fn get_value<T: DeserializeOwned>(
        &self,
        ns: &str,
        key: &str,
    ) -> Result<Option<Versioned<T>>> {
        self.store.read(|tx| tx.kv().get_value(ns, key))
    }

    /// Read-modify-write of a typed value in one transaction.
    pub fn update_value<T, F>(
        &self,
        ns: &str,
        key: &str,
        ttl: Option<Duration>,
        f: F,
    ) -> Result<u64>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Option<T>) -> Result<T>,
    {
        self.store.write(|tx| tx.kv().update_value(ns, key, ttl, f))
    }
}
