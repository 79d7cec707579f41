//! [`ReadTx`] and [`WriteTx`]: one redb transaction each, with the instant it started.
//! Every table is reached from them (`tx.kv()`, `tx.contexts()`, ...), so any mix of
//! tables changes in one atomic commit.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::schema::Table;

/// Longest table name [`using_table`] keeps (every edgestate table's name fits).
const NAME_CAPACITY: usize = 32;

thread_local! {
    /// The name of the table edgestate last opened on this thread, to name it when the
    /// storage engine fails on a damaged page (redb's own messages do not say which
    /// table). A plain copy of its bytes: this runs on every table open, and the name is
    /// only looked up when something failed.
    static TABLE_IN_USE: Cell<([u8; NAME_CAPACITY], usize)> =
        const { Cell::new(([0; NAME_CAPACITY], 0)) };
}

thread_local! {
    /// Set while a caller's closure runs inside table code: a panic then is the
    /// caller's, not the storage engine's, and must reach the caller unchanged.
    static IN_CALLER_CODE: Cell<bool> = const { Cell::new(false) };
}

/// Runs a caller's closure from inside table code (an update closure): a panic in it
/// propagates as the caller's panic instead of being taken for damaged storage.
pub(crate) fn caller_code<R>(f: impl FnOnce() -> R) -> R {
    let outer = IN_CALLER_CODE.with(|c| c.replace(true));
    let out = f();
    IN_CALLER_CODE.with(|c| c.set(outer));
    out
}

/// Notes that table code is about to work on the table `name`.
pub(crate) fn using_table(name: &str) {
    let bytes = name.as_bytes();
    let mut copy = [0; NAME_CAPACITY];
    let len = bytes.len().min(NAME_CAPACITY);
    copy[..len].copy_from_slice(&bytes[..len]);
    TABLE_IN_USE.with(|t| t.set((copy, len)));
}

/// The table last noted by [`using_table`] on this thread, if it is one of edgestate's.
fn table_in_use() -> Option<Table> {
    let (bytes, len) = TABLE_IN_USE.with(Cell::get);
    std::str::from_utf8(&bytes[..len])
        .ok()
        .and_then(Table::from_name)
}

/// Damage the storage engine met in a transaction: the table it was working on and what
/// went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineDamage {
    pub(crate) table: &'static str,
    pub(crate) reason: String,
}

impl EngineDamage {
    /// The error a caller gets for it.
    pub(crate) fn to_error(&self) -> Error {
        Error::Corrupt {
            table: self.table,
            key: String::new(),
            reason: self.reason.clone(),
        }
    }
}

/// A write transaction. Obtained from [`crate::Store::write`]; commits when the closure
/// returns `Ok`, rolls back otherwise.
pub struct WriteTx {
    txn: redb::WriteTransaction,
    now_ms: u64,
    config: Arc<StoreConfig>,
    /// What the storage engine met inside this transaction (damage: it must not commit).
    watch: EngineWatch,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

impl WriteTx {
    pub(crate) fn new(txn: redb::WriteTransaction, now_ms: u64, config: Arc<StoreConfig>) -> Self {
        WriteTx {
            txn,
            now_ms,
            config,
            watch: EngineWatch::default(),
        }
    }

    /// The clock's reading when the transaction began; every TTL in it is relative to this.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The store's table defaults.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn raw(&self) -> &redb::WriteTransaction {
        &self.txn
    }

    /// Opens a table for writing (noting which table is in use).
    pub(crate) fn open_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: redb::TableDefinition<'_, K, V>,
    ) -> Result<redb::Table<'_, K, V>> {
        using_table(redb::TableHandle::name(&def));
        Ok(self.txn.open_table(def)?)
    }

    /// Opens a multimap table for writing (noting which table is in use).
    pub(crate) fn open_multimap_table<K: redb::Key + 'static, V: redb::Key + 'static>(
        &self,
        def: redb::MultimapTableDefinition<'_, K, V>,
    ) -> Result<redb::MultimapTable<'_, K, V>> {
        using_table(redb::MultimapTableHandle::name(&def));
        Ok(self.txn.open_multimap_table(def)?)
    }

    pub(crate) fn set_durability(&mut self, durability: redb::Durability) -> Result<()> {
        self.txn
            .set_durability(durability)
            .map_err(|e| Error::CommitOutcomeUnknown(e.into()))
    }

    pub(crate) fn commit(self) -> Result<()> {
        if self.watch.damage().is_some() {
            self.abort();
            return Err(engine_refused());
        }
        let txn = self.txn;
        match catch_unwind(AssertUnwindSafe(move || txn.commit())) {
            Ok(committed) => committed.map_err(|e| Error::CommitOutcomeUnknown(e.into())),
            Err(panic) => Err(Error::CommitOutcomeUnknown(redb::Error::Io(
                std::io::Error::other(format!(
                    "the storage engine panicked during the commit (damaged file?): {}",
                    panic_message(panic.as_ref())
                )),
            ))),
        }
    }

    /// Runs table code, turning a failure of the storage engine on damaged data (a
    /// panic inside redb, or redb reporting its file corrupted) into [`Error::Corrupt`]
    /// naming the table; the transaction can then only roll back.
    pub(crate) fn contain<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        self.watch.contain(f)
    }

    /// What the storage engine met inside this transaction.
    pub(crate) fn watch(&self) -> &EngineWatch {
        &self.watch
    }

    pub(crate) fn abort(self) {
        // An abort that fails (or panics, on damaged data) leaves nothing committed either.
        let txn = self.txn;
        let _ = catch_unwind(AssertUnwindSafe(move || txn.abort()));
    }
}

