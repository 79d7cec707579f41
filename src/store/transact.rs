//! Running transactions: the thread-local scopes that turn would-be deadlocks into
//! [`Error::NestedTransaction`], the write paths (with the page log, or with group
//! commit), reads, and the points where errors and engine panics are noted for
//! self-healing.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLockReadGuard;
use redb::ReadableDatabase;

use super::{heal, trace, wal, Inner};
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::ttl;
use crate::txn::{EngineWatch, ReadTx, WriteTx};

thread_local! {
    static IN_WRITE: Cell<bool> = const { Cell::new(false) };
    /// Read transactions open on this thread (reads may nest).
    static READ_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread is inside a transaction (of any store).
pub(super) fn inside_transaction() -> bool {
    IN_WRITE.with(Cell::get) || READ_DEPTH.with(Cell::get) > 0
}

/// Marks the current thread as inside a read transaction while it lives, so that
/// maintenance called from inside one is refused instead of waiting for itself.
pub(super) struct ReadScope;

impl ReadScope {
    pub(super) fn enter() -> Self {
        READ_DEPTH.with(|d| d.set(d.get().saturating_add(1)));
        ReadScope
    }
}

impl Drop for ReadScope {
    fn drop(&mut self) {
        READ_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Marks the current thread as inside a write transaction, refusing re-entry, which
/// would deadlock in redb.
pub(super) struct WriteScope;

impl WriteScope {
    pub(super) fn enter() -> Result<Self> {
        if IN_WRITE.with(|w| w.replace(true)) {
            return Err(Error::NestedTransaction);
        }
        Ok(WriteScope)
    }

    /// Maintenance and close wait for every transaction to end, including one this
    /// thread holds: refuse rather than deadlock.
    pub(super) fn refuse_if_inside() -> Result<()> {
        if inside_transaction() {
            return Err(Error::NestedTransaction);
        }
        Ok(())
    }
}

impl Drop for WriteScope {
    fn drop(&mut self) {
        IN_WRITE.with(|w| w.set(false));
    }
}

impl Inner {
    pub(super) fn write<T, E: From<Error>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut WriteTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        trace::transaction("write", Some(durability), self.slow_write, || {
            self.write_untraced(durability, f)
        })
    }

    fn write_untraced<T, E: From<Error>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut WriteTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let nested = inside_transaction();
        let _scope = WriteScope::enter()?;
        if !nested {
            self.heal_if_needed()?;
        }
        self.healing.refuse_writes_if_damaged()?;
        let guard = self.lock_db(nested);
        let db = guard.as_ref().ok_or(Error::Closed)?;
        if let Some(log) = self.log.read().clone() {
            return self.write_logged(db, &log, durability, f);
        }
        // Counted in only once the database lock is held, so that nobody waits for a
        // writer that itself waits behind a maintenance call.
        let ticket = self.group.enter(db);
        let mut tx = self.begin_write(db)?;
        let outcome = f(&mut tx);
        self.note_watch(tx.watch());
        match outcome {
            Ok(out) => {
                ticket.commit(tx, durability).map_err(|e| self.noted(e))?;
                Ok(out)
            }
            Err(e) => {
                tx.abort();
                drop(ticket);
                Err(e)
            }
        }
    }

    /// A write on a store with a page log: redb's commit only appends to the log (no
    /// sync under its write lock); a durable caller then waits for a sync of the log
    /// that covers its commit, one sync serving every commit made before it began.
    fn write_logged<T, E: From<Error>>(
        &self,
        db: &redb::Database,
        log: &wal::PageLog,
        durability: Durability,
        f: impl FnOnce(&mut WriteTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut tx = self.begin_write(db)?;
        let outcome = f(&mut tx);
        self.note_watch(tx.watch());
        let out = match outcome {
            Ok(out) => out,
            Err(e) => {
                tx.abort();
                return Err(e);
            }
        };
        let redb_durability = match durability {
            Durability::Immediate => redb::Durability::Immediate,
            Durability::Relaxed => redb::Durability::None,
        };
        tx.set_durability(redb_durability)
            .and_then(|()| tx.commit())
            .map_err(|e| self.noted(e))?;
        if durability == Durability::Immediate {
            log.wait_durable(log.committed())
                .map_err(|e| self.noted(Error::CommitOutcomeUnknown(redb::Error::Io(e))))?;
        }
        Ok(out)
    }

    /// The shared side of the database lock, held for a whole transaction. A first
    /// transaction on this thread queues behind a waiting maintenance call, so that
    /// `compact`, `check_integrity` and `close` are not starved by a steady stream of
    /// overlapping transactions. A nested one must not queue: maintenance waits for the
    /// transaction this thread already holds, so it would wait for itself.
    fn lock_db(&self, nested: bool) -> RwLockReadGuard<'_, Option<redb::Database>> {
        if nested {
            self.db.read_recursive()
        } else {
            self.db.read()
        }
    }

    pub(super) fn read<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&ReadTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        trace::transaction("read", None, self.slow_write, || self.read_untraced(f))
    }

    fn read_untraced<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&ReadTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let nested = inside_transaction();
        if !nested {
            self.heal_if_needed()?;
        }
        let _scope = ReadScope::enter();
        let guard = self.lock_db(nested);
        let db = guard.as_ref().ok_or(Error::Closed)?;
        let txn = db.begin_read().map_err(Error::from)?;
        let tx = ReadTx::new(txn, self.clock.now_ms(), Arc::clone(&self.config));
        let outcome = f(&tx);
        self.note_watch(tx.watch());
        outcome
    }

    /// A write transaction on `db`, with the store's clock, defaults and repair mode.
    fn begin_write(&self, db: &redb::Database) -> Result<WriteTx> {
        let mut txn = db.begin_write().map_err(|e| self.noted(e.into()))?;
        if self.quick_repair {
            txn.set_quick_repair(true);
        }
        Ok(WriteTx::new(
            txn,
            self.clock.now_ms(),
            Arc::clone(&self.config),
        ))
    }

    /// Acts on what the storage engine met in a transaction's table code.
    ///
    /// Damage refuses writes until the store is reopened by its owner or passes
    /// `check_integrity`: writing on top of a damaged b-tree could spread it. Reads go on
    /// (a read that meets the damage fails on its own), and the storage is not reopened
    /// behind the owner's back, since a reopen on a failing disk could fail and take the
    /// reads down with it. An I/O error of the storage latches redb as a failed commit
    /// does: the next transaction reopens.
    fn note_watch(&self, watch: &EngineWatch) {
        if let Some(damage) = watch.damage() {
            self.healing.mark_damaged(damage);
        }
        if watch.storage_failed() {
            self.healing.needed.store(true, Ordering::SeqCst);
        }
    }

    /// Notes an error that latches the database, so that the next transaction reopens.
    fn noted(&self, e: Error) -> Error {
        self.healing.note(&e);
        e
    }

    /// Reopens the storage if an earlier error latched it, with a few attempts and a
    /// short backoff; [`Error::ReopenFailed`] if it cannot (the next call tries again).
    fn heal_if_needed(&self) -> Result<()> {
        if !self.healing.is_needed() || self.reopen.is_none() {
            return Ok(());
        }
        let mut last = None;
        for attempt in 0..heal::ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(heal::backoff(attempt));
            }
            match trace::maintenance("recovery", || self.reopen_now(true)) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.healing.failures.fetch_add(1, Ordering::Relaxed);
                    last = Some(e);
                }
            }
        }
        Err(Error::ReopenFailed {
            attempts: heal::ATTEMPTS,
            source: Box::new(last.unwrap_or(Error::Closed)),
        })
    }

    /// Closes the database and opens its storage again. With `only_if_needed`, does
    /// nothing when another thread has healed it meanwhile.
    pub(super) fn reopen_now(&self, only_if_needed: bool) -> Result<()> {
        let Some(reopener) = &self.reopen else {
            return Err(Error::invalid(
                "reopen",
                "only a store opened from a file or a backend factory can be reopened",
            ));
        };
        let mut guard = self.db.write();
        if only_if_needed && !self.healing.is_needed() {
            return Ok(());
        }
        if let Some(db) = guard.take() {
            // After a failed commit, closing reports that same failure again; the reopen
            // below is what recovers from it. Closing a damaged database can panic.
            let _ = crate::txn::catch_engine_panic(move || db.close());
        }
        *self.log.write() = None;
        let opened = reopener.open(self.clock.now_ms())?;
        *self.log.write() = opened.log;
        *guard = Some(opened.db);
        if self.healing.needed.swap(false, Ordering::SeqCst) && only_if_needed {
            self.healing.recoveries.fetch_add(1, Ordering::Relaxed);
        }
        if !only_if_needed {
            // The owner reopened it on purpose: they have seen the damage.
            self.healing.clear_damage();
        }
        Ok(())
    }

    pub(crate) fn sweep_batch(&self, limit: usize) -> Result<ttl::SweepOutcome> {
        if limit == 0 || !self.read(|tx| tx.contain(|| ttl::any_due(tx.raw(), tx.now_ms())))? {
            return Ok(ttl::SweepOutcome::default());
        }
        trace::sweep(|| self.write(self.durability, |tx| tx.contain(|| ttl::sweep(tx, limit))))
    }
}
