//! The store side: runs workload ops against a real store, and reduces a store to the
//! same flat lines as the model.

use std::time::Duration;

use edgestate::{Error, ManualClock, Result, Store, WriteTx};

use crate::model::{kv_key, kv_line, Flat, CURSOR_KEY, HARNESS_NS};
use crate::workload::{bump_value, Counter, Op, Step, BYTE_NS, CONFLICTS, TYPED_NS};

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

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

fn bump(tx: &WriteTx, ns: &str, key: &str, ttl_ms: Option<u64>) -> Result<()> {
    tx.kv().update(ns, key, ttl(ttl_ms), |current| {
        Ok(bump_value(current.map(|e| e.value.as_slice())))
    })?;
    Ok(())
}

fn run_step(tx: &WriteTx, step: &Step, op_index: u64) -> Result<()> {
    let kv = tx.kv();
    match step {
        Step::Put {
            ns,
            key,
            value,
            ttl_ms,
        } => {
            kv.put(ns, key, value, ttl(*ttl_ms))?;
        }
        Step::PutIf {
            ns,
            key,
            value,
            expect,
            ttl_ms,
        } => match kv.put_if(ns, key, value, ttl(*ttl_ms), *expect) {
            Ok(_) => {}
            Err(Error::VersionConflict { .. }) => bump(tx, CONFLICTS.0, CONFLICTS.1, None)?,
            Err(e) => return Err(e),
        },
        Step::Bump { ns, key, ttl_ms } => bump(tx, ns, key, *ttl_ms)?,
        Step::TypedBump { key, ttl_ms } => {
            kv.update_value::<Counter, _>(TYPED_NS, key, ttl(*ttl_ms), |current| {
                Ok(Counter {
                    n: current.map_or(1, |c| c.n + 1),
                    last_op: op_index,
                })
            })?;
        }
        Step::Delete { ns, key } => {
            kv.delete(ns, key)?;
        }
        Step::DeletePrefix { ns, prefix } => {
            kv.delete_prefix(ns, prefix)?;
        }
    }
    Ok(())
}

/// The error a doomed transaction returns to roll itself back.
fn doomed() -> Error {
    Error::NotFound {
        table: "crash-harness",
        key: "doomed on purpose".into(),
    }
}

/// Runs op `i`; when this returns, the cursor reads `i + 1` (durably, with
/// `Durability::Immediate`).
pub fn run_op(store: &Store, op: &Op, i: u64) -> Result<()> {
    let in_one_tx = |steps: &[Step]| {
        store.write(|tx| {
            for s in steps {
                run_step(tx, s, i)?;
            }
            write_cursor(tx, i + 1)
        })
    };
    match op {
        Op::Tx(steps) => return in_one_tx(steps),
        Op::Doomed(steps) => {
            let outcome = store.write(|tx| {
                for s in steps {
                    run_step(tx, s, i)?;
                }
                write_cursor(tx, i + 1)?;
                Err::<(), _>(doomed())
            });
            match outcome {
                Err(Error::NotFound {
                    table: "crash-harness",
                    ..
                }) => {}
                Err(e) => return Err(e),
                Ok(()) => unreachable!("a doomed transaction returns an error"),
            }
        }
        Op::Sweep => {
            store.sweep_expired(usize::MAX)?;
        }
        Op::SweepBatched { batch } => {
            store.sweep_all_expired(*batch)?;
        }
    }
    store.write(|tx| write_cursor(tx, i + 1))
}

/// Every physical record (expired ones included) as flat lines, from one snapshot.
/// Moves `clock` to 0 for the read, so nothing reads as expired.
pub fn flat_of(store: &Store, clock: &ManualClock) -> Result<Flat> {
    clock.set_ms(0);
    store.read(|tx| {
        let mut out = Flat::new();
        for ns in BYTE_NS.iter().chain(&[TYPED_NS, HARNESS_NS]) {
            for e in tx.kv().list_prefix(ns, "", usize::MAX)? {
                out.insert(
                    kv_key(ns, &e.key),
                    kv_line(&e.value, e.version, e.expires_at_ms),
                );
            }
        }
        Ok(out)
    })
}
