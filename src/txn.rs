//! [`ReadTx`] and [`WriteTx`]: one redb transaction each, with the instant it started.
//! Every table is reached from them (`tx.kv()`, `tx.contexts()`, ...), so any mix of
//! tables changes in one atomic commit.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::StoreConfig;
use crate::error::{Error, Result};

/// A write transaction. Obtained from [`crate::Store::write`]; commits when the closure
/// returns `Ok`, rolls back otherwise.
pub struct WriteTx {
    txn: redb::WriteTransaction,
    now_ms: u64,
    config: Arc<StoreConfig>,
    /// Set when the storage engine panicked inside this transaction: it must not commit.
    engine_panicked: AtomicBool,
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
            engine_panicked: AtomicBool::new(false),
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

    pub(crate) fn set_durability(&mut self, durability: redb::Durability) -> Result<()> {
        self.txn
            .set_durability(durability)
            .map_err(|e| Error::CommitOutcomeUnknown(e.into()))
    }

    pub(crate) fn commit(self) -> Result<()> {
        if self.engine_panicked() {
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

    /// Runs table code, turning a panic of the storage engine (redb panics on some
    /// damaged pages) into [`Error::Corrupt`]; the transaction can then only roll back.
    pub(crate) fn contain<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        contain(&self.engine_panicked, f)
    }

    /// Whether the storage engine panicked inside this transaction.
    pub(crate) fn engine_panicked(&self) -> bool {
        self.engine_panicked.load(Ordering::SeqCst)
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
    /// Set when the storage engine panicked inside this snapshot.
    engine_panicked: AtomicBool,
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
            engine_panicked: AtomicBool::new(false),
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

    /// Runs table code, turning a panic of the storage engine into [`Error::Corrupt`].
    pub(crate) fn contain<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        contain(&self.engine_panicked, f)
    }

    /// Whether the storage engine panicked inside this snapshot.
    pub(crate) fn engine_panicked(&self) -> bool {
        self.engine_panicked.load(Ordering::SeqCst)
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

/// Runs `f`, catching a panic: the flag is set and the panic becomes `Error::Corrupt`.
/// Only edgestate's own table code runs here (never a caller's closure), so a panic is
/// the storage engine's, on damaged data. Under `panic = "abort"` nothing can be caught.
fn contain<R>(flag: &AtomicBool, f: impl FnOnce() -> Result<R>) -> Result<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            flag.store(true, Ordering::SeqCst);
            Err(Error::Corrupt {
                table: "(storage engine)",
                key: String::new(),
                reason: format!(
                    "redb panicked reading damaged data: {}",
                    panic_message(panic.as_ref())
                ),
            })
        }
    }
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
