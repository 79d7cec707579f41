//! [`StoreBuilder`]: every knob of a store, with defaults that are safe.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use redb::backends::InMemoryBackend;

use super::heal::{open_from_factory, BackendFactory, Reopener};
use super::open::{open_or_create, OpenOptionsRedb, Opened};
use super::sweeper::{Sweeper, SweeperCounters};
use super::verify::Verifier;
use super::{Durability, Inner, Store, StoreConfig};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::schema;

/// Configures and opens a [`Store`].
///
/// ```
/// use edgestate::{Durability, ManualClock, Store};
/// use std::time::Duration;
///
/// # fn main() -> edgestate::Result<()> {
/// let clock = ManualClock::new(1_700_000_000_000);
/// let store = Store::builder()
///     .clock(clock.clone())
///     .durability(Durability::Immediate)
///     .pending_capacity(20)
///     .temporary()?;
/// assert_eq!(store.config().pending_capacity, 20);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    cache_size: Option<usize>,
    durability: Durability,
    clock: Arc<dyn Clock>,
    sweep_interval: Option<Duration>,
    sweep_batch: usize,
    config: StoreConfig,
    verify_on_open: bool,
    verify_in_background: bool,
    quick_repair: bool,
    file_mode: u32,
    page_log: bool,
    log_checkpoint_bytes: u64,
    slow_write: std::time::Duration,
}

impl Default for StoreBuilder {
    fn default() -> Self {
        StoreBuilder {
            cache_size: None,
            durability: Durability::Immediate,
            clock: Arc::new(SystemClock),
            sweep_interval: None,
            sweep_batch: 1_000,
            config: StoreConfig::default(),
            verify_on_open: false,
            verify_in_background: false,
            quick_repair: false,
            file_mode: 0o600,
            page_log: true,
            log_checkpoint_bytes: super::wal::DEFAULT_CHECKPOINT_BYTES,
            slow_write: std::time::Duration::from_millis(500),
        }
    }
}

