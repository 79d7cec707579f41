//! The agent SDK seed on edgestate, synchronous and with edgestate's native types: its
//! `StateStore` trait, its error shape (plus `InvalidInput`), its DynamoDB store's method
//! names and its environment configuration. For the drop-in (the seed's own types, field
//! names, async methods and config structs) use [`loop_agent_sdk`](super::loop_agent_sdk).
//!
//! Porting to this synchronous form: replace `DynamoStateStore::new().await?` with
//! [`LoopAgentStore::from_env()?`](LoopAgentStore::from_env) and drop the `.await`s. Method
//! names and arguments are the seed's. Behaviour differs where the seed had bugs:
//!
//! - `add_pending_capture` keys captures by a per-user sequence, so two captures in the
//!   same second both survive; it returns `()` as the seed did (the native
//!   [`Pending::push`](crate::Pending::push) returns the entry's id). `remove_pending_capture(user, timestamp)` removes the
//!   captures whose `created_at` equals `timestamp`.
//! - `get_user_cards` reads a reverse index instead of scanning every card.
//! - `mark_transaction_processed` never overwrites an earlier claim; use
//!   [`LoopAgentStore::claim_transaction`] (or the whole
//!   [`Store::process_webhook`](crate::Store::process_webhook)) for the atomic
//!   check-and-mark the seed did in two calls.
//! - `context_patch` accepts any field path and fails with
//!   [`StateError::InvalidInput`] on an unknown path or a wrong type, where the seed
//!   silently ignored it.
//! - `context_push` with `version <= 1` only creates (the seed overwrote whatever was
//!   there); a conflict reports the version actually stored.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::store::Store;
use crate::tables::cards::CardMapping;
use crate::tables::contexts::{ContextEvent, UserContext};
use crate::tables::dedup::Claim;
use crate::tables::pending::PendingCapture;
use crate::tables::sessions::SessionKeyData;
use crate::tables::Expect;

/// The seed's error shape, with one addition for bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The user's context does not exist.
    #[error("not found")]
    NotFound,
    /// Optimistic locking failed: the stored version is `actual`, the push expected
    /// `expected` (0 when it expected no record).
    #[error("version conflict: expected {expected}, actual {actual}")]
    VersionConflict {
        /// The version the push expected to replace.
        expected: u64,
        /// The version stored (0 when absent).
        actual: u64,
    },
    /// Any storage failure, with edgestate's message.
    #[error("storage error: {0}")]
    StorageError(String),
    /// A value could not be encoded or decoded.
    #[error("serialization error: {0}")]
    SerializationError(String),
    /// Never returned by edgestate (no network); kept so seed code matching on it compiles.
    #[error("timeout")]
    Timeout,
    /// Bad input (unknown patch path, empty key, ...), naming the field.
    #[error("invalid input for `{field}`: {reason}")]
    InvalidInput {
        /// The argument or path at fault.
        field: String,
        /// What was wrong.
        reason: String,
    },
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
            Error::InvalidInput { field, reason } => StateError::InvalidInput { field, reason },
            e @ (Error::Encode { .. } | Error::Decode { .. }) => {
                StateError::SerializationError(e.to_string())
            }
            other => StateError::StorageError(other.to_string()),
        }
    }
}

