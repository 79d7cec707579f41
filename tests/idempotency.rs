//! Idempotency keys: leases, takeover after a lease runs out, payload mismatch,
//! complete-then-replay, abandon, expiry and sweeps.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::T0_MS;
use edgestate::{Begin, Error, IdempotencyState, ManualClock, Store, StoreConfig, Table};

const LEASE: Duration = Duration::from_secs(30);
const RESULT_TTL: Duration = Duration::from_secs(3600);
const FP: &[u8] = b"hash-of-payload-A";
const OTHER_FP: &[u8] = b"hash-of-payload-B";

fn store() -> (Store, ManualClock) {
    let mut config = StoreConfig::default();
    config.idempotency_lease = LEASE;
    config.idempotency_ttl = RESULT_TTL;
    common::clocked_store_with(T0_MS, |b| b.config(config))
}

fn started(begin: Begin) -> u64 {
    match begin {
        Begin::Started {
            lease_expires_at_ms,
        } => lease_expires_at_ms,
        other => panic!("expected Started, got {other:?}"),
    }
}

#[test]
fn a_live_lease_refuses_a_second_holder() {
    let (store, clock) = store();
    let idem = store.idempotency();
    let lease = started(idem.begin("k", FP).expect("begin"));
    assert_eq!(lease, T0_MS + 30_000);

    clock.advance(Duration::from_secs(29));
    match idem.begin("k", FP) {
        Err(Error::IdempotencyInProgress {
            key,
            lease_expires_at_ms,
        }) => {
            assert_eq!(key, "k");
            assert_eq!(lease_expires_at_ms, lease);
        }
        other => panic!("expected in progress, got {other:?}"),
    }
    let record = idem.get("k").expect("get").expect("present");
    assert_eq!(record.payload_fingerprint, FP);
    assert_eq!(record.expires_at_ms, Some(lease));
    assert_eq!(
        record.state,
        IdempotencyState::InProgress {
            started_at_ms: T0_MS,
            lease_expires_at_ms: lease
        }
    );
}

#[test]
fn an_expired_lease_lets_a_new_holder_take_over() {
    let (store, clock) = store();
    let idem = store.idempotency();
    started(idem.begin("k", FP).expect("begin"));
    clock.advance(LEASE);
    assert!(idem.get("k").expect("get").is_none(), "lease ran out");
    let second = started(idem.begin("k", FP).expect("take over"));
    assert_eq!(second, T0_MS + 60_000);
    assert!(matches!(
        idem.begin("k", FP),
        Err(Error::IdempotencyInProgress { .. })
    ));
    // The first holder finishing late still records the result for everyone.
    assert!(idem.complete("k", FP, b"done").expect("complete"));
    assert_eq!(
        idem.begin("k", FP).expect("replay"),
        Begin::Completed(b"done".to_vec())
    );
}

#[test]
fn a_different_payload_is_a_mismatch_in_every_state() {
    let (store, _) = store();
    let idem = store.idempotency();
    started(idem.begin("k", FP).expect("begin"));
    assert!(matches!(
        idem.begin("k", OTHER_FP),
        Err(Error::IdempotencyMismatch { key }) if key == "k"
    ));
    assert!(matches!(
        idem.complete("k", OTHER_FP, b"wrong"),
        Err(Error::IdempotencyMismatch { .. })
    ));
    assert!(matches!(
        idem.get("k").expect("get").expect("present").state,
        IdempotencyState::InProgress { .. }
    ));

    idem.complete("k", FP, b"right").expect("complete");
    assert!(matches!(
        idem.begin("k", OTHER_FP),
        Err(Error::IdempotencyMismatch { .. })
    ));
    assert_eq!(
        idem.begin("k", FP).expect("replay"),
        Begin::Completed(b"right".to_vec())
    );
}

#[test]
fn complete_then_replay_returns_the_stored_result() {
    let (store, clock) = store();
    let idem = store.idempotency();
    started(idem.begin("k", FP).expect("begin"));
    clock.advance(Duration::from_secs(2));
    assert!(idem.complete("k", FP, b"result-1").expect("complete"));

    for _ in 0..3 {
        assert_eq!(
            idem.begin("k", FP).expect("replay"),
            Begin::Completed(b"result-1".to_vec())
        );
    }
    // A second completion keeps the first result.
    assert!(!idem.complete("k", FP, b"result-2").expect("complete again"));
    let record = idem.get("k").expect("get").expect("present");
    assert_eq!(
        record.state,
        IdempotencyState::Completed {
            result: b"result-1".to_vec(),
            completed_at_ms: T0_MS + 2_000
        }
    );
    assert_eq!(record.expires_at_ms, Some(T0_MS + 2_000 + 3_600_000));
}

