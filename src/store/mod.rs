//! The [`Store`] handle: open, builder, in-memory and temporary stores, transactions,
//! flush, close, maintenance and stats.

mod backup;
#[cfg(feature = "tokio")]
mod blocking;
mod builder;
mod flows;
mod group_commit;
mod heal;

pub(crate) mod open;
mod overlay;
mod sweeper;
mod trace;
mod transact;
mod verify;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::access::{Access, Reader, WriteAccess};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::maintenance::VerifyReport;
use crate::schema;
use crate::schema::Table;
use crate::txn::{ReadTx, WriteTx};

pub use crate::config::{Durability, StoreConfig};
pub use builder::StoreBuilder;
use sweeper::{Sweeper, SweeperCounters};
use transact::WriteScope;
use verify::{Verifier, VerifyCounters};

/// A handle to one edgestate file. Cheap to clone; clones share the database, and the
/// file is closed when the last clone is dropped (or at [`Store::close`]).
///
/// ```
/// use edgestate::Store;
///
/// # fn main() -> edgestate::Result<()> {
/// let store = Store::temporary()?;
/// store.kv().put("bot", "position", b"long 2 BTC", None)?;
/// let found = store.kv().get("bot", "position")?.expect("just written");
/// assert_eq!(found.value, b"long 2 BTC");
/// assert_eq!(found.version, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    // Declared after `inner` only for readability: the sweeper thread holds its own
    // `Arc<Inner>`, so the database outlives the thread whatever the drop order.
    sweeper: Option<Arc<Sweeper>>,
    /// The background verifier, when asked for (it also holds its own `Arc<Inner>`).
    verifier: Option<Arc<Verifier>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("durability", &self.inner.durability)
            .field("sweeper", &self.sweeper.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    /// `None` once closed. Transactions hold the read side for their whole life;
    /// maintenance takes the write side, so it waits for them and they wait for it.
    db: RwLock<Option<redb::Database>>,
    /// The page log of a file store (`None` without one): durable commits wait on it.
    log: RwLock<Option<Arc<wal::PageLog>>>,
    clock: Arc<dyn Clock>,
    config: Arc<StoreConfig>,
    durability: Durability,
    quick_repair: bool,
    path: Option<PathBuf>,
    /// How to open the storage again, for [`Store::reopen`] and automatic recovery
    /// (file stores and stores on a backend factory).
    reopen: Option<heal::Reopener>,
    /// Automatic recovery after I/O errors.
    healing: heal::Healing,
    /// A write transaction slower than this logs a warning (feature `tracing`).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    slow_write: std::time::Duration,
    counters: SweeperCounters,
    /// What background verification has found.
    verify: VerifyCounters,
    /// Concurrent durable writers share fsyncs through it.
    group: group_commit::GroupCommit,
    /// Keeps a temporary store's directory alive; dropped after `db`.
    _temp_dir: Option<tempfile::TempDir>,
}

