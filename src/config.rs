//! Per-store defaults for the record families (ring sizes, TTLs).

use std::time::Duration;

/// How each write transaction is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is on disk when it returns. A crash or power loss never loses an
    /// acknowledged write. A writer alone pays one fsync per commit; concurrent writers
    /// share fsyncs (group commit): a commit made while other writers are in flight
    /// waits for the last of them to sync the whole group, and if that sync fails every
    /// caller it covered gets [`Error::CommitOutcomeUnknown`](crate::Error::CommitOutcomeUnknown).
    /// A reader (or a relaxed writer) may see such a commit before its caller returns;
    /// if the process dies before the group's sync, that commit is lost, and its caller
    /// was never acknowledged.
    #[default]
    Immediate,
    /// Commits return before they are synced. A crash, whether the process is killed or
    /// the machine loses power, rolls the file back to the last synced commit:
    /// everything acknowledged since the last [`crate::Store::flush`] or `Immediate`
    /// commit may be lost, never half of a transaction. The file is always consistent.
    /// Closing or dropping the last handle syncs what is pending.
    Relaxed,
}

/// Defaults of the record families. Every field has the seeds' default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Most pending captures kept per user; the oldest is evicted beyond it. Default 10.
    pub pending_capacity: usize,
    /// Time a pending capture lives. Default 21 days.
    pub pending_ttl: Duration,
    /// Most recent events kept in a user context, newest first. Default 10.
    pub max_recent_events: usize,
    /// Time a processed-transaction (dedup) record lives. Default 30 days.
    pub dedup_ttl: Duration,
    /// Time a session key lives. Default 24 hours.
    pub session_ttl: Duration,
    /// Time a cached current merchant lives. Default 1 hour.
    pub location_ttl: Duration,
    /// Lease of an in-progress idempotency record. Default 30 seconds.
    pub idempotency_lease: Duration,
    /// Time a completed idempotency record lives. Default 24 hours.
    pub idempotency_ttl: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 60 * 60;
        StoreConfig {
            pending_capacity: 10,
            pending_ttl: Duration::from_secs(21 * DAY),
            max_recent_events: 10,
            dedup_ttl: Duration::from_secs(30 * DAY),
            session_ttl: Duration::from_secs(DAY),
            location_ttl: Duration::from_secs(60 * 60),
            idempotency_lease: Duration::from_secs(30),
            idempotency_ttl: Duration::from_secs(DAY),
        }
    }
}
