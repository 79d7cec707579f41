//! Execution snapshots of the agent runtime, listed by tenant, and the working memory of
//! each execution.
//!
//! A snapshot is a cache of an execution's state at some event-store sequence number.
//! [`save`](SnapshotsTx::save) never lets an older snapshot replace a newer one: a lower
//! `sequence_number` than the stored one is refused with [`Error::StaleSnapshot`]
//! (an equal one is accepted, so re-saving is idempotent). The tenant index is kept in
//! the same transaction, so listing a tenant never scans.
//!
//! Working memory is bytes under `(execution id, key)`, each with an optional TTL.
//! [`delete_execution_state`](SnapshotsTx::delete_execution_state) removes an
//! execution's snapshot, its index entry and all of its working memory at once.

use std::borrow::Cow;
use std::collections::HashMap;

use redb::{ReadableMultimapTable, ReadableTable};
use serde::{Deserialize, Serialize};

use super::record::{self, NewRecord, Stored};
use super::Expect;
use crate::clock::{Clock, SystemClock};
use crate::codec;
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{SNAPSHOTS, SNAPSHOTS_BY_TENANT};
use crate::store::Store;
use crate::txn::{ReadTx, WriteTx};

mod memory;

const TABLE: &str = "edgestate.snapshots";

/// The state an execution is in. Any string is accepted; the constants name the usual
/// ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionState(Cow<'static, str>);

impl ExecutionState {
    /// Created, not started.
    pub const PENDING: ExecutionState = ExecutionState(Cow::Borrowed("pending"));
    /// Running.
    pub const RUNNING: ExecutionState = ExecutionState(Cow::Borrowed("running"));
    /// Paused, waiting for input or approval.
    pub const PAUSED: ExecutionState = ExecutionState(Cow::Borrowed("paused"));
    /// Finished successfully.
    pub const COMPLETED: ExecutionState = ExecutionState(Cow::Borrowed("completed"));
    /// Finished with an error.
    pub const FAILED: ExecutionState = ExecutionState(Cow::Borrowed("failed"));
    /// Stopped by a caller.
    pub const CANCELLED: ExecutionState = ExecutionState(Cow::Borrowed("cancelled"));

    /// A state with this name.
    pub fn new(name: impl Into<String>) -> Self {
        ExecutionState(Cow::Owned(name.into()))
    }

    /// The state's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ExecutionState {
    fn from(name: &str) -> Self {
        ExecutionState::new(name)
    }
}

impl From<String> for ExecutionState {
    fn from(name: String) -> Self {
        ExecutionState::new(name)
    }
}

impl std::fmt::Display for ExecutionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An execution's state at an event-store sequence number, for fast resumption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionSnapshot {
    /// The execution this snapshot is of.
    pub execution_id: String,
    /// The tenant it belongs to; snapshots are listed by tenant.
    pub tenant_id: String,
    /// The user who started the execution, if known.
    pub user_id: Option<String>,
    /// The execution's state.
    pub state: ExecutionState,
    /// The step running now, if any.
    pub current_step_id: Option<String>,
    /// Outputs of completed steps, by step id.
    #[serde(with = "crate::codec::json_text")]
    pub step_outputs: HashMap<String, serde_json::Value>,
    /// Working variables.
    #[serde(with = "crate::codec::json_text")]
    pub variables: HashMap<String, serde_json::Value>,
    /// When the snapshot was taken, ms since the epoch.
    pub timestamp_ms: u64,
    /// The event-store sequence number the snapshot reflects.
    pub sequence_number: u64,
}

impl ExecutionSnapshot {
    /// A snapshot without user, step, outputs or variables, taken now by the system
    /// clock (set [`timestamp_ms`](Self::timestamp_ms) to use another clock).
    pub fn new(
        execution_id: impl Into<String>,
        tenant_id: impl Into<String>,
        state: ExecutionState,
        sequence_number: u64,
    ) -> Self {
        ExecutionSnapshot {
            execution_id: execution_id.into(),
            tenant_id: tenant_id.into(),
            user_id: None,
            state,
            current_step_id: None,
            step_outputs: HashMap::new(),
            variables: HashMap::new(),
            timestamp_ms: SystemClock.now_ms(),
            sequence_number,
        }
    }

    /// Whether the snapshot reflects at least `event_store_sequence` (the seed's rule).
    pub fn is_fresh(&self, event_store_sequence: u64) -> bool {
        self.sequence_number >= event_store_sequence
    }
}

/// What [`delete_execution_state`](SnapshotsTx::delete_execution_state) removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecutionCleanup {
    /// Whether a snapshot was removed.
    pub snapshot_removed: bool,
    /// How many live working-memory keys were removed (expired ones go too, uncounted).
    pub memory_keys_removed: usize,
}

