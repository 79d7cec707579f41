//! Recovery from I/O errors without the caller's help.
//!
//! After a failed commit (or any I/O error redb latches), redb refuses every later write
//! until the database is opened again. A store that knows how to open its storage again
//! (a file, or a backend factory) does that itself: the next transaction, from any clone,
//! closes and reopens the storage (replaying the page log, running redb's recovery) and
//! then proceeds. The call whose commit failed has already returned
//! [`Error::CommitOutcomeUnknown`]; nothing is retried on the caller's behalf, so nothing
//! is applied twice. When reopening fails, a few attempts are made with a short backoff,
//! then the caller gets [`Error::ReopenFailed`] and the next call tries again.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redb::{BackendError, StorageBackend};

use super::open::{self, OpenOptionsRedb, Opened};
use crate::error::{Error, Result};
use crate::schema;
use crate::txn::EngineDamage;

/// Makes a fresh storage backend (for stores on custom backends that must be reopened).
pub(crate) type BackendFactory = dyn Fn() -> io::Result<Box<dyn StorageBackend>> + Send + Sync;

/// How a store opens its storage again.
#[derive(Clone)]
pub(crate) enum Reopener {
    /// A file store.
    File {
        path: PathBuf,
        options: OpenOptionsRedb,
    },
    /// A store on backends made by a factory.
    Factory {
        factory: Arc<BackendFactory>,
        options: OpenOptionsRedb,
    },
}

impl Reopener {
    /// Opens the storage again (the old database must be closed already).
    pub(crate) fn open(&self, now_ms: u64) -> Result<Opened> {
        match self {
            Reopener::File { path, options } => {
                open::open_existing(path, options, |db| schema::ensure(db, path, now_ms))
            }
            Reopener::Factory { factory, options } => {
                open_from_factory(factory.as_ref(), options, now_ms)
            }
        }
    }
}

/// Opens a store on a backend from `factory`.
pub(crate) fn open_from_factory(
    factory: &BackendFactory,
    options: &OpenOptionsRedb,
    now_ms: u64,
) -> Result<Opened> {
    let label = std::path::Path::new(":backend:");
    let backend = factory().map_err(|source| Error::Io {
        path: label.to_owned(),
        source,
    })?;
    let db = open::create_contained(options, BoxedBackend(backend))
        .map_err(|e| open::map_open_error(label, e))?;
    crate::txn::catch_engine_panic(|| schema::ensure(&db, label, now_ms))
        .map_err(|panic| open::damaged(label, &panic))??;
    Ok(Opened { db, log: None })
}

/// Whether the store must be reopened, whether it is known to be damaged, and what
/// recovery has done so far.
#[derive(Debug, Default)]
pub(crate) struct Healing {
    /// Set when redb reported an error that only reopening clears.
    pub(crate) needed: AtomicBool,
    /// The first damage the storage engine met since the owner last reopened or checked
    /// the store; writes are refused while it is set.
    damage: parking_lot::Mutex<Option<EngineDamage>>,
    /// Times damage was met (each latching the store, or found again while latched).
    pub(crate) damage_found: AtomicU64,
    /// Successful automatic reopens.
    pub(crate) recoveries: AtomicU64,
    /// Reopen attempts that failed.
    pub(crate) failures: AtomicU64,
}

/// Attempts per call before giving up, and the pause before each retry.
pub(crate) const ATTEMPTS: u32 = 3;
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10 << (2 * attempt.min(4)))
}

impl Healing {
    /// Notes `e`: if only reopening clears it, the next transaction reopens.
    pub(crate) fn note(&self, e: &Error) {
        if e.needs_reopen() {
            self.needed.store(true, Ordering::SeqCst);
        }
    }

    pub(crate) fn is_needed(&self) -> bool {
        self.needed.load(Ordering::SeqCst)
    }

    /// Latches the store as damaged (keeping the first damage seen).
    pub(crate) fn mark_damaged(&self, damage: EngineDamage) {
        self.damage_found.fetch_add(1, Ordering::Relaxed);
        self.damage.lock().get_or_insert(damage);
    }

    /// Lifts the latch: the owner reopened the store, or it passed a full check.
    pub(crate) fn clear_damage(&self) {
        *self.damage.lock() = None;
    }

    /// The damage that latched the store, if any.
    pub(crate) fn damage(&self) -> Option<EngineDamage> {
        self.damage.lock().clone()
    }

    /// [`Error::Damaged`] while the store is latched as damaged.
    pub(crate) fn refuse_writes_if_damaged(&self) -> Result<()> {
        match &*self.damage.lock() {
            Some(damage) => Err(Error::Damaged {
                table: damage.table,
                reason: damage.reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// A boxed backend, forwarding everything (the lock methods included).
#[derive(Debug)]
pub(crate) struct BoxedBackend(pub(crate) Box<dyn StorageBackend>);

impl StorageBackend for BoxedBackend {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.0.close()
    }
    fn try_lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        self.0.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        self.0.try_lock_shared_range(start, end)
    }
    fn lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        self.0.lock_range(start, end)
    }
    fn lock_shared_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        self.0.lock_shared_range(start, end)
    }
    fn unlock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        self.0.unlock_range(start, end)
    }
    fn query_lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        self.0.query_lock_range(start, end)
    }
}
