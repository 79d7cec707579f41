//! Reports of maintenance operations ([`crate::Store::backup_to`],
//! [`crate::Store::verify`]).

use std::path::PathBuf;

use crate::schema::Table;

/// What [`Store::backup_to`](crate::Store::backup_to) wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// Where the copy is.
    pub path: PathBuf,
    /// Records copied per table (the state of one commit).
    pub tables: Vec<(Table, u64)>,
    /// Size of the copy in bytes.
    pub bytes: u64,
}

impl BackupReport {
    /// Records copied, all tables together.
    pub fn records(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// Damaged records listed in a report at most (all of them are counted).
const LISTED_AT_MOST: usize = 100;
/// What one verification pass ([`Store::verify`](crate::Store::verify)) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Records and index entries read.
    pub entries_checked: u64,
    /// Records whose checksum failed (each fails its own reads with `Error::Corrupt`).
    pub damaged_records: u64,
    /// The first damaged records, as `Error::Corrupt` describes them (at most 100).
    pub damaged: Vec<String>,
    /// Damage the storage engine met in a b-tree page, one line per table where it did;
    /// any makes writes refused ([`Error::Damaged`](crate::Error::Damaged)) until reopen or `check_integrity`.
    pub engine_damage: Vec<String>,
    /// False when the pass was stopped (the store closing) before the end.
    pub complete: bool,
}

impl VerifyReport {
    /// True when the pass ran to the end and found nothing damaged.
    pub fn is_clean(&self) -> bool {
        self.complete && self.damaged_records == 0 && self.engine_damage.is_empty()
    }

    pub(crate) fn damaged_record(&mut self, e: &crate::Error) {
        self.damaged_records += 1;
        if self.damaged.len() < LISTED_AT_MOST {
            self.damaged.push(e.to_string());
        }
    }
}