/// Whose tenant index entry a deleted snapshot had.
enum Owner {
    Nobody,
    Tenant(String),
    /// The stored snapshot is damaged, so its tenant cannot be read.
    Unknown,
}

fn shown(exec: &str) -> impl Fn() -> String + '_ {
    move || exec.to_owned()
}

fn decode(exec: &str, stored: &Stored) -> Result<ExecutionSnapshot> {
    codec::from_postcard(TABLE, exec, &stored.payload)
}

// Reads, generic over read and write transactions.

fn load_in<T>(table: &T, exec: &str, now: u64) -> Result<Option<(u64, ExecutionSnapshot)>>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    limits::check_key("execution_id", exec)?;
    match record::get_live(table, TABLE, exec, &shown(exec), now)? {
        Some(stored) => Ok(Some((stored.version, decode(exec, &stored)?))),
        None => Ok(None),
    }
}

fn list_by_tenant_in<T>(index: &T, tenant: &str, limit: usize) -> Result<Vec<String>>
where
    T: ReadableMultimapTable<&'static str, &'static str>,
{
    limits::check_key("tenant_id", tenant)?;
    let mut out = Vec::new();
    for item in index.get(tenant)?.take(limit) {
        out.push(item?.value().to_owned());
    }
    Ok(out)
}

/// Snapshots and working memory inside a write transaction. Obtained from
/// [`WriteTx::snapshots`].
#[derive(Debug, Clone, Copy)]
pub struct SnapshotsTx<'t> {
    tx: &'t WriteTx,
}

impl WriteTx {
    /// Execution snapshots and working memory.
    pub fn snapshots(&self) -> SnapshotsTx<'_> {
        SnapshotsTx { tx: self }
    }
}

impl SnapshotsTx<'_> {
    /// Stores the snapshot under its execution id and files it under its tenant (moving
    /// it if the tenant changed). Returns the record's new version.
    ///
    /// Refuses with [`Error::StaleSnapshot`], writing nothing, a snapshot whose
    /// `sequence_number` is lower than the stored one's. A damaged stored snapshot makes
    /// this return [`Error::Corrupt`] or [`Error::Decode`]; [`delete`](Self::delete)
    /// removes it.
    pub fn save(&self, snapshot: &ExecutionSnapshot) -> Result<u64> {
        let exec = snapshot.execution_id.as_str();
        limits::check_key("execution_id", exec)?;
        limits::check_key("tenant_id", &snapshot.tenant_id)?;
        let current = {
            let table = self.tx.raw().open_table(SNAPSHOTS)?;
            load_in(&table, exec, self.tx.now_ms())?
        };
        if let Some((_, stored)) = &current {
            if snapshot.sequence_number < stored.sequence_number {
                return Err(Error::StaleSnapshot {
                    key: exec.to_owned(),
                    stored: stored.sequence_number,
                    offered: snapshot.sequence_number,
                });
            }
        }
        let payload = codec::to_postcard("execution snapshot", snapshot)?;
        let version = record::put(
            self.tx,
            SNAPSHOTS,
            exec,
            &shown(exec),
            None,
            NewRecord::postcard(
                &payload,
                None,
                current
                    .as_ref()
                    .map_or(Expect::Absent, |(v, _)| Expect::Version(*v)),
            ),
        )?;
        let mut index = self.tx.raw().open_multimap_table(SNAPSHOTS_BY_TENANT)?;
        if let Some((_, stored)) = &current {
            if stored.tenant_id != snapshot.tenant_id {
                index.remove(stored.tenant_id.as_str(), exec)?;
            }
        }
        index.insert(snapshot.tenant_id.as_str(), exec)?;
        Ok(version)
    }

    /// The execution's snapshot, if any.
    pub fn load(&self, execution_id: &str) -> Result<Option<ExecutionSnapshot>> {
        let table = self.tx.raw().open_table(SNAPSHOTS)?;
        Ok(load_in(&table, execution_id, self.tx.now_ms())?.map(|(_, s)| s))
    }

    /// Whether the stored snapshot is fresh for `event_store_sequence`; `None` if there
    /// is no snapshot.
    pub fn is_fresh(&self, execution_id: &str, event_store_sequence: u64) -> Result<Option<bool>> {
        Ok(self
            .load(execution_id)?
            .map(|s| s.is_fresh(event_store_sequence)))
    }

    /// Removes the execution's snapshot and its tenant index entry (working memory
    /// stays; see [`delete_execution_state`](Self::delete_execution_state)). Returns
    /// whether a snapshot was removed. A damaged snapshot is removed too, index entry
    /// included; if its record envelope failed its checksum it is reported as `false`.
    pub fn delete(&self, execution_id: &str) -> Result<bool> {
        let exec = execution_id;
        let owner = {
            let table = self.tx.raw().open_table(SNAPSHOTS)?;
            match load_in(&table, exec, self.tx.now_ms()) {
                Ok(Some((_, s))) => Owner::Tenant(s.tenant_id),
                Ok(None) => Owner::Nobody,
                Err(Error::Corrupt { .. } | Error::Decode { .. }) => Owner::Unknown,
                Err(e) => return Err(e),
            }
        };
        let removed = record::delete(self.tx, SNAPSHOTS, exec, &shown(exec), None)?;
        let mut index = self.tx.raw().open_multimap_table(SNAPSHOTS_BY_TENANT)?;
        let tenants = match owner {
            Owner::Tenant(tenant) => vec![tenant],
            Owner::Nobody => Vec::new(),
            Owner::Unknown => {
                // Only on damage: a full pass over the index keeps it exact.
                let mut owners = Vec::new();
                for item in index.iter()? {
                    let (tenant, execs) = item?;
                    for e in execs {
                        if e?.value() == exec {
                            owners.push(tenant.value().to_owned());
                        }
                    }
                }
                owners
            }
        };
        for tenant in tenants {
            index.remove(tenant.as_str(), exec)?;
        }
        Ok(removed.is_some())
    }

    /// Up to `limit` execution ids of the tenant's snapshots, in id order, from the
    /// tenant index.
    pub fn list_by_tenant(&self, tenant_id: &str, limit: usize) -> Result<Vec<String>> {
        let index = self.tx.raw().open_multimap_table(SNAPSHOTS_BY_TENANT)?;
        list_by_tenant_in(&index, tenant_id, limit)
    }

    /// Removes everything stored for the execution: its snapshot, its tenant index
    /// entry, and every working-memory key (live or expired) with its expiry entry.
    pub fn delete_execution_state(&self, execution_id: &str) -> Result<ExecutionCleanup> {
        let exec = execution_id;
        let snapshot_removed = self.delete(exec)?;
        let memory_keys_removed = self.delete_all_memory(exec)?;
        Ok(ExecutionCleanup {
            snapshot_removed,
            memory_keys_removed,
        })
    }
}

