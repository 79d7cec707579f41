//! Expiry: the time-ordered expiry index, kept exact in the same transaction as each
//! record, and bounded sweeps over it. Only this module touches the index.

use redb::ReadableTable;

use crate::codec::envelope;
use crate::codec::keys::KeyShape;
use crate::error::Result;
use crate::schema::{self, RecordTable, TtlTable, EXPIRY};
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
        TtlTable::Kv => remove_if_due(tx, schema::KV, packed, at, now),
        TtlTable::WorkingMemory => remove_if_due(tx, schema::WORKING_MEMORY, packed, at, now),
        TtlTable::Pending => remove_if_due(tx, schema::PENDING, packed, at, now),
        TtlTable::Dedup => remove_if_due(tx, schema::DEDUP, packed, at, now),
        TtlTable::Idempotency => remove_if_due(tx, schema::IDEMPOTENCY, packed, at, now),
        TtlTable::Sessions => remove_if_due(tx, schema::SESSIONS, packed, at, now),
        TtlTable::Locations => remove_if_due(tx, schema::LOCATIONS, packed, at, now),
    }
}

fn remove_if_due<K: KeyShape>(
    tx: &WriteTx,
    table: RecordTable<K>,
    packed: &[u8],
    at: u64,
    now: u64,
) -> Result<bool> {
    let Some(key) = K::unpack(packed) else {
        return Ok(false);
    };
    let mut opened = tx.raw().open_table(table.def)?;
    let due = match opened.get(&key)? {
        Some(guard) => envelope::peek_header(guard.value())
            .map(|h| h.expires_at_ms == Some(at) && h.is_expired(now))
            .unwrap_or(false),
        None => false,
    };
    if due {
        opened.remove(&key)?;
    }
    Ok(due)
}