impl Store {
    /// Opens the store at `path`, creating it (owner-only permissions, atomically) if it
    /// does not exist, with default settings. See [`Store::builder`] for the rest.
    ///
    /// # Errors
    /// [`Error::AlreadyOpen`] when another store or process holds the file;
    /// [`Error::NotAStore`], [`Error::SchemaTooNew`] or [`Error::SchemaTooOld`] for a file
    /// edgestate cannot use; [`Error::Io`] and storage errors.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        StoreBuilder::default().open(path)
    }

    /// A store that lives in memory only, for tests.
    ///
    /// # Errors
    /// Storage errors while setting up the in-memory database.
    pub fn in_memory() -> Result<Store> {
        StoreBuilder::default().in_memory()
    }

    /// A store in a fresh temporary directory that is deleted when the last handle is
    /// dropped. Same code path as a file store, so tests exercise the real thing.
    ///
    /// # Errors
    /// [`Error::Io`] when the temporary directory cannot be created; storage errors.
    pub fn temporary() -> Result<Store> {
        StoreBuilder::default().temporary()
    }

    /// A builder for cache size, durability, clock, sweeper and table defaults.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// Runs `f` in one write transaction: it commits if `f` returns `Ok`, and nothing
    /// `f` wrote survives if it returns `Err` or panics. Returns once the commit is
    /// durable (with [`Durability::Immediate`]).
    ///
    /// Calling `write` (or [`compact`](Store::compact)) again from inside `f` returns
    /// [`Error::NestedTransaction`] instead of deadlocking.
    ///
    /// ```
    /// use edgestate::{Error, Store};
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::in_memory()?;
    /// let outcome: Result<(), Error> = store.write(|tx| {
    ///     tx.kv().put("a", "1", b"x", None)?;
    ///     tx.kv().put("a", "2", b"y", None)?;
    ///     Err(Error::NotFound { table: "demo", key: "3".into() })
    /// });
    /// assert!(outcome.is_err());
    /// assert!(store.kv().get("a", "1")?.is_none()); // rolled back
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Whatever `f` returns (nothing it wrote survives); [`Error::NestedTransaction`] when
    /// called inside a write on this thread; [`Error::Closed`] after
    /// [`close`](Store::close); [`Error::CommitOutcomeUnknown`] when the commit fails.
    pub fn write<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.inner.write(self.inner.durability, f)
    }

    /// [`write`](Store::write) for the common case, where the closure fails only with
    /// edgestate's own [`Error`]: no type annotation is needed on its `Ok`.
    ///
    /// ```
    /// use edgestate::{Expect, Store};
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::in_memory()?;
    /// let version = store.transaction(|tx| {
    ///     let v = tx.kv().put("bot", "position", b"flat", None)?;
    ///     tx.kv().put_if("bot", "position", b"long", None, Expect::Version(v))
    /// })?;
    /// assert_eq!(version, 2);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Whatever `f` returns (nothing it wrote survives), [`Error::NestedTransaction`]
    /// inside another write on this thread, [`Error::Closed`], and
    /// [`Error::CommitOutcomeUnknown`] when the commit fails.
    pub fn transaction<T>(&self, f: impl FnOnce(&mut WriteTx) -> Result<T>) -> Result<T> {
        self.inner.write(self.inner.durability, f)
    }

    /// Like [`write`](Store::write), with a durability for this transaction alone.
    ///
    /// # Errors
    /// As [`write`](Store::write).
    pub fn write_with<T, E: From<Error>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut WriteTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.inner.write(durability, f)
    }

    /// Runs `f` on one consistent snapshot. Readers never block writers.
    ///
    /// [`compact`](Store::compact), [`check_integrity`](Store::check_integrity) and
    /// [`close`](Store::close) called from inside `f` return
    /// [`Error::NestedTransaction`]: they wait for every transaction, this one included.
    ///
    /// # Errors
    /// Whatever `f` returns; [`Error::Closed`]; storage errors opening the snapshot.
    pub fn read<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&ReadTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.inner.read(f)
    }

    /// Makes every write acknowledged so far durable (one fsync). A no-op in effect with
    /// [`Durability::Immediate`].
    ///
    /// # Errors
    /// [`Error::NestedTransaction`] when called inside a write on this thread;
    /// [`Error::Closed`] after [`close`](Store::close); [`Error::CommitOutcomeUnknown`]
    /// when the commit fails.
    pub fn flush(&self) -> Result<()> {
        self.inner.write(Durability::Immediate, |_| Ok(()))
    }

    /// Removes up to `limit` records whose expiry has passed at the clock's now, in one
    /// transaction, and returns how many it removed. Expired records are already
    /// invisible to reads; this reclaims their space. Call it until it returns less than
    /// `limit` to sweep everything.
    ///
    /// # Errors
    /// [`Error::NestedTransaction`] when called inside a write on this thread;
    /// [`Error::Closed`] after [`close`](Store::close); [`Error::CommitOutcomeUnknown`]
    /// when the commit fails.
    pub fn sweep_expired(&self, limit: usize) -> Result<usize> {
        Ok(self.inner.sweep_batch(limit)?.removed)
    }

    /// Sweeps every expired record in batches of `batch`, returning the total removed.
    ///
    /// # Errors
    /// As [`sweep_expired`](Store::sweep_expired); batches committed before a failure stay
    /// committed.
    pub fn sweep_all_expired(&self, batch: usize) -> Result<usize> {
        let batch = batch.max(1);
        let mut total = 0;
        loop {
            let outcome = self.inner.sweep_batch(batch)?;
            total += outcome.removed;
            if outcome.scanned < batch {
                return Ok(total);
            }
        }
    }

    /// The clock this store reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The table defaults this store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The file behind this store (`None` for an in-memory store).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Stops the sweeper, waits for running transactions, and closes the file, reporting
    /// any error redb meets while closing. Every clone of this store returns
    /// [`Error::Closed`] afterwards.
    ///
    /// # Errors
    /// [`Error::NestedTransaction`] when called inside a transaction on this thread;
    /// storage errors while closing.
    pub fn close(self) -> Result<()> {
        WriteScope::refuse_if_inside()?;
        if let Some(sweeper) = &self.sweeper {
            sweeper.stop();
        }
        if let Some(verifier) = &self.verifier {
            verifier.stop();
        }
        let db = self.inner.db.write().take();
        match db {
            Some(db) => contained(|| db.close().map_err(Error::from)),
            None => Ok(()),
        }
    }

    /// Closes and reopens the file under every clone of this store, running redb's
    /// recovery. This is how a long-running process gets back to work after a commit
    /// failed with [`Error::CommitOutcomeUnknown`] (redb refuses further writes until the
    /// file is reopened): clones keep working afterwards, and versions or dedup ids tell
    /// whether the uncertain write landed. Waits for running transactions like
    /// [`compact`](Store::compact).
    ///
    /// Only a store opened from a file can be reopened (`InvalidInput` otherwise). The
    /// file must still exist: a missing file is not silently recreated empty. If opening
    /// fails, the store stays closed ([`Error::Closed`] for every call) and `reopen` can be
    /// tried again.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a store not opened from a file;
    /// [`Error::NestedTransaction`] when called inside a transaction on this thread;
    /// [`Error::Closed`]; storage errors. The errors of [`Store::open`] when the file
    /// cannot be opened again.
    pub fn reopen(&self) -> Result<()> {
        WriteScope::refuse_if_inside()?;
        self.inner.reopen_now(false)
    }

    /// Rewrites the file to release free space. Waits for running transactions and
    /// blocks new ones (on every clone) until it is done; readers and writers resume
    /// afterwards. Returns whether anything was compacted.
    ///
    /// A transaction closure that waits for a transaction started on *another* thread
    /// (say, parallel reads inside a write) can deadlock with a concurrent `compact`,
    /// `check_integrity` or `close`: the other thread queues behind the maintenance call,
    /// which waits for the closure. Start such threads outside the closure.
    ///
    /// # Errors
    /// [`Error::NestedTransaction`] when called inside a transaction on this thread;
    /// [`Error::Closed`]; storage errors.
    pub fn compact(&self) -> Result<bool> {
        WriteScope::refuse_if_inside()?;
        let mut guard = self.inner.db.write();
        let db = guard.as_mut().ok_or(Error::Closed)?;
        trace::maintenance("compact", || {
            contained(|| db.compact().map_err(Error::from))
        })
    }

    /// Verifies every page checksum of the file (and repairs what redb can). Waits for
    /// running transactions like [`compact`](Store::compact). Returns `true` when the
    /// file was intact, `false` when redb repaired it. A store whose writes were refused
    /// with [`Error::Damaged`] takes writes again once this passes.
    ///
    /// # Errors
    /// [`Error::NestedTransaction`] when called inside a transaction on this thread;
    /// [`Error::Closed`]; [`Error::Corrupt`] or storage errors when the file is damaged
    /// beyond repair (writes stay refused).
    pub fn check_integrity(&self) -> Result<bool> {
        WriteScope::refuse_if_inside()?;
        let mut guard = self.inner.db.write();
        let db = guard.as_mut().ok_or(Error::Closed)?;
        let intact = trace::maintenance("check_integrity", || {
            contained(|| db.check_integrity().map_err(Error::from))
        })?;
        if self.inner.healing.damage().is_some() {
            // Writes go on, from a fresh open: nothing runs on whatever state a panic
            // inside redb left in memory.
            self.inner.healing.clear_damage();
            self.inner.healing.needed.store(true, Ordering::SeqCst);
        }
        Ok(intact)
    }

    /// Walks every table in one snapshot while readers and writers carry on: reads every
    /// page redb reaches, checks every record's checksum against the table and key it
    /// is stored under, and looks every record up again (a record the walk finds and a
    /// lookup does not is one reads would answer as absent: a damaged search path). Cheaper than [`check_integrity`](Store::check_integrity) (which
    /// blocks every transaction and verifies redb's page checksums too) and without its
    /// exclusive lock; it reads the whole file, so it costs what reading it costs.
    ///
    /// Damage in a b-tree page or a search path found this way refuses writes
    /// ([`Error::Damaged`]) like damage met by any call; damaged records are listed and each keeps failing its own
    /// reads with [`Error::Corrupt`].
    ///
    /// ```
    /// # fn main() -> edgestate::Result<()> {
    /// let store = edgestate::Store::temporary()?;
    /// store.kv().put("bot", "position", b"long", None)?;
    /// let report = store.verify()?;
    /// assert!(report.is_clean());
    /// assert!(report.entries_checked >= 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Closed`]; storage and I/O errors that are not damage.
    pub fn verify(&self) -> Result<VerifyReport> {
        verify::pass(&self.inner, &std::sync::atomic::AtomicBool::new(false))
    }

    /// Record counts per table, the file size, and sweeper counters.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Io`] reading the file's size; storage errors.
    pub fn stats(&self) -> Result<StoreStats> {
        let (tables, schema_version) = self.read(|tx| {
            tx.contain(|| {
                let counts = schema::table_counts(tx.raw())?;
                let version = schema::stored_schema_version(tx.raw())?.unwrap_or(0);
                Ok((counts, version))
            })
        })?;
        let file_size_bytes = match &self.inner.path {
            Some(p) => std::fs::metadata(p)
                .map_err(|source| Error::Io {
                    path: p.clone(),
                    source,
                })?
                .len(),
            None => 0,
        };
        let c = &self.inner.counters;
        Ok(StoreStats {
            schema_version,
            file_size_bytes,
            tables: tables
                .into_iter()
                .map(|(table, records)| TableStats { table, records })
                .collect(),
            sweeper_runs: c.runs.load(Ordering::Relaxed),
            sweeper_removed: c.removed.load(Ordering::Relaxed),
            sweeper_errors: c.errors.load(Ordering::Relaxed),
            recoveries: self.inner.healing.recoveries.load(Ordering::Relaxed),
            recovery_failures: self.inner.healing.failures.load(Ordering::Relaxed),
            damage_found: self.inner.healing.damage_found.load(Ordering::Relaxed),
            writes_refused: self
                .inner
                .healing
                .damage()
                .map(|d| d.to_error().to_string()),
            background_verification: self.inner.verify.last.lock().clone(),
        })
    }
}

