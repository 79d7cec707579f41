//! A page log under redb: durable commits become one sequential append.
//!
//! redb makes a commit durable by writing every page the commit touched (a dozen or more
//! scattered 4 KiB writes: each changed B-tree leaf, the branches above it, the table
//! tree, the header) and then calling `sync_data` on the file. [`WalBackend`] sits
//! between redb and the file: each write goes to the file at once (so reads see it, from
//! the page cache) and is also recorded as a frame in memory; `sync_data` appends the
//! recorded frames and a commit mark to a log file beside the store (`<store>-wal`) and
//! syncs only the log: one sequential write and one flush, where redb alone would flush
//! every scattered page. The store file itself is synced at checkpoints, when the log
//! has grown past its limit and on close; then the log starts over.
//!
//! After a crash, opening replays the log's frames, up to its last complete commit mark,
//! onto the store file, syncs it, and empties the log, before redb reads anything. Every
//! write whose `sync_data` returned is therefore on disk again, in order; writes after it
//! may or may not be, exactly as with a plain file, so redb's own crash recovery sees
//! nothing it would not see without the log. Every commit rewrites redb's header, so the
//! replay also restores the header of the last synced commit.
//!
//! Format. Header (32 bytes): magic (8), salt (8), the store file's inode (8, 0 where
//! unknown), crc32 of the first 24 bytes (4), zero (4). Frames: kind (1), offset (8),
//! length (4), crc32 over the salt, the frame head and the data (4), data (length). A
//! frame with another salt is from before the last checkpoint and ends the log; so does
//! a torn or damaged frame. The salt changes at every checkpoint, so the log file is
//! overwritten in place and never shrinks (no metadata to journal once it has grown).

use std::io;
use std::ops::Bound;

use parking_lot::Mutex;
use redb::{BackendError, StorageBackend};

const MAGIC: [u8; 8] = *b"edgeWAL1";
/// Bytes of the log header.
pub(crate) const HEADER_LEN: u64 = 32;
const FRAME_HEAD: usize = 17;
const KIND_WRITE: u8 = 1;
const KIND_SET_LEN: u8 = 2;
const KIND_COMMIT: u8 = 3;
/// Recorded frames are written to the log (unsynced) once they exceed this, so that a
/// long run of relaxed commits does not hold them all in memory.
const PENDING_LIMIT: usize = 4 << 20;

/// The default log size that triggers a checkpoint.
pub(crate) const DEFAULT_CHECKPOINT_BYTES: u64 = 64 << 20;

/// A redb storage backend that logs pages to a second backend (see the module docs).
pub(crate) struct WalBackend<M: StorageBackend, W: StorageBackend> {
    main: M,
    log: Mutex<Log<W>>,
}

impl<M: StorageBackend, W: StorageBackend> std::fmt::Debug for WalBackend<M, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalBackend").finish_non_exhaustive()
    }
}

struct Log<W: StorageBackend> {
    file: W,
    salt: u64,
    inode: u64,
    /// Where the next frame goes in the log file.
    end: u64,
    /// Frames recorded since the last write to the log file.
    pending: Vec<u8>,
    /// The log file's length (it never shrinks).
    file_len: u64,
    checkpoint_bytes: u64,
}

/// What [`WalBackend::open`] found in the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Frames replayed onto the store file.
    pub(crate) frames: u64,
    /// Commit marks among them.
    pub(crate) commits: u64,
}

fn crc(salt: u64, parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn frame_head(kind: u8, offset: u64, len: u32) -> [u8; 13] {
    let mut head = [0u8; 13];
    head[0] = kind;
    head[1..9].copy_from_slice(&offset.to_le_bytes());
    head[9..13].copy_from_slice(&len.to_le_bytes());
    head
}

fn new_salt(previous: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Never the previous salt, whatever the clock says.
    let salt = nanos ^ (u64::from(std::process::id()) << 32) ^ previous.rotate_left(17);
    if salt == previous {
        salt.wrapping_add(1)
    } else {
        salt
    }
}

/// A frame read back from the log.
struct Frame<'a> {
    kind: u8,
    offset: u64,
    data: &'a [u8],
}

