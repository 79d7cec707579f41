//! The seed's `dynamo` module on a local edgestate file: [`DynamoConfig`] with all its
//! fields, [`DynamoStateStore`] with the seed's async methods (feature `tokio`), and the
//! seed's data types [`CardMapping`], [`PendingCapture`], [`PendingLocation`],
//! [`SessionKeyData`] (field names and JSON of the seed).
//!
//! Every async method clones the store handle and runs the synchronous edgestate call
//! on tokio's blocking pool (`tokio::task::spawn_blocking`, through
//! `Store::run_blocking`): an fsync never stalls a runtime
//! worker thread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state::{ContextEvent, DynamoStateConfig, StateError, StateStore, UserContext};
use crate::compat::seed_data;
use crate::store::Store;
use crate::tables::Expect;

pub use crate::tables::pending::PendingLocation;

/// The seed's table configuration, with all its fields.
///
/// | field | here |
/// |---|---|
/// | `table_name` | names the store file: see [`store_path`](Self::store_path) |
/// | `fingerprint_gsi`, `ttl_attribute`, `dax_endpoint` | ignored (no DynamoDB index, TTL attribute or cache cluster) |
/// | `max_pending_captures` | each user's pending ring buffer capacity |
/// | `session_ttl_seconds` | upper bound on a session's life |
/// | `pending_ttl_seconds` | life of a pending capture |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoConfig {
    /// Names the store file ([`store_path`](Self::store_path)).
    pub table_name: String,
    /// Ignored (card lookups use edgestate's card index).
    pub fingerprint_gsi: String,
    /// Ignored (expiry is edgestate's own, exact to the millisecond).
    pub ttl_attribute: String,
    /// Pending captures kept per user (default 10).
    pub max_pending_captures: usize,
    /// Session TTL in seconds (default 86,400).
    pub session_ttl_seconds: i64,
    /// Pending capture TTL in seconds (default 1,814,400 = 21 days).
    pub pending_ttl_seconds: i64,
    /// Ignored (no DAX).
    pub dax_endpoint: Option<String>,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        DynamoConfig {
            table_name: "loop-agent-state".to_owned(),
            fingerprint_gsi: "CardFingerprintIndex".to_owned(),
            ttl_attribute: "ttl".to_owned(),
            max_pending_captures: 10,
            session_ttl_seconds: 86_400,
            pending_ttl_seconds: 1_814_400,
            dax_endpoint: None,
        }
    }
}

impl DynamoConfig {
    /// Reads the seed's environment variables (`DYNAMO_TABLE`, `DYNAMO_FINGERPRINT_GSI`,
    /// `MAX_PENDING_CAPTURES`, `SESSION_TTL_SECONDS`, `PENDING_TTL_SECONDS`,
    /// `DAX_ENDPOINT`); unparsable numbers fall back to the defaults, as in the seed.
    /// `EDGESTATE_PATH`, when set, takes the place of `DYNAMO_TABLE`.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let d = Self::default();
        let number = |name: &str| lookup(name).and_then(|v| v.trim().parse::<i64>().ok());
        DynamoConfig {
            table_name: lookup("EDGESTATE_PATH")
                .or_else(|| lookup("DYNAMO_TABLE"))
                .unwrap_or(d.table_name),
            fingerprint_gsi: lookup("DYNAMO_FINGERPRINT_GSI").unwrap_or(d.fingerprint_gsi),
            ttl_attribute: d.ttl_attribute,
            max_pending_captures: number("MAX_PENDING_CAPTURES")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(d.max_pending_captures),
            session_ttl_seconds: number("SESSION_TTL_SECONDS").unwrap_or(d.session_ttl_seconds),
            pending_ttl_seconds: number("PENDING_TTL_SECONDS").unwrap_or(d.pending_ttl_seconds),
            dax_endpoint: lookup("DAX_ENDPOINT"),
        }
    }

    /// The store file: `table_name` itself when it has an extension
    /// (`/var/lib/agent/state.db`), else `table_name` + `.edgestate`
    /// (`loop-agent-state.edgestate`).
    pub fn store_path(&self) -> PathBuf {
        let name = Path::new(&self.table_name);
        if name.extension().is_some() {
            name.to_path_buf()
        } else {
            PathBuf::from(format!("{}.edgestate", self.table_name))
        }
    }

    /// A store builder with these capacities and TTLs (a TTL of zero or less keeps
    /// edgestate's default).
    pub fn builder(&self) -> crate::StoreBuilder {
        let d = Self::default();
        let secs = |s: i64, default: i64| {
            Duration::from_secs(u64::try_from(if s > 0 { s } else { default }).unwrap_or(0))
        };
        Store::builder()
            .pending_capacity(self.max_pending_captures)
            .session_ttl(secs(self.session_ttl_seconds, d.session_ttl_seconds))
            .pending_ttl(secs(self.pending_ttl_seconds, d.pending_ttl_seconds))
    }
}

