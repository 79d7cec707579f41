//! Drop-in for the agent runtime seed (`enact_core`'s state store), cargo feature
//! `seeds`: the async [`StateStore`] trait (`async_trait`, `anyhow::Result`), the
//! [`StateStoreJsonExt`] helpers blanket-implemented for every state store,
//! [`ExecutionSnapshot`] with the seed's fields and JSON (an [`ExecutionState`] enum, a
//! `DateTime<Utc>` timestamp), and the kernel id types, implemented for [`Store`].
//!
//! Every call runs on tokio's blocking pool ([`Store::run_blocking`], i.e.
//! `tokio::task::spawn_blocking`), so a commit's fsync never stalls a runtime worker.
//! Errors are edgestate's [`Error`] inside the `anyhow::Error`
//! (`err.downcast_ref::<edgestate::Error>()`).
//!
//! The one-line change: the store the runtime is given.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use edgestate::compat::enact_core::{
//!     ExecutionId, ExecutionSnapshot, ExecutionState, StateStore, StateStoreJsonExt, TenantId,
//! };
//!
//! // was: let store: Arc<dyn StateStore> = Arc::new(InMemoryStateStore::new());
//! let store: Arc<dyn StateStore> = Arc::new(edgestate::Store::temporary()?);
//!
//! let exec = ExecutionId::new();
//! let snapshot = ExecutionSnapshot::new(exec.clone(), TenantId::from("acme"), ExecutionState::Running, 7);
//! store.save_snapshot(snapshot).await?;
//! let loaded = store.load_snapshot(&exec).await?.expect("saved");
//! assert_eq!(loaded.state, ExecutionState::Running);
//! assert!(loaded.is_fresh(7));
//!
//! store.set_json(&format!("exec:{exec}:var:goal"), &"ship it", None).await?;
//! let goal: Option<String> = store.get_json(&format!("exec:{exec}:var:goal")).await?;
//! assert_eq!(goal.as_deref(), Some("ship it"));
//! store.delete_execution_state(&exec).await?;
//! assert!(!store.exists(&format!("exec:{exec}:var:goal")).await?);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::agent_runtime::AgentStateStore;
use crate::error::Error;
use crate::store::Store;

pub use kernel::{ExecutionId, ExecutionState, StepId, TenantId, UserId};

/// The seed's kernel vocabulary: id newtypes and the execution state enum.
pub mod kernel {
    use std::sync::atomic::{AtomicU64, Ordering};

    use serde::{Deserialize, Serialize};

    macro_rules! id {
        ($(#[$doc:meta])* $name:ident) => {
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
            #[serde(transparent)]
            pub struct $name(String);

            impl $name {
                /// The id as a string.
                pub fn as_str(&self) -> &str {
                    &self.0
                }
            }
            impl From<&str> for $name {
                fn from(s: &str) -> Self {
                    $name(s.to_owned())
                }
            }
            impl From<String> for $name {
                fn from(s: String) -> Self {
                    $name(s)
                }
            }
            impl From<$name> for String {
                fn from(id: $name) -> String {
                    id.0
                }
            }
            impl AsRef<str> for $name {
                fn as_ref(&self) -> &str {
                    &self.0
                }
            }
            impl std::fmt::Display for $name {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(&self.0)
                }
            }
        };
    }

    id!(
        /// An execution's id (a string, serialised as one).
        ExecutionId
    );
    id!(
        /// A tenant's id.
        TenantId
    );
    id!(
        /// A user's id.
        UserId
    );
    id!(
        /// A step's id.
        StepId
    );

    impl ExecutionId {
        /// A new id unique in this process and practically across processes:
        /// `exec_` + the time in nanoseconds + a process-wide counter + the process id.
        pub fn new() -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            ExecutionId(format!("exec_{nanos:x}{n:04x}{:x}", std::process::id()))
        }
    }

    impl Default for ExecutionId {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Where an execution is. Serialised as the variant name (`"Running"`); the
    /// lower-case names edgestate stores natively (`"running"`) are accepted too.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum ExecutionState {
        /// Created, not started.
        #[serde(alias = "pending", alias = "PENDING")]
        Pending,
        /// Running.
        #[serde(alias = "running", alias = "RUNNING")]
        Running,
        /// Paused, waiting for input.
        #[serde(alias = "paused", alias = "PAUSED")]
        Paused,
        /// Finished successfully.
        #[serde(alias = "completed", alias = "COMPLETED")]
        Completed,
        /// Finished with an error.
        #[serde(alias = "failed", alias = "FAILED")]
        Failed,
        /// Cancelled.
        #[serde(alias = "cancelled", alias = "CANCELLED")]
        Cancelled,
    }

    impl ExecutionState {
        /// Every state.
        pub const ALL: [ExecutionState; 6] = [
            ExecutionState::Pending,
            ExecutionState::Running,
            ExecutionState::Paused,
            ExecutionState::Completed,
            ExecutionState::Failed,
            ExecutionState::Cancelled,
        ];

        /// The native (string) state edgestate stores.
        pub fn to_native(self) -> crate::ExecutionState {
            match self {
                ExecutionState::Pending => crate::ExecutionState::PENDING,
                ExecutionState::Running => crate::ExecutionState::RUNNING,
                ExecutionState::Paused => crate::ExecutionState::PAUSED,
                ExecutionState::Completed => crate::ExecutionState::COMPLETED,
                ExecutionState::Failed => crate::ExecutionState::FAILED,
                ExecutionState::Cancelled => crate::ExecutionState::CANCELLED,
            }
        }

        /// The state a native one names, `None` for a name this enum does not have.
        pub fn from_native(state: &crate::ExecutionState) -> Option<Self> {
            Self::ALL
                .into_iter()
                .find(|s| s.to_native().as_str().eq_ignore_ascii_case(state.as_str()))
        }
    }
}