#[test]
fn a_completed_result_expires_after_the_idempotency_ttl() {
    let (store, clock) = store();
    let idem = store.idempotency();
    started(idem.begin("k", FP).expect("begin"));
    idem.complete("k", FP, b"r").expect("complete");
    clock.advance(RESULT_TTL - Duration::from_millis(1));
    assert!(matches!(
        idem.begin("k", FP).expect("replay"),
        Begin::Completed(_)
    ));
    clock.advance(Duration::from_millis(1));
    assert!(idem.get("k").expect("get").is_none());
    // After expiry the key is fresh, even for another payload.
    started(idem.begin("k", OTHER_FP).expect("fresh"));
}

#[test]
fn abandon_frees_an_in_progress_key_but_keeps_results() {
    let (store, _) = store();
    let idem = store.idempotency();
    started(idem.begin("k", FP).expect("begin"));
    assert!(idem.abandon("k").expect("abandon"));
    assert!(idem.get("k").expect("get").is_none());
    assert!(!idem.abandon("k").expect("abandon again"));
    started(idem.begin("k", FP).expect("begin at once"));

    idem.complete("k", FP, b"r").expect("complete");
    assert!(!idem.abandon("k").expect("abandon completed"));
    assert_eq!(
        idem.begin("k", FP).expect("replay"),
        Begin::Completed(b"r".to_vec())
    );
    // The abandon left no expiry entry behind.
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 0);
}

#[test]
fn sweeps_remove_expired_leases_and_results() {
    let (store, clock) = store();
    let idem = store.idempotency();
    started(idem.begin("lease-only", FP).expect("begin"));
    started(idem.begin("done", FP).expect("begin"));
    idem.complete("done", FP, b"r").expect("complete");

    clock.advance(LEASE);
    assert_eq!(store.sweep_expired(100).expect("sweep"), 1, "the lease");
    assert_eq!(store.stats().expect("stats").records(Table::Idempotency), 1);
    clock.advance(RESULT_TTL);
    assert_eq!(store.sweep_expired(100).expect("sweep"), 1, "the result");
    assert_eq!(store.stats().expect("stats").records(Table::Idempotency), 0);
}

#[test]
fn complete_without_begin_stores_the_result() {
    let (store, _) = store();
    let idem = store.idempotency();
    assert!(idem.complete("k", FP, b"r").expect("complete"));
    assert_eq!(
        idem.begin("k", FP).expect("replay"),
        Begin::Completed(b"r".to_vec())
    );
}

#[test]
fn concurrent_begins_have_exactly_one_holder() {
    let (store, _) = store();
    const THREADS: usize = 4;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                store.idempotency().begin("k", FP)
            })
        })
        .collect();
    let mut holders = 0;
    for handle in handles {
        match handle.join().expect("thread") {
            Ok(Begin::Started { .. }) => holders += 1,
            Err(Error::IdempotencyInProgress { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(holders, 1);
}

#[test]
fn invalid_input_is_refused() {
    let (store, _) = store();
    let idem = store.idempotency();
    assert!(matches!(
        idem.begin("", FP),
        Err(Error::InvalidInput { field, .. }) if field == "key"
    ));
    let huge = vec![0u8; edgestate::limits::MAX_KEY_LEN + 1];
    assert!(matches!(
        idem.begin("k", &huge),
        Err(Error::InvalidInput { field, .. }) if field == "payload_fingerprint"
    ));
    assert!(idem.get("k").expect("get").is_none());
}

#[test]
fn begin_rolls_back_with_its_transaction() {
    let (store, _) = store();
    let outcome: Result<(), Error> = store.write(|tx| {
        tx.idempotency().begin("k", FP)?;
        Err(Error::NotFound {
            table: "demo",
            key: "abort".into(),
        })
    });
    assert!(outcome.is_err());
    assert!(store.idempotency().get("k").expect("get").is_none());
    started(store.idempotency().begin("k", FP).expect("begin"));
}
