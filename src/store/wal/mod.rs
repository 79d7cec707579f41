//! A page log under redb: durable commits become one sequential append.
//!
//! redb makes a commit durable by writing every page the commit touched (a dozen or more
//! scattered 4 KiB writes: each changed B-tree leaf, the branches above it, the table
//! tree, the header) and then calling `sync_data` on the file. [`WalBackend`] sits
//! between redb and the file: each write is kept in memory (`overlay.rs`, where reads
//! find it) and recorded as a frame; `sync_data` appends the recorded frames and a commit
//! mark to a log file beside the store (`<store>-wal`), and a durable caller then waits
//! for a sync of the log: one sequential write and one flush, where redb alone would
//! flush every scattered page. The store file itself is written and synced only at
//! checkpoints, when the log has grown past its limit and on close; then the log starts
//! over. Between checkpoints the store file does not change at all.
//!
//! After a crash, opening replays the log's frames, up to its last complete commit mark,
//! onto the store file, syncs it, and empties the log, before redb reads anything. Every
//! write whose `sync_data` returned is therefore on disk again, in order; writes after it
//! may or may not be, exactly as with a plain file, so redb's own crash recovery sees
//! nothing it would not see without the log. Every commit rewrites redb's header, so the
//! replay also restores the header of the last synced commit.
//!
//! Format. Header (32 bytes): magic (8), salt (8), the store file's inode (8, 0 where
//! unknown), crc32 of the first 24 bytes (4), the store file's fingerprint when the log
//! started (4: crc32 of its length and first 4 KiB; 0 in logs of older builds). A log
//! is replayed onto a store file with its inode, or, when the two files were copied
//! together (new inodes), with its fingerprint: the store file cannot have changed
//! since the log started, so a copy matches and a replaced file does not. Frames: kind (1), offset (8),
//! length (4), crc32 over the salt, the frame head and the data (4), data (length). A
//! frame with another salt is from before the last checkpoint and ends the log; so does
//! a torn or damaged frame. The salt changes at every checkpoint, so the log file is
//! overwritten in place and never shrinks (no metadata to journal once it has grown).

use std::io;
use std::ops::Bound;

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use redb::{BackendError, StorageBackend};

use super::overlay::Overlay;

mod format;

pub(crate) use format::HEADER_LEN;
use format::{
    crc, fingerprint, frame_head, header, new_salt, read_frame, read_header, KIND_COMMIT,
    KIND_SET_LEN, KIND_WRITE,
};

/// Recorded frames are written to the log (unsynced) once they exceed this, so that a
/// long run of relaxed commits does not hold them all in memory.
const PENDING_LIMIT: usize = 4 << 20;

/// The default log size that triggers a checkpoint.
pub(crate) const DEFAULT_CHECKPOINT_BYTES: u64 = 32 << 20;

/// A redb storage backend that logs pages (see the module docs).
pub(crate) struct WalBackend<M: StorageBackend> {
    main: M,
    shared: Arc<PageLog>,
}

impl<M: StorageBackend> std::fmt::Debug for WalBackend<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalBackend").finish_non_exhaustive()
    }
}

/// The log, shared between the backend (owned by redb) and the store, which waits on it
/// for durability outside redb's write lock.
pub(crate) struct PageLog {
    file: Box<dyn StorageBackend>,
    state: Mutex<LogState>,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

impl std::fmt::Debug for PageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageLog").finish_non_exhaustive()
    }
}

struct LogState {
    salt: u64,
    inode: u64,
    /// Where the next frame goes in the log file.
    end: u64,
    /// Frames recorded since the last write to the log file.
    pending: Vec<u8>,
    /// The log file's length (it never shrinks).
    file_len: u64,
    checkpoint_bytes: u64,
    /// Bytes ever appended to the log (across checkpoints): positions waiters compare.
    written: u64,
    /// `written` at the last commit mark.
    committed: u64,
    /// Pages written since the last checkpoint, not yet in the store file.
    overlay: Overlay,
    /// The length redb sees.
    len: u64,
    /// The store file's length on disk (as of the last checkpoint).
    main_len: u64,
    /// A sync failed: every later call fails until the store is reopened.
    poisoned: bool,
}

