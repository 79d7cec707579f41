//! Execution snapshots of the agent runtime, listed by tenant.
//!
//! A snapshot is a cache of an execution's state at some event-store sequence number.
//! [`put`](Snapshots::put) never lets an older snapshot replace a newer one: a lower
//! `sequence_number` than the stored one is refused with [`Error::StaleSnapshot`]
//! (an equal one is accepted, so re-putting is idempotent). The tenant index is kept in
//! the same transaction, so listing a tenant never scans.
//!
//! A snapshot's [`timestamp_ms`](ExecutionSnapshot::timestamp_ms) comes from the store's
//! clock: [`put`](Snapshots::put) stamps the transaction's now into a snapshot whose
//! timestamp is 0 (as [`ExecutionSnapshot::new`] leaves it), so a store on a
//! [`ManualClock`](crate::ManualClock) sees its own time.
//!
//! The working memory of an execution is its own family,
//! [`WorkingMemory`](crate::tables::memory::WorkingMemory);
//! [`delete_with_memory`](Snapshots::delete_with_memory) removes an execution's snapshot,
//! its index entry and all of its working memory at once.

use std::borrow::Cow;
use std::collections::HashMap;

use redb::ReadableMultimapTable;
use serde::{Deserialize, Serialize};

use super::record::{self, Slot, Stored};
use super::{handle, memory};
use crate::access::{Access, WriteAccess};
use crate::codec::{self, envelope};
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::{SNAPSHOTS, SNAPSHOTS_BY_TENANT};
use crate::txn::WriteTx;

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

impl Default for ExecutionState {
    /// [`ExecutionState::PENDING`].
    fn default() -> Self {
        ExecutionState::PENDING
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
    #[serde(with = "crate::codec::json_value")]
    pub step_outputs: HashMap<String, serde_json::Value>,
    /// Working variables.
    #[serde(with = "crate::codec::json_value")]
    pub variables: HashMap<String, serde_json::Value>,
    /// When the snapshot was taken, ms since the epoch. 0 means "not set":
    /// [`Snapshots::put`] then stores the transaction's now (the store's clock).
    pub timestamp_ms: u64,
    /// The event-store sequence number the snapshot reflects.
    pub sequence_number: u64,
}

impl ExecutionSnapshot {
    /// A snapshot without user, step, outputs or variables, and with
    /// [`timestamp_ms`](Self::timestamp_ms) 0, which [`Snapshots::put`] replaces with the
    /// store clock's now (set it to keep a time of your own).
    pub fn new(
        execution_id: impl Into<String>,
        tenant_id: impl Into<String>,
        state: ExecutionState,
        sequence_number: u64,
    ) -> Self {
        ExecutionSnapshot {
            execution_id: execution_id.into(),
            tenant_id: tenant_id.into(),
            state,
            sequence_number,
            ..ExecutionSnapshot::default()
        }
    }