/// The seed's context store trait, implemented by [`Store`] and [`LoopAgentStore`].
pub trait StateStore {
    /// The user's context, or [`StateError::NotFound`].
    ///
    /// # Errors
    /// [`StateError::NotFound`] when the user has no context; [`StateError::InvalidInput`]
    /// for an empty or oversized pubkey; [`StateError::SerializationError`] or
    /// [`StateError::StorageError`] for a damaged record; storage errors.
    fn context_fetch(&self, user_pubkey: &str) -> Result<UserContext, StateError>;
    /// Stores `context` if the stored version is `context.version - 1` (or, for
    /// `context.version <= 1`, if there is none): the seed's optimistic locking, where the
    /// caller increments the version before pushing.
    ///
    /// # Errors
    /// [`StateError::VersionConflict`] on a version mismatch; [`StateError::InvalidInput`] for
    /// a bad pubkey or oversized context; [`StateError::SerializationError`] if it does not
    /// encode; [`StateError::StorageError`] for a damaged record, storage and commit errors.
    fn context_push(&self, context: UserContext) -> Result<(), StateError>;
    /// The contexts that exist among `user_pubkeys`, in order, from one snapshot.
    /// Missing users are skipped, as in the seed; use
    /// [`Contexts::get_many`](crate::tables::contexts::Contexts::get_many) to learn
    /// which.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for any empty or oversized pubkey (all are checked
    /// before reading); [`StateError::SerializationError`] or [`StateError::StorageError`]
    /// for a damaged record; storage errors.
    fn context_batch_fetch(&self, user_pubkeys: &[String]) -> Result<Vec<UserContext>, StateError>;
    /// Sets one field by dotted path (`"preferences.auto_stake"`), bumping the version.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an unknown path, a wrong type or a bad pubkey;
    /// [`StateError::NotFound`] without a context; [`StateError::SerializationError`] or
    /// [`StateError::StorageError`] for a damaged record, storage and commit errors.
    fn context_patch(
        &self,
        user_pubkey: &str,
        path: &str,
        value: serde_json::Value,
    ) -> Result<(), StateError>;
    /// Adds an event to the recent-events list (newest first, bounded), creating the
    /// context if needed.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized pubkey;
    /// [`StateError::SerializationError`] or [`StateError::StorageError`] for a damaged
    /// record; storage and commit errors.
    fn push_event(&self, user_pubkey: &str, event: ContextEvent) -> Result<(), StateError>;
    /// The user's context, created with the defaults if absent.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized pubkey;
    /// [`StateError::SerializationError`] or [`StateError::StorageError`] for a damaged
    /// record; storage and commit errors.
    fn get_or_init(&self, user_pubkey: &str) -> Result<UserContext, StateError>;
}

impl StateStore for Store {
    fn context_fetch(&self, user_pubkey: &str) -> Result<UserContext, StateError> {
        self.contexts()
            .get(user_pubkey)?
            .ok_or(StateError::NotFound)
    }

    fn context_push(&self, context: UserContext) -> Result<(), StateError> {
        let expect = match context.version {
            0 | 1 => Expect::Absent,
            v => Expect::Version(v - 1),
        };
        self.contexts().put_if(context, expect)?;
        Ok(())
    }

    fn context_batch_fetch(&self, user_pubkeys: &[String]) -> Result<Vec<UserContext>, StateError> {
        let users: Vec<&str> = user_pubkeys.iter().map(String::as_str).collect();
        Ok(self.contexts().get_many(&users)?.found)
    }

    fn context_patch(
        &self,
        user_pubkey: &str,
        path: &str,
        value: serde_json::Value,
    ) -> Result<(), StateError> {
        self.contexts().patch(user_pubkey, path, value)?;
        Ok(())
    }

    fn push_event(&self, user_pubkey: &str, event: ContextEvent) -> Result<(), StateError> {
        self.contexts().push_event(user_pubkey, event)?;
        Ok(())
    }

    fn get_or_init(&self, user_pubkey: &str) -> Result<UserContext, StateError> {
        Ok(self.contexts().get_or_init(user_pubkey)?)
    }
}

/// A new user's context as the seed made it: defaults, version 1 (so that
/// [`StateStore::context_push`] creates it), timestamped by the system clock.
pub fn init_user_context(pubkey: &str) -> UserContext {
    let mut ctx = UserContext::new(pubkey, crate::Clock::now_ms(&crate::SystemClock));
    ctx.version = 1;
    ctx
}

/// The seed's configuration, read from the same environment variables where they still
/// mean something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopAgentConfig {
    /// The store file. `EDGESTATE_PATH`, else `DYNAMO_TABLE` + `.edgestate` (the table
    /// name becomes the file name), else `loop-agent-state.edgestate`.
    pub path: PathBuf,
    /// `MAX_PENDING_CAPTURES` (default 10).
    pub max_pending_captures: usize,
    /// `SESSION_TTL_SECONDS` (default 86,400).
    pub session_ttl_seconds: i64,
    /// `PENDING_TTL_SECONDS` (default 1,814,400 = 21 days).
    pub pending_ttl_seconds: i64,
}

/// The seed's name for the configuration.
pub type DynamoConfig = LoopAgentConfig;

impl Default for LoopAgentConfig {
    fn default() -> Self {
        LoopAgentConfig {
            path: PathBuf::from("loop-agent-state.edgestate"),
            max_pending_captures: 10,
            session_ttl_seconds: 86_400,
            pending_ttl_seconds: 1_814_400,
        }
    }
}

