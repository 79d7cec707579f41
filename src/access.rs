//! Where a table handle's transaction comes from.
//!
//! Every record family has one handle type, generic over its source `A`: a
//! [`WriteTx`], a [`ReadTx`], or the [`Store`](crate::Store) itself (one transaction per
//! call). Read methods are written once, for every [`Access`]; write methods exist only
//! where `A` is a [`WriteAccess`] (a write transaction or the store), so
//! `read_tx.kv().put(..)` does not compile. This is the shape of redb's own
//! `ReadableTable` over `Table` and `ReadOnlyTable`.
//!
//! Both traits are sealed: their methods are the crate's plumbing, and callers never
//! name them (handle methods are inherent).

use std::borrow::Borrow;
use std::ops::RangeBounds;

use redb::{
    AccessGuard, MultimapTableDefinition, MultimapValue, Range, ReadableMultimapTable,
    ReadableTable, TableDefinition,
};

use crate::error::Result;
use crate::txn::{ReadTx, WriteTx};

/// A source of consistent reads: a [`ReadTx`], a [`WriteTx`] (its reads see its own
/// writes), or a [`Store`](crate::Store) (one snapshot per call).
pub trait Access: sealed::Source {}

/// A source that can also write: a [`WriteTx`], or a [`Store`](crate::Store) (one
/// committed transaction per call, with the store's durability).
pub trait WriteAccess: Access + sealed::WriteSource {}

pub(crate) mod sealed {
    use super::{Reader, Result, WriteTx};

    /// Runs a read on one snapshot of the source.
    pub trait Source {
        /// True when every handle call is its own transaction (the store): a call may
        /// then answer from a read snapshot before taking the write lock.
        const PER_CALL: bool = false;

        /// Calls `f` with a reader over one consistent snapshot.
        fn with_reader<R>(&self, f: impl FnOnce(&Reader<'_>) -> Result<R>) -> Result<R>;
    }

    /// Runs a write in one transaction of the source.
    pub trait WriteSource: Source {
        /// Calls `f` inside a write transaction; for a store, commits if `f` succeeds.
        fn with_writer<R>(&self, f: impl FnOnce(&WriteTx) -> Result<R>) -> Result<R>;
    }
}

impl sealed::Source for WriteTx {
    fn with_reader<R>(&self, f: impl FnOnce(&Reader<'_>) -> Result<R>) -> Result<R> {
        self.contain(|| f(&Reader::Write(self)))
    }
}

impl sealed::WriteSource for WriteTx {
    fn with_writer<R>(&self, f: impl FnOnce(&WriteTx) -> Result<R>) -> Result<R> {
        self.contain(|| f(self))
    }
}

impl Access for WriteTx {}
impl WriteAccess for WriteTx {}

impl sealed::Source for ReadTx {
    fn with_reader<R>(&self, f: impl FnOnce(&Reader<'_>) -> Result<R>) -> Result<R> {
        self.contain(|| f(&Reader::Read(self)))
    }
}

impl Access for ReadTx {}

/// One snapshot to read from: a write transaction (seeing its own writes) or a read
/// transaction.
#[derive(Debug, Clone, Copy)]
pub enum Reader<'t> {
    /// Reads inside a write transaction.
    Write(&'t WriteTx),
    /// Reads on a read snapshot.
    Read(&'t ReadTx),
}

impl<'t> Reader<'t> {
    /// The instant expiry is judged at.
    pub(crate) fn now_ms(&self) -> u64 {
        match self {
            Reader::Write(tx) => tx.now_ms(),
            Reader::Read(tx) => tx.now_ms(),
        }
    }

    /// Opens a table for reading.
    pub(crate) fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<TableRef<'t, K, V>> {
        crate::txn::using_table(redb::TableHandle::name(&def));
        Ok(match self {
            Reader::Write(tx) => TableRef::Write(tx.open_table(def)?),
            Reader::Read(tx) => TableRef::Read(tx.raw().open_table(def)?),
        })
    }

    /// Opens a multimap table for reading.
    pub(crate) fn open_multimap<K: redb::Key + 'static, V: redb::Key + 'static>(
        &self,
        def: MultimapTableDefinition<'static, K, V>,
    ) -> Result<MultimapRef<'t, K, V>> {
        crate::txn::using_table(redb::MultimapTableHandle::name(&def));
        Ok(match self {
            Reader::Write(tx) => MultimapRef::Write(tx.open_multimap_table(def)?),
            Reader::Read(tx) => MultimapRef::Read(tx.raw().open_multimap_table(def)?),
        })
    }
}

/// A table opened by a [`Reader`]: the writable or the read-only kind, read alike.
pub(crate) enum TableRef<'t, K: redb::Key + 'static, V: redb::Value + 'static> {
    Write(redb::Table<'t, K, V>),
    Read(redb::ReadOnlyTable<K, V>),
}

impl<K: redb::Key + 'static, V: redb::Value + 'static> TableRef<'_, K, V> {
    /// The value under `key`.
    pub(crate) fn get<'a>(
        &self,
        key: impl Borrow<K::SelfType<'a>>,
    ) -> Result<Option<AccessGuard<'_, V>>> {
        Ok(match self {
            TableRef::Write(t) => t.get(key)?,
            TableRef::Read(t) => t.get(key)?,
        })
    }