    /// Whether the snapshot reflects at least `event_store_sequence` (the seed's rule).
    pub fn is_fresh(&self, event_store_sequence: u64) -> bool {
        self.sequence_number >= event_store_sequence
    }
}

/// What [`delete_with_memory`](Snapshots::delete_with_memory) removed.
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

fn decode(exec: &str, stored: &Stored) -> Result<ExecutionSnapshot> {
    stored.decode(SNAPSHOTS.name, exec)
}

handle! {
    /// Execution snapshots, from `tx.snapshots()`, `read.snapshots()` or
    /// `store.snapshots()`. On a [`Store`](crate::Store) each call is its own transaction;
    /// inside [`Store::write`](crate::Store::write) reads see the transaction's own
    /// writes.
    ///
    /// ```
    /// use edgestate::{Error, ExecutionSnapshot, ExecutionState, Store};
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::in_memory()?;
    /// let snapshots = store.snapshots();
    /// let mut snap = ExecutionSnapshot::new("exec-1", "acme", ExecutionState::RUNNING, 7);
    /// snap.variables.insert("goal".into(), serde_json::json!({"city": "Lisbon"}));
    /// // The snapshot and its working memory, in one transaction.
    /// store.write(|tx| {
    ///     tx.snapshots().put(&snap)?;
    ///     tx.memory().put("exec-1", "scratch", b"draft", None)?;
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    /// // Stamped with the store clock's now, since `new` leaves the timestamp at 0.
    /// assert!(snapshots.get("exec-1")?.is_some_and(|s| s.timestamp_ms > 0));
    ///
    /// // An older snapshot never replaces a newer one.
    /// let stale = ExecutionSnapshot::new("exec-1", "acme", ExecutionState::PAUSED, 5);
    /// assert!(matches!(snapshots.put(&stale), Err(Error::StaleSnapshot { stored: 7, .. })));
    /// assert_eq!(snapshots.is_fresh("exec-1", 7)?, Some(true));
    /// assert_eq!(snapshots.list("acme")?, vec!["exec-1".to_string()]);
    ///
    /// let cleanup = snapshots.delete_with_memory("exec-1")?;
    /// assert!(cleanup.snapshot_removed);
    /// assert_eq!(cleanup.memory_keys_removed, 1);
    /// assert!(snapshots.get("exec-1")?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    Snapshots
}

impl<A: Access> Snapshots<'_, A> {
    /// The execution's snapshot, if any.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized execution
    /// id; [`Corrupt`](crate::Error::Corrupt) or [`Decode`](crate::Error::Decode) for a
    /// damaged snapshot; storage errors.
    pub fn get(&self, execution_id: &str) -> Result<Option<ExecutionSnapshot>> {
        let exec = execution_id;
        limits::check_key("execution_id", exec)?;
        self.src
            .with_reader(|r| match record::get(r, &SNAPSHOTS, exec)? {
                Some(stored) => Ok(Some(decode(exec, &stored)?)),
                None => Ok(None),
            })
    }

    /// Whether the stored snapshot is fresh for `event_store_sequence` (see
    /// [`ExecutionSnapshot::is_fresh`]); `None` if there is no snapshot.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn is_fresh(&self, execution_id: &str, event_store_sequence: u64) -> Result<Option<bool>> {
        Ok(self
            .get(execution_id)?
            .map(|s| s.is_fresh(event_store_sequence)))
    }

    /// The execution ids of every snapshot of the tenant, in id order, from the tenant
    /// index.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized tenant id;
    /// storage errors.
    pub fn list(&self, tenant_id: &str) -> Result<Vec<String>> {
        self.list_up_to(tenant_id, usize::MAX)
    }

    /// The first `limit` execution ids of the tenant's snapshots, in id order.
    ///
    /// # Errors
    /// As [`list`](Self::list).
    pub fn list_up_to(&self, tenant_id: &str, limit: usize) -> Result<Vec<String>> {
        limits::check_key("tenant_id", tenant_id)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.src.with_reader(|r| {
            let index = r.open_multimap(SNAPSHOTS_BY_TENANT)?;
            let mut out = Vec::new();
            for item in index.get(tenant_id)?.take(limit) {
                out.push(item?.value().to_owned());
            }
            Ok(out)
        })
    }
}

