//! The agent runtime seed's state-store shape (execution snapshots plus working
//! memory), synchronous, implemented by [`Store`].
//!
//! The runtime's own trait is async; its drop-in (async trait, `ExecutionState` enum,
//! `DateTime<Utc>` timestamps, `set_json` / `get_json`) is `enact_core` (cargo feature
//! `seeds`). This module is the synchronous form on edgestate's native types.
//!
//! Differences from the seed, which called its store a best-effort cache: here every
//! write is durable and atomic, and a save with a lower sequence number than the stored
//! one is refused with [`Error::StaleSnapshot`](crate::Error::StaleSnapshot) instead of
//! silently replacing a fresher snapshot.
//!
//! Working-memory keys follow the seed's convention `exec:{execution_id}:{rest}`: such
//! keys are stored per execution, so
//! [`delete_execution_state`](AgentStateStore::delete_execution_state) removes them with the
//! snapshot in one transaction. Other keys live in the KV namespace
//! [`GLOBAL_MEMORY_NAMESPACE`].

use std::time::Duration;

use crate::error::Result;
use crate::store::Store;
use crate::tables::snapshots::ExecutionSnapshot;

/// KV namespace of working-memory keys that name no execution.
pub const GLOBAL_MEMORY_NAMESPACE: &str = "agent_runtime";

/// Splits `exec:{id}:{rest}` into `(id, rest)`.
fn execution_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("exec:")?;
    let (id, tail) = rest.split_once(':')?;
    (!id.is_empty() && !tail.is_empty()).then_some((id, tail))
}

/// The seed's state-store methods, synchronous.
///
/// ```
/// use edgestate::compat::agent_runtime::AgentStateStore;
/// use edgestate::tables::snapshots::{ExecutionSnapshot, ExecutionState};
/// use edgestate::Store;
///
/// # fn main() -> edgestate::Result<()> {
/// let store = Store::in_memory()?;
/// store.save_snapshot(ExecutionSnapshot::new("exec-1", "tenant-a", ExecutionState::new("running"), 10))?;
/// store.set("exec:exec-1:var:goal", b"ship it", None)?;
/// assert!(store.load_snapshot("exec-1")?.is_some_and(|s| s.is_fresh(10)));
/// store.delete_execution_state("exec-1")?;
/// assert!(store.get("exec:exec-1:var:goal")?.is_none());
/// # Ok(())
/// # }
/// ```
pub trait AgentStateStore {
    /// Saves a snapshot; refuses one older (lower sequence) than the stored one.
    ///
    /// # Errors
    /// [`StaleSnapshot`](crate::Error::StaleSnapshot) for a lower sequence number;
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad id or an oversized snapshot;
    /// [`Corrupt`](crate::Error::Corrupt) for a damaged stored one; storage and codec errors.
    fn save_snapshot(&self, snapshot: ExecutionSnapshot) -> Result<()>;
    /// The execution's snapshot, if any.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized execution id;
    /// [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a damaged
    /// snapshot; storage errors.
    fn load_snapshot(&self, execution_id: &str) -> Result<Option<ExecutionSnapshot>>;
    /// Deletes the execution's snapshot.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized execution id;
    /// storage and commit errors.
    fn delete_snapshot(&self, execution_id: &str) -> Result<()>;
    /// Sets a working-memory key, expiring after `ttl` if given.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad key (or execution id in an
    /// `exec:` key) or an oversized value; [`Corrupt`](crate::Error::Corrupt) for a damaged
    /// record it replaces; storage and commit errors.
    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()>;
    /// A working-memory value, `None` if absent or expired.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key (or
    /// execution id in an `exec:` key); [`Corrupt`](crate::Error::Corrupt) for a damaged
    /// record; storage errors.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Deletes a working-memory key.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key (or
    /// execution id in an `exec:` key); storage and commit errors.
    fn delete(&self, key: &str) -> Result<()>;
    /// Whether a working-memory key exists (and has not expired).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }
    /// Deletes the snapshot and every working-memory key of the execution, atomically.
    /// Returns `()` as the seed does; the native
    /// [`Snapshots::delete_with_memory`](crate::Snapshots::delete_with_memory) reports
    /// what was removed.
    ///
    /// # Errors
    /// As [`delete_snapshot`](Self::delete_snapshot).
    fn delete_execution_state(&self, execution_id: &str) -> Result<()>;
    /// Execution ids of a tenant's snapshots, at most `limit`.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized tenant id;
    /// storage errors.
    fn list_snapshots(&self, tenant_id: &str, limit: usize) -> Result<Vec<String>>;
}

impl AgentStateStore for Store {
    fn save_snapshot(&self, snapshot: ExecutionSnapshot) -> Result<()> {
        self.snapshots().put(&snapshot)?;
        Ok(())
    }

    fn load_snapshot(&self, execution_id: &str) -> Result<Option<ExecutionSnapshot>> {
        self.snapshots().get(execution_id)
    }

    fn delete_snapshot(&self, execution_id: &str) -> Result<()> {
        self.snapshots().delete(execution_id)?;
        Ok(())
    }

    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        match execution_key(key) {
            Some((exec, rest)) => self.memory().put(exec, rest, value, ttl)?,
            None => self.kv().put(GLOBAL_MEMORY_NAMESPACE, key, value, ttl)?,
        };
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match execution_key(key) {
            Some((exec, rest)) => self.memory().get(exec, rest),
            None => Ok(self
                .kv()
                .get(GLOBAL_MEMORY_NAMESPACE, key)?
                .map(|e| e.value)),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        match execution_key(key) {
            Some((exec, rest)) => self.memory().delete(exec, rest)?,
            None => self.kv().delete(GLOBAL_MEMORY_NAMESPACE, key)?,
        };
        Ok(())
    }

    fn delete_execution_state(&self, execution_id: &str) -> Result<()> {
        self.snapshots().delete_with_memory(execution_id)?;
        Ok(())
    }

    fn list_snapshots(&self, tenant_id: &str, limit: usize) -> Result<Vec<String>> {
        self.snapshots().list_up_to(tenant_id, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_keys_are_recognised() {
        assert_eq!(execution_key("exec:e1:var:x"), Some(("e1", "var:x")));
        assert_eq!(execution_key("exec:e1:"), None);
        assert_eq!(execution_key("exec::x"), None);
        assert_eq!(execution_key("session:e1:x"), None);
    }
}