/// A card linked to a user (the seed's type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardMapping {
    /// The card's fingerprint.
    pub fingerprint: String,
    /// The user it belongs to.
    pub user_pubkey: String,
    /// The card number's tail, as linked (any string, as in the seed).
    pub card_last4: String,
    /// When it was linked, Unix seconds.
    pub linked_at: i64,
}

impl From<crate::CardMapping> for CardMapping {
    fn from(m: crate::CardMapping) -> Self {
        CardMapping {
            fingerprint: m.fingerprint,
            user_pubkey: m.user_pubkey,
            card_last4: m.card_last4,
            linked_at: m.linked_at_s,
        }
    }
}

/// A capture waiting for the user (the seed's type).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingCapture {
    /// The merchant.
    pub merchant_id: String,
    /// Its display name.
    pub merchant_name: Option<String>,
    /// Amount in cents.
    pub amount_cents: u64,
    /// The card's tail.
    pub card_last4: Option<String>,
    /// Proof payload.
    pub proof_data: Option<String>,
    /// Proof kind.
    pub proof_type: Option<String>,
    /// Where it happened.
    pub location: Option<PendingLocation>,
    /// Created, Unix seconds (the key of `DynamoStateStore::remove_pending_capture`).
    pub created_at: i64,
    /// Expires, Unix seconds.
    pub expires_at: i64,
}

impl From<crate::PendingCapture> for PendingCapture {
    fn from(c: crate::PendingCapture) -> Self {
        PendingCapture {
            merchant_id: c.merchant_id,
            merchant_name: c.merchant_name,
            amount_cents: c.amount_cents,
            card_last4: c.card_last4,
            proof_data: c.proof_data,
            proof_type: c.proof_type,
            location: c.location,
            created_at: c.created_at_s,
            expires_at: c.expires_at_s,
        }
    }
}

impl From<PendingCapture> for crate::PendingCapture {
    fn from(c: PendingCapture) -> Self {
        crate::PendingCapture {
            merchant_id: c.merchant_id,
            merchant_name: c.merchant_name,
            amount_cents: c.amount_cents,
            card_last4: c.card_last4,
            proof_data: c.proof_data,
            proof_type: c.proof_type,
            location: c.location,
            created_at_s: c.created_at,
            expires_at_s: c.expires_at,
        }
    }
}

/// A session key (the seed's type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKeyData {
    /// The session key's public key.
    pub key_pubkey: String,
    /// The vault it acts on.
    pub vault_pubkey: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Creation, Unix seconds.
    pub created_at: i64,
    /// Actions allowed.
    pub max_actions: u32,
    /// Actions spent.
    pub actions_used: u32,
}

