//! A `redb::StorageBackend` around redb's `FileBackend` that fails I/O on command.
//!
//! Every I/O call (`len`, `read`, `write`, `set_len`, `sync_data`) is numbered per kind
//! and overall, so a test can first count the calls of a workload with [`Fault::None`],
//! then replay it once per call with the fault placed exactly there. The lock methods
//! and `close` are always forwarded untouched: without them redb loses its file lock.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// What to break. Call numbers are 0-based and counted from when the backend was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything (used to count calls).
    None,
    /// The `n`th `write` fails without writing anything; later calls work.
    FailWrite(u64),
    /// The `n`th `write` writes only a prefix of its buffer, then fails; later calls work.
    TornWrite(u64),
    /// The `n`th `sync_data` fails (after the data reached the OS); later calls work.
    FailSync(u64),
    /// Every I/O call from the `n`th on (any kind) fails: the disk went away, or the
    /// process died at that instant.
    CrashAt(u64),
    /// The `n`th `write` is torn, and every I/O call after it fails: a crash mid-write.
    TornCrash(u64),
    /// Every I/O call (any kind) numbered `at..at + calls` fails, then the disk works
    /// again by itself: a full disk that is cleaned up while the store keeps running.
    FailFor {
        /// First failing call.
        at: u64,
        /// How many calls fail.
        calls: u64,
    },
    /// Every `read` whose buffer contains `needle` gets the byte at `needle_offset` within
    /// the needle inverted: damage that appears after the file was verified.
    FlipOnRead {
        /// Bytes to look for in read buffers.
        needle: Vec<u8>,
        /// Which byte of the needle to damage.
        needle_offset: usize,
    },
}

/// Counters and the fault plan, shared between the test and the backend (which redb owns).
#[derive(Debug)]
pub struct FaultState {
    fault: Mutex<Fault>,
    /// Every I/O call.
    pub calls: AtomicU64,
    /// `write` calls.
    pub writes: AtomicU64,
    /// `sync_data` calls.
    pub syncs: AtomicU64,
    /// `read` calls.
    pub reads: AtomicU64,
    /// Set once the fault has fired.
    pub fired: AtomicBool,
    /// Set once every later call must fail.
    dead: AtomicBool,
    /// Reads that were damaged by [`Fault::FlipOnRead`].
    pub flipped_reads: AtomicU64,
}

impl FaultState {
    /// A plan with `fault`, counters at zero.
    pub fn new(fault: Fault) -> Arc<Self> {
        Arc::new(FaultState {
            fault: Mutex::new(fault),
            calls: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            fired: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            flipped_reads: AtomicU64::new(0),
        })
    }

    /// Replaces the fault (counters keep running).
    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    fn fault(&self) -> Fault {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The disk works again (after `CrashAt`: a full disk that was cleaned up).
    pub fn revive(&self) {
        self.set_fault(Fault::None);
        self.dead.store(false, Ordering::SeqCst);
        self.fired.store(false, Ordering::SeqCst);
    }

    /// Whether the fault is behind us: a one-shot fault has fired, or every call of a
    /// [`Fault::FailFor`] window has been made. `false` for `None`, `CrashAt`, `TornCrash`
    /// and `FlipOnRead`, which never end by themselves.
    pub fn is_over(&self) -> bool {
        match self.fault() {
            Fault::FailWrite(_) | Fault::TornWrite(_) | Fault::FailSync(_) => self.has_fired(),
            Fault::FailFor { at, calls } => {
                self.calls.load(Ordering::SeqCst) >= at.saturating_add(calls)
            }
            _ => false,
        }
    }

    /// Whether the injected fault has happened.
    pub fn has_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Snapshot of the counters: (calls, writes, syncs, reads).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (
            self.calls.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
            self.syncs.load(Ordering::SeqCst),
            self.reads.load(Ordering::SeqCst),
        )
    }

    /// Numbers a call; fails it if the disk is "dead" or this is the crash point.
    fn enter(&self) -> io::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.dead.load(Ordering::SeqCst) {
            return Err(injected("call after the crash point"));
        }
        match self.fault() {
            Fault::CrashAt(at) if n >= at => {
                self.fired.store(true, Ordering::SeqCst);
                self.dead.store(true, Ordering::SeqCst);
                Err(injected("crash point"))
            }
            Fault::FailFor { at, calls } if n >= at && n - at < calls => {
                self.fired.store(true, Ordering::SeqCst);
                Err(injected("disk full"))
            }
            _ => Ok(()),
        }
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

/// The wrapper. Create it from an open file; hand it to
/// `Store::builder().open_with_backend(..)`.
#[derive(Debug)]
pub struct FaultyBackend {
    inner: FileBackend,
    state: Arc<FaultState>,
}

impl FaultyBackend {
    /// Wraps `file` (opened read + write) with the plan in `state`.
    pub fn new(file: File, state: Arc<FaultState>) -> Result<Self, redb::DatabaseError> {
        Ok(FaultyBackend {
            inner: FileBackend::new(file)?,
            state,
        })
    }

    /// Opens `path` read + write and wraps it.
    pub fn open(path: &std::path::Path, state: Arc<FaultState>) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        FaultyBackend::new(file, state).map_err(io::Error::other)
    }
}

/// Length of the prefix a torn write keeps: varies with the call number, never all of it.
fn torn_len(n: u64, len: usize) -> usize {
    if len <= 1 {
        return 0;
    }
    // A multiplicative hash spreads the cut over the buffer, sector-aligned or not.
    (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % len
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.state.enter()?;
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.state.enter()?;
        self.state.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(offset, out)?;
        if let Fault::FlipOnRead {
            needle,
            needle_offset,
        } = self.state.fault()
        {
            if !needle.is_empty() && out.len() >= needle.len() {
                let hits: Vec<usize> = out
                    .windows(needle.len())
                    .enumerate()
                    .filter(|(_, w)| *w == needle.as_slice())
                    .map(|(i, _)| i)
                    .collect();
                for at in hits {
                    out[at + needle_offset.min(needle.len() - 1)] ^= 0xFF;
                    self.state.fired.store(true, Ordering::SeqCst);
                    self.state.flipped_reads.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.state.enter()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.state.enter()?;
        let n = self.state.syncs.fetch_add(1, Ordering::SeqCst);
        if self.state.fault() == Fault::FailSync(n) {
            self.state.fired.store(true, Ordering::SeqCst);
            return Err(injected("sync_data"));
        }
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.state.enter()?;
        let n = self.state.writes.fetch_add(1, Ordering::SeqCst);
        match self.state.fault() {
            Fault::FailWrite(at) if at == n => {
                self.state.fired.store(true, Ordering::SeqCst);
                Err(injected("write"))
            }
            Fault::TornWrite(at) | Fault::TornCrash(at) if at == n => {
                let keep = torn_len(n, data.len());
                self.inner.write(offset, &data[..keep])?;
                self.state.fired.store(true, Ordering::SeqCst);
                if matches!(self.state.fault(), Fault::TornCrash(_)) {
                    self.state.dead.store(true, Ordering::SeqCst);
                }
                Err(injected("torn write"))
            }
            _ => self.inner.write(offset, data),
        }
    }

    // Locking and close are forwarded untouched: a wrapper that drops them loses the
    // file lock, and a second opener would no longer be refused.

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
