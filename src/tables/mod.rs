//! One module per record family. Each owns its invariants and reaches the file only
//! through a transaction, so any mix of families commits atomically.

pub mod blobs;
pub mod cards;
pub mod contexts;
pub mod dedup;
pub mod idempotency;
pub mod kv;
pub mod location;
pub mod pending;
pub(crate) mod record;
pub mod sessions;
pub mod snapshots;

use crate::error::{Error, Result};

/// Milliseconds since the epoch as the seeds' `i64` Unix seconds (the unit of their
/// `updated_at`, `linked_at` and `processed_at` fields).
pub(crate) fn unix_seconds(now_ms: u64) -> i64 {
    i64::try_from(now_ms / 1000).unwrap_or(i64::MAX)
}

/// What a conditional write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// Write whatever is there.
    #[default]
    Any,
    /// Write only if there is no live record.
    Absent,
    /// Write only if the live record has exactly this version.
    Version(u64),
}

impl Expect {
    /// Checks `actual` (the live version, `None` if absent) against this expectation.
    pub(crate) fn check(
        self,
        table: &'static str,
        shown_key: &dyn Fn() -> String,
        actual: Option<u64>,
    ) -> Result<()> {
        let ok = match self {
            Expect::Any => true,
            Expect::Absent => actual.is_none(),
            Expect::Version(v) => actual == Some(v),
        };
        if ok {
            return Ok(());
        }
        Err(Error::VersionConflict {
            table,
            key: shown_key(),
            expected: match self {
                Expect::Version(v) => Some(v),
                Expect::Any | Expect::Absent => None,
            },
            actual,
        })
    }
}

/// A value with the version and expiry it was stored with.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version: 1 on create, +1 on every write.
    pub version: u64,
    /// When it stops being visible (ms since the epoch), if ever.
    pub expires_at_ms: Option<u64>,
}