    /// The entries in `range`, in key order (checked: see [`Ordered`]).
    pub(crate) fn range<'a, KR>(
        &self,
        range: impl RangeBounds<KR> + 'a,
    ) -> Result<Ordered<'_, K, V>>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        let inner = match self {
            TableRef::Write(t) => t.range(range)?,
            TableRef::Read(t) => t.range(range)?,
        };
        Ok(Ordered {
            inner,
            last_front: None,
            last_back: None,
        })
    }
}

/// A range of a b-tree whose keys are checked to come in strictly increasing order (and
/// decreasing from the back). A damaged branch page can make redb walk a subtree twice
/// or out of order, every record in it intact; without this check a listing would
/// repeat records. A key out of order is reported as redb's own `Corrupted`, which the
/// transaction's containment turns into damage of the table.
pub(crate) struct Ordered<'r, K: redb::Key + 'static, V: redb::Value + 'static> {
    inner: Range<'r, K, V>,
    last_front: Option<Vec<u8>>,
    last_back: Option<Vec<u8>>,
}

type Entry<'r, K, V> = (AccessGuard<'r, K>, AccessGuard<'r, V>);

impl<'r, K: redb::Key + 'static, V: redb::Value + 'static> Ordered<'r, K, V> {
    /// Whether `key` comes after (`forward`) or before the last key seen from the same
    /// end; it becomes the last key. One buffer per end, reused: no allocation per entry
    /// once it has grown.
    fn in_order(key: &AccessGuard<'r, K>, last: &mut Option<Vec<u8>>, forward: bool) -> bool {
        let value = key.value();
        let stored = K::as_bytes(&value);
        let bytes = stored.as_ref();
        if let Some(previous) = last.as_deref() {
            let order = K::compare(previous, bytes);
            let in_order = if forward {
                order.is_lt()
            } else {
                order.is_gt()
            };
            if !in_order {
                return false;
            }
        }
        let buffer = last.get_or_insert_with(Vec::new);
        buffer.clear();
        buffer.extend_from_slice(bytes);
        true
    }

    /// Checks `entry` against the last key seen from the same end.
    fn check(
        entry: Option<std::result::Result<Entry<'r, K, V>, redb::StorageError>>,
        last: &mut Option<Vec<u8>>,
        forward: bool,
    ) -> Option<std::result::Result<Entry<'r, K, V>, redb::StorageError>> {
        let Some(Ok((key, value))) = entry else {
            return entry;
        };
        if !Self::in_order(&key, last, forward) {
            return Some(Err(redb::StorageError::Corrupted(
                "b-tree keys out of order (a damaged branch page?)".to_owned(),
            )));
        }
        Some(Ok((key, value)))
    }
}

impl<'r, K: redb::Key + 'static, V: redb::Value + 'static> Iterator for Ordered<'r, K, V> {
    type Item = std::result::Result<Entry<'r, K, V>, redb::StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.inner.next();
        Self::check(entry, &mut self.last_front, true)
    }
}

impl<K: redb::Key + 'static, V: redb::Value + 'static> DoubleEndedIterator for Ordered<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let entry = self.inner.next_back();
        Self::check(entry, &mut self.last_back, false)
    }
}

/// A multimap table opened by a [`Reader`].
pub(crate) enum MultimapRef<'t, K: redb::Key + 'static, V: redb::Key + 'static> {
    Write(redb::MultimapTable<'t, K, V>),
    Read(redb::ReadOnlyMultimapTable<K, V>),
}

impl<K: redb::Key + 'static, V: redb::Key + 'static> MultimapRef<'_, K, V> {
    /// Every value under `key`, in order.
    pub(crate) fn get<'a>(
        &self,
        key: impl Borrow<K::SelfType<'a>>,
    ) -> Result<MultimapValue<'_, V>> {
        Ok(match self {
            MultimapRef::Write(t) => t.get(key)?,
            MultimapRef::Read(t) => t.get(key)?,
        })
    }
}
