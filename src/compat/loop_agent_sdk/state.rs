//! The seed's `state` module: the user context types (field names and JSON shape of the
//! seed), its synchronous [`StateStore`] trait, [`StateError`] with exactly the seed's
//! variants, [`DynamoStateConfig`] and [`init_user_context`].
//!
//! The JSON of every type here is the seed's, so contexts the seed serialised
//! deserialise unchanged; each converts to and from edgestate's native type
//! (`edgestate::UserContext`, whose Rust fields carry a unit suffix such as
//! `updated_at_s` but serialise under the same names).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
pub use crate::tables::contexts::{NotificationPrefs, UserPreferences};

/// A user's context, reloaded at the start of each invocation (the seed's type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserContext {
    /// The user's public key.
    pub pubkey: String,
    /// Cached vault state.
    pub vault: VaultState,
    /// The user's preferences.
    pub preferences: UserPreferences,
    /// Recent activity, newest first (at most [`DynamoStateConfig::max_events`]).
    pub recent_events: Vec<ContextEvent>,
    /// Agent-specific memory.
    pub agent_memory: HashMap<String, serde_json::Value>,
    /// Last update, Unix seconds.
    pub updated_at: i64,
    /// Version for optimistic locking.
    pub version: u64,
}

/// Cached vault balances (the seed's type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultState {
    /// Cred balance.
    pub cred_balance: u64,
    /// OXO balance.
    pub oxo_balance: u64,
    /// Total staked.
    pub total_staked: u64,
    /// Pending yield.
    pub pending_yield: u64,
    /// Number of active positions.
    pub active_positions: u16,
    /// When the balances were cached, Unix seconds.
    pub snapshot_at: i64,
}

/// One entry of a context's recent events (the seed's type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEvent {
    /// The kind of event.
    pub event_type: String,
    /// When it happened, Unix seconds.
    pub timestamp: i64,
    /// A one-line summary.
    pub summary: String,
    /// An amount, if the event has one.
    pub amount: Option<u64>,
}

impl From<crate::VaultState> for VaultState {
    fn from(v: crate::VaultState) -> Self {
        VaultState {
            cred_balance: v.cred_balance,
            oxo_balance: v.oxo_balance,
            total_staked: v.total_staked,
            pending_yield: v.pending_yield,
            active_positions: v.active_positions,
            snapshot_at: v.snapshot_at_s,
        }
    }
}

impl From<VaultState> for crate::VaultState {
    fn from(v: VaultState) -> Self {
        crate::VaultState {
            cred_balance: v.cred_balance,
            oxo_balance: v.oxo_balance,
            total_staked: v.total_staked,
            pending_yield: v.pending_yield,
            active_positions: v.active_positions,
            snapshot_at_s: v.snapshot_at,
        }
    }
}

impl From<crate::ContextEvent> for ContextEvent {
    fn from(e: crate::ContextEvent) -> Self {
        ContextEvent {
            event_type: e.event_type,
            timestamp: e.timestamp_s,
            summary: e.summary,
            amount: e.amount,
        }
    }
}

impl From<ContextEvent> for crate::ContextEvent {
    fn from(e: ContextEvent) -> Self {
        crate::ContextEvent {
            event_type: e.event_type,
            timestamp_s: e.timestamp,
            summary: e.summary,
            amount: e.amount,
        }
    }
}

impl From<crate::UserContext> for UserContext {
    fn from(c: crate::UserContext) -> Self {
        UserContext {
            pubkey: c.pubkey,
            vault: c.vault.into(),
            preferences: c.preferences,
            recent_events: c.recent_events.into_iter().map(Into::into).collect(),
            agent_memory: c.agent_memory,
            updated_at: c.updated_at_s,
            version: c.version,
        }
    }
}

impl From<UserContext> for crate::UserContext {
    fn from(c: UserContext) -> Self {
        crate::UserContext {
            pubkey: c.pubkey,
            vault: c.vault.into(),
            preferences: c.preferences,
            recent_events: c.recent_events.into_iter().map(Into::into).collect(),
            agent_memory: c.agent_memory,
            updated_at_s: c.updated_at,
            version: c.version,
        }
    }
}

