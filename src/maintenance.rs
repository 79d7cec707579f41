//! Reports of maintenance operations ([`crate::Store::backup_to`]).

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