impl crate::access::sealed::Source for Store {
    const PER_CALL: bool = true;

    fn with_reader<R>(&self, f: impl FnOnce(&Reader<'_>) -> Result<R>) -> Result<R> {
        self.read(|tx| tx.contain(|| f(&Reader::Read(tx))))
    }
}

impl crate::access::sealed::WriteSource for Store {
    fn with_writer<R>(&self, f: impl FnOnce(&WriteTx) -> Result<R>) -> Result<R> {
        self.write(|tx| tx.contain(|| f(tx)))
    }
}

impl Access for Store {}
impl WriteAccess for Store {}

crate::tables::accessors!(Store);

/// Runs a maintenance call on redb; a panic of redb on damaged data becomes
/// [`Error::Corrupt`].
fn contained<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    crate::txn::catch_engine_panic(f).unwrap_or_else(|panic| {
        Err(Error::Corrupt {
            table: "(storage engine)",
            key: String::new(),
            reason: format!("redb panicked on damaged data: {panic}"),
        })
    })
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing a damaged database can panic inside redb: contain it, never unwind out
        // of a drop.
        if let Some(db) = self.db.get_mut().take() {
            let _ = crate::txn::catch_engine_panic(move || drop(db));
        }
    }
}

/// What [`Store::stats`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Schema version recorded in the file.
    pub schema_version: u32,
    /// Size of the file in bytes (0 for an in-memory store).
    pub file_size_bytes: u64,
    /// Records per table, expired-but-unswept records included.
    pub tables: Vec<TableStats>,
    /// Times the background sweeper woke up.
    pub sweeper_runs: u64,
    /// Records the background sweeper removed.
    pub sweeper_removed: u64,
    /// Sweeper batches that failed (the next run retries).
    pub sweeper_errors: u64,
    /// Times the store reopened itself after an I/O error latched it.
    pub recoveries: u64,
    /// Reopen attempts that failed (each call makes a few before giving up).
    pub recovery_failures: u64,
    /// Times the storage engine met damaged data (a damaged b-tree page), in calls or in
    /// background verification.
    pub damage_found: u64,
    /// While writes are refused ([`Error::Damaged`]): the damage that latched the store.
    pub writes_refused: Option<String>,
    /// What the background verifier found, once its pass has ended
    /// ([`StoreBuilder::verify_in_background`]); `None` before that or without one.
    pub background_verification: Option<VerifyReport>,
}

impl StoreStats {
    /// The record count of a table (expired-but-unswept records included).
    pub fn records(&self, table: Table) -> u64 {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .map_or(0, |t| t.records)
    }
}

/// One table's line in [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableStats {
    /// The table.
    pub table: Table,
    /// How many records it holds.
    pub records: u64,
}
