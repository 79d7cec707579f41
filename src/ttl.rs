//! Expiry: the time-ordered expiry index, kept exact in the same transaction as each
//! record, and bounded sweeps over it. Only this module touches the index.

use redb::{ReadableTable, TableDefinition};

use crate::codec::{envelope, keys};
use crate::error::Result;
use crate::schema::{self, TtlTable, EXPIRY};
use crate::txn::WriteTx;

/// Moves a record's expiry entry from `old` to `new` (either may be `None`).
pub(crate) fn reindex(
    tx: &WriteTx,
    table: TtlTable,
    packed_key: &[u8],
    old: Option<u64>,
    new: Option<u64>,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let mut index = tx.raw().open_table(EXPIRY)?;
    if let Some(at) = old {
        index.remove((at, table.tag(), packed_key))?;
    }
    if let Some(at) = new {
        index.insert((at, table.tag(), packed_key), ())?;
    }
    Ok(())
}

/// What one sweep batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SweepOutcome {
    /// Index entries visited (a batch that visits fewer than its limit is the last).
    pub(crate) scanned: usize,
    /// Records removed.
    pub(crate) removed: usize,
}

/// Removes up to `limit` expired records, oldest expiry first. Cost is O(expired).
pub(crate) fn sweep(tx: &WriteTx, limit: usize) -> Result<SweepOutcome> {
    let now = tx.now_ms();
    let due: Vec<(u64, u8, Vec<u8>)> = {
        let index = tx.raw().open_table(EXPIRY)?;
        let mut due = Vec::new();
        for entry in index.range((0u64, 0u8, &[][..])..)?.take(limit) {
            let (key, _) = entry?;
            let (at, tag, packed) = key.value();
            if at > now {
                break;
            }
            due.push((at, tag, packed.to_vec()));
        }
        due
    };
    let mut outcome = SweepOutcome {
        scanned: due.len(),
        removed: 0,
    };
    {
        let mut index = tx.raw().open_table(EXPIRY)?;
        for (at, tag, packed) in &due {
            index.remove((*at, *tag, packed.as_slice()))?;
        }
    }
    for (at, tag, packed) in &due {
        if remove_primary(tx, *tag, packed, *at, now)? {
            outcome.removed += 1;
        }
    }
    Ok(outcome)
}

/// Removes the record an index entry points at, if it still expires at `at`. An entry
/// whose key cannot be unpacked (damage) is dropped without touching any record.
fn remove_primary(tx: &WriteTx, tag: u8, packed: &[u8], at: u64, now: u64) -> Result<bool> {
    let Some(table) = TtlTable::from_tag(tag) else {
        return Ok(false);
    };
    match table {
        TtlTable::Kv => match keys::unpack_str_str(packed) {
            Some((ns, key)) => remove_if_due(tx, schema::KV, (ns, key), at, now),
            None => Ok(false),
        },
        TtlTable::WorkingMemory => match keys::unpack_str_str(packed) {
            Some((exec, key)) => remove_if_due(tx, schema::WORKING_MEMORY, (exec, key), at, now),
            None => Ok(false),
        },
        TtlTable::Pending => match keys::unpack_str_u64(packed) {
            Some((user, seq)) => remove_if_due(tx, schema::PENDING, (user, seq), at, now),
            None => Ok(false),
        },
        TtlTable::Dedup | TtlTable::Idempotency | TtlTable::Sessions | TtlTable::Locations => {
            let def = match table {
                TtlTable::Dedup => schema::DEDUP,
                TtlTable::Idempotency => schema::IDEMPOTENCY,
                TtlTable::Sessions => schema::SESSIONS,
                _ => schema::LOCATIONS,
            };
            match keys::unpack_str(packed) {
                Some(key) => remove_if_due(tx, def, key, at, now),
                None => Ok(false),
            }
        }
    }
}

fn remove_if_due<K: redb::Key + 'static>(
    tx: &WriteTx,
    def: TableDefinition<'static, K, &'static [u8]>,
    key: K::SelfType<'_>,
    at: u64,
    now: u64,
) -> Result<bool> {
    let mut table = tx.raw().open_table(def)?;
    let due = match table.get(&key)? {
        Some(guard) => envelope::peek_header(guard.value())
            .map(|h| h.expires_at_ms == Some(at) && h.is_expired(now))
            .unwrap_or(false),
        None => false,
    };
    if due {
        table.remove(&key)?;
    }
    Ok(due)
}