#[derive(Default)]
struct SyncState {
    /// Every commit up to this log position is durable.
    durable: u64,
    /// A sync covering positions up to here failed.
    failed: u64,
    /// A thread is syncing the log file now.
    syncing: bool,
}

/// What [`WalBackend::open`] found in the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Frames replayed onto the store file.
    pub(crate) frames: u64,
    /// Commit marks among them.
    pub(crate) commits: u64,
}

fn poisoned() -> io::Error {
    io::Error::other("an earlier sync of the page log failed; reopen the store")
}

impl<M: StorageBackend> WalBackend<M> {
    /// Replays whatever `log` holds onto `main` (up to its last commit mark), syncs
    /// `main`, and starts a new log. `inode` identifies the store file (0: unknown).
    pub(crate) fn open(
        main: M,
        log: impl StorageBackend,
        inode: u64,
        checkpoint_bytes: u64,
    ) -> io::Result<(Self, Recovery)> {
        let len = log.len()?;
        let mut recovery = Recovery::default();
        let mut salt = 0;
        let mut head = [0u8; HEADER_LEN as usize];
        if len >= HEADER_LEN {
            log.read(0, &mut head)?;
        }
        if let Some(found) = read_header(&head, inode, fingerprint(&main)?) {
            salt = found;
            // Frames count only up to the last commit mark: those of a commit cut short
            // are held back until its mark, and dropped without one.
            let mut uncommitted = Vec::new();
            let mut at = HEADER_LEN;
            while let Some((frame, next)) = read_frame(&log, at, len, found)? {
                at = next;
                if frame.kind != KIND_COMMIT {
                    uncommitted.push(frame);
                    continue;
                }
                for frame in uncommitted.drain(..) {
                    match frame.kind {
                        KIND_WRITE => main.write(frame.offset, &frame.data)?,
                        _ => main.set_len(frame.offset)?,
                    }
                    recovery.frames += 1;
                }
                recovery.commits += 1;
                recovery.frames += 1;
            }
            if recovery.frames > 0 {
                main.sync_data()?;
            }
        }
        let main_len = main.len()?;
        let shared = Arc::new(PageLog {
            file: Box::new(log),
            state: Mutex::new(LogState {
                salt,
                inode,
                end: HEADER_LEN,
                pending: Vec::new(),
                file_len: len,
                checkpoint_bytes,
                written: 0,
                committed: 0,
                overlay: Overlay::default(),
                len: main_len,
                main_len,
                poisoned: false,
            }),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
        });
        {
            let mut state = shared.state.lock();
            shared.restart(&mut state, fingerprint(&main)?)?;
        }
        Ok((WalBackend { main, shared }, recovery))
    }

    /// The log, for waiting on durability.
    pub(crate) fn log(&self) -> Arc<PageLog> {
        Arc::clone(&self.shared)
    }

    /// Writes the pages held in memory to the store file, syncs it, and starts the log
    /// over: everything logged so far is now in the store file itself.
    fn checkpoint(&self, state: &mut LogState) -> io::Result<()> {
        let log = &self.shared;
        log.write_pending(state)?;
        if state.len != state.main_len {
            self.main.set_len(state.len)?;
        }
        for (offset, bytes) in state.overlay.ranges() {
            self.main.write(offset, bytes)?;
        }
        self.main.sync_data()?;
        state.overlay.clear();
        state.main_len = state.len;
        log.restart(state, fingerprint(&self.main)?)?;
        log.mark_durable(state.written);
        Ok(())
    }

    fn checked(&self) -> io::Result<parking_lot::MutexGuard<'_, LogState>> {
        let state = self.shared.state.lock();
        if state.poisoned {
            return Err(poisoned());
        }
        Ok(state)
    }
}