impl From<crate::SessionKeyData> for SessionKeyData {
    fn from(s: crate::SessionKeyData) -> Self {
        SessionKeyData {
            key_pubkey: s.key_pubkey,
            vault_pubkey: s.vault_pubkey,
            scopes: s.scopes,
            expires_at: s.expires_at_s,
            created_at: s.created_at_s,
            max_actions: s.max_actions,
            actions_used: s.actions_used,
        }
    }
}

impl From<SessionKeyData> for crate::SessionKeyData {
    fn from(s: SessionKeyData) -> Self {
        crate::SessionKeyData {
            key_pubkey: s.key_pubkey,
            vault_pubkey: s.vault_pubkey,
            scopes: s.scopes,
            expires_at_s: s.expires_at,
            created_at_s: s.created_at,
            max_actions: s.max_actions,
            actions_used: s.actions_used,
        }
    }
}

/// The seed's DynamoDB store on a local edgestate file. Cheap to clone (clones share
/// the file).
///
/// Constructors: the seed's `new().await` (environment) and `with_config(config).await`
/// (feature `tokio`), and synchronous [`open`](Self::open),
/// [`temporary`](Self::temporary) and [`from_store`](Self::from_store).
#[derive(Debug, Clone)]
pub struct DynamoStateStore {
    store: Store,
    config: DynamoConfig,
    state_config: DynamoStateConfig,
}

impl DynamoStateStore {
    /// Opens (or creates) the file of `config` ([`DynamoConfig::store_path`]) with its
    /// capacities and TTLs, on the calling thread.
    ///
    /// # Errors
    /// [`StateError::StorageError`] when the file cannot be opened or created (not an
    /// edgestate store, already open, an unsupported schema, an I/O error).
    pub fn open(config: DynamoConfig) -> Result<Self, StateError> {
        let store = config.builder().open(config.store_path())?;
        Ok(DynamoStateStore {
            store,
            config,
            state_config: DynamoStateConfig::default(),
        })
    }

    /// A store in a temporary directory, deleted on drop (for tests that needed
    /// DynamoDB), with the default configuration.
    ///
    /// # Errors
    /// [`StateError::StorageError`] when the temporary store cannot be created.
    pub fn temporary() -> Result<Self, StateError> {
        let config = DynamoConfig::default();
        Ok(DynamoStateStore {
            store: config.builder().temporary()?,
            config,
            state_config: DynamoStateConfig::default(),
        })
    }

    /// Wraps an open store (a manual clock, an in-memory store, a file shared with other
    /// edgestate code). Capacities and TTLs are the store's own (its builder's).
    pub fn from_store(store: Store) -> Self {
        DynamoStateStore {
            store,
            config: DynamoConfig::default(),
            state_config: DynamoStateConfig::default(),
        }
    }

    /// Applies the seed's context configuration (`max_events`; the other fields are
    /// ignored, see [`DynamoStateConfig`]).
    pub fn with_state_config(mut self, state_config: DynamoStateConfig) -> Self {
        self.state_config = state_config;
        self
    }

    /// The underlying store, for everything beyond the seed's API.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configuration it was opened with ([`DynamoConfig::default`] after
    /// [`from_store`](Self::from_store), whose capacities and TTLs are the store's).
    pub fn config(&self) -> &DynamoConfig {
        &self.config
    }
}

/// The seed's methods, synchronous: the bodies of the async methods.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
mod ops {
    use super::*;
    use crate::error::Result;

