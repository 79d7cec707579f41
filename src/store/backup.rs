//! Online backup: [`Store::backup_to`] copies one committed state of the store into a
//! new file while writers continue.
//!
//! The copy is made from one read transaction (so it is exactly the state of one
//! commit), record by record into a fresh redb file created in a temporary sibling of
//! the destination with owner-only permissions. That file is committed durably, closed,
//! synced, opened again and checked (page checksums and record counts) and only then
//! renamed into place, after which the directory is synced. A failure at any step leaves
//! nothing under the destination path.

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use redb::{
    Key, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    ReadableTableMetadata, TableDefinition, Value,
};

use super::open::{io, parent_dir, sync_dir, temp_sibling};
use super::Store;
use crate::error::{Error, Result};
use crate::maintenance::BackupReport;
use crate::schema::{self, Table};

fn copy_table<K: Key + 'static, V: Value + 'static>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64> {
    let src = from.open_table(def)?;
    let mut dst = to.open_table(def)?;
    for row in src.iter()? {
        let (k, v) = row?;
        dst.insert(k.value(), v.value())?;
    }
    Ok(src.len()?)
}

fn copy_multimap<K: Key + 'static, V: Key + 'static>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    def: MultimapTableDefinition<K, V>,
) -> Result<u64> {
    let src = from.open_multimap_table(def)?;
    let mut dst = to.open_multimap_table(def)?;
    for row in src.iter()? {
        let (k, values) = row?;
        for v in values {
            dst.insert(k.value(), v?.value())?;
        }
    }
    Ok(src.len()?)
}

/// Copies every table of edgestate's schema, in [`Table::ALL`] order.
fn copy_all(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<Vec<(Table, u64)>> {
    Table::ALL
        .iter()
        .map(|&table| {
            let n = match table {
                Table::Meta => copy_table(from, to, schema::META)?,
                Table::Kv => copy_table(from, to, schema::KV.def)?,
                Table::Expiry => copy_table(from, to, schema::EXPIRY)?,
                Table::Contexts => copy_table(from, to, schema::CONTEXTS.def)?,
                Table::Cards => copy_table(from, to, schema::CARDS.def)?,
                Table::UserCards => copy_multimap(from, to, schema::USER_CARDS)?,
                Table::Dedup => copy_table(from, to, schema::DEDUP.def)?,
                Table::Idempotency => copy_table(from, to, schema::IDEMPOTENCY.def)?,
                Table::Sessions => copy_table(from, to, schema::SESSIONS.def)?,
                Table::Locations => copy_table(from, to, schema::LOCATIONS.def)?,
                Table::Pending => copy_table(from, to, schema::PENDING.def)?,
                Table::PendingSeq => copy_table(from, to, schema::PENDING_SEQ)?,
                Table::Snapshots => copy_table(from, to, schema::SNAPSHOTS.def)?,
                Table::SnapshotsByTenant => copy_multimap(from, to, schema::SNAPSHOTS_BY_TENANT)?,
                Table::WorkingMemory => copy_table(from, to, schema::WORKING_MEMORY.def)?,
            };
            Ok((table, n))
        })
        .collect()
}

/// Writes the copy into `file` and verifies it: page checksums, schema, and the same
/// record counts as the source snapshot.
fn write_copy(store: &Store, tmp: &Path, file: File) -> Result<Vec<(Table, u64)>> {
    let db = redb::Builder::new()
        .create_with_backend(
            redb::backends::FileBackend::new(file.try_clone().map_err(io(tmp))?)
                .map_err(|e| super::open::map_open_error(tmp, e))?,
        )
        .map_err(|e| super::open::map_open_error(tmp, e))?;
    let counts = store.read(|tx| {
        let mut write = db.begin_write()?;
        write.set_durability(redb::Durability::Immediate)?;
        // Damage met in the source fails the backup with `Error::Corrupt`, not a panic.
        let counts = tx.contain(|| copy_all(tx.raw(), &write))?;
        write
            .commit()
            .map_err(|e| Error::CommitOutcomeUnknown(e.into()))?;
        Ok::<_, Error>(counts)
    })?;
    db.close()?;
    file.sync_all().map_err(io(tmp))?;
    drop(file);

    // Verify what is on disk, through a fresh open.
    let mut db = redb::Builder::new()
        .create(tmp)
        .map_err(|e| super::open::map_open_error(tmp, e))?;
    if !db.check_integrity()? {
        return Err(Error::Corrupt {
            table: "backup",
            key: tmp.display().to_string(),
            reason: "the copy failed its integrity check".into(),
        });
    }
    let read = db.begin_read()?;
    let found = schema::table_counts(&read)?;
    drop(read);
    db.close()?;
    if found != counts {
        return Err(Error::Corrupt {
            table: "backup",
            key: tmp.display().to_string(),
            reason: "the copy's record counts differ from the snapshot it was made from".into(),
        });
    }
    Ok(counts)
}

impl Store {
    /// Writes a consistent copy of this store to `dest` while other threads keep
    /// writing: the copy holds exactly the state of one commit (the last one made before
    /// the copy's read transaction began). Restoring is opening the copy.
    ///
    /// The copy is created in a temporary sibling of `dest` with owner-only permissions,
    /// synced, reopened and verified (page checksums, schema, record counts), then
    /// renamed into place and the directory synced; `dest` never holds a partial copy.
    /// An existing `dest` is not replaced.
    ///
    /// ```
    /// use edgestate::Store;
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let dir = tempfile::tempdir().map_err(|e| edgestate::Error::invalid("dir", e.to_string()))?;
    /// let store = Store::open(dir.path().join("bot.db"))?;
    /// store.kv().put("bot", "position", b"long", None)?;
    /// store.backup_to(dir.path().join("copy.db"))?;
    /// drop(store);
    /// let copy = Store::open(dir.path().join("copy.db"))?;
    /// assert!(copy.kv().get("bot", "position")?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `dest` exists or has no file name; [`Error::Io`] for
    /// file errors (a missing directory, no space); [`Error::Corrupt`] when the copy fails
    /// its verification; [`Error::Closed`] and storage errors.
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        let dest = dest.as_ref();
        if dest.exists() || super::open::log_path(dest).exists() {
            return Err(Error::invalid(
                "dest",
                format!("{} already exists; choose a new path", dest.display()),
            ));
        }
        let dir = parent_dir(dest);
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir,
                source: std::io::Error::new(ErrorKind::NotFound, "directory does not exist"),
            });
        }
        let (tmp, file) = temp_sibling(dest, "backup")?;
        let result = write_copy(self, &tmp, file).and_then(|tables| {
            // Refuse to replace a file that appeared meanwhile: link, then drop the
            // temporary name (rename where hard links are not supported).
            match std::fs::hard_link(&tmp, dest) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&tmp);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(Error::invalid(
                        "dest",
                        format!("{} appeared during the backup", dest.display()),
                    ))
                }
                Err(_) => std::fs::rename(&tmp, dest).map_err(io(dest))?,
            }
            sync_dir(&dir)?;
            let bytes = std::fs::metadata(dest).map_err(io(dest))?.len();
            Ok(BackupReport {
                path: dest.to_owned(),
                tables,
                bytes,
            })
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}
