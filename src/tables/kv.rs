//! Generic namespaced key/value records with versions, TTL, CAS, prefix listing and batch
//! get: the layer the agent, trading and solver stores of the seeds sit on.
//!
//! Keys are `(namespace, key)`; listing is in key order within a namespace. Values are
//! bytes, or any serde type through [`Kv::put_value`] (postcard) and [`Kv::put_json`]
//! (JSON, for schema-less values such as `serde_json::Value`).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::record::{self, Slot, Stored};
use super::{handle, Expect, Versioned};
use crate::access::{Access, WriteAccess};
use crate::clock::expiry_after;
use crate::codec::{self, envelope};
use crate::error::Result;
use crate::limits;
use crate::schema::KV;

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

fn decode_typed<T: DeserializeOwned>(ns: &str, key: &str, stored: &Stored) -> Result<Versioned<T>> {
    let shown_key = format!("{ns}/{key}");
    let value = match stored.format {
        envelope::FORMAT_JSON => codec::from_json(KV.name, &shown_key, &stored.payload)?,
        envelope::FORMAT_POSTCARD_V1 | envelope::FORMAT_POSTCARD_V2 => {
            codec::from_postcard_record(KV.name, &shown_key, stored.format, &stored.payload)?
        }
        // Raw bytes asked for as a type: read them as postcard, as they were written.
        _ => codec::from_postcard(KV.name, &shown_key, &stored.payload)?,
    };
    Ok(Versioned {
        value,
        version: stored.version,
        expires_at_ms: stored.expires_at_ms,
    })
}

handle! {
    /// The generic key/value records, from `tx.kv()`, `read.kv()` or `store.kv()`. On a
    /// [`Store`](crate::Store) each call is its own transaction; inside
    /// [`Store::write`](crate::Store::write) reads see the transaction's own writes.
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
    Kv
}