    pub fn lookup_user_by_card(s: &Store, fp: &str) -> Result<Option<CardMapping>> {
        Ok(seed_data::lookup_card(s, fp)?.map(Into::into))
    }
    pub fn get_user_cards(s: &Store, user: &str) -> Result<Vec<CardMapping>> {
        Ok(seed_data::user_cards(s, user)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
    pub fn get_session_key(s: &Store, user: &str) -> Result<Option<SessionKeyData>> {
        Ok(s.sessions().get(user)?.map(Into::into))
    }
    pub fn get_pending_captures(s: &Store, user: &str) -> Result<Vec<PendingCapture>> {
        Ok(s.pending()
            .list(user)?
            .into_iter()
            .map(|e| e.capture.into())
            .collect())
    }
    pub fn push_event(s: &Store, user: &str, event: ContextEvent, max_events: usize) -> Result<()> {
        s.contexts().update_or_init(user, |ctx| {
            ctx.recent_events.insert(0, event.into());
            ctx.recent_events.truncate(max_events);
            Ok(())
        })?;
        Ok(())
    }
    pub fn context_push(s: &Store, context: UserContext) -> Result<()> {
        let expect = match context.version {
            0 | 1 => Expect::Absent,
            v => Expect::Version(v - 1),
        };
        s.contexts().put_if(context.into(), expect)?;
        Ok(())
    }
}

impl StateStore for DynamoStateStore {
    fn context_fetch(&self, user_pubkey: &str) -> Result<UserContext, StateError> {
        self.store
            .contexts()
            .get(user_pubkey)?
            .map(Into::into)
            .ok_or(StateError::NotFound)
    }

    fn context_push(&self, context: UserContext) -> Result<(), StateError> {
        Ok(ops::context_push(&self.store, context)?)
    }

    fn context_batch_fetch(&self, user_pubkeys: &[String]) -> Result<Vec<UserContext>, StateError> {
        let users: Vec<&str> = user_pubkeys.iter().map(String::as_str).collect();
        Ok(self
            .store
            .contexts()
            .get_many(&users)?
            .found
            .into_iter()
            .map(Into::into)
            .collect())
    }

    fn context_patch(
        &self,
        user_pubkey: &str,
        path: &str,
        value: serde_json::Value,
    ) -> Result<(), StateError> {
        self.store.contexts().patch(user_pubkey, path, value)?;
        Ok(())
    }

    fn push_event(&self, user_pubkey: &str, event: ContextEvent) -> Result<(), StateError> {
        Ok(ops::push_event(
            &self.store,
            user_pubkey,
            event,
            self.state_config.max_events,
        )?)
    }

    fn get_or_init(&self, user_pubkey: &str) -> Result<UserContext, StateError> {
        Ok(self.store.contexts().get_or_init(user_pubkey)?.into())
    }
}

#[cfg(feature = "tokio")]
impl DynamoStateStore {
    /// Runs `f` on tokio's blocking pool with a clone of the store.
    async fn run<T, F>(&self, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> crate::Result<T> + Send + 'static,
    {
        Ok(self.store.run_blocking(f).await?)
    }

    /// The seed's constructor: opens the store configured by the environment
    /// ([`DynamoConfig::from_env`]), on the blocking pool.
    ///
    /// # Errors
    /// As [`open`](Self::open); [`StateError::StorageError`] if the runtime is shutting
    /// down.
    pub async fn new() -> Result<Self, StateError> {
        Self::with_config(DynamoConfig::from_env()).await
    }

    /// The seed's constructor with a configuration (taken by value, as in the seed),
    /// opened on the blocking pool.
    ///
    /// # Errors
    /// As [`open`](Self::open); [`StateError::StorageError`] if the runtime is shutting
    /// down.
    pub async fn with_config(config: DynamoConfig) -> Result<Self, StateError> {
        tokio::task::spawn_blocking(move || Self::open(config))
            .await
            .map_err(|e| StateError::StorageError(e.to_string()))?
    }

    /// The card's mapping, or `None`.
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty fingerprint, a damaged record and storage
    /// errors; [`StateError::SerializationError`] for an undecodable record.
    pub async fn lookup_user_by_card(
        &self,
        fingerprint: &str,
    ) -> Result<Option<CardMapping>, StateError> {
        let fp = fingerprint.to_owned();
        self.run(move |s| ops::lookup_user_by_card(s, &fp)).await
    }

    /// Links a card to a user (moving it if another user had it). Any `card_last4` is
    /// accepted, as in the seed.
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty fingerprint or user, storage and commit
    /// errors.
    pub async fn link_card(
        &self,
        fingerprint: &str,
        user_pubkey: &str,
        card_last4: &str,
    ) -> Result<(), StateError> {
        let (fp, user, last4) = (
            fingerprint.to_owned(),
            user_pubkey.to_owned(),
            card_last4.to_owned(),
        );
        self.run(move |s| seed_data::link_card(s, &fp, &user, &last4))
            .await
    }

    /// Unlinks a card (no error if it was not linked).
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty fingerprint, storage and commit errors.
    pub async fn unlink_card(&self, fingerprint: &str) -> Result<(), StateError> {
        let fp = fingerprint.to_owned();
        self.run(move |s| seed_data::unlink_card(s, &fp)).await
    }

    /// The user's cards (from a reverse index, not a scan).
    ///
    /// # Errors
    /// As [`lookup_user_by_card`](Self::lookup_user_by_card).
    pub async fn get_user_cards(&self, user_pubkey: &str) -> Result<Vec<CardMapping>, StateError> {
        let user = user_pubkey.to_owned();
        self.run(move |s| ops::get_user_cards(s, &user)).await
    }

    /// Whether the transaction id has been marked (and not expired).
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty id, a damaged record and storage errors.
    pub async fn is_transaction_processed(&self, txn_id: &str) -> Result<bool, StateError> {
        let id = txn_id.to_owned();
        self.run(move |s| s.dedup().contains(&id)).await
    }

    /// Marks the transaction processed for 30 days. The first mark wins: a second one
    /// never rewrites who was credited.
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty id or user, storage and commit errors.
    pub async fn mark_transaction_processed(
        &self,
        txn_id: &str,
        user_pubkey: &str,
        cred_amount: u64,
    ) -> Result<(), StateError> {
        let (id, user) = (txn_id.to_owned(), user_pubkey.to_owned());
        self.run(move |s| s.dedup().claim(&id, &user, cred_amount).map(|_| ()))
            .await
    }

    /// Stores the user's session key. An already expired session is accepted, as in the
    /// seed: it replaces the stored one and reads back as `None`.
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty user, storage and commit errors;
    /// [`StateError::SerializationError`] if it does not encode.
    pub async fn store_session_key(
        &self,
        user_pubkey: &str,
        session: &SessionKeyData,
    ) -> Result<(), StateError> {
        let (user, session) = (user_pubkey.to_owned(), session.clone().into());
        self.run(move |s| seed_data::store_session(s, &user, &session))
            .await
    }

    /// The user's session key, `None` if absent or expired.
    ///
    /// # Errors
    /// As [`lookup_user_by_card`](Self::lookup_user_by_card).
    pub async fn get_session_key(
        &self,
        user_pubkey: &str,
    ) -> Result<Option<SessionKeyData>, StateError> {
        let user = user_pubkey.to_owned();
        self.run(move |s| ops::get_session_key(s, &user)).await
    }

    /// Removes the user's session key.
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty user, storage and commit errors.
    pub async fn invalidate_session(&self, user_pubkey: &str) -> Result<(), StateError> {
        let user = user_pubkey.to_owned();
        self.run(move |s| s.sessions().delete(&user).map(|_| ()))
            .await
    }

    /// Appends a pending capture, evicting the oldest beyond `max_pending_captures` in
    /// the same transaction. Two captures in one second both survive.
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty user, storage and commit errors;
    /// [`StateError::SerializationError`] if it does not encode.
    pub async fn add_pending_capture(
        &self,
        user_pubkey: &str,
        capture: &PendingCapture,
    ) -> Result<(), StateError> {
        let (user, capture) = (user_pubkey.to_owned(), capture.clone().into());
        self.run(move |s| s.pending().push(&user, &capture).map(|_| ()))
            .await
    }

    /// The user's pending captures, newest first.
    ///
    /// # Errors
    /// As [`lookup_user_by_card`](Self::lookup_user_by_card).
    pub async fn get_pending_captures(
        &self,
        user_pubkey: &str,
    ) -> Result<Vec<PendingCapture>, StateError> {
        let user = user_pubkey.to_owned();
        self.run(move |s| ops::get_pending_captures(s, &user)).await
    }

    /// Removes the user's captures whose `created_at` is `timestamp`.
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty user, a damaged entry, storage and
    /// commit errors.
    pub async fn remove_pending_capture(
        &self,
        user_pubkey: &str,
        timestamp: i64,
    ) -> Result<(), StateError> {
        let user = user_pubkey.to_owned();
        self.run(move |s| s.pending().delete_created_at(&user, timestamp).map(|_| ()))
            .await
    }

    /// Caches the merchant the user is at, for one hour (by default).
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty user or merchant, storage and commit
    /// errors.
    pub async fn cache_current_merchant(
        &self,
        user_pubkey: &str,
        merchant_id: &str,
    ) -> Result<(), StateError> {
        let (user, merchant) = (user_pubkey.to_owned(), merchant_id.to_owned());
        self.run(move |s| s.location().put(&user, &merchant).map(|_| ()))
            .await
    }

    /// The cached merchant id, `None` if absent or expired.
    ///
    /// # Errors
    /// As [`lookup_user_by_card`](Self::lookup_user_by_card).
    pub async fn get_current_merchant(
        &self,
        user_pubkey: &str,
    ) -> Result<Option<String>, StateError> {
        let user = user_pubkey.to_owned();
        self.run(move |s| Ok(s.location().get(&user)?.map(|m| m.merchant_id)))
            .await
    }

    /// Clears the cached merchant.
    ///
    /// # Errors
    /// [`StateError::StorageError`] for an empty user, storage and commit errors.
    pub async fn clear_current_merchant(&self, user_pubkey: &str) -> Result<(), StateError> {
        let user = user_pubkey.to_owned();
        self.run(move |s| s.location().delete(&user).map(|_| ()))
            .await
    }

    /// [`StateStore::context_fetch`] on the blocking pool.
    ///
    /// # Errors
    /// As [`StateStore::context_fetch`].
    pub async fn context_fetch_async(&self, user_pubkey: &str) -> Result<UserContext, StateError> {
        let this = self.clone();
        let user = user_pubkey.to_owned();
        join(tokio::task::spawn_blocking(move || this.context_fetch(&user)).await)
    }

    /// [`StateStore::context_push`] on the blocking pool.
    ///
    /// # Errors
    /// As [`StateStore::context_push`].
    pub async fn context_push_async(&self, context: UserContext) -> Result<(), StateError> {
        self.run(move |s| ops::context_push(s, context)).await
    }

    /// [`StateStore::context_patch`] on the blocking pool.
    ///
    /// # Errors
    /// As [`StateStore::context_patch`].
    pub async fn context_patch_async(
        &self,
        user_pubkey: &str,
        path: &str,
        value: serde_json::Value,
    ) -> Result<(), StateError> {
        let (user, path) = (user_pubkey.to_owned(), path.to_owned());
        self.run(move |s| s.contexts().patch(&user, &path, value).map(|_| ()))
            .await
    }

    /// [`StateStore::push_event`] on the blocking pool.
    ///
    /// # Errors
    /// As [`StateStore::push_event`].
    pub async fn push_event_async(
        &self,
        user_pubkey: &str,
        event: ContextEvent,
    ) -> Result<(), StateError> {
        let user = user_pubkey.to_owned();
        let max = self.state_config.max_events;
        self.run(move |s| ops::push_event(s, &user, event, max))
            .await
    }
}

#[cfg(feature = "tokio")]
fn join<T>(
    r: std::result::Result<Result<T, StateError>, tokio::task::JoinError>,
) -> Result<T, StateError> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StateError::StorageError(e.to_string())),
    }
}
