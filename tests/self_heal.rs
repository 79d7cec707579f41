//! Recovery from transient I/O errors without the caller's help: after a failed write, a
//! failed sync or a full disk, the store reopens itself on the next call and keeps
//! accepting writes; nothing acknowledged is lost and every write whose outcome was
//! unknown is either fully there or not at all.
//!
//! `EDGESTATE_HEAL_ROUNDS` (default 30) sets the number of faults per kind.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::env_u64;
use common::faulty_backend::{Fault, FaultState, FaultyBackend};
use edgestate::{Error, Store};

fn store_on(path: &std::path::Path, state: &Arc<FaultState>) -> Store {
    let (path, state) = (path.to_owned(), Arc::clone(state));
    Store::builder()
        .open_with_backend_factory(move || FaultyBackend::open(&path, Arc::clone(&state)))
        .unwrap()
}

/// What a key should hold: its last acknowledged value, and values written later whose
/// outcome was unknown.
#[derive(Default)]
struct Ledger {
    acked: BTreeMap<String, u64>,
    uncertain: BTreeMap<String, Vec<u64>>,
}

impl Ledger {
    fn check(&mut self, store: &Store) {
        for (key, n) in &self.acked {
            let found = store.kv().get("heal", key).unwrap();
            let found = found.map(|e| u64::from_le_bytes(e.value.try_into().unwrap()));
            let allowed = self.uncertain.get(key);
            assert!(
                found == Some(*n) || allowed.is_some_and(|a| found.is_some_and(|f| a.contains(&f))),
                "{key}: acknowledged {n}, found {found:?}"
            );
        }
        // Whatever an uncertain write left is now the truth.
        for (key, _) in std::mem::take(&mut self.uncertain) {
            if let Some(e) = store.kv().get("heal", &key).unwrap() {
                self.acked
                    .insert(key, u64::from_le_bytes(e.value.try_into().unwrap()));
            }
        }
    }
}

fn run(kind: &str, inject: impl Fn(&FaultState, u64), clear: impl Fn(&FaultState)) {
    // Each round's fault counts from its own injection.
    let rounds = env_u64("EDGESTATE_HEAL_ROUNDS", 30);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heal.db");
    Store::builder()
        .page_log(false)
        .open(&path)
        .unwrap()
        .close()
        .unwrap();
    let state = FaultState::new(Fault::None);
    let store = store_on(&path, &state);
    let mut ledger = Ledger::default();
    let (mut n, mut failed) = (0u64, 0u64);
    for round in 0..rounds {
        let base = state.calls.load(Ordering::SeqCst);
        state.revive();
        inject(&state, base + 5 + round % 17);
        for _ in 0..40 {
            n += 1;
            let key = format!("k{}", n % 23);
            match store.kv().put("heal", &key, &n.to_le_bytes(), None) {
                Ok(_) => {
                    ledger.acked.insert(key, n);
                }
                Err(e) => {
                    failed += 1;
                    // The failed call reports it; it never looks like success.
                    assert!(
                        e.needs_reopen()
                            || matches!(e, Error::ReopenFailed { .. } | Error::Storage(_)),
                        "{kind}: {e:?}"
                    );
                    ledger.uncertain.entry(key).or_default().push(n);
                }
            }
            if state.has_fired() {
                clear(&state);
            }
        }
        clear(&state);
        // The store healed itself: a write after the fault cleared lands.
        n += 1;
        store
            .kv()
            .put("heal", "probe", &n.to_le_bytes(), None)
            .unwrap();
        ledger.acked.insert("probe".into(), n);
        ledger.check(&store);
    }
    let stats = store.stats().unwrap();
    assert!(stats.recoveries > 0, "{kind}: never recovered");
    drop(store);
    // After a plain reopen from the file, the same state.
    let store = Store::builder().page_log(false).open(&path).unwrap();
    ledger.check(&store);
    assert!(store.check_integrity().unwrap());
    println!(
        "self-heal ({kind}): {rounds} faults, {n} writes, {failed} failed calls, {} recoveries, {} failed reopen attempts, {} keys checked, lost 0",
        stats.recoveries,
        stats.recovery_failures,
        ledger.acked.len()
    );
}

#[test]
fn a_failed_sync_heals() {
    run(
        "failed sync",
        |s, at| {
            let syncs = s.syncs.load(Ordering::SeqCst);
            s.set_fault(Fault::FailSync(syncs + at % 3));
        },
        |_| {},
    );
}

#[test]
fn a_failed_write_heals() {
    run(
        "failed write",
        |s, at| {
            let writes = s.writes.load(Ordering::SeqCst);
            s.set_fault(Fault::FailWrite(writes + at % 7));
        },
        |_| {},
    );
}

#[test]
fn a_full_disk_heals_once_space_is_back() {
    run(
        "full disk",
        |s, at| s.set_fault(Fault::CrashAt(at)),
        FaultState::revive,
    );
}

#[test]
fn a_lasting_fault_gives_a_clear_error_then_heals_when_it_clears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heal.db");
    Store::builder()
        .page_log(false)
        .open(&path)
        .unwrap()
        .close()
        .unwrap();
    let state = FaultState::new(Fault::None);
    let store = store_on(&path, &state);
    store.kv().put("heal", "a", b"1", None).unwrap();
    // The disk goes away and stays away.
    state.set_fault(Fault::CrashAt(state.calls.load(Ordering::SeqCst)));
    assert!(store
        .kv()
        .put("heal", "a", b"2", None)
        .unwrap_err()
        .needs_reopen());
    match store.kv().put("heal", "a", b"3", None) {
        Err(Error::ReopenFailed { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("want ReopenFailed, got {other:?}"),
    }
    assert!(store.stats().is_err() || store.stats().unwrap().recovery_failures >= 3);
    state.revive();
    store.kv().put("heal", "a", b"4", None).unwrap();
    assert_eq!(store.kv().get("heal", "a").unwrap().unwrap().value, b"4");
    let stats = store.stats().unwrap();
    assert_eq!(stats.recoveries, 1);
    assert!(stats.recovery_failures >= 3);
}
