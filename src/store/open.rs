//! Opening and creating store files: owner-only permissions, atomic creation, clear
//! errors for files that are not stores.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use redb::backends::FileBackend;

use std::sync::Arc;

use super::wal::{PageLog, WalBackend};

/// An opened database and, when it has one, its page log (to wait on for durability).
pub(crate) struct Opened {
    pub(crate) db: redb::Database,
    pub(crate) log: Option<Arc<PageLog>>,
}

use crate::error::{Error, Result};

/// How redb should be set up for a file.
#[derive(Debug, Clone)]
pub(crate) struct OpenOptionsRedb {
    pub(crate) cache_size: Option<usize>,
    pub(crate) verify_on_open: bool,
    pub(crate) file_mode: u32,
    /// Log size that triggers a checkpoint; `None`: no page log (redb syncs the file).
    pub(crate) log_checkpoint_bytes: Option<u64>,
}

impl OpenOptionsRedb {
    pub(crate) fn builder(&self) -> redb::Builder {
        let mut b = redb::Builder::new();
        if let Some(bytes) = self.cache_size {
            b.set_cache_size(bytes);
        }
        b.set_check_integrity_on_open(self.verify_on_open);
        b
    }
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Maps an error from opening a file with redb to one that names the path.
pub(crate) fn map_open_error(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::AlreadyOpen {
            path: path.to_owned(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => Error::NotAStore {
            path: path.to_owned(),
            reason: format!("damaged or not a redb file: {reason}"),
        },
        redb::DatabaseError::UpgradeRequired(v) => Error::NotAStore {
            path: path.to_owned(),
            reason: format!("redb file format {v} needs an upgrade by an older redb first"),
        },
        // redb reports a file without its magic number (random bytes, a text file, a
        // truncated header) as an I/O error of kind InvalidData.
        redb::DatabaseError::Storage(redb::StorageError::Io(source))
            if source.kind() == ErrorKind::InvalidData =>
        {
            Error::NotAStore {
                path: path.to_owned(),
                reason: format!("not a redb file: {source}"),
            }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(source)) => Error::Io {
            path: path.to_owned(),
            source,
        },
        other => Error::from(other),
    }
}

/// Opens `path`, creating it atomically if it does not exist. `init` runs on a newly
/// created database before it becomes visible under `path`, so a crash during creation
/// never leaves a half-made store there.
pub(crate) fn open_or_create(
    path: &Path,
    opts: &OpenOptionsRedb,
    init: impl Fn(&redb::Database) -> Result<()>,
) -> Result<Opened> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(Error::NotAStore {
                path: path.to_owned(),
                reason: "is a directory".into(),
            })
        }
        Ok(meta) if meta.len() == 0 => {
            return Err(Error::NotAStore {
                path: path.to_owned(),
                reason:
                    "is an empty file (edgestate never leaves one: it creates stores atomically)"
                        .into(),
            })
        }
        Ok(_) => return open_existing(path, opts, init),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    match create_new(path, opts, &init)? {
        Some(db) => Ok(db),
        // Somebody else created it between our check and our link: open theirs.
        None => open_existing(path, opts, init),
    }
}

/// Opens an existing store file (never creates one).
pub(crate) fn open_existing(
    path: &Path,
    opts: &OpenOptionsRedb,
    init: impl Fn(&redb::Database) -> Result<()>,
) -> Result<Opened> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let inode = inode_of(&file);
    let backend = FileBackend::new(file).map_err(|e| map_open_error(path, e))?;
    let mut new_log = None;
    let (db, log) = match opts.log_checkpoint_bytes {
        Some(limit) => {
            // No page log beside a file that is not a redb database at all.
            refuse_foreign(path, &backend)?;
            // Opened only once the store file is locked: nobody else replays the log.
            let log_path = log_path(path);
            if !log_path.exists() {
                new_log = Some(log_path.clone());
            }
            let log = open_log(&log_path, opts.file_mode)?;
            let (backend, _recovery) =
                WalBackend::open(backend, log, inode, limit).map_err(io(&log_path))?;
            let page_log = backend.log();
            (create_contained(opts, backend), Some(page_log))
        }
        None => (create_contained(opts, backend), None),
    };
    let opened = db.map_err(|e| map_open_error(path, e)).and_then(|db| {
        crate::txn::catch_engine_panic(|| init(&db))
            .map_err(|panic| damaged(path, &panic))?
            .map(|()| Opened { db, log })
    });
    if let (Err(_), Some(new_log)) = (&opened, &new_log) {
        // A file refused as a store keeps no log this call created beside it.
        let _ = std::fs::remove_file(new_log);
    }
    opened
}