/// The seed's supertrait of [`StateStore`]. Its definition is not part of the seed
/// documents, so here it is a marker with no methods.
pub trait StorageBackend: Send + Sync {}

/// An execution's state, for fast resumption (the seed's type, fields and JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionSnapshot {
    /// The execution.
    pub execution_id: ExecutionId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The user who started it (omitted from the JSON when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Where it is.
    pub state: ExecutionState,
    /// The step running, if any.
    pub current_step_id: Option<StepId>,
    /// Outputs of completed steps.
    pub step_outputs: HashMap<StepId, serde_json::Value>,
    /// Working variables.
    pub variables: HashMap<String, serde_json::Value>,
    /// When the snapshot was taken (stored to the millisecond).
    pub timestamp: DateTime<Utc>,
    /// The event-store sequence number it reflects.
    pub sequence_number: u64,
}

impl ExecutionSnapshot {
    /// A snapshot taken now, without a user.
    pub fn new(
        execution_id: ExecutionId,
        tenant_id: TenantId,
        state: ExecutionState,
        sequence_number: u64,
    ) -> Self {
        Self::with_user(execution_id, tenant_id, None, state, sequence_number)
    }

    /// A snapshot taken now, for `user_id`.
    pub fn with_user(
        execution_id: ExecutionId,
        tenant_id: TenantId,
        user_id: Option<UserId>,
        state: ExecutionState,
        sequence_number: u64,
    ) -> Self {
        ExecutionSnapshot {
            execution_id,
            tenant_id,
            user_id,
            state,
            current_step_id: None,
            step_outputs: HashMap::new(),
            variables: HashMap::new(),
            timestamp: Utc::now(),
            sequence_number,
        }
    }

    /// Whether it reflects at least `event_store_sequence`.
    pub fn is_fresh(&self, event_store_sequence: u64) -> bool {
        self.sequence_number >= event_store_sequence
    }

    /// The native snapshot edgestate stores.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `timestamp`) for a time before 1970.
    pub fn to_native(&self) -> crate::Result<crate::ExecutionSnapshot> {
        let timestamp_ms = u64::try_from(self.timestamp.timestamp_millis())
            .map_err(|_| Error::invalid("timestamp", "before the Unix epoch"))?;
        Ok(crate::ExecutionSnapshot {
            execution_id: self.execution_id.to_string(),
            tenant_id: self.tenant_id.to_string(),
            user_id: self.user_id.as_ref().map(ToString::to_string),
            state: self.state.to_native(),
            current_step_id: self.current_step_id.as_ref().map(ToString::to_string),
            step_outputs: self
                .step_outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            variables: self.variables.clone(),
            timestamp_ms,
            sequence_number: self.sequence_number,
        })
    }

    /// The seed's form of a native snapshot.
    ///
    /// # Errors
    /// [`Error::Decode`] for a state this enum does not name or a timestamp out of
    /// range (written through the native API).
    pub fn from_native(s: crate::ExecutionSnapshot) -> crate::Result<Self> {
        let bad = |reason: String| Error::Decode {
            table: "edgestate.snapshots",
            key: s.execution_id.clone(),
            reason,
        };
        let state = ExecutionState::from_native(&s.state)
            .ok_or_else(|| bad(format!("unknown execution state `{}`", s.state)))?;
        let timestamp = i64::try_from(s.timestamp_ms)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| bad(format!("timestamp {} ms out of range", s.timestamp_ms)))?;
        Ok(ExecutionSnapshot {
            execution_id: s.execution_id.into(),
            tenant_id: s.tenant_id.into(),
            user_id: s.user_id.map(Into::into),
            state,
            current_step_id: s.current_step_id.map(Into::into),
            step_outputs: s
                .step_outputs
                .into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect(),
            variables: s.variables,
            timestamp,
            sequence_number: s.sequence_number,
        })
    }
}

/// JSON helpers for every [`StateStore`], under the same keys as working memory.
#[async_trait]
pub trait StateStoreJsonExt: StateStore {
    /// Stores `value` as JSON under `key`.
    ///
    /// # Errors
    /// A serde error if it does not serialise; as [`StateStore::set`].
    async fn set_json<T: Serialize + Send + Sync>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.set(key, &bytes, ttl).await
    }

    /// The JSON value under `key`, `None` if absent or expired.
    ///
    /// # Errors
    /// A serde error if it is not a `T`; as [`StateStore::get`].
    async fn get_json<T: for<'de> Deserialize<'de>>(&self, key: &str) -> anyhow::Result<Option<T>> {
        match self.get(key).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }
}

