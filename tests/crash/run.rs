//! The store side: runs workload ops against a real store, each with the cursor record
//! that says how many ops the file reflects.

use edgestate::{Result, Store, WriteTx};

use crate::store_model::workload::is_store_write;
use crate::store_model::{run, run_tx, ErrKind, Op, Outcome};

/// Namespace and key of the cursor record: the number of ops the state reflects. Outside
/// the model's alphabets, so only the KV record count sees it.
pub const HARNESS_NS: &str = "harness";
pub const CURSOR_KEY: &str = "cursor";
/// The parent's own record, rewritten after every check.
pub const PROBE: (&str, &str) = ("parent", "probe");

fn write_cursor(tx: &WriteTx, cursor: u64) -> Result<()> {
    tx.kv()
        .put(HARNESS_NS, CURSOR_KEY, &cursor.to_le_bytes(), None)
        .map(|_| ())
}

/// The cursor stored in the file: how many ops its state reflects.
pub fn read_cursor(store: &Store) -> Result<u64> {
    let entry = store.kv().get(HARNESS_NS, CURSOR_KEY)?;
    Ok(entry.map_or(0, |e| {
        u64::from_le_bytes(e.value.as_slice().try_into().expect("8-byte cursor"))
    }))
}

/// The ops of the grammar the harness runs: every store write that either runs in the
/// cursor's transaction or does nothing more when run again. (A child resumes at the
/// cursor, so an op that landed without its cursor runs twice.) That leaves out the
/// byte store (its own transaction, a new version each time) and sweeps with a limit
/// below the number of records the alphabets allow.
pub fn is_harness_op(op: &Op) -> bool {
    is_store_write(op)
        && match op {
            Op::ByteSet { .. } => false,
            Op::Sweep { limit } => *limit >= 100,
            _ => true,
        }
}

/// Whether `op` runs in the cursor's transaction. The others (sweeps, compaction, a
/// batch that fails on purpose) run in transactions of their own before the cursor
/// moves, so a crash can leave them done, or partly done for a batched sweep, while the
/// cursor still points at them.
pub fn shares_cursor_tx(op: &Op) -> bool {
    !matches!(
        op,
        Op::Sweep { .. } | Op::SweepAll { .. } | Op::Compact | Op::Batch { fail: true, .. }
    )
}

/// An outcome that only storage trouble explains.
fn storage_trouble(outcome: &Outcome) -> Option<&ErrKind> {
    match outcome {
        Outcome::Err(e @ (ErrKind::Storage { .. } | ErrKind::Other(_))) => Some(e),
        Outcome::Many(inner) | Outcome::Aborted(inner) => inner.iter().find_map(storage_trouble),
        _ => None,
    }
}

/// Runs op `i`; when this returns `Ok`, the cursor reads `i + 1` (durably, with
/// `Durability::Immediate`).
pub fn run_op(store: &Store, op: &Op, i: u64) -> std::result::Result<Outcome, String> {
    let outcome = if shares_cursor_tx(op) {
        store
            .write(|tx| {
                let outcome = match op {
                    Op::Batch { ops, .. } => {
                        Outcome::Many(ops.iter().map(|op| run_tx(tx, op)).collect())
                    }
                    data => run_tx(tx, data),
                };
                write_cursor(tx, i + 1)?;
                Ok::<_, edgestate::Error>(outcome)
            })
            .map_err(|e| format!("op {i} ({op:?}): {e}"))?
    } else {
        let outcome = run(store, op);
        store
            .write(|tx| write_cursor(tx, i + 1))
            .map_err(|e| format!("cursor after op {i}: {e}"))?;
        outcome
    };
    match storage_trouble(&outcome) {
        Some(e) => Err(format!("op {i} ({op:?}): {e:?}")),
        None => Ok(outcome),
    }
}