impl<A: WriteAccess> Snapshots<'_, A> {
    /// Stores the snapshot under its execution id and files it under its tenant (moving
    /// it if the tenant changed). A [`timestamp_ms`](ExecutionSnapshot::timestamp_ms) of 0
    /// is stored as the transaction's now (the store's clock); any other is kept.
    /// Returns the record's new version.
    ///
    /// # Errors
    /// [`StaleSnapshot`](crate::Error::StaleSnapshot), writing nothing, when the
    /// snapshot's `sequence_number` is lower than the stored one's;
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized execution
    /// or tenant id, or an oversized snapshot; [`Corrupt`](crate::Error::Corrupt) or
    /// [`Decode`](crate::Error::Decode) when the stored snapshot is damaged (it cannot be
    /// checked for staleness; [`delete`](Self::delete) removes it);
    /// [`Encode`](crate::Error::Encode) when the snapshot does not serialize; storage and
    /// commit errors.
    pub fn put(&self, snapshot: &ExecutionSnapshot) -> Result<u64> {
        let exec = snapshot.execution_id.as_str();
        limits::check_key("execution_id", exec)?;
        limits::check_key("tenant_id", &snapshot.tenant_id)?;
        self.src.with_writer(|tx| {
            let slot = Slot::open(tx, SNAPSHOTS, exec)?;
            let previous_tenant = match slot.live() {
                Some(stored) => {
                    let current = decode(exec, stored)?;
                    if snapshot.sequence_number < current.sequence_number {
                        return Err(Error::StaleSnapshot {
                            key: exec.to_owned(),
                            stored: current.sequence_number,
                            offered: snapshot.sequence_number,
                        });
                    }
                    Some(current.tenant_id)
                }
                None => None,
            };
            let payload = if snapshot.timestamp_ms == 0 {
                let mut stamped = snapshot.clone();
                stamped.timestamp_ms = tx.now_ms();
                codec::to_postcard("execution snapshot", &stamped)?
            } else {
                codec::to_postcard("execution snapshot", snapshot)?
            };
            let version = slot.put(envelope::FORMAT_POSTCARD, &payload, None)?;
            let mut index = tx.open_multimap_table(SNAPSHOTS_BY_TENANT)?;
            if let Some(previous) = previous_tenant {
                if previous != snapshot.tenant_id {
                    index.remove(previous.as_str(), exec)?;
                }
            }
            index.insert(snapshot.tenant_id.as_str(), exec)?;
            Ok(version)
        })
    }

    /// Removes the execution's snapshot and its tenant index entry (working memory
    /// stays; see [`delete_with_memory`](Self::delete_with_memory)). Returns whether a
    /// snapshot was removed. A damaged snapshot is removed too, index entry included; if
    /// its record envelope failed its checksum it is reported as `false`.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized execution
    /// id; storage and commit errors.
    pub fn delete(&self, execution_id: &str) -> Result<bool> {
        let exec = execution_id;
        limits::check_key("execution_id", exec)?;
        self.src.with_writer(|tx| delete_snapshot(tx, exec))
    }

    /// Removes everything stored for the execution in one transaction: its snapshot, its
    /// tenant index entry, and every working-memory key (live or expired) with its
    /// expiry entry.
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    pub fn delete_with_memory(&self, execution_id: &str) -> Result<ExecutionCleanup> {
        let exec = execution_id;
        limits::check_key("execution_id", exec)?;
        self.src.with_writer(|tx| {
            let snapshot_removed = delete_snapshot(tx, exec)?;
            let memory_keys_removed = memory::delete_all(tx, exec)?;
            Ok(ExecutionCleanup {
                snapshot_removed,
                memory_keys_removed,
            })
        })
    }
}