/// The seed's context store trait (synchronous, as in the seed), implemented by
/// [`DynamoStateStore`](super::dynamo::DynamoStateStore).
///
/// Unlike the seed's DynamoDB store, which called `Handle::block_on` (a panic inside a
/// runtime), these calls do the work on the calling thread and need no runtime. From
/// async code use the `*_async` methods of
/// [`DynamoStateStore`](super::dynamo::DynamoStateStore) (feature `tokio`).
pub trait StateStore {
    /// The user's context, or [`StateError::NotFound`].
    ///
    /// # Errors
    /// [`StateError::NotFound`] without a context; [`StateError::SerializationError`] for
    /// an undecodable record; [`StateError::StorageError`] for bad input (an empty
    /// pubkey), a damaged record and storage errors.
    fn context_fetch(&self, user_pubkey: &str) -> Result<UserContext, StateError>;
    /// Stores `context` if the stored version is `context.version - 1` (for
    /// `context.version <= 1`: if none is stored).
    ///
    /// # Errors
    /// [`StateError::VersionConflict`] on a version mismatch;
    /// [`StateError::SerializationError`] if it does not encode;
    /// [`StateError::StorageError`] for bad input, storage and commit errors.
    fn context_push(&self, context: UserContext) -> Result<(), StateError>;
    /// The contexts that exist among `user_pubkeys`, in order, from one snapshot
    /// (missing users are skipped, as in the seed).
    ///
    /// # Errors
    /// As [`context_fetch`](Self::context_fetch), for any of the users.
    fn context_batch_fetch(&self, user_pubkeys: &[String]) -> Result<Vec<UserContext>, StateError>;
    /// Sets one field by dotted path, bumping the version.
    ///
    /// # Errors
    /// [`StateError::NotFound`] without a context; [`StateError::StorageError`] for an
    /// unknown path or a value of the wrong type (the seed ignored both), storage and
    /// commit errors.
    fn context_patch(
        &self,
        user_pubkey: &str,
        path: &str,
        value: serde_json::Value,
    ) -> Result<(), StateError>;
    /// Adds an event at the front of the recent events, keeping
    /// [`DynamoStateConfig::max_events`]; creates the context if needed.
    ///
    /// # Errors
    /// [`StateError::StorageError`] for bad input, storage and commit errors;
    /// [`StateError::SerializationError`] for an undecodable stored context.
    fn push_event(&self, user_pubkey: &str, event: ContextEvent) -> Result<(), StateError>;
    /// The user's context, created with the defaults if absent.
    ///
    /// # Errors
    /// As [`push_event`](Self::push_event).
    fn get_or_init(&self, user_pubkey: &str) -> Result<UserContext, StateError>;
}

/// The seed's error type, with exactly its variants (so a seed `match` stays
/// exhaustive). Bad input, which the seed had no variant for, is a
/// [`StateError::StorageError`] whose message starts with `invalid input for`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The user's context does not exist.
    #[error("not found")]
    NotFound,
    /// Optimistic locking failed: the push expected to replace version `expected`,
    /// version `actual` is stored (0: none).
    #[error("version conflict: expected {expected}, actual {actual}")]
    VersionConflict {
        /// The version the push expected to replace (0: none).
        expected: u64,
        /// The version stored (0: none).
        actual: u64,
    },
    /// A storage failure or refused input, with edgestate's message.
    #[error("storage error: {0}")]
    StorageError(String),
    /// A value could not be encoded or decoded.
    #[error("serialization error: {0}")]
    SerializationError(String),
    /// Never returned (there is no network); kept so seed code matching on it compiles.
    #[error("timeout")]
    Timeout,
}

impl From<Error> for StateError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { .. } => StateError::NotFound,
            Error::VersionConflict {
                expected, actual, ..
            } => StateError::VersionConflict {
                expected: expected.unwrap_or(0),
                actual: actual.unwrap_or(0),
            },
            e @ (Error::Encode { .. } | Error::Decode { .. }) => {
                StateError::SerializationError(e.to_string())
            }
            other => StateError::StorageError(other.to_string()),
        }
    }
}

/// The seed's context-store configuration, with all its fields, given to
/// [`DynamoStateStore::with_state_config`](super::dynamo::DynamoStateStore::with_state_config).
/// Only `max_events` means something here: the file comes from
/// [`DynamoConfig`](super::dynamo::DynamoConfig), `region` names no network, and
/// `vault_cache_ttl` was never read by the seed either (a context here is the record
/// itself, not a cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoStateConfig {
    /// Ignored here (the store file comes from [`DynamoConfig`](super::dynamo::DynamoConfig)).
    pub table_name: String,
    /// Ignored (no network).
    pub region: String,
    /// Ignored (the seed never read it).
    pub vault_cache_ttl: u32,
    /// Recent events kept by [`StateStore::push_event`] (default 10).
    pub max_events: usize,
}

impl Default for DynamoStateConfig {
    fn default() -> Self {
        DynamoStateConfig {
            table_name: "loop-agent-state".to_owned(),
            region: "us-east-1".to_owned(),
            vault_cache_ttl: 60,
            max_events: 10,
        }
    }
}

/// A new user's context as the seed made it: defaults, version 1 (so that
/// [`StateStore::context_push`] creates it), `updated_at` from the system clock.
pub fn init_user_context(pubkey: &str) -> UserContext {
    let mut ctx = crate::UserContext::new(pubkey, crate::Clock::now_ms(&crate::SystemClock));
    ctx.version = 1;
    ctx.into()
}
