//! One module per record family. Each owns its invariants and reaches the file only
//! through a transaction, so any mix of families commits atomically.

pub mod blobs;
pub mod cards;
pub mod contexts;
pub mod dedup;
pub mod idempotency;
pub mod kv;
pub mod location;
pub mod memory;
pub mod pending;
pub(crate) mod record;
pub mod sessions;
pub mod snapshots;

use crate::error::{Error, Result};

/// Declares a table handle: a type generic over its source `A` (see [`crate::access`]),
/// cheap to copy, holding only a reference to the source.
macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<'a, A> {
            src: &'a A,
        }

        impl<'a, A> $name<'a, A> {
            pub(crate) fn new(src: &'a A) -> Self {
                $name { src }
            }
        }

        impl<A> Clone for $name<'_, A> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<A> Copy for $name<'_, A> {}

        impl<A> std::fmt::Debug for $name<'_, A> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use handle;

/// The accessors of every record family, for each source type: `tx.kv()`,
/// `read.contexts()`, `store.cards()`, ...
macro_rules! accessors {
    ($source:ty) => {
        impl $source {
            /// Generic namespaced key/value records: versions, TTL, CAS, prefix listing.
            pub fn kv(&self) -> $crate::tables::kv::Kv<'_, Self> {
                $crate::tables::kv::Kv::new(self)
            }

            /// Per-user context documents: versioned CAS, patches, bounded recent events.
            pub fn contexts(&self) -> $crate::tables::contexts::Contexts<'_, Self> {
                $crate::tables::contexts::Contexts::new(self)
            }

            /// The card index: fingerprint -> user (unique) and user -> cards.
            pub fn cards(&self) -> $crate::tables::cards::Cards<'_, Self> {
                $crate::tables::cards::Cards::new(self)
            }

            /// Exactly-once claims of transaction ids, with a TTL.
            pub fn dedup(&self) -> $crate::tables::dedup::Dedup<'_, Self> {
                $crate::tables::dedup::Dedup::new(self)
            }

            /// Idempotency keys with leases and stored results.
            pub fn idempotency(&self) -> $crate::tables::idempotency::Idempotency<'_, Self> {
                $crate::tables::idempotency::Idempotency::new(self)
            }

            /// Session keys with a TTL and an action budget.
            pub fn sessions(&self) -> $crate::tables::sessions::Sessions<'_, Self> {
                $crate::tables::sessions::Sessions::new(self)
            }

            /// The short-TTL current-merchant location cache.
            pub fn location(&self) -> $crate::tables::location::LocationCache<'_, Self> {
                $crate::tables::location::LocationCache::new(self)
            }

            /// Per-user bounded ring buffers of pending captures.
            pub fn pending(&self) -> $crate::tables::pending::Pending<'_, Self> {
                $crate::tables::pending::Pending::new(self)
            }

            /// Execution snapshots with sequence-number freshness and a tenant index.
            pub fn snapshots(&self) -> $crate::tables::snapshots::Snapshots<'_, Self> {
                $crate::tables::snapshots::Snapshots::new(self)
            }

            /// Working memory per execution: keyed bytes with a TTL.
            pub fn memory(&self) -> $crate::tables::memory::WorkingMemory<'_, Self> {
                $crate::tables::memory::WorkingMemory::new(self)
            }

            /// JSON blobs under string keys (`get` / `put` / `delete`).
            pub fn blobs(&self) -> $crate::tables::blobs::Blobs<'_, Self> {
                $crate::tables::blobs::Blobs::new(self)
            }
        }
    };
}
pub(crate) use accessors;

accessors!(crate::txn::WriteTx);
accessors!(crate::txn::ReadTx);

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
        shown_key: impl FnOnce() -> String,
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