impl<A: Access> Kv<'_, A> {
    /// The live record, or `None` if absent or expired.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized namespace
    /// or key; [`Corrupt`](crate::Error::Corrupt) for a damaged record; storage errors.
    pub fn get(&self, ns: &str, key: &str) -> Result<Option<KvEntry>> {
        check(ns, key)?;
        self.src
            .with_reader(|r| Ok(record::get(r, &KV, (ns, key))?.map(|s| entry(key, s))))
    }

    /// Several records from one snapshot, in the order of `keys` (`None` where absent).
    ///
    /// # Errors
    /// As [`get`](Self::get), for any of the keys.
    pub fn get_many(&self, ns: &str, keys: &[&str]) -> Result<Vec<Option<KvEntry>>> {
        limits::check_namespace("namespace", ns)?;
        self.src.with_reader(|r| {
            let table = r.open(KV.def)?;
            keys.iter()
                .map(|key| {
                    limits::check_key("key", key)?;
                    Ok(record::get_in(&table, &KV, (ns, key), r.now_ms())?.map(|s| entry(key, s)))
                })
                .collect()
        })
    }

    /// Every live record whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad namespace;
    /// [`Corrupt`](crate::Error::Corrupt) for a damaged record; storage errors.
    pub fn list(&self, ns: &str, prefix: &str) -> Result<Vec<KvEntry>> {
        self.list_up_to(ns, prefix, usize::MAX)
    }

    /// The first `limit` live records whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// As [`list`](Self::list).
    pub fn list_up_to(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<KvEntry>> {
        limits::check_namespace("namespace", ns)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.src.with_reader(|r| {
            let table = r.open(KV.def)?;
            let mut out = Vec::new();
            for item in table.range((ns, prefix)..)? {
                let (k, v) = item?;
                let (k_ns, k_key) = k.value();
                if k_ns != ns || !k_key.starts_with(prefix) {
                    break;
                }
                if let Some(stored) = record::decode_live(&KV, &(ns, k_key), v.value(), r.now_ms())?
                {
                    out.push(entry(k_key, stored));
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Reads a value stored by [`put_value`](Self::put_value) or
    /// [`put_json`](Self::put_json).
    ///
    /// # Errors
    /// As [`get`](Self::get); [`Decode`](crate::Error::Decode) when the stored value is
    /// not a `T`.
    pub fn get_value<T: DeserializeOwned>(
        &self,
        ns: &str,
        key: &str,
    ) -> Result<Option<Versioned<T>>> {
        check(ns, key)?;
        self.src
            .with_reader(|r| match record::get(r, &KV, (ns, key))? {
                Some(stored) => Ok(Some(decode_typed(ns, key, &stored)?)),
                None => Ok(None),
            })
    }
}

impl<A: WriteAccess> Kv<'_, A> {
    /// Stores `value`, replacing any record; `ttl` makes it expire that long after the
    /// transaction's now. Returns the new version.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad namespace, key or an
    /// oversized value; [`Corrupt`](crate::Error::Corrupt) when the record it replaces is
    /// damaged; storage and commit errors.
    pub fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<u64> {
        self.put_if(ns, key, value, ttl, Expect::Any)
    }

    /// Stores `value` only if the live record matches `expect`.
    ///
    /// # Errors
    /// As [`put`](Self::put); [`VersionConflict`](crate::Error::VersionConflict) (nothing
    /// written) when the live record does not match `expect`.
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
        limits::check_value_len("value", value.len())?;
        self.src.with_writer(|tx| {
            let expires_at_ms = ttl.map(|d| expiry_after(tx.now_ms(), d));
            record::put(tx, KV, (ns, key), format, value, expires_at_ms, expect)
        })
    }

    /// Removes the record. Returns whether a live record was removed.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad namespace or key; storage
    /// and commit errors.
    pub fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        check(ns, key)?;
        self.src
            .with_writer(|tx| Ok(record::delete(tx, KV, (ns, key))?.is_some()))
    }

    /// Removes the record only if it matches `expect`.
    ///
    /// # Errors
    /// As [`delete`](Self::delete); [`VersionConflict`](crate::Error::VersionConflict)
    /// when the live record does not match `expect`.
    pub fn delete_if(&self, ns: &str, key: &str, expect: Expect) -> Result<bool> {
        check(ns, key)?;
        self.src
            .with_writer(|tx| Ok(record::delete_if(tx, KV, (ns, key), expect)?.is_some()))
    }

    /// Read-modify-write in one transaction: `f` sees the live value (or `None`) and
    /// returns the new value, or `None` to delete. The TTL of the new value is `ttl`.
    /// Returns the new version (`None` if deleted).
    ///
    /// # Errors
    /// As [`put`](Self::put), and whatever `f` returns (nothing is written then).
    pub fn update<F>(&self, ns: &str, key: &str, ttl: Option<Duration>, f: F) -> Result<Option<u64>>
    where
        F: FnOnce(Option<&KvEntry>) -> Result<Option<Vec<u8>>>,
    {
        check(ns, key)?;
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, KV, (ns, key))?;
            let current = slot.live().map(|s| entry(key, s.clone()));
            match crate::txn::caller_code(|| f(current.as_ref()))? {
                Some(value) => {
                    let expires_at_ms = ttl.map(|d| expiry_after(tx.now_ms(), d));
                    Ok(Some(slot.put(
                        envelope::FORMAT_BYTES,
                        &value,
                        expires_at_ms,
                    )?))
                }
                None => {
                    slot.delete()?;
                    Ok(None)
                }
            }
        })
    }

    /// Removes every record (live or expired) whose key starts with `prefix`; returns
    /// how many live records were removed.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad namespace; storage and
    /// commit errors.
    pub fn delete_prefix(&self, ns: &str, prefix: &str) -> Result<usize> {
        limits::check_namespace("namespace", ns)?;
        self.src.with_writer(|tx| {
            let doomed: Vec<String> = {
                let table = tx.open_table(KV.def)?;
                let mut doomed = Vec::new();
                for item in redb::ReadableTable::range(&table, (ns, prefix)..)? {
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
            for key in &doomed {
                if record::delete(tx, KV, (ns, key.as_str()))?.is_some() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }

    /// Stores a serde value (postcard encoding). Returns the new version.
    ///
    /// # Errors
    /// As [`put`](Self::put); [`Encode`](crate::Error::Encode) when `value` does not
    /// serialize.
    pub fn put_value<T: Serialize + ?Sized>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        self.put_value_if(ns, key, value, ttl, Expect::Any)
    }

    /// Stores a serde value (postcard) only if the live record matches `expect`.
    ///
    /// # Errors
    /// As [`put_value`](Self::put_value) and [`put_if`](Self::put_if).
    pub fn put_value_if<T: Serialize + ?Sized>(
        &self,
        ns: &str,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        expect: Expect,
    ) -> Result<u64> {
        let bytes = codec::to_postcard("kv value", value)?;
        self.put_format(ns, key, envelope::FORMAT_POSTCARD, &bytes, ttl, expect)
    }

    /// Stores a serde value as JSON text (for self-describing values such as
    /// `serde_json::Value`, which postcard cannot read back). Returns the new version.
    ///
    /// # Errors
    /// As [`put_value`](Self::put_value).
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

    /// Read-modify-write of a typed value in one transaction (postcard encoding).
    ///
    /// # Errors
    /// As [`get_value`](Self::get_value) and [`put_value`](Self::put_value), and
    /// whatever `f` returns (nothing is written then).
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
        check(ns, key)?;
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, KV, (ns, key))?;
            let current = match slot.live() {
                Some(stored) => Some(decode_typed::<T>(ns, key, stored)?.value),
                None => None,
            };
            let next = codec::to_postcard("kv value", &crate::txn::caller_code(|| f(current))?)?;
            let expires_at_ms = ttl.map(|d| expiry_after(tx.now_ms(), d));
            slot.put(envelope::FORMAT_POSTCARD, &next, expires_at_ms)
        })
    }
}