impl PageLog {
    fn record(&self, state: &mut LogState, kind: u8, offset: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(io::Error::other)?;
        let head = frame_head(kind, offset, len);
        state.pending.extend_from_slice(&head);
        state
            .pending
            .extend_from_slice(&crc(state.salt, &[&head, data]).to_le_bytes());
        state.pending.extend_from_slice(data);
        if state.pending.len() > PENDING_LIMIT {
            self.write_pending(state)?;
        }
        Ok(())
    }

    /// Writes `data` at `offset` of the log file, growing the file first where needed.
    fn write_at(&self, state: &mut LogState, offset: u64, data: &[u8]) -> io::Result<()> {
        let needed = offset + data.len() as u64;
        if needed > state.file_len {
            // Grow in steps, so that the file's size (metadata a sync must also write)
            // changes on few syncs.
            let grown = needed.max(state.file_len + (4 << 20));
            self.file.set_len(grown)?;
            state.file_len = grown;
        }
        self.file.write(offset, data)
    }

    fn write_pending(&self, state: &mut LogState) -> io::Result<()> {
        if state.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut state.pending);
        let written = self.write_at(state, state.end, &pending);
        if let Err(e) = written {
            state.poisoned = true;
            return Err(e);
        }
        state.end += pending.len() as u64;
        state.written += pending.len() as u64;
        state.pending = pending;
        state.pending.clear();
        Ok(())
    }

    /// A new salt and header: every frame in the file is now stale. `fingerprint`: of
    /// the store file as it now is (it stays so until the next checkpoint).
    fn restart(&self, state: &mut LogState, fingerprint: u32) -> io::Result<()> {
        state.pending.clear();
        state.salt = new_salt(state.salt);
        let header = header(state.salt, state.inode, fingerprint);
        self.write_at(state, 0, &header)?;
        self.file.sync_data()?;
        state.end = HEADER_LEN;
        Ok(())
    }

    fn mark_durable(&self, position: u64) {
        let mut sync = self.sync.lock();
        sync.durable = sync.durable.max(position);
        drop(sync);
        self.synced.notify_all();
    }

    /// The log position of the last commit mark.
    pub(crate) fn committed(&self) -> u64 {
        self.state.lock().committed
    }

    /// Returns once every commit up to log position `position` is durable: the first
    /// waiter syncs the log file for everyone who committed before the sync began; the
    /// others wait for it (group commit, outside redb's write lock).
    pub(crate) fn wait_durable(&self, position: u64) -> io::Result<()> {
        let mut sync = self.sync.lock();
        loop {
            if sync.durable >= position {
                return Ok(());
            }
            if sync.failed >= position {
                return Err(io::Error::other(
                    "the shared sync of the page log failed; reopen to learn whether this commit landed",
                ));
            }
            if sync.syncing {
                self.synced.wait(&mut sync);
                continue;
            }
            sync.syncing = true;
            drop(sync);
            let target = self.state.lock().written;
            let outcome = self.file.sync_data();
            sync = self.sync.lock();
            sync.syncing = false;
            match outcome {
                Ok(()) => sync.durable = sync.durable.max(target),
                Err(_) => {
                    sync.failed = sync.failed.max(target);
                    self.state.lock().poisoned = true;
                }
            }
            self.synced.notify_all();
        }
    }
}