/// The valid frames of a log image, in order, up to the first invalid one; with the
/// byte offset after each.
fn frames(image: &[u8], salt: u64) -> Vec<(Frame<'_>, usize)> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN as usize;
    while at + FRAME_HEAD <= image.len() {
        let head = &image[at..at + 13];
        let kind = head[0];
        let offset = u64::from_le_bytes(head[1..9].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(head[9..13].try_into().unwrap_or_default()) as usize;
        let stored = u32::from_le_bytes(image[at + 13..at + 17].try_into().unwrap_or_default());
        let start = at + FRAME_HEAD;
        let Some(data) = start.checked_add(len).and_then(|end| image.get(start..end)) else {
            break;
        };
        if !matches!(kind, KIND_WRITE | KIND_SET_LEN | KIND_COMMIT)
            || crc(salt, &[head, data]) != stored
        {
            break;
        }
        at = start + len;
        out.push((Frame { kind, offset, data }, at));
    }
    out
}

fn header(salt: u64, inode: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..16].copy_from_slice(&salt.to_le_bytes());
    h[16..24].copy_from_slice(&inode.to_le_bytes());
    let sum = crc(0, &[&h[..24]]);
    h[24..28].copy_from_slice(&sum.to_le_bytes());
    h
}

/// The salt of a valid header for `inode`, if the image starts with one.
fn read_header(image: &[u8], inode: u64) -> Option<u64> {
    let h = image.get(..HEADER_LEN as usize)?;
    if h[..8] != MAGIC || crc(0, &[&h[..24]]).to_le_bytes() != h[24..28] {
        return None;
    }
    let logged_inode = u64::from_le_bytes(h[16..24].try_into().ok()?);
    // A log written for another file (the store was replaced) is not replayed.
    if inode != 0 && logged_inode != 0 && logged_inode != inode {
        return None;
    }
    Some(u64::from_le_bytes(h[8..16].try_into().ok()?))
}

impl<M: StorageBackend, W: StorageBackend> WalBackend<M, W> {
    /// Replays whatever `log` holds onto `main` (up to its last commit mark), syncs
    /// `main`, and starts a new log. `inode` identifies the store file (0: unknown).
    pub(crate) fn open(
        main: M,
        log: W,
        inode: u64,
        checkpoint_bytes: u64,
    ) -> io::Result<(Self, Recovery)> {
        let len = log.len()?;
        let mut image = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
        log.read(0, &mut image)?;
        let mut recovery = Recovery::default();
        let mut salt = 0;
        if let Some(found) = read_header(&image, inode) {
            salt = found;
            let frames = frames(&image, found);
            let last_commit = frames
                .iter()
                .rposition(|(f, _)| f.kind == KIND_COMMIT)
                .map_or(0, |i| i + 1);
            for (frame, _) in &frames[..last_commit] {
                match frame.kind {
                    KIND_WRITE => main.write(frame.offset, frame.data)?,
                    KIND_SET_LEN => main.set_len(frame.offset)?,
                    _ => recovery.commits += 1,
                }
                recovery.frames += 1;
            }
            if recovery.frames > 0 {
                main.sync_data()?;
            }
        }
        let backend = WalBackend {
            main,
            log: Mutex::new(Log {
                file: log,
                salt,
                inode,
                end: HEADER_LEN,
                pending: Vec::new(),
                file_len: len,
                checkpoint_bytes,
            }),
        };
        backend.log.lock().restart()?;
        Ok((backend, recovery))
    }

    /// Syncs the store file and starts the log over: everything logged so far is now in
    /// the store file itself.
    fn checkpoint(&self, log: &mut Log<W>) -> io::Result<()> {
        log.write_pending()?;
        self.main.sync_data()?;
        log.restart()
    }
}