/// Snapshot and working-memory reads on a snapshot of the store. Obtained from
/// [`ReadTx::snapshots`].
#[derive(Debug, Clone, Copy)]
pub struct SnapshotsRead<'t> {
    tx: &'t ReadTx,
}

impl ReadTx {
    /// Execution snapshots and working memory.
    pub fn snapshots(&self) -> SnapshotsRead<'_> {
        SnapshotsRead { tx: self }
    }
}

impl SnapshotsRead<'_> {
    /// The execution's snapshot, if any.
    pub fn load(&self, execution_id: &str) -> Result<Option<ExecutionSnapshot>> {
        let table = self.tx.raw().open_table(SNAPSHOTS)?;
        Ok(load_in(&table, execution_id, self.tx.now_ms())?.map(|(_, s)| s))
    }

    /// Whether the stored snapshot is fresh for `event_store_sequence`; `None` if there
    /// is no snapshot.
    pub fn is_fresh(&self, execution_id: &str, event_store_sequence: u64) -> Result<Option<bool>> {
        Ok(self
            .load(execution_id)?
            .map(|s| s.is_fresh(event_store_sequence)))
    }

    /// Up to `limit` execution ids of the tenant's snapshots, in id order.
    pub fn list_by_tenant(&self, tenant_id: &str, limit: usize) -> Result<Vec<String>> {
        let index = self.tx.raw().open_multimap_table(SNAPSHOTS_BY_TENANT)?;
        list_by_tenant_in(&index, tenant_id, limit)
    }
}

/// Snapshot and working-memory calls on the store, each in its own transaction.
/// Obtained from [`Store::snapshots`].
///
/// ```
/// use edgestate::{Error, ExecutionSnapshot, ExecutionState, Store};
///
/// # fn main() -> edgestate::Result<()> {
/// let store = Store::in_memory()?;
/// let snapshots = store.snapshots();
/// let mut snap = ExecutionSnapshot::new("exec-1", "acme", ExecutionState::RUNNING, 7);
/// snap.variables.insert("goal".into(), serde_json::json!({"city": "Lisbon"}));
/// snapshots.save(&snap)?;
/// snapshots.set_memory("exec-1", "scratch", b"draft", None)?;
///
/// // An older snapshot never replaces a newer one.
/// let stale = ExecutionSnapshot::new("exec-1", "acme", ExecutionState::PAUSED, 5);
/// assert!(matches!(snapshots.save(&stale), Err(Error::StaleSnapshot { stored: 7, .. })));
/// assert_eq!(snapshots.is_fresh("exec-1", 7)?, Some(true));
/// assert_eq!(snapshots.list_by_tenant("acme", 10)?, vec!["exec-1".to_string()]);
///
/// let cleanup = snapshots.delete_execution_state("exec-1")?;
/// assert!(cleanup.snapshot_removed);
/// assert_eq!(cleanup.memory_keys_removed, 1);
/// assert!(snapshots.load("exec-1")?.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Snapshots<'s> {
    store: &'s Store,
}