impl StoreBuilder {
    /// Page cache size in bytes (redb's default is 1 GiB, allocated lazily).
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = Some(bytes);
        self
    }

    /// How commits are made durable. Default [`Durability::Immediate`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The clock for TTLs and timestamps. Default: the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// A shared clock for TTLs and timestamps.
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Runs a background sweeper every `interval`. Off by default.
    pub fn sweep_every(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// Records removed per sweeper transaction (default 1,000): bounds how long a sweep
    /// holds the write lock.
    pub fn sweep_batch(mut self, batch: usize) -> Self {
        self.sweep_batch = batch.max(1);
        self
    }

    /// Replaces all table defaults at once.
    pub fn config(mut self, config: StoreConfig) -> Self {
        self.config = config;
        self
    }

    /// Most pending captures kept per user (default 10).
    pub fn pending_capacity(mut self, capacity: usize) -> Self {
        self.config.pending_capacity = capacity;
        self
    }

    /// Most recent events kept per context (default 10).
    pub fn max_recent_events(mut self, max: usize) -> Self {
        self.config.max_recent_events = max;
        self
    }

    /// TTL of processed-transaction records (default 30 days).
    pub fn dedup_ttl(mut self, ttl: Duration) -> Self {
        self.config.dedup_ttl = ttl;
        self
    }

    /// TTL of session keys (default 24 hours).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.config.session_ttl = ttl;
        self
    }

    /// TTL of pending captures (default 21 days).
    pub fn pending_ttl(mut self, ttl: Duration) -> Self {
        self.config.pending_ttl = ttl;
        self
    }

    /// TTL of the current-merchant cache (default 1 hour).
    pub fn location_ttl(mut self, ttl: Duration) -> Self {
        self.config.location_ttl = ttl;
        self
    }

    /// Lease of an in-progress idempotency record (default 30 seconds).
    pub fn idempotency_lease(mut self, lease: Duration) -> Self {
        self.config.idempotency_lease = lease;
        self
    }

    /// TTL of a completed idempotency record (default 24 hours).
    pub fn idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.config.idempotency_ttl = ttl;
        self
    }

    /// Verify every page checksum when opening a file (default off). On, opening reads
    /// the whole file (about 1.3 s per GiB from the page cache, the disk's read speed
    /// cold) and refuses a damaged one with [`Error::NotAStore`](crate::Error::NotAStore).
    /// Off, opening reads a few pages whatever the file's size, and damage is met
    /// lazily: a damaged record fails its checksum ([`Error::Corrupt`](crate::Error::Corrupt)
    /// naming table and key), and a damaged b-tree page makes the call that meets it
    /// fail with `Error::Corrupt` naming the table, after which writes are refused
    /// ([`Error::Damaged`](crate::Error::Damaged)) until the store is reopened or passes
    /// [`Store::check_integrity`](crate::Store::check_integrity). See also
    /// [`verify_in_background`](StoreBuilder::verify_in_background).
    pub fn verify_on_open(mut self, verify: bool) -> Self {
        self.verify_on_open = verify;
        self
    }

    /// After opening, walk the whole store once on a background thread ([`Store::verify`])
    /// while the caller gets to work (default off): damaged records and damaged pages are
    /// found without waiting for a read to meet them, reported in
    /// [`StoreStats::background_verification`](super::StoreStats::background_verification)
    /// (and as a `tracing` warning), and damage to a page refuses writes
    /// ([`Error::Damaged`](crate::Error::Damaged)) at once. The pass reads the whole file,
    /// so it competes with the caller for the disk; closing the store stops it.
    pub fn verify_in_background(mut self, enabled: bool) -> Self {
        self.verify_in_background = enabled;
        self
    }

    /// Save allocator state in every commit so reopening after a crash is near instant,
    /// at the cost of a second fsync per commit. Default off.
    pub fn quick_repair(mut self, enabled: bool) -> Self {
        self.quick_repair = enabled;
        self
    }

    /// Whether a file store keeps a page log beside it (`<file>-wal`, default on): a
    /// durable commit then appends the pages it wrote to the log and syncs only the log,
    /// one sequential write where redb alone would flush each page in place; the store
    /// file is synced at checkpoints. Opening replays the log. Off: every commit syncs
    /// the store file itself, and there is no second file.
    pub fn page_log(mut self, enabled: bool) -> Self {
        self.page_log = enabled;
        self
    }

    /// How large the page log may grow before a checkpoint syncs the store file and
    /// starts the log over (default 32 MiB). Smaller: less disk for the log and a faster
    /// open after a crash; larger: rarer checkpoints (each costs one commit the flush of
    /// every page written since the last one).
    pub fn page_log_limit(mut self, bytes: u64) -> Self {
        self.log_checkpoint_bytes = bytes.max(super::wal::HEADER_LEN + 1);
        self
    }

    /// With the `tracing` feature, a write transaction slower than this (default 500 ms)
    /// logs a `warn` event with its duration. Without the feature it has no effect.
    pub fn slow_write_warning(mut self, threshold: std::time::Duration) -> Self {
        self.slow_write = threshold;
        self
    }

    /// Unix permission bits of a newly created file (default `0o600`, owner only).
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }

    fn redb_options(&self) -> OpenOptionsRedb {
        OpenOptionsRedb {
            cache_size: self.cache_size,
            verify_on_open: self.verify_on_open,
            file_mode: self.file_mode,
            log_checkpoint_bytes: self.page_log.then_some(self.log_checkpoint_bytes),
        }
    }

    /// Opens (or atomically creates) the store file at `path`.
    ///
    /// # Errors
    /// [`Error::AlreadyOpen`] when another store or process holds the file;
    /// [`Error::NotAStore`], [`Error::SchemaTooNew`] or [`Error::SchemaTooOld`] for a file
    /// edgestate cannot use; [`Error::Io`] and storage errors.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        let now = self.clock.now_ms();
        let opened = open_or_create(path, &self.redb_options(), |db| {
            schema::ensure(db, path, now)
        })?;
        let reopen = self.redb_options();
        self.finish(opened, Some((path.to_owned(), reopen)), None)
    }

    /// Opens (or initializes) a store on a custom redb storage backend: for fault
    /// injection in tests, encryption, or other I/O layers. A wrapper around redb's
    /// `FileBackend` must forward the lock methods, or file locking is lost.
    ///
    /// # Errors
    /// [`Error::NotAStore`], [`Error::SchemaTooNew`] or [`Error::SchemaTooOld`] for data
    /// edgestate cannot use; errors the backend returns.
    pub fn open_with_backend(self, backend: impl redb::StorageBackend) -> Result<Store> {
        let label = Path::new(":backend:");
        let db = self
            .redb_builder()
            .create_with_backend(backend)
            .map_err(|e| super::open::map_open_error(label, e))?;
        schema::ensure(&db, label, self.clock.now_ms())?;
        self.finish(Opened { db, log: None }, None, None)
    }

    /// Opens a store on a backend that `factory` makes, and makes a new one with it
    /// whenever the store must be reopened: by [`Store::reopen`], or by itself after an
    /// I/O error latched the database (see [`Store::stats`] for the recoveries). For
    /// custom I/O layers (and fault injection) that should heal like a file store.
    ///
    /// # Errors
    /// [`Error::Io`] when `factory` fails; then as
    /// [`open_with_backend`](Self::open_with_backend).
    pub fn open_with_backend_factory<B, F>(self, factory: F) -> Result<Store>
    where
        B: redb::StorageBackend,
        F: Fn() -> std::io::Result<B> + Send + Sync + 'static,
    {
        let factory: Arc<BackendFactory> =
            Arc::new(move || factory().map(|b| Box::new(b) as Box<dyn redb::StorageBackend>));
        let options = self.redb_options();
        let opened = open_from_factory(factory.as_ref(), &options, self.clock.now_ms())?;
        let reopen = Reopener::Factory { factory, options };
        self.finish_with(opened, None, Some(reopen), None)
    }

    /// Like [`open_with_backend`](Self::open_with_backend), with the page log (see
    /// [`page_log`](Self::page_log)) on a backend of its own: `log` is replayed onto
    /// `main` first (after a crash), then both serve the store. For layers such as
    /// encryption or fault injection under a logged store; the lock methods of `main` are
    /// the store's.
    ///
    /// # Errors
    /// [`Error::Io`] when the log cannot be read or replayed; then as
    /// [`open_with_backend`](Self::open_with_backend).
    pub fn open_with_page_log(
        self,
        main: impl redb::StorageBackend,
        log: impl redb::StorageBackend,
    ) -> Result<Store> {
        let label = Path::new(":backend:");
        let (backend, _recovery) =
            super::wal::WalBackend::open(main, log, 0, self.log_checkpoint_bytes).map_err(
                |source| Error::Io {
                    path: label.to_owned(),
                    source,
                },
            )?;
        let log = backend.log();
        let db = self
            .redb_builder()
            .create_with_backend(backend)
            .map_err(|e| super::open::map_open_error(label, e))?;
        schema::ensure(&db, label, self.clock.now_ms())?;
        self.finish(Opened { db, log: Some(log) }, None, None)
    }

    fn redb_builder(&self) -> redb::Builder {
        let mut builder = redb::Builder::new();
        if let Some(bytes) = self.cache_size {
            builder.set_cache_size(bytes);
        }
        builder.set_check_integrity_on_open(self.verify_on_open);
        builder
    }

    /// A store held in memory only.
    ///
    /// # Errors
    /// Storage errors while setting up the in-memory database.
    pub fn in_memory(self) -> Result<Store> {
        let db = self
            .redb_builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(Error::from)?;
        schema::ensure(&db, Path::new(":memory:"), self.clock.now_ms())?;
        self.finish(Opened { db, log: None }, None, None)
    }

    /// A file store in a new temporary directory, deleted when the last handle drops.
    ///
    /// # Errors
    /// [`Error::Io`] when the temporary directory cannot be created; storage errors.
    pub fn temporary(self) -> Result<Store> {
        let dir = tempfile::Builder::new()
            .prefix("edgestate-")
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let path = dir.path().join("store.edgestate");
        let now = self.clock.now_ms();
        let opened = open_or_create(&path, &self.redb_options(), |db| {
            schema::ensure(db, &path, now)
        })?;
        let reopen = self.redb_options();
        self.finish(opened, Some((path, reopen)), Some(dir))
    }

    fn finish(
        self,
        opened: Opened,
        file: Option<(std::path::PathBuf, OpenOptionsRedb)>,
        temp_dir: Option<tempfile::TempDir>,
    ) -> Result<Store> {
        let (path, reopen) = match file {
            Some((path, options)) => (Some(path.clone()), Some(Reopener::File { path, options })),
            None => (None, None),
        };
        self.finish_with(opened, path, reopen, temp_dir)
    }

    fn finish_with(
        self,
        opened: Opened,
        path: Option<std::path::PathBuf>,
        reopen: Option<Reopener>,
        temp_dir: Option<tempfile::TempDir>,
    ) -> Result<Store> {
        let inner = Arc::new(Inner {
            db: RwLock::new(Some(opened.db)),
            log: RwLock::new(opened.log),
            clock: self.clock,
            config: Arc::new(self.config),
            durability: self.durability,
            quick_repair: self.quick_repair,
            path,
            reopen,
            healing: Default::default(),
            slow_write: self.slow_write,
            counters: SweeperCounters::default(),
            verify: Default::default(),
            group: Default::default(),
            _temp_dir: temp_dir,
        });
        let sweeper = match self.sweep_interval {
            Some(interval) => Some(Arc::new(
                Sweeper::start(Arc::clone(&inner), interval, self.sweep_batch).map_err(
                    |source| Error::Io {
                        path: inner.path.clone().unwrap_or_default(),
                        source,
                    },
                )?,
            )),
            None => None,
        };
        let verifier = if self.verify_in_background {
            Some(Arc::new(Verifier::start(Arc::clone(&inner)).map_err(
                |source| Error::Io {
                    path: inner.path.clone().unwrap_or_default(),
                    source,
                },
            )?))
        } else {
            None
        };
        Ok(Store {
            inner,
            sweeper,
            verifier,
        })
    }
}
