//! Working memory: bytes per `(execution id, key)` with an optional TTL, reached through
//! the snapshot handles so an execution's state has one entry point.

use std::time::Duration;

use redb::ReadableTable;

use super::{Snapshots, SnapshotsRead, SnapshotsTx};
use crate::clock::expiry_after;
use crate::codec::{envelope, keys};
use crate::error::Result;
use crate::limits;
use crate::schema::{TtlTable, WORKING_MEMORY};
use crate::tables::record::{self, NewRecord, TtlKey};
use crate::tables::Expect;
use crate::txn::WriteTx;

const TABLE: &str = "edgestate.working_memory";

fn shown<'a>(exec: &'a str, key: &'a str) -> impl Fn() -> String + 'a {
    move || format!("{exec}/{key}")
}

fn ttl_key(exec: &str, key: &str) -> TtlKey {
    TtlKey {
        table: TtlTable::WorkingMemory,
        packed: keys::pack(&[exec.as_bytes(), key.as_bytes()]),
    }
}

fn check(exec: &str, key: &str) -> Result<()> {
    limits::check_key("execution_id", exec)?;
    limits::check_key("key", key)
}

// Reads, generic over read and write transactions.

fn get_in<T>(table: &T, exec: &str, key: &str, now: u64) -> Result<Option<Vec<u8>>>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    check(exec, key)?;
    let stored = record::get_live(table, TABLE, (exec, key), &shown(exec, key), now)?;
    Ok(stored.map(|s| s.payload))
}

/// The execution's keys in key order, live ones only unless `with_expired`.
fn keys_in<T>(table: &T, exec: &str, now: u64, with_expired: bool) -> Result<Vec<String>>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    limits::check_key("execution_id", exec)?;
    let mut out = Vec::new();
    for item in table.range((exec, "")..)? {
        let (k, v) = item?;
        let (k_exec, key) = k.value();
        if k_exec != exec {
            break;
        }
        if with_expired || record::decode_live(TABLE, &shown(exec, key), v.value(), now)?.is_some()
        {
            out.push(key.to_owned());
        }
    }
    Ok(out)
}

fn delete_in(tx: &WriteTx, exec: &str, key: &str) -> Result<bool> {
    check(exec, key)?;
    let removed = record::delete(
        tx,
        WORKING_MEMORY,
        (exec, key),
        &shown(exec, key),
        Some(&|| ttl_key(exec, key)),
    )?;
    Ok(removed.is_some())
}

impl SnapshotsTx<'_> {
    /// Stores working-memory bytes under `(execution_id, key)`, expiring `ttl` from now
    /// if given. Returns the record's new version.
    pub fn set_memory(
        &self,
        execution_id: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<u64> {
        let exec = execution_id;
        check(exec, key)?;
        record::put(
            self.tx,
            WORKING_MEMORY,
            (exec, key),
            &shown(exec, key),
            Some(&|| ttl_key(exec, key)),
            NewRecord {
                format: envelope::FORMAT_BYTES,
                payload: value,
                expires_at_ms: ttl.map(|d| expiry_after(self.tx.now_ms(), d)),
                expect: Expect::Any,
            },
        )
    }

    /// The live working-memory value, or `None` if absent or expired.
    pub fn get_memory(&self, execution_id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let table = self.tx.raw().open_table(WORKING_MEMORY)?;
        get_in(&table, execution_id, key, self.tx.now_ms())
    }

    /// Removes a working-memory key. Returns whether a live value was removed.
    pub fn delete_memory(&self, execution_id: &str, key: &str) -> Result<bool> {
        delete_in(self.tx, execution_id, key)
    }

    /// The execution's live working-memory keys, in key order.
    pub fn list_memory(&self, execution_id: &str) -> Result<Vec<String>> {
        let table = self.tx.raw().open_table(WORKING_MEMORY)?;
        keys_in(&table, execution_id, self.tx.now_ms(), false)
    }

    /// Removes every key of the execution, live or expired, with its expiry entry.
    /// Returns how many live keys were removed.
    pub(super) fn delete_all_memory(&self, exec: &str) -> Result<usize> {
        let all = {
            let table = self.tx.raw().open_table(WORKING_MEMORY)?;
            keys_in(&table, exec, self.tx.now_ms(), true)?
        };
        let mut live = 0;
        for key in &all {
            if delete_in(self.tx, exec, key)? {
                live += 1;
            }
        }
        Ok(live)
    }
}

impl SnapshotsRead<'_> {
    /// The live working-memory value, or `None` if absent or expired.
    pub fn get_memory(&self, execution_id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let table = self.tx.raw().open_table(WORKING_MEMORY)?;
        get_in(&table, execution_id, key, self.tx.now_ms())
    }

    /// The execution's live working-memory keys, in key order.
    pub fn list_memory(&self, execution_id: &str) -> Result<Vec<String>> {
        let table = self.tx.raw().open_table(WORKING_MEMORY)?;
        keys_in(&table, execution_id, self.tx.now_ms(), false)
    }
}

impl Snapshots<'_> {
    /// Stores working-memory bytes with an optional TTL: see [`SnapshotsTx::set_memory`].
    pub fn set_memory(
        &self,
        execution_id: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<u64> {
        self.store
            .write(|tx| tx.snapshots().set_memory(execution_id, key, value, ttl))
    }

    /// The live working-memory value, or `None` if absent or expired.
    pub fn get_memory(&self, execution_id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.store
            .read(|tx| tx.snapshots().get_memory(execution_id, key))
    }

    /// Removes a working-memory key. Returns whether a live value was removed.
    pub fn delete_memory(&self, execution_id: &str, key: &str) -> Result<bool> {
        self.store
            .write(|tx| tx.snapshots().delete_memory(execution_id, key))
    }

    /// The execution's live working-memory keys, in key order.
    pub fn list_memory(&self, execution_id: &str) -> Result<Vec<String>> {
        self.store
            .read(|tx| tx.snapshots().list_memory(execution_id))
    }
}