/// A read transaction: one consistent snapshot. Obtained from [`crate::Store::read`].
pub struct ReadTx {
    txn: redb::ReadTransaction,
    now_ms: u64,
    config: Arc<StoreConfig>,
    /// What the storage engine met inside this snapshot.
    watch: EngineWatch,
}

impl std::fmt::Debug for ReadTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTx")
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

impl ReadTx {
    pub(crate) fn new(txn: redb::ReadTransaction, now_ms: u64, config: Arc<StoreConfig>) -> Self {
        ReadTx {
            txn,
            now_ms,
            config,
            watch: EngineWatch::default(),
        }
    }

    /// The clock's reading when the snapshot was taken; expiry is judged at this instant.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The store's table defaults.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn raw(&self) -> &redb::ReadTransaction {
        &self.txn
    }

    /// Runs table code, turning a failure of the storage engine on damaged data into
    /// [`Error::Corrupt`] naming the table.
    pub(crate) fn contain<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        self.watch.contain(f)
    }

    /// What the storage engine met inside this snapshot.
    pub(crate) fn watch(&self) -> &EngineWatch {
        &self.watch
    }
}

/// Runs `f`, returning the panic's message if the storage engine panicked in it.
pub(crate) fn catch_engine_panic<R>(f: impl FnOnce() -> R) -> std::result::Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| panic_message(panic.as_ref()))
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// What the storage engine met while table code ran in one transaction: damage (a
/// panic inside redb, or redb reporting its file corrupted), and I/O errors of the
/// storage, which latch redb until the file is reopened. The store reads it when the
/// transaction's closure is done.
#[derive(Debug, Default)]
pub(crate) struct EngineWatch {
    damage: Mutex<Option<EngineDamage>>,
    storage_failed: AtomicBool,
}

impl EngineWatch {
    /// Runs table code under this watch (see [`contain`]).
    fn contain<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        contain(self, f)
    }

    /// The first damage met, if any.
    pub(crate) fn damage(&self) -> Option<EngineDamage> {
        self.damage.lock().clone()
    }

    /// Whether table code met an I/O error of the storage.
    pub(crate) fn storage_failed(&self) -> bool {
        self.storage_failed.load(Ordering::SeqCst)
    }
}

/// Runs `f`, catching a failure of the storage engine on damaged data: a panic inside
/// redb, or redb reporting its file corrupted. The damage is noted in `watch` and becomes
/// `Error::Corrupt` naming the table in use. Only edgestate's own table code runs here
/// (never a caller's closure), so a panic is the storage engine's. Under
/// `panic = "abort"` nothing can be caught.
fn contain<R>(watch: &EngineWatch, f: impl FnOnce() -> Result<R>) -> Result<R> {
    TABLE_IN_USE.with(|t| t.set(([0; NAME_CAPACITY], 0)));
    IN_CALLER_CODE.with(|c| c.set(false));
    let reason = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Err(Error::Storage(redb::Error::Corrupted(message)))) => {
            format!("redb found damaged data: {message}")
        }
        Ok(Err(e)) => {
            // An I/O error inside a transaction (say, growing the file) latches redb as a
            // failed commit does; the store must learn it now, not one call later.
            if matches!(e, Error::Storage(redb::Error::Io(_))) || e.needs_reopen() {
                watch.storage_failed.store(true, Ordering::SeqCst);
            }
            return Err(e);
        }
        Ok(result) => return result,
        Err(panic) if IN_CALLER_CODE.with(|c| c.replace(false)) => std::panic::resume_unwind(panic),
        Err(panic) => format!(
            "redb panicked reading damaged data: {}",
            panic_message(panic.as_ref())
        ),
    };
    let table = table_in_use().map_or("(storage engine)", Table::name);
    let damage = EngineDamage { table, reason };
    let error = damage.to_error();
    watch.damage.lock().get_or_insert(damage);
    Err(error)
}

/// The error of a write whose transaction saw the storage engine panic.
pub(crate) fn engine_refused() -> Error {
    Error::Corrupt {
        table: "(storage engine)",
        key: String::new(),
        reason:
            "the storage engine panicked in this transaction (damaged file?); it was rolled back"
                .to_owned(),
    }
}
