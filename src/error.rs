//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in edgestate.
///
/// A get returns `Option` rather than [`Error::NotFound`]: `NotFound` is only returned
/// where the caller asked for something that must exist (patching a context, using a
/// session action, removing a capture by id, ...).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller passed something edgestate refuses to store or interpret. Nothing was
    /// written. `field` names the argument (or the patch path) at fault.
    #[error("invalid input for `{field}`: {reason}")]
    InvalidInput {
        /// Which argument, field or path was wrong.
        field: String,
        /// What was wrong with it.
        reason: String,
    },

    /// Something the operation requires to exist does not (or has expired).
    #[error("{table} record `{key}` not found")]
    NotFound {
        /// The logical table.
        table: &'static str,
        /// The key that was looked up.
        key: String,
    },

    /// A conditional write found a different version than it expected. Nothing was written.
    /// `None` means "absent".
    #[error(
        "version conflict on {table} `{key}`: expected {}, found {}",
        expected_text(.expected),
        found_text(.actual)
    )]
    VersionConflict {
        /// The logical table.
        table: &'static str,
        /// The key of the record.
        key: String,
        /// The version the caller expected (`None`: expected the record to be absent).
        expected: Option<u64>,
        /// The version that is stored (`None`: the record is absent or expired).
        actual: Option<u64>,
    },

    /// A snapshot save carried a lower sequence number than the stored one.
    #[error("stale snapshot for `{key}`: stored sequence {stored}, offered {offered}")]
    StaleSnapshot {
        /// The execution id.
        key: String,
        /// The sequence number already stored.
        stored: u64,
        /// The (lower) sequence number that was offered.
        offered: u64,
    },

    /// An idempotency key was reused with a different request payload.
    #[error("idempotency key `{key}` was first used with a different payload")]
    IdempotencyMismatch {
        /// The idempotency key.
        key: String,
    },

    /// An idempotency key is held by another in-progress request whose lease has not run out.
    #[error("idempotency key `{key}` is in progress (lease until {lease_expires_at_ms} ms)")]
    IdempotencyInProgress {
        /// The idempotency key.
        key: String,
        /// When the current holder's lease runs out (ms since the Unix epoch).
        lease_expires_at_ms: u64,
    },

    /// A session refused an action: it is expired, exhausted or missing.
    #[error("session for `{user}` refused the action: {reason}")]
    SessionRefused {
        /// The user whose session was asked.
        user: String,
        /// Why the action was refused.
        reason: SessionRefusal,
    },

    /// A stored record failed its checksum or could not be decoded.
    #[error("corrupt record in {table} at key `{key}`: {reason}")]
    Corrupt {
        /// The logical table.
        table: &'static str,
        /// The key of the damaged record (lossy if it was not UTF-8).
        key: String,
        /// What check failed.
        reason: String,
    },

    /// Writes are refused: the storage engine met damaged data in this store (a damaged
    /// b-tree page: redb panicked or reported its file corrupted, and the call that met
    /// it got [`Error::Corrupt`] naming `table`). Writing on top of a damaged tree could
    /// spread the damage, so writes stay refused, on every clone, until the owner calls
    /// [`crate::Store::reopen`] (after restoring or inspecting the file) or
    /// [`crate::Store::check_integrity`] passes. Reads go on. A damaged *record* (its
    /// checksum fails) does not latch the store: only writes over that record are refused,
    /// and deleting it clears it.
    #[error("writes refused: damage was found in {table} ({reason}); reopen the store or run check_integrity")]
    Damaged {
        /// The table the storage engine was working on when it met the damage.
        table: &'static str,
        /// What went wrong.
        reason: String,
    },

    /// The file is not an edgestate store (empty, foreign redb schema, not redb at all) or
    /// is damaged beyond what redb can repair.
    #[error("{path} is not an edgestate store: {reason}")]
    NotAStore {
        /// The file that was opened.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },

    /// The file was written by a newer edgestate schema than this build understands.
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// The version found in the file.
        found: u32,
        /// The newest version this build supports.
        supported: u32,
    },

    /// The file was written by an older schema that this build cannot migrate.
    #[error("store schema version {found} is older than this build can migrate (oldest {oldest})")]
    SchemaTooOld {
        /// The version found in the file.
        found: u32,
        /// The oldest version this build can migrate.
        oldest: u32,
    },

    /// Another `Store` (in this process or another one) has the file open.
    #[error("{path} is already open by another Store or process")]
    AlreadyOpen {
        /// The file that was opened.
        path: PathBuf,
    },

    /// The store was closed with [`crate::Store::close`].
    #[error("the store is closed")]
    Closed,

    /// `Store::write` was called from inside a write transaction, or `Store::compact`,
    /// `Store::check_integrity` or `Store::close` from inside any transaction, on the same
    /// thread: it would wait for itself forever.
    #[error("call from inside a transaction on the same thread would deadlock")]
    NestedTransaction,

    /// A commit failed: the write may or may not be durable. redb refuses further writes
    /// until the file is reopened ([`crate::Store::reopen`] does it under every clone);
    /// after reopening, check whether the write landed (versions and dedup ids make that
    /// possible).
    #[error("commit failed, outcome unknown until reopen")]
    CommitOutcomeUnknown(#[source] redb::Error),

    /// The store was latched by an I/O error and reopening it failed `attempts` times in
    /// a row (the cause is the last attempt's error). The next call tries again.
    #[error("the store could not be reopened after an I/O error ({attempts} attempts)")]
    ReopenFailed {
        /// Attempts made by this call.
        attempts: u32,
        /// Why the last attempt failed.
        #[source]
        source: Box<Error>,
    },

    /// A value could not be encoded (serde error while serializing).
    #[error("could not encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serializer's message.
        reason: String,
    },

    /// A stored value is intact but is not of the type the caller asked for.
    #[error("could not decode {table} `{key}` as the requested type: {reason}")]
    Decode {
        /// The logical table.
        table: &'static str,
        /// The key of the record.
        key: String,
        /// The deserializer's message.
        reason: String,
    },

    /// An error from redb, the storage engine.
    #[error("storage engine (redb) failed")]
    Storage(#[source] redb::Error),

    /// An I/O error outside redb (creating, renaming or syncing files).
    #[error("I/O error on {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A line of an import could not be read or stored. Nothing of its batch was
    /// written; the lines before the batch stay imported.
    #[error("line {line} of the import: {reason} (the first {committed_lines} lines were imported, nothing after them)")]
    Import {
        /// The line, counted from 1.
        line: u64,
        /// Lines committed before the failed batch.
        committed_lines: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// "version 3" or "absent", for [`Error::VersionConflict`].
fn expected_text(expected: &Option<u64>) -> String {
    match expected {
        Some(v) => format!("version {v}"),
        None => "absent".to_owned(),
    }
}

/// "version 4" or "none", for [`Error::VersionConflict`].
fn found_text(actual: &Option<u64>) -> String {
    match actual {
        Some(v) => format!("version {v}"),
        None => "none".to_owned(),
    }
}

/// Why a session refused an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRefusal {
    /// There is no session for the user.
    Missing,
    /// The session's TTL has passed.
    Expired,
    /// `actions_used` has reached `max_actions`.
    Exhausted,
}

impl std::fmt::Display for SessionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionRefusal::Missing => "no session",
            SessionRefusal::Expired => "session expired",
            SessionRefusal::Exhausted => "all actions used",
        })
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an [`Error::InvalidInput`]; also for callers whose update closures refuse
    /// a value.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// True for errors after which the caller should retry the whole operation
    /// (a version conflict lost a race).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::VersionConflict { .. })
    }

    /// True for errors after which redb refuses writes until the file is reopened (a
    /// failed commit, or an earlier I/O failure): call [`crate::Store::reopen`].
    pub fn needs_reopen(&self) -> bool {
        matches!(
            self,
            Error::CommitOutcomeUnknown(_)
                | Error::Storage(redb::Error::PreviousIo)
                | Error::Storage(redb::Error::TransactionPoisoned)
        )
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::DatabaseError,
    redb::CompactionError,
    redb::SetDurabilityError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_is_advised_after_io_failures_only() {
        assert!(Error::CommitOutcomeUnknown(redb::Error::PreviousIo).needs_reopen());
        assert!(Error::Storage(redb::Error::PreviousIo).needs_reopen());
        assert!(!Error::Closed.needs_reopen());
        assert!(!Error::invalid("k", "empty").needs_reopen());
    }

    #[test]
    fn conflicts_read_as_sentences() {
        let e = Error::VersionConflict {
            table: "edgestate.kv",
            key: "a/b".into(),
            expected: Some(1),
            actual: Some(2),
        };
        assert_eq!(
            e.to_string(),
            "version conflict on edgestate.kv `a/b`: expected version 1, found version 2"
        );
        let e = Error::VersionConflict {
            table: "edgestate.kv",
            key: "a/b".into(),
            expected: None,
            actual: Some(2),
        };
        assert!(e.to_string().ends_with("expected absent, found version 2"));
    }

    #[test]
    fn a_cause_is_shown_once() {
        use std::error::Error as _;
        let e = Error::Storage(redb::Error::PreviousIo);
        let cause = e.source().map(|s| s.to_string()).unwrap_or_default();
        assert!(!cause.is_empty());
        assert!(!e.to_string().contains(&cause));
        let e = Error::Io {
            path: "/x".into(),
            source: std::io::Error::other("disk on fire"),
        };
        assert!(!e.to_string().contains("disk on fire"));
        assert!(e.source().is_some());
    }

    #[test]
    fn error_is_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static + std::error::Error>() {}
        assert_bounds::<Error>();
    }
}
