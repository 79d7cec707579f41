//! The page log's on-disk format: its header, its frames and how they are read back
//! (see the parent module's docs for the layout and the rules).

use std::io;

use redb::StorageBackend;

const MAGIC: [u8; 8] = *b"edgeWAL1";
/// Bytes of the log header.
pub(crate) const HEADER_LEN: u64 = 32;
/// Bytes of a frame's head: kind, offset, length, crc32.
const FRAME_HEAD: usize = 17;
/// A frame holding bytes redb wrote at `offset`.
pub(super) const KIND_WRITE: u8 = 1;
/// A frame setting the store file's length to `offset`.
pub(super) const KIND_SET_LEN: u8 = 2;
/// A commit mark: the frames before it make one synced commit.
pub(super) const KIND_COMMIT: u8 = 3;

/// crc32 of `parts` under the log's current `salt`.
pub(super) fn crc(salt: u64, parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// A frame's head without its crc: kind, offset, length.
pub(super) fn frame_head(kind: u8, offset: u64, len: u32) -> [u8; 13] {
    let mut head = [0u8; 13];
    head[0] = kind;
    head[1..9].copy_from_slice(&offset.to_le_bytes());
    head[9..13].copy_from_slice(&len.to_le_bytes());
    head
}

/// A salt for a new log generation: never the previous one.
pub(super) fn new_salt(previous: u64) -> u64 {
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
pub(super) struct Frame {
    pub(super) kind: u8,
    pub(super) offset: u64,
    pub(super) data: Vec<u8>,
}

/// The valid frame of this `salt` starting at `at` of the log, if there is one, and the
/// position after it. Reads only that frame: replaying a log costs what its valid frames
/// hold, not the file's size (after a clean close, one frame head).
pub(super) fn read_frame(
    log: &impl StorageBackend,
    at: u64,
    log_len: u64,
    salt: u64,
) -> io::Result<Option<(Frame, u64)>> {
    let data_start = at + FRAME_HEAD as u64;
    if data_start > log_len {
        return Ok(None);
    }
    let mut head = [0u8; FRAME_HEAD];
    log.read(at, &mut head)?;
    let kind = head[0];
    let offset = u64::from_le_bytes(head[1..9].try_into().unwrap_or_default());
    let len = u32::from_le_bytes(head[9..13].try_into().unwrap_or_default());
    let stored = u32::from_le_bytes(head[13..17].try_into().unwrap_or_default());
    let end = data_start + u64::from(len);
    // A damaged length must not make us allocate or read past the file.
    if !matches!(kind, KIND_WRITE | KIND_SET_LEN | KIND_COMMIT) || end > log_len {
        return Ok(None);
    }
    let mut data = vec![0u8; len as usize];
    log.read(data_start, &mut data)?;
    if crc(salt, &[&head[..13], &data]) != stored {
        return Ok(None);
    }
    Ok(Some((Frame { kind, offset, data }, end)))
}

/// What identifies the store file's content when a log starts (see the module docs):
/// never 0, which marks a log without one.
pub(super) fn fingerprint(main: &impl StorageBackend) -> io::Result<u32> {
    let len = main.len()?;
    let mut head = vec![0u8; usize::try_from(len.min(4096)).unwrap_or(4096)];
    main.read(0, &mut head)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&head);
    Ok(hasher.finalize().max(1))
}

pub(super) fn header(salt: u64, inode: u64, fingerprint: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..16].copy_from_slice(&salt.to_le_bytes());
    h[16..24].copy_from_slice(&inode.to_le_bytes());
    let sum = crc(0, &[&h[..24]]);
    h[24..28].copy_from_slice(&sum.to_le_bytes());
    h[28..32].copy_from_slice(&fingerprint.to_le_bytes());
    h
}

/// The salt of a valid header for the store file with `inode` and `fingerprint`.
pub(super) fn read_header(
    h: &[u8; HEADER_LEN as usize],
    inode: u64,
    fingerprint: u32,
) -> Option<u64> {
    if h[..8] != MAGIC || crc(0, &[&h[..24]]).to_le_bytes() != h[24..28] {
        return None;
    }
    let logged_inode = u64::from_le_bytes(h[16..24].try_into().ok()?);
    let logged_fingerprint = u32::from_le_bytes(h[28..32].try_into().ok()?);
    let same_inode = inode == 0 || logged_inode == 0 || logged_inode == inode;
    // Copied together with its store file: new inode, same content.
    let same_content = logged_fingerprint != 0 && logged_fingerprint == fingerprint;
    // A log written for another file (the store file was replaced) is not replayed.
    if !same_inode && !same_content {
        return None;
    }
    Some(u64::from_le_bytes(h[8..16].try_into().ok()?))
}