/// Removes the snapshot (live or damaged) and its index entries; whether a snapshot
/// with a readable envelope was removed. The caller has checked `exec`.
fn delete_snapshot(tx: &WriteTx, exec: &str) -> Result<bool> {
    let (removed, owner) = match Slot::open(tx, SNAPSHOTS, exec) {
        Ok(slot) => match slot.delete()? {
            Some(stored) => match decode(exec, &stored) {
                Ok(snapshot) => (true, Owner::Tenant(snapshot.tenant_id)),
                Err(Error::Corrupt { .. } | Error::Decode { .. }) => (true, Owner::Unknown),
                Err(e) => return Err(e),
            },
            None => (false, Owner::Nobody),
        },
        // The envelope failed its checksum: the slot refused it, so remove it leniently
        // (this second look happens only on damage).
        Err(Error::Corrupt { .. }) => {
            record::delete(tx, SNAPSHOTS, exec)?;
            (false, Owner::Unknown)
        }
        Err(e) => return Err(e),
    };
    let mut index = tx.open_multimap_table(SNAPSHOTS_BY_TENANT)?;
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
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ManualClock, Store};

    /// Plants a damaged snapshot for `exec`, filed under `tenant` in the index.
    fn plant(store: &Store, exec: &str, tenant: &str, bytes: &[u8]) {
        store
            .write(|tx| {
                tx.open_table(SNAPSHOTS.def)?.insert(exec, bytes)?;
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
            .put(&ExecutionSnapshot::new(
                "ok",
                "acme",
                ExecutionState::RUNNING,
                1,
            ))
            .expect("put");
        let bad_body = crate::codec::envelope::encode(
            crate::codec::envelope::FORMAT_POSTCARD,
            1,
            None,
            None,
            b"\xff\xff",
        );
        plant(&store, "bad-body", "acme", &bad_body);
        plant(&store, "bad-envelope", "globex", b"\x02");

        assert!(matches!(
            snapshots.get("bad-body"),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            snapshots.get("bad-envelope"),
            Err(Error::Corrupt { .. })
        ));
        // A damaged snapshot cannot be checked for staleness, so it is not overwritten.
        assert!(snapshots
            .put(&ExecutionSnapshot::new(
                "bad-body",
                "acme",
                ExecutionState::RUNNING,
                9
            ))
            .is_err());

        // Both are removed, and gone from the index; only an intact envelope counts.
        assert!(snapshots.delete("bad-body").expect("delete"));
        assert!(!snapshots.delete("bad-envelope").expect("delete"));
        assert_eq!(snapshots.get("bad-body").expect("get"), None);
        assert_eq!(snapshots.get("bad-envelope").expect("get"), None);
        assert_eq!(snapshots.list("acme").expect("list"), vec!["ok"]);
        assert!(snapshots.list("globex").expect("list").is_empty());
    }

    #[test]
    fn put_stamps_an_unset_timestamp_from_the_store_clock() {
        let clock = ManualClock::new(1_700_000_000_000);
        let store = Store::builder()
            .clock(clock.clone())
            .in_memory()
            .expect("store");
        let snapshots = store.snapshots();
        snapshots
            .put(&ExecutionSnapshot::new(
                "e",
                "t",
                ExecutionState::RUNNING,
                1,
            ))
            .expect("put");
        let stored = snapshots.get("e").expect("get").expect("some");
        assert_eq!(stored.timestamp_ms, 1_700_000_000_000);

        let mut own = ExecutionSnapshot::new("e", "t", ExecutionState::PAUSED, 2);
        own.timestamp_ms = 42;
        snapshots.put(&own).expect("put");
        assert_eq!(
            snapshots.get("e").expect("get").expect("some").timestamp_ms,
            42
        );
    }

    #[test]
    fn moving_tenants_and_bounded_listing() {
        let store = Store::in_memory().expect("store");
        let snapshots = store.snapshots();
        for exec in ["a", "b", "c"] {
            snapshots
                .put(&ExecutionSnapshot::new(
                    exec,
                    "t1",
                    ExecutionState::RUNNING,
                    1,
                ))
                .expect("put");
        }
        assert_eq!(snapshots.list_up_to("t1", 2).expect("list"), vec!["a", "b"]);
        assert!(snapshots.list_up_to("t1", 0).expect("list").is_empty());
        snapshots
            .put(&ExecutionSnapshot::new(
                "b",
                "t2",
                ExecutionState::RUNNING,
                1,
            ))
            .expect("move");
        assert_eq!(snapshots.list("t1").expect("list"), vec!["a", "c"]);
        assert_eq!(snapshots.list("t2").expect("list"), vec!["b"]);
    }
}