impl LoopAgentConfig {
    /// Reads the environment. Unparsable numbers fall back to the defaults, as in the
    /// seed. `DYNAMO_FINGERPRINT_GSI` and `DAX_ENDPOINT` mean nothing locally and are
    /// ignored.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = Self::default();
        let path = lookup("EDGESTATE_PATH")
            .map(PathBuf::from)
            .or_else(|| lookup("DYNAMO_TABLE").map(|t| PathBuf::from(format!("{t}.edgestate"))))
            .unwrap_or(defaults.path);
        let number = |name: &str| lookup(name).and_then(|v| v.trim().parse::<i64>().ok());
        LoopAgentConfig {
            path,
            max_pending_captures: number("MAX_PENDING_CAPTURES")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(defaults.max_pending_captures),
            session_ttl_seconds: number("SESSION_TTL_SECONDS")
                .filter(|n| *n > 0)
                .unwrap_or(defaults.session_ttl_seconds),
            pending_ttl_seconds: number("PENDING_TTL_SECONDS")
                .filter(|n| *n > 0)
                .unwrap_or(defaults.pending_ttl_seconds),
        }
    }

    /// A store builder carrying these settings.
    pub fn builder(&self) -> crate::StoreBuilder {
        let secs = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(0));
        Store::builder()
            .pending_capacity(self.max_pending_captures)
            .session_ttl(secs(self.session_ttl_seconds))
            .pending_ttl(secs(self.pending_ttl_seconds))
    }
}

/// The seed's DynamoDB store, on a local edgestate file: every method name and argument
/// list of the seed, synchronous.
///
/// ```
/// use edgestate::compat::loop_agent::{LoopAgentStore, StateStore};
///
/// # fn main() -> Result<(), edgestate::compat::loop_agent::StateError> {
/// let store = LoopAgentStore::temporary()?;
/// store.link_card("fp_1", "user-1", "4242")?;
/// assert_eq!(store.lookup_user_by_card("fp_1")?.map(|c| c.user_pubkey), Some("user-1".into()));
/// let ctx = store.get_or_init("user-1")?;
/// assert_eq!(ctx.version, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LoopAgentStore {
    store: Store,
}

/// The seed's name for the store.
pub type DynamoStateStore = LoopAgentStore;

impl LoopAgentStore {
    /// Opens the store configured by the environment ([`LoopAgentConfig::from_env`]).
    ///
    /// # Errors
    /// As [`with_config`](Self::with_config).
    pub fn from_env() -> Result<Self, StateError> {
        Self::with_config(&LoopAgentConfig::from_env())
    }

    /// Opens the store with `config`.
    ///
    /// # Errors
    /// [`StateError::StorageError`] when the file cannot be opened or created: not an
    /// edgestate store, already open elsewhere, an unsupported schema version, or an I/O
    /// error.
    pub fn with_config(config: &LoopAgentConfig) -> Result<Self, StateError> {
        Ok(LoopAgentStore {
            store: config.builder().open(&config.path)?,
        })
    }

    /// A store in a temporary directory, deleted on drop: for integration tests that
    /// used to need DynamoDB.
    ///
    /// # Errors
    /// [`StateError::StorageError`] when the temporary directory or the store in it cannot
    /// be created.
    pub fn temporary() -> Result<Self, StateError> {
        Ok(LoopAgentStore {
            store: LoopAgentConfig::default().builder().temporary()?,
        })
    }

    /// Wraps an open store (for a manual clock, in-memory stores, or sharing the file
    /// with other edgestate code).
    pub fn from_store(store: Store) -> Self {
        LoopAgentStore { store }
    }

    /// The underlying store, for everything beyond the seed's API.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The card's mapping, or `None`.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized fingerprint;
    /// [`StateError::SerializationError`] or [`StateError::StorageError`] for a damaged
    /// record; storage errors.
    pub fn lookup_user_by_card(
        &self,
        fingerprint: &str,
    ) -> Result<Option<CardMapping>, StateError> {
        Ok(super::seed_data::lookup_card(&self.store, fingerprint)?)
    }