impl<W: StorageBackend> Log<W> {
    fn record(&mut self, kind: u8, offset: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(io::Error::other)?;
        let head = frame_head(kind, offset, len);
        self.pending.extend_from_slice(&head);
        self.pending
            .extend_from_slice(&crc(self.salt, &[&head, data]).to_le_bytes());
        self.pending.extend_from_slice(data);
        if self.pending.len() > PENDING_LIMIT {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Writes `data` at `offset`, growing the file first where needed.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let needed = offset + data.len() as u64;
        if needed > self.file_len {
            self.file.set_len(needed)?;
            self.file_len = needed;
        }
        self.file.write(offset, data)
    }

    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let written = self.write_at(self.end, &pending);
        self.pending = pending;
        written?;
        self.end += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// A new salt and header: every frame in the file is now stale.
    fn restart(&mut self) -> io::Result<()> {
        self.pending.clear();
        self.salt = new_salt(self.salt);
        self.write_at(0, &header(self.salt, self.inode))?;
        self.file.sync_data()?;
        self.end = HEADER_LEN;
        Ok(())
    }
}

impl<M: StorageBackend, W: StorageBackend> StorageBackend for WalBackend<M, W> {
    fn len(&self) -> Result<u64, io::Error> {
        self.main.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.main.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.main.set_len(len)?;
        self.log.lock().record(KIND_SET_LEN, len, &[])
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut log = self.log.lock();
        log.record(KIND_COMMIT, 0, &[])?;
        log.write_pending()?;
        log.file.sync_data()?;
        if log.end >= log.checkpoint_bytes {
            self.checkpoint(&mut log)?;
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.main.write(offset, data)?;
        self.log.lock().record(KIND_WRITE, offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        // Leave a store file that is complete on its own, and an empty log.
        let checkpointed = {
            let mut log = self.log.lock();
            self.checkpoint(&mut log)
        };
        let closed = self.main.close();
        let log_closed = self.log.lock().file.close();
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

    fn image(b: &InMemoryBackend) -> Vec<u8> {
        let mut out = vec![0; b.len().unwrap() as usize];
        b.read(0, &mut out).unwrap();
        out
    }

    /// A backend sharing its bytes with the test, so a "crash" can reopen them.
    fn reopen(main: &InMemoryBackend, log: &InMemoryBackend) -> (InMemoryBackend, InMemoryBackend) {
        let (m, l) = (InMemoryBackend::new(), InMemoryBackend::new());
        let (mi, li) = (image(main), image(log));
        m.set_len(mi.len() as u64).unwrap();
        m.write(0, &mi).unwrap();
        l.set_len(li.len() as u64).unwrap();
        l.write(0, &li).unwrap();
        (m, l)
    }

    #[test]
    fn synced_writes_are_replayed_and_unsynced_ones_are_not() {
        let (wal, _) =
            WalBackend::open(InMemoryBackend::new(), InMemoryBackend::new(), 0, u64::MAX).unwrap();
        wal.set_len(16).unwrap();
        wal.write(0, b"aaaa").unwrap();
        wal.sync_data().unwrap();
        wal.write(4, b"bbbb").unwrap(); // never synced
                                        // The store file "loses" everything (power cut before any of it was flushed).
        let lost_main = InMemoryBackend::new();
        let log_copy = reopen(&InMemoryBackend::new(), &wal.log.lock().file).1;
        let (recovered, rec) = WalBackend::open(lost_main, log_copy, 0, u64::MAX).unwrap();
        assert_eq!(rec.commits, 1);
        let mut out = [0u8; 8];
        recovered.read(0, &mut out).unwrap();
        assert_eq!(&out, b"aaaa\0\0\0\0");
    }

    #[test]
    fn a_checkpoint_empties_the_log_and_keeps_the_data() {
        let (wal, _) =
            WalBackend::open(InMemoryBackend::new(), InMemoryBackend::new(), 0, 1).unwrap();
        wal.set_len(8).unwrap();
        wal.write(0, b"12345678").unwrap();
        wal.sync_data().unwrap(); // past the 1-byte limit: checkpoint
        assert_eq!(wal.log.lock().end, HEADER_LEN);
        let (m, l) = {
            let log = wal.log.lock();
            reopen(&wal.main, &log.file)
        };
        let (again, rec) = WalBackend::open(m, l, 0, 1).unwrap();
        assert_eq!(rec, Recovery::default());
        let mut out = [0u8; 8];
        again.read(0, &mut out).unwrap();
        assert_eq!(&out, b"12345678");
    }

    #[test]
    fn torn_or_foreign_logs_replay_nothing_beyond_the_damage() {
        let (wal, _) =
            WalBackend::open(InMemoryBackend::new(), InMemoryBackend::new(), 7, u64::MAX).unwrap();
        wal.set_len(8).unwrap();
        wal.write(0, b"first...").unwrap();
        wal.sync_data().unwrap();
        wal.write(0, b"second..").unwrap();
        wal.sync_data().unwrap();
        let log = image(&wal.log.lock().file);
        let end = wal.log.lock().end as usize;
        for cut in HEADER_LEN as usize..end {
            let l = InMemoryBackend::new();
            l.set_len(cut as u64).unwrap();
            l.write(0, &log[..cut]).unwrap();
            let (r, rec) = WalBackend::open(InMemoryBackend::new(), l, 7, u64::MAX).unwrap();
            assert!(rec.commits <= 2);
            let mut out = [0u8; 8];
            if r.len().unwrap() >= 8 {
                r.read(0, &mut out).unwrap();
                assert!(&out == b"first..." || &out == b"second..", "{out:?}");
            }
        }
        // A log written for another file is ignored.
        let l = InMemoryBackend::new();
        l.set_len(log.len() as u64).unwrap();
        l.write(0, &log).unwrap();
        let (_, rec) = WalBackend::open(InMemoryBackend::new(), l, 8, u64::MAX).unwrap();
        assert_eq!(rec, Recovery::default());
    }
}
