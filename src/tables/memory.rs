//! Working memory of the agent runtime: bytes per `(execution id, key)`, each with an
//! optional TTL, listed per execution in key order.
//!
//! An execution's working memory is removed with its snapshot by
//! [`Snapshots::delete_with_memory`](crate::tables::snapshots::Snapshots::delete_with_memory),
//! in one transaction.

use std::time::Duration;

use super::handle;
use super::record;
use crate::access::{Access, WriteAccess};
use crate::clock::expiry_after;
use crate::codec::envelope;
use crate::error::Result;
use crate::limits;
use crate::schema::WORKING_MEMORY;
use crate::tables::Expect;
use crate::txn::WriteTx;

fn check(exec: &str, key: &str) -> Result<()> {
    limits::check_key("execution_id", exec)?;
    limits::check_key("key", key)
}

handle! {
    /// Working memory, from `tx.memory()`, `read.memory()` or `store.memory()`. On a
    /// [`Store`](crate::Store) each call is its own transaction; inside
    /// [`Store::write`](crate::Store::write) reads see the transaction's own writes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use edgestate::Store;
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::in_memory()?;
    /// let memory = store.memory();
    /// memory.put("exec-1", "scratch", b"draft", None)?;
    /// memory.put("exec-1", "lease", b"mine", Some(Duration::from_secs(30)))?;
    /// assert_eq!(memory.get("exec-1", "scratch")?, Some(b"draft".to_vec()));
    /// assert_eq!(memory.list("exec-1")?, vec!["lease", "scratch"]);
    ///
    /// // Several keys in one transaction.
    /// store.write(|tx| {
    ///     tx.memory().delete("exec-1", "lease")?;
    ///     tx.memory().put("exec-1", "plan", b"step 2", None)?;
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    /// assert_eq!(memory.list("exec-1")?, vec!["plan", "scratch"]);
    /// # Ok(())
    /// # }
    /// ```
    WorkingMemory
}

impl<A: Access> WorkingMemory<'_, A> {
    /// The live value under `(execution_id, key)`, or `None` if absent or expired.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized execution
    /// id or key; [`Corrupt`](crate::Error::Corrupt) for a damaged record; storage errors.
    pub fn get(&self, execution_id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let exec = execution_id;
        check(exec, key)?;
        self.src.with_reader(|r| {
            Ok(record::get(r, &WORKING_MEMORY, (exec, key))?.map(|stored| stored.payload))
        })
    }

    /// The execution's live keys, in key order.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad execution id;
    /// [`Corrupt`](crate::Error::Corrupt) for a damaged record; storage errors.
    pub fn list(&self, execution_id: &str) -> Result<Vec<String>> {
        let exec = execution_id;
        limits::check_key("execution_id", exec)?;
        self.src.with_reader(|r| {
            let table = r.open(WORKING_MEMORY.def)?;
            let mut out = Vec::new();
            for item in table.range((exec, "")..)? {
                let (k, v) = item?;
                let (k_exec, key) = k.value();
                if k_exec != exec {
                    break;
                }
                if record::decode_live(&WORKING_MEMORY, &(exec, key), v.value(), r.now_ms())?
                    .is_some()
                {
                    out.push(key.to_owned());
                }
            }
            Ok(out)
        })
    }
}

impl<A: WriteAccess> WorkingMemory<'_, A> {
    /// Stores `value` under `(execution_id, key)`, replacing any value; `ttl` makes it
    /// expire that long after the transaction's now. Returns the record's new version.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad execution id or key or an
    /// oversized value; [`Corrupt`](crate::Error::Corrupt) when the record it replaces is
    /// damaged; storage and commit errors.
    pub fn put(
        &self,
        execution_id: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<u64> {
        let exec = execution_id;
        check(exec, key)?;
        limits::check_value_len("value", value.len())?;
        self.src.with_writer(|tx| {
            let expires_at_ms = ttl.map(|d| expiry_after(tx.now_ms(), d));
            record::put(
                tx,
                WORKING_MEMORY,
                (exec, key),
                envelope::FORMAT_BYTES,
                value,
                expires_at_ms,
                Expect::Any,
            )
        })
    }

    /// Removes the value under `(execution_id, key)` (live, expired or damaged) with its
    /// expiry entry. Returns whether a live value was removed.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad execution id or key;
    /// storage and commit errors.
    pub fn delete(&self, execution_id: &str, key: &str) -> Result<bool> {
        let exec = execution_id;
        check(exec, key)?;
        self.src
            .with_writer(|tx| Ok(record::delete(tx, WORKING_MEMORY, (exec, key))?.is_some()))
    }
}

/// Removes every key of the execution, live, expired or damaged, with its expiry entry.
/// Returns how many live keys were removed. The caller has checked `exec`.
pub(crate) fn delete_all(tx: &WriteTx, exec: &str) -> Result<usize> {
    let all: Vec<String> = {
        let table = tx.open_table(WORKING_MEMORY.def)?;
        let mut all = Vec::new();
        for item in redb::ReadableTable::range(&table, (exec, "")..)? {
            let (k, _) = item?;
            let (k_exec, key) = k.value();
            if k_exec != exec {
                break;
            }
            all.push(key.to_owned());
        }
        all
    };
    let mut live = 0;
    for key in &all {
        if record::delete(tx, WORKING_MEMORY, (exec, key.as_str()))?.is_some() {
            live += 1;
        }
    }
    Ok(live)
}