    /// Links a card to a user (moving it if another user had it). Any `card_last4` is
    /// accepted, as in the seed (see the differences table of [`compat`](crate::compat)).
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for a bad fingerprint or user;
    /// [`StateError::StorageError`] for a damaged stored record
    /// (nothing written), storage and commit errors.
    pub fn link_card(
        &self,
        fingerprint: &str,
        user_pubkey: &str,
        card_last4: &str,
    ) -> Result<(), StateError> {
        super::seed_data::link_card(&self.store, fingerprint, user_pubkey, card_last4)?;
        Ok(())
    }

    /// Unlinks a card (no error if it was not linked).
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized fingerprint;
    /// [`StateError::StorageError`] for storage and commit errors.
    pub fn unlink_card(&self, fingerprint: &str) -> Result<(), StateError> {
        super::seed_data::unlink_card(&self.store, fingerprint)?;
        Ok(())
    }

    /// The user's cards, from the reverse index.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized user;
    /// [`StateError::StorageError`] for a damaged record, an inconsistent reverse index and
    /// storage errors; [`StateError::SerializationError`] for an undecodable record.
    pub fn get_user_cards(&self, user_pubkey: &str) -> Result<Vec<CardMapping>, StateError> {
        Ok(super::seed_data::user_cards(&self.store, user_pubkey)?)
    }

    /// Whether the transaction id has been claimed (and not expired).
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized `txn_id`;
    /// [`StateError::SerializationError`] or [`StateError::StorageError`] for a damaged
    /// record; storage errors.
    pub fn is_transaction_processed(&self, txn_id: &str) -> Result<bool, StateError> {
        Ok(self.store.dedup().contains(txn_id)?)
    }

    /// Records the transaction as processed (TTL 30 days by default). An existing claim
    /// is kept, never overwritten.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for a bad `txn_id` or user;
    /// [`StateError::SerializationError`] or [`StateError::StorageError`] for a damaged
    /// record (the stored claim; nothing written); storage and commit errors.
    pub fn mark_transaction_processed(
        &self,
        txn_id: &str,
        user_pubkey: &str,
        cred_amount: u64,
    ) -> Result<(), StateError> {
        // First writer wins: a second marker never rewrites who was credited.
        self.store.dedup().claim(txn_id, user_pubkey, cred_amount)?;
        Ok(())
    }

    /// Check-and-mark in one atomic step: `true` if this call claimed the id.
    ///
    /// # Errors
    /// As [`mark_transaction_processed`](Self::mark_transaction_processed).
    pub fn claim_transaction(
        &self,
        txn_id: &str,
        user_pubkey: &str,
        cred_amount: u64,
    ) -> Result<bool, StateError> {
        Ok(matches!(
            self.store.dedup().claim(txn_id, user_pubkey, cred_amount)?,
            Claim::New
        ))
    }

    /// Stores the user's session key (TTL from the configuration). An already expired
    /// session is accepted, as in the seed: it replaces the stored one and reads back as
    /// `None`.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for a bad user; [`StateError::SerializationError`] if it does not serialize;
    /// [`StateError::StorageError`] for a damaged record, storage and commit errors.
    pub fn store_session_key(
        &self,
        user_pubkey: &str,
        session: &SessionKeyData,
    ) -> Result<(), StateError> {
        super::seed_data::store_session(&self.store, user_pubkey, session)?;
        Ok(())
    }

    /// The user's session key, `None` if absent or expired.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized user;
    /// [`StateError::SerializationError`] or [`StateError::StorageError`] for a damaged
    /// record; storage errors.
    pub fn get_session_key(&self, user_pubkey: &str) -> Result<Option<SessionKeyData>, StateError> {
        Ok(self.store.sessions().get(user_pubkey)?)
    }

    /// Removes the user's session key.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized user;
    /// [`StateError::StorageError`] for storage and commit errors.
    pub fn invalidate_session(&self, user_pubkey: &str) -> Result<(), StateError> {
        self.store.sessions().delete(user_pubkey)?;
        Ok(())
    }

    /// Appends a pending capture to the user's ring buffer, evicting the oldest beyond
    /// capacity in the same transaction. (The entry's id is returned by the native
    /// [`Pending::push`](crate::Pending::push).)
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for a bad user, `pending_capacity == 0` or exhausted
    /// sequence numbers; [`StateError::SerializationError`] if the capture does not
    /// serialize; [`StateError::StorageError`] for storage and commit errors.
    pub fn add_pending_capture(
        &self,
        user_pubkey: &str,
        capture: &PendingCapture,
    ) -> Result<(), StateError> {
        self.store.pending().push(user_pubkey, capture)?;
        Ok(())
    }