/// Opens redb on `backend`; a panic of redb on a damaged file becomes an error.
pub(crate) fn create_contained(
    opts: &OpenOptionsRedb,
    backend: impl redb::StorageBackend,
) -> std::result::Result<redb::Database, redb::DatabaseError> {
    crate::txn::catch_engine_panic(|| opts.builder().create_with_backend(backend)).unwrap_or_else(
        |panic| {
            Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(
                format!("redb panicked opening it: {panic}"),
            )))
        },
    )
}

pub(crate) fn damaged(path: &Path, panic: &str) -> Error {
    Error::NotAStore {
        path: path.to_owned(),
        reason: format!("damaged: redb panicked reading it: {panic}"),
    }
}

/// redb's magic number, the first bytes of every redb file.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Refuses a file without redb's magic number before anything is created beside it.
fn refuse_foreign(path: &Path, backend: &FileBackend) -> Result<()> {
    use redb::StorageBackend;
    let len = backend.len().map_err(io(path))?;
    let mut head = [0u8; REDB_MAGIC.len()];
    if len >= head.len() as u64 {
        backend.read(0, &mut head).map_err(io(path))?;
    }
    if head == REDB_MAGIC {
        return Ok(());
    }
    Err(Error::NotAStore {
        path: path.to_owned(),
        reason: "not a redb file (no redb magic number)".into(),
    })
}

/// The page log beside a store file: `<file name>-wal`.
pub(crate) fn log_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Opens (or creates, durably: its directory entry is synced) the page log.
fn open_log(log_path: &Path, file_mode: u32) -> Result<FileBackend> {
    let existed = log_path.exists();
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    set_mode(&mut options, file_mode);
    let file = options.open(log_path).map_err(io(log_path))?;
    if !existed {
        sync_dir(&parent_dir(log_path))?;
    }
    FileBackend::new(file).map_err(|e| map_open_error(log_path, e))
}

#[cfg(unix)]
fn inode_of(file: &File) -> u64 {
    use std::os::unix::fs::MetadataExt;
    file.metadata().map_or(0, |m| m.ino())
}

#[cfg(not(unix))]
fn inode_of(_file: &File) -> u64 {
    0
}

/// A new, empty, owner-only file next to `path`, named `.<name>.<purpose>.<pid>.<n>`.
pub(super) fn temp_sibling(path: &Path, purpose: &str) -> Result<(PathBuf, File)> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("path", format!("{} has no file name", path.display())))?;
    for attempt in 0..16u32 {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{purpose}.{}.{attempt}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        set_mode(&mut options, 0);
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&tmp)(e)),
        }
    }
    Err(Error::invalid(
        "path",
        "could not pick a temporary file name next to it",
    ))
}

#[cfg(unix)]
fn set_mode(options: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(if mode == 0 { 0o600 } else { mode });
}

#[cfg(not(unix))]
fn set_mode(_options: &mut OpenOptions, _mode: u32) {}

pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Creates the store in a temporary sibling, commits its first transaction durably, then
/// links it into place without replacing anything. Returns `None` if `path` appeared
/// meanwhile.
fn create_new(
    path: &Path,
    opts: &OpenOptionsRedb,
    init: &impl Fn(&redb::Database) -> Result<()>,
) -> Result<Option<Opened>> {
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(Error::Io {
            path: dir,
            source: std::io::Error::new(ErrorKind::NotFound, "directory does not exist"),
        });
    }
    let (tmp, file) = temp_sibling(path, "creating")?;
    #[cfg(unix)]
    if opts.file_mode != 0 {
        use std::os::unix::fs::PermissionsExt;
        // create_new applied the umask; set the mode the caller asked for exactly.
        file.set_permissions(std::fs::Permissions::from_mode(opts.file_mode))
            .map_err(io(&tmp))?;
    }
    let result = (|| {
        let backend = FileBackend::new(file).map_err(|e| map_open_error(&tmp, e))?;
        let db = opts
            .builder()
            .create_with_backend(backend)
            .map_err(|e| map_open_error(&tmp, e))?;
        init(&db)?;
        // A page log left by an earlier store of this name must not be replayed onto
        // this one (its inode may even be reused).
        match std::fs::remove_file(log_path(path)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(path)(e)),
        }
        // A hard link never replaces an existing file, unlike rename.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&tmp);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
            Err(_) => {
                // File systems without hard links: fall back to rename after re-checking.
                if path.exists() {
                    return Ok(None);
                }
                std::fs::rename(&tmp, path).map_err(io(path))?;
            }
        }
        sync_dir(&dir)?;
        if opts.log_checkpoint_bytes.is_none() {
            return Ok(Some(Opened { db, log: None }));
        }
        // Reopen through the page log (the file is complete and durable already).
        drop(db);
        open_existing(path, opts, |_| Ok(())).map(Some)
    })();
    if !matches!(result, Ok(Some(_))) {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(not(unix))]
pub(super) fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}
