//! Drop-in for the solver seed (`solver-state`), cargo feature `seeds`: the async
//! [`StateStore`] trait over `bytes::Bytes`, its [`StateError`] and [`Result`], the
//! generic typed wrappers [`OrderStore`] and [`FillStore`], the `[state]` configuration
//! ([`StateConfig`]), and [`EdgeState`], the backend that takes the place of
//! `InMemoryState` / `FileState`.
//!
//! [`EdgeState`] runs every call on tokio's blocking pool
//! ([`Store::run_blocking`](crate::Store::run_blocking), i.e.
//! `tokio::task::spawn_blocking`): an fsync never stalls a runtime worker.
//!
//! The one-line change: the backend's constructor.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> edgestate::compat::solver_state::Result<()> {
//! use edgestate::compat::solver_state::{EdgeState, OrderStore, StateStore};
//!
//! // was: let store = InMemoryState::new();
//! let store = EdgeState::temporary()?;
//!
//! let order_store = OrderStore::new(store.clone(), "eip7683");
//! order_store.store_order("0xabc", b"encoded order").await?;
//! assert_eq!(order_store.get_order("0xabc").await?.as_deref(), Some(&b"encoded order"[..]));
//! assert_eq!(order_store.list_orders().await?, vec!["0xabc"]);
//! assert_eq!(store.list("eip7683:").await?, vec!["eip7683:0xabc"]);
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;

use super::byte_store::ByteStore;
use crate::error::Error;
use crate::store::Store;

/// The seed's error type.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A key the operation needed does not exist.
    #[error("Key not found: {0}")]
    KeyNotFound(String),
    /// A storage failure or refused input, with edgestate's message.
    #[error("Storage backend error: {0}")]
    BackendError(String),
    /// A value could not be encoded or decoded.
    #[error("Serialization error: {0}")]
    SerializationError(String),
    /// An I/O error.
    #[error("IO error: {0}")]
    IoError(#[from] std::io::Error),
}

impl From<Error> for StateError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { key, .. } => StateError::KeyNotFound(key),
            e @ (Error::Encode { .. } | Error::Decode { .. }) => {
                StateError::SerializationError(e.to_string())
            }
            other => StateError::BackendError(other.to_string()),
        }
    }
}

/// The seed's result type.
pub type Result<T> = std::result::Result<T, StateError>;

/// The seed's key/value storage interface.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The value under `key`, `None` if absent (or expired).
    ///
    /// # Errors
    /// [`StateError::BackendError`] for a bad key or a storage failure.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// [`StateError::BackendError`] for a bad key, an oversized value, a full store
    /// (`max_items`) or a storage failure.
    async fn set(&self, key: &str, value: Bytes) -> Result<()>;
    /// Removes `key` (no error if absent).
    ///
    /// # Errors
    /// [`StateError::BackendError`] for a bad key or a storage failure.
    async fn delete(&self, key: &str) -> Result<()>;
    /// The keys starting with `prefix`, in key order.
    ///
    /// # Errors
    /// [`StateError::BackendError`] for a storage failure.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// The values of `keys`, in order.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    async fn batch_get(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }
}

/// The seed's `[state]` configuration section; deserialises from it (TOML, JSON, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StateConfig {
    /// `"memory"`, `"file"` or a connection string. Here `"memory"` is an in-memory
    /// store and anything else a file (see [`EdgeState::from_config`]).
    #[serde(rename = "type")]
    pub kind: String,
    /// Limit on live keys.
    pub max_items: Option<usize>,
    /// TTL of every value, in seconds.
    pub ttl_seconds: Option<u64>,
    /// The `[state.file]` section.
    pub file: Option<FileStateConfig>,
}

/// The seed's `[state.file]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FileStateConfig {
    /// The directory; the store file is `state.edgestate` inside it.
    pub base_path: PathBuf,
    /// Ignored: every write is durable when it returns, no timer is needed.
    pub sync_interval: Option<String>,
}

/// KV namespace an [`EdgeState`] keeps its values in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "solver";

/// The solver's backend on an edgestate store: the seed's `InMemoryState` /
/// `FileState`, durable and atomic. Cheap to clone; clones share the store.
#[derive(Debug, Clone)]
pub struct EdgeState {
    bytes: ByteStore,
}