    /// The user's pending captures, newest first.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized user;
    /// [`StateError::SerializationError`] or [`StateError::StorageError`] for a damaged
    /// entry; storage errors.
    pub fn get_pending_captures(
        &self,
        user_pubkey: &str,
    ) -> Result<Vec<PendingCapture>, StateError> {
        Ok(self
            .store
            .pending()
            .list(user_pubkey)?
            .into_iter()
            .map(|e| e.capture)
            .collect())
    }

    /// Removes the user's captures whose `created_at` equals `timestamp` (the seed's key).
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized user;
    /// [`StateError::SerializationError`] or [`StateError::StorageError`] for a damaged
    /// entry (nothing removed); storage and commit errors.
    pub fn remove_pending_capture(
        &self,
        user_pubkey: &str,
        timestamp: i64,
    ) -> Result<(), StateError> {
        self.store
            .pending()
            .delete_created_at(user_pubkey, timestamp)?;
        Ok(())
    }

    /// Caches the merchant the user is at (TTL 1 hour by default).
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for a bad user or merchant id;
    /// [`StateError::StorageError`] for a damaged entry it replaces, storage and commit
    /// errors.
    pub fn cache_current_merchant(
        &self,
        user_pubkey: &str,
        merchant_id: &str,
    ) -> Result<(), StateError> {
        self.store.location().put(user_pubkey, merchant_id)?;
        Ok(())
    }

    /// The cached merchant id, `None` if absent or expired.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized user;
    /// [`StateError::SerializationError`] or [`StateError::StorageError`] for a damaged
    /// record; storage errors.
    pub fn get_current_merchant(&self, user_pubkey: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .store
            .location()
            .get(user_pubkey)?
            .map(|m| m.merchant_id))
    }

    /// Clears the cached merchant.
    ///
    /// # Errors
    /// [`StateError::InvalidInput`] for an empty or oversized user;
    /// [`StateError::StorageError`] for storage and commit errors.
    pub fn clear_current_merchant(&self, user_pubkey: &str) -> Result<(), StateError> {
        self.store.location().delete(user_pubkey)?;
        Ok(())
    }
}

impl StateStore for LoopAgentStore {
    fn context_fetch(&self, user_pubkey: &str) -> Result<UserContext, StateError> {
        self.store.context_fetch(user_pubkey)
    }

    fn context_push(&self, context: UserContext) -> Result<(), StateError> {
        self.store.context_push(context)
    }

    fn context_batch_fetch(&self, user_pubkeys: &[String]) -> Result<Vec<UserContext>, StateError> {
        self.store.context_batch_fetch(user_pubkeys)
    }

    fn context_patch(
        &self,
        user_pubkey: &str,
        path: &str,
        value: serde_json::Value,
    ) -> Result<(), StateError> {
        self.store.context_patch(user_pubkey, path, value)
    }

    fn push_event(&self, user_pubkey: &str, event: ContextEvent) -> Result<(), StateError> {
        self.store.push_event(user_pubkey, event)
    }

    fn get_or_init(&self, user_pubkey: &str) -> Result<UserContext, StateError> {
        self.store.get_or_init(user_pubkey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_the_seed_variables() {
        let env = |name: &str| match name {
            "DYNAMO_TABLE" => Some("prod-state".to_owned()),
            "MAX_PENDING_CAPTURES" => Some("25".to_owned()),
            "SESSION_TTL_SECONDS" => Some("not a number".to_owned()),
            "PENDING_TTL_SECONDS" => Some("60".to_owned()),
            _ => None,
        };
        let c = LoopAgentConfig::from_lookup(env);
        assert_eq!(c.path, PathBuf::from("prod-state.edgestate"));
        assert_eq!(c.max_pending_captures, 25);
        assert_eq!(c.session_ttl_seconds, 86_400);
        assert_eq!(c.pending_ttl_seconds, 60);
        let c =
            LoopAgentConfig::from_lookup(|n| (n == "EDGESTATE_PATH").then(|| "/x/y.db".to_owned()));
        assert_eq!(c.path, PathBuf::from("/x/y.db"));
    }
}