impl<S: StateStore + ?Sized> StateStoreJsonExt for S {}

/// The seed's async snapshot and working-memory store, implemented by [`Store`].
///
/// Working-memory keys `exec:{execution_id}:{rest}` belong to that execution (removed
/// by [`delete_execution_state`](Self::delete_execution_state)); other keys live in the
/// KV namespace [`GLOBAL_MEMORY_NAMESPACE`](super::agent_runtime::GLOBAL_MEMORY_NAMESPACE).
#[async_trait]
pub trait StateStore: StorageBackend {
    /// Saves a snapshot durably. One with a lower `sequence_number` than the stored one
    /// is refused.
    ///
    /// # Errors
    /// [`Error::StaleSnapshot`] for a lower sequence number; [`Error::InvalidInput`] for
    /// an empty id or a pre-1970 timestamp; storage and commit errors.
    async fn save_snapshot(&self, snapshot: ExecutionSnapshot) -> anyhow::Result<()>;

    /// The execution's latest snapshot, if any.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty id; [`Error::Decode`] or [`Error::Corrupt`]
    /// for a damaged snapshot; storage errors.
    async fn load_snapshot(
        &self,
        execution_id: &ExecutionId,
    ) -> anyhow::Result<Option<ExecutionSnapshot>>;

    /// Deletes the execution's snapshot (no error if absent).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty id; storage and commit errors.
    async fn delete_snapshot(&self, execution_id: &ExecutionId) -> anyhow::Result<()>;

    /// Sets a working-memory key, expiring after `ttl` if given.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or oversized key or value; storage and commit
    /// errors.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> anyhow::Result<()>;

    /// A working-memory value, `None` if absent or expired.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or oversized key; storage errors.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;

    /// Deletes a working-memory key (no error if absent).
    ///
    /// # Errors
    /// As [`set`](Self::set).
    async fn delete(&self, key: &str) -> anyhow::Result<()>;

    /// Whether a working-memory key exists and has not expired.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    async fn exists(&self, key: &str) -> anyhow::Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    /// Deletes the snapshot and every `exec:{execution_id}:` key, in one transaction.
    ///
    /// # Errors
    /// As [`delete_snapshot`](Self::delete_snapshot).
    async fn delete_execution_state(&self, execution_id: &ExecutionId) -> anyhow::Result<()> {
        self.delete_snapshot(execution_id).await
    }

    /// Ids of a tenant's snapshots, at most `limit`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty tenant id; storage errors.
    async fn list_snapshots(
        &self,
        tenant_id: &TenantId,
        limit: usize,
    ) -> anyhow::Result<Vec<ExecutionId>>;
}

impl StorageBackend for Store {}

#[async_trait]
impl StateStore for Store {
    async fn save_snapshot(&self, snapshot: ExecutionSnapshot) -> anyhow::Result<()> {
        let native = snapshot.to_native()?;
        self.run_blocking(move |s| s.snapshots().put(&native).map(|_| ()))
            .await?;
        Ok(())
    }

    async fn load_snapshot(
        &self,
        execution_id: &ExecutionId,
    ) -> anyhow::Result<Option<ExecutionSnapshot>> {
        let id = execution_id.to_string();
        let native = self.run_blocking(move |s| s.snapshots().get(&id)).await?;
        Ok(native.map(ExecutionSnapshot::from_native).transpose()?)
    }

    async fn delete_snapshot(&self, execution_id: &ExecutionId) -> anyhow::Result<()> {
        let id = execution_id.to_string();
        self.run_blocking(move |s| AgentStateStore::delete_snapshot(s, &id))
            .await?;
        Ok(())
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> anyhow::Result<()> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.run_blocking(move |s| AgentStateStore::set(s, &key, &value, ttl))
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        Ok(self
            .run_blocking(move |s| AgentStateStore::get(s, &key))
            .await?)
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let key = key.to_owned();
        self.run_blocking(move |s| AgentStateStore::delete(s, &key))
            .await?;
        Ok(())
    }

    async fn delete_execution_state(&self, execution_id: &ExecutionId) -> anyhow::Result<()> {
        let id = execution_id.to_string();
        self.run_blocking(move |s| AgentStateStore::delete_execution_state(s, &id))
            .await?;
        Ok(())
    }

    async fn list_snapshots(
        &self,
        tenant_id: &TenantId,
        limit: usize,
    ) -> anyhow::Result<Vec<ExecutionId>> {
        let tenant = tenant_id.to_string();
        let ids = self
            .run_blocking(move |s| AgentStateStore::list_snapshots(s, &tenant, limit))
            .await?;
        Ok(ids.into_iter().map(ExecutionId::from).collect())
    }
}