impl<M: StorageBackend> StorageBackend for WalBackend<M> {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.checked()?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let state = self.checked()?;
        let end = offset + out.len() as u64;
        if end > state.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read past the end of the store file",
            ));
        }
        if state.overlay.read_whole(offset, out) {
            return Ok(());
        }
        let on_disk = end.min(state.main_len);
        if offset < on_disk {
            self.main
                .read(offset, &mut out[..(on_disk - offset) as usize])?;
            out[(on_disk - offset) as usize..].fill(0);
        } else {
            out.fill(0);
        }
        state.overlay.patch(offset, out);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut state = self.checked()?;
        if len < state.len {
            state.overlay.truncate(len);
        }
        state.len = len;
        self.shared.record(&mut state, KIND_SET_LEN, len, &[])
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut state = self.checked()?;
        let log = &self.shared;
        log.record(&mut state, KIND_COMMIT, 0, &[])?;
        log.write_pending(&mut state)?;
        state.committed = state.written;
        if state.end >= state.checkpoint_bytes
            || state.overlay.bytes() as u64 >= state.checkpoint_bytes
        {
            if let Err(e) = self.checkpoint(&mut state) {
                state.poisoned = true;
                return Err(e);
            }
        }
        // The log file is synced by whoever waits for this commit (`wait_durable`),
        // outside redb's write lock. Nothing reaches the store file before that sync
        // (pages stay in memory until a checkpoint), so a crash in between loses this
        // commit whole and nothing else.
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut state = self.checked()?;
        state.overlay.write(offset, data);
        let end = offset + data.len() as u64;
        if end > state.len {
            state.len = end;
        }
        self.shared.record(&mut state, KIND_WRITE, offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        // Leave a store file that is complete on its own, and an empty log.
        let checkpointed = match self.checked() {
            Ok(mut state) => self.checkpoint(&mut state),
            Err(e) => Err(e),
        };
        let closed = self.main.close();
        let log_closed = self.shared.file.close();
        checkpointed.and(closed).and(log_closed)
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.main.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.main.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.main.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.main.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.main.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.main.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;

    fn image(b: &dyn StorageBackend) -> Vec<u8> {
        let mut out = vec![0; b.len().unwrap() as usize];
        b.read(0, &mut out).unwrap();
        out
    }

    fn backend_with(bytes: &[u8]) -> InMemoryBackend {
        let b = InMemoryBackend::new();
        b.set_len(bytes.len() as u64).unwrap();
        b.write(0, bytes).unwrap();
        b
    }

    fn open(
        main: InMemoryBackend,
        log: InMemoryBackend,
        limit: u64,
    ) -> (WalBackend<InMemoryBackend>, Recovery) {
        WalBackend::open(main, log, 7, limit).unwrap()
    }

    #[test]
    fn committed_writes_are_replayed_and_later_ones_are_not() {
        let (wal, _) = open(InMemoryBackend::new(), InMemoryBackend::new(), u64::MAX);
        wal.set_len(16).unwrap();
        wal.write(0, b"aaaa").unwrap();
        wal.sync_data().unwrap();
        wal.write(4, b"bbbb").unwrap(); // no commit mark after it
        wal.shared
            .write_pending(&mut wal.shared.state.lock())
            .unwrap();
        // Nothing reached the store file yet: the pages wait in memory for a checkpoint.
        assert_eq!(wal.main.len().unwrap(), 0);
        let mut seen = [0u8; 8];
        wal.read(0, &mut seen).unwrap();
        assert_eq!(&seen, b"aaaabbbb");

        let log = image(wal.shared.file.as_ref());
        let (recovered, rec) = open(InMemoryBackend::new(), backend_with(&log), u64::MAX);
        assert_eq!(rec.commits, 1);
        let mut out = [0u8; 8];
        recovered.read(0, &mut out).unwrap();
        assert_eq!(&out, b"aaaa\0\0\0\0");
    }

    #[test]
    fn a_checkpoint_moves_the_pages_into_the_store_file_and_empties_the_log() {
        let (wal, _) = open(InMemoryBackend::new(), InMemoryBackend::new(), 1);
        wal.set_len(8).unwrap();
        wal.write(0, b"12345678").unwrap();
        wal.sync_data().unwrap(); // past the 1-byte limit: checkpoint
        assert_eq!(wal.shared.state.lock().end, HEADER_LEN);
        assert_eq!(image(&wal.main), b"12345678");
        let log = image(wal.shared.file.as_ref());
        let (again, rec) = open(backend_with(&image(&wal.main)), backend_with(&log), 1);
        assert_eq!(rec, Recovery::default());
        let mut out = [0u8; 8];
        again.read(0, &mut out).unwrap();
        assert_eq!(&out, b"12345678");
    }

    #[test]
    fn torn_or_foreign_logs_replay_nothing_beyond_the_damage() {
        let (wal, _) = open(InMemoryBackend::new(), InMemoryBackend::new(), u64::MAX);
        wal.set_len(8).unwrap();
        wal.write(0, b"first...").unwrap();
        wal.sync_data().unwrap();
        wal.write(0, b"second..").unwrap();
        wal.sync_data().unwrap();
        let log = image(wal.shared.file.as_ref());
        let end = wal.shared.state.lock().end as usize;
        for cut in HEADER_LEN as usize..end {
            let (r, rec) = open(InMemoryBackend::new(), backend_with(&log[..cut]), u64::MAX);
            assert!(rec.commits <= 2);
            let mut out = [0u8; 8];
            if r.len().unwrap() >= 8 {
                r.read(0, &mut out).unwrap();
                assert!(&out == b"first..." || &out == b"second..", "{out:?}");
            }
        }
        // A log beside another store file (another inode, other content) is ignored.
        let (_, rec) =
            WalBackend::open(backend_with(b"another"), backend_with(&log), 8, u64::MAX).unwrap();
        assert_eq!(rec, Recovery::default());
    }

    #[test]
    fn a_log_copied_with_its_store_file_is_replayed_and_one_beside_a_replaced_file_is_not() {
        let base = backend_with(b"checkpointed state.");
        let (wal, _) = open(base, InMemoryBackend::new(), u64::MAX);
        wal.write(0, b"committed!").unwrap();
        wal.sync_data().unwrap();
        let log = image(wal.shared.file.as_ref());
        let store = image(&wal.main);
        assert_eq!(
            store, b"checkpointed state.",
            "nothing reaches the file before a checkpoint"
        );

        // Both files copied elsewhere (new inode): the log is replayed.
        let (copy, rec) =
            WalBackend::open(backend_with(&store), backend_with(&log), 99, u64::MAX).unwrap();
        assert_eq!(rec.commits, 1);
        let mut out = [0u8; 10];
        copy.read(0, &mut out).unwrap();
        assert_eq!(&out, b"committed!");

        // The store file replaced by another one (an older backup) beside the log, new
        // inode: the log is not replayed onto it.
        let (replaced, rec) = WalBackend::open(
            backend_with(b"an older backup....."),
            backend_with(&log),
            99,
            u64::MAX,
        )
        .unwrap();
        assert_eq!(rec, Recovery::default());
        replaced.read(0, &mut out).unwrap();
        assert_eq!(&out, b"an older b");

        // A log of an older build (no fingerprint) still needs the same inode.
        let mut old_log = log.clone();
        old_log[28..32].fill(0);
        let (_, rec) =
            WalBackend::open(backend_with(&store), backend_with(&old_log), 99, u64::MAX).unwrap();
        assert_eq!(rec, Recovery::default());
        let (_, rec) =
            WalBackend::open(backend_with(&store), backend_with(&old_log), 7, u64::MAX).unwrap();
        assert_eq!(rec.commits, 1);
    }

    #[test]
    fn waiting_for_durability_syncs_once_for_everyone_before() {
        let (wal, _) = open(InMemoryBackend::new(), InMemoryBackend::new(), u64::MAX);
        let log = wal.log();
        wal.set_len(4).unwrap();
        wal.write(0, b"abcd").unwrap();
        wal.sync_data().unwrap();
        let first = log.committed();
        wal.write(0, b"efgh").unwrap();
        wal.sync_data().unwrap();
        let second = log.committed();
        assert!(second > first);
        log.wait_durable(first).unwrap();
        // The sync covered everything written when it began.
        assert!(log.sync.lock().durable >= second);
        log.wait_durable(second).unwrap();
    }
}
