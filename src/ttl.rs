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
    let mut index = tx.open_table(EXPIRY)?;
    if let Some(at) = old {
        index.remove((at, table.tag(), packed_key))?;
    }
    if let Some(at) = new {
        index.insert((at, table.tag(), packed_key), ())?;
    }
    Ok(())
}

/// Records whose expiry has passed at `now` (due for a sweep), counted in the index.
pub(crate) fn count_due(read: &redb::ReadTransaction, now: u64) -> Result<u64> {
    let index = read.open_table(EXPIRY)?;
    let mut n = 0;
    for row in index.range(..(now.saturating_add(1), 0u8, &[][..]))? {
        row?;
        n += 1;
    }
    Ok(n)
}

/// What one sweep batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SweepOutcome {
    /// Index entries visited (a batch that visits fewer than its limit is the last).
    pub(crate) scanned: usize,
    /// Records removed.
    pub(crate) removed: usize,
}

/// Whether any record has expired at `now` (a sweep with nothing to do is not worth a
/// write transaction, nor its fsync).
pub(crate) fn any_due(read: &redb::ReadTransaction, now: u64) -> Result<bool> {
    let index = read.open_table(EXPIRY)?;
    let due = match index.first()? {
        Some((key, _)) => key.value().0 <= now,
        None => false,
    };
    Ok(due)
}

/// Removes up to `limit` expired records, oldest expiry first. Cost is O(expired): the
/// due index entries are popped off the front of the index, then each table is opened
/// once for all of its due records.
pub(crate) fn sweep(tx: &WriteTx, limit: usize) -> Result<SweepOutcome> {
    let now = tx.now_ms();
    let mut due: Vec<(u8, Vec<u8>, u64)> = Vec::new();
    {
        let mut index = tx.open_table(EXPIRY)?;
        while due.len() < limit {
            // Pop first, look after: one B-tree operation per due entry, and the one
            // entry popped too early goes back.
            let Some((key, _)) = index.pop_first()? else {
                break;
            };
            let (at, tag, packed) = key.value();
            if at > now {
                let packed = packed.to_vec();
                drop(key);
                index.insert((at, tag, packed.as_slice()), ())?;
                break;
            }
            due.push((tag, packed.to_vec(), at));
        }
    }
    let mut outcome = SweepOutcome {
        scanned: due.len(),
        removed: 0,
    };
    // Grouped by table (stable: oldest first within a table), so each opens once.
    due.sort_by_key(|(tag, _, _)| *tag);
    for group in due.chunk_by(|a, b| a.0 == b.0) {
        outcome.removed += remove_group(tx, group, now)?;
    }
    Ok(outcome)
}

/// Removes the records a group of index entries (one table) points at, where they still
/// expire at the indexed instant. An unknown tag or a key that cannot be unpacked
/// (damage) is dropped without touching any record.
fn remove_group(tx: &WriteTx, group: &[(u8, Vec<u8>, u64)], now: u64) -> Result<usize> {
    let Some(table) = group
        .first()
        .and_then(|(tag, _, _)| TtlTable::from_tag(*tag))
    else {
        return Ok(0);
    };
    match table {
        TtlTable::Kv => remove_if_due(tx, schema::KV, group, now),
        TtlTable::WorkingMemory => remove_if_due(tx, schema::WORKING_MEMORY, group, now),
        TtlTable::Pending => remove_if_due(tx, schema::PENDING, group, now),
        TtlTable::Dedup => remove_if_due(tx, schema::DEDUP, group, now),
        TtlTable::Idempotency => remove_if_due(tx, schema::IDEMPOTENCY, group, now),
        TtlTable::Sessions => remove_if_due(tx, schema::SESSIONS, group, now),
        TtlTable::Locations => remove_if_due(tx, schema::LOCATIONS, group, now),
    }
}

fn remove_if_due<K: KeyShape>(
    tx: &WriteTx,
    table: RecordTable<K>,
    group: &[(u8, Vec<u8>, u64)],
    now: u64,
) -> Result<usize> {
    let mut opened = tx.open_table(table.def)?;
    let mut removed = 0;
    for (_, packed, at) in group {
        let Some(key) = K::unpack(packed) else {
            continue;
        };
        let due = match opened.get(&key)? {
            Some(guard) => envelope::peek_header(guard.value())
                .map(|h| h.expires_at_ms == Some(*at) && h.is_expired(now))
                .unwrap_or(false),
            None => false,
        };
        if due {
            opened.remove(&key)?;
            removed += 1;
        }
    }
    Ok(removed)
}