impl EdgeState {
    /// Opens (or creates) the store file at `path`.
    ///
    /// # Errors
    /// [`StateError::BackendError`] when the file cannot be opened or created.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_store(Store::open(path)?, DEFAULT_NAMESPACE)
    }

    /// A store in memory (gone on drop), like the seed's `InMemoryState::new()`.
    ///
    /// # Errors
    /// [`StateError::BackendError`] if it cannot be created.
    pub fn in_memory() -> Result<Self> {
        Self::from_store(Store::in_memory()?, DEFAULT_NAMESPACE)
    }

    /// A store file in a temporary directory, deleted on drop (for tests).
    ///
    /// # Errors
    /// [`StateError::BackendError`] if it cannot be created.
    pub fn temporary() -> Result<Self> {
        Self::from_store(Store::temporary()?, DEFAULT_NAMESPACE)
    }

    /// Values in KV namespace `namespace` of an open store.
    ///
    /// # Errors
    /// [`StateError::BackendError`] for an empty or oversized namespace.
    pub fn from_store(store: Store, namespace: &str) -> Result<Self> {
        Ok(EdgeState {
            bytes: ByteStore::new(store, namespace)?,
        })
    }

    /// The backend the seed's `[state]` section describes: `type = "memory"` in memory,
    /// otherwise the file `state.edgestate` in `file.base_path` (the current directory
    /// without one); `max_items` and `ttl_seconds` as in
    /// [`with_limits`](Self::with_limits).
    ///
    /// # Errors
    /// [`StateError::BackendError`] when the store cannot be opened or created.
    pub fn from_config(config: &StateConfig) -> Result<Self> {
        let mut state = if config.kind == "memory" {
            Self::in_memory()?
        } else {
            let dir = config
                .file
                .as_ref()
                .map(|f| f.base_path.clone())
                .unwrap_or_default();
            Self::open(dir.join("state.edgestate"))?
        };
        if let Some(max) = config.max_items {
            state.bytes = state.bytes.with_max_items(max);
        }
        if let Some(secs) = config.ttl_seconds {
            state.bytes = state.bytes.with_ttl(Duration::from_secs(secs));
        }
        Ok(state)
    }

    /// At most `max_items` live keys (a new key beyond is refused, never evicted) and
    /// every value expiring `ttl` after it is set: the seed's `with_limits`.
    pub fn with_limits(self, max_items: usize, ttl: Duration) -> Self {
        EdgeState {
            bytes: self.bytes.with_max_items(max_items).with_ttl(ttl),
        }
    }

    /// The byte store underneath (synchronous).
    pub fn byte_store(&self) -> &ByteStore {
        &self.bytes
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ByteStore) -> crate::Result<T> + Send + 'static,
    {
        let bytes = self.bytes.clone();
        Ok(self.bytes.store().run_blocking(move |_| f(&bytes)).await?)
    }
}

#[async_trait]
impl StateStore for EdgeState {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let key = key.to_owned();
        Ok(self.run(move |b| b.get(&key)).await?.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes) -> Result<()> {
        let key = key.to_owned();
        self.run(move |b| b.set(&key, &value)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        self.run(move |b| b.delete(&key).map(|_| ())).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.to_owned();
        self.run(move |b| b.list(&prefix)).await
    }

    /// From one consistent snapshot.
    async fn batch_get(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let keys = keys.to_vec();
        let values = self
            .run(move |b| {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                b.batch_get(&keys)
            })
            .await?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }
}

/// The seed's typed wrapper for orders: `"{prefix}:{id}"` keys in any [`StateStore`].
#[derive(Debug, Clone)]
pub struct OrderStore<S: StateStore> {
    store: S,
    prefix: String,
}

impl<S: StateStore> OrderStore<S> {
    /// Orders of `store` under `"{prefix}:"`.
    pub fn new(store: S, prefix: &str) -> Self {
        OrderStore {
            store,
            prefix: prefix.to_owned(),
        }
    }

    /// Stores an encoded order.
    ///
    /// # Errors
    /// As [`StateStore::set`].
    pub async fn store_order(&self, id: &str, order: &[u8]) -> Result<()> {
        let key = format!("{}:{}", self.prefix, id);
        self.store.set(&key, Bytes::copy_from_slice(order)).await
    }

    /// The encoded order, if stored.
    ///
    /// # Errors
    /// As [`StateStore::get`].
    pub async fn get_order(&self, id: &str) -> Result<Option<Bytes>> {
        let key = format!("{}:{}", self.prefix, id);
        self.store.get(&key).await
    }

    /// The stored order ids (what [`get_order`](Self::get_order) takes), in key order.
    ///
    /// # Errors
    /// As [`StateStore::list`].
    pub async fn list_orders(&self) -> Result<Vec<String>> {
        list_ids(&self.store, &self.prefix).await
    }
}

/// The seed's typed wrapper for fills: `"{prefix}:{id}"` keys in any [`StateStore`].
#[derive(Debug, Clone)]
pub struct FillStore<S: StateStore> {
    store: S,
    prefix: String,
}

impl<S: StateStore> FillStore<S> {
    /// Fills of `store` under `"{prefix}:"`.
    pub fn new(store: S, prefix: &str) -> Self {
        FillStore {
            store,
            prefix: prefix.to_owned(),
        }
    }

    /// Stores an encoded fill.
    ///
    /// # Errors
    /// As [`StateStore::set`].
    pub async fn store_fill(&self, id: &str, fill: &[u8]) -> Result<()> {
        let key = format!("{}:{}", self.prefix, id);
        self.store.set(&key, Bytes::copy_from_slice(fill)).await
    }

    /// The encoded fill, if stored.
    ///
    /// # Errors
    /// As [`StateStore::get`].
    pub async fn get_fill(&self, id: &str) -> Result<Option<Bytes>> {
        let key = format!("{}:{}", self.prefix, id);
        self.store.get(&key).await
    }

    /// The stored fill ids, in key order.
    ///
    /// # Errors
    /// As [`StateStore::list`].
    pub async fn list_fills(&self) -> Result<Vec<String>> {
        list_ids(&self.store, &self.prefix).await
    }
}

/// Ids under `"{prefix}:"` only (not under `"{prefix}x:"`), without the prefix.
async fn list_ids<S: StateStore + ?Sized>(store: &S, prefix: &str) -> Result<Vec<String>> {
    let full = format!("{prefix}:");
    Ok(store
        .list(&full)
        .await?
        .into_iter()
        .filter_map(|k| k.strip_prefix(&full).map(str::to_owned))
        .collect())
}