impl Store {
    /// Execution snapshots and working memory, one transaction per call.
    pub fn snapshots(&self) -> Snapshots<'_> {
        Snapshots { store: self }
    }
}

impl Snapshots<'_> {
    /// Saves a snapshot unless it is stale: see [`SnapshotsTx::save`].
    pub fn save(&self, snapshot: &ExecutionSnapshot) -> Result<u64> {
        self.store.write(|tx| tx.snapshots().save(snapshot))
    }

    /// The execution's snapshot, if any.
    pub fn load(&self, execution_id: &str) -> Result<Option<ExecutionSnapshot>> {
        self.store.read(|tx| tx.snapshots().load(execution_id))
    }

    /// Whether the stored snapshot is fresh for `event_store_sequence`; `None` if there
    /// is no snapshot.
    pub fn is_fresh(&self, execution_id: &str, event_store_sequence: u64) -> Result<Option<bool>> {
        self.store
            .read(|tx| tx.snapshots().is_fresh(execution_id, event_store_sequence))
    }

    /// Removes the snapshot and its index entry: see [`SnapshotsTx::delete`].
    pub fn delete(&self, execution_id: &str) -> Result<bool> {
        self.store.write(|tx| tx.snapshots().delete(execution_id))
    }

    /// Up to `limit` execution ids of the tenant's snapshots, in id order.
    pub fn list_by_tenant(&self, tenant_id: &str, limit: usize) -> Result<Vec<String>> {
        self.store
            .read(|tx| tx.snapshots().list_by_tenant(tenant_id, limit))
    }

    /// Removes the snapshot, its index entry and all working memory in one transaction.
    pub fn delete_execution_state(&self, execution_id: &str) -> Result<ExecutionCleanup> {
        self.store
            .write(|tx| tx.snapshots().delete_execution_state(execution_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plants a damaged snapshot for `exec`, filed under `tenant` in the index.
    fn plant(store: &Store, exec: &str, tenant: &str, bytes: &[u8]) {
        store
            .write(|tx| {
                tx.raw().open_table(SNAPSHOTS)?.insert(exec, bytes)?;
                tx.raw()
                    .open_multimap_table(SNAPSHOTS_BY_TENANT)?
                    .insert(tenant, exec)?;
                Ok::<_, Error>(())
            })
            .expect("plant");
    }

    #[test]
    fn deleting_a_damaged_snapshot_also_clears_its_index_entry() {
        let store = Store::in_memory().expect("store");
        let snapshots = store.snapshots();
        snapshots
            .save(&ExecutionSnapshot::new(
                "ok",
                "acme",
                ExecutionState::RUNNING,
                1,
            ))
            .expect("save");
        let bad_body = crate::codec::envelope::encode(
            crate::codec::envelope::FORMAT_POSTCARD_V1,
            1,
            None,
            b"\xff\xff",
        );
        plant(&store, "bad-body", "acme", &bad_body);
        plant(&store, "bad-envelope", "globex", b"\x02");

        assert!(matches!(
            snapshots.load("bad-body"),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            snapshots.load("bad-envelope"),
            Err(Error::Corrupt { .. })
        ));
        // A damaged snapshot cannot be checked for staleness, so it is not overwritten.
        assert!(snapshots
            .save(&ExecutionSnapshot::new(
                "bad-body",
                "acme",
                ExecutionState::RUNNING,
                9
            ))
            .is_err());

        // Both are removed, and gone from the index; only an intact envelope counts.
        assert!(snapshots.delete("bad-body").expect("delete"));
        assert!(!snapshots.delete("bad-envelope").expect("delete"));
        assert_eq!(snapshots.load("bad-body").expect("load"), None);
        assert_eq!(
            snapshots.list_by_tenant("acme", 10).expect("list"),
            vec!["ok"]
        );
        assert!(snapshots
            .list_by_tenant("globex", 10)
            .expect("list")
            .is_empty());
    }
}
