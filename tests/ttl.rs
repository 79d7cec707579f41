//! Expiry: invisible at once, removed by sweeps, index kept exact. Time is a ManualClock.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::faulty_backend::{Fault, FaultState, FaultyBackend};
use edgestate::{Error, ManualClock, Store, Table};

const T0: u64 = 1_700_000_000_000;

fn store_with_clock() -> (Store, ManualClock) {
    common::clocked_store_with(T0, |b| b)
}

fn counts(s: &Store) -> (u64, u64) {
    let st = s.stats().unwrap();
    (st.records(Table::Kv), st.records(Table::Expiry))
}

#[test]
fn visible_before_invisible_at_and_after_expiry() {
    let (s, clock) = store_with_clock();
    s.kv()
        .put("ns", "k", b"v", Some(Duration::from_millis(500)))
        .unwrap();
    let e = s.kv().get("ns", "k").unwrap().unwrap();
    assert_eq!(e.expires_at_ms, Some(T0 + 500));
    clock.advance(Duration::from_millis(499));
    assert!(s.kv().get("ns", "k").unwrap().is_some());
    clock.advance(Duration::from_millis(1));
    assert!(
        s.kv().get("ns", "k").unwrap().is_none(),
        "invisible at the expiry instant"
    );
    assert!(s.kv().get_many("ns", &["k"]).unwrap()[0].is_none());
    assert!(s.kv().list_up_to("ns", "", 10).unwrap().is_empty());
    clock.advance(Duration::from_secs(3600));
    assert!(s.kv().get("ns", "k").unwrap().is_none());
    // Still physically there until a sweep.
    assert_eq!(counts(&s), (1, 1));
    assert_eq!(s.sweep_expired(10).unwrap(), 1);
    assert_eq!(counts(&s), (0, 0));
}

#[test]
fn an_expired_record_counts_as_absent_for_conditional_writes() {
    let (s, clock) = store_with_clock();
    s.kv()
        .put("ns", "k", b"v", Some(Duration::from_secs(1)))
        .unwrap();
    clock.advance(Duration::from_secs(1));
    // Before and without a sweep, the expired record is absent: a create succeeds at v1.
    let v = s
        .kv()
        .put_if("ns", "k", b"new", None, edgestate::Expect::Absent)
        .unwrap();
    assert_eq!(v, 1);
    // Its old expiry entry went with it.
    assert_eq!(counts(&s), (1, 0));
}

#[test]
fn overwriting_with_no_ttl_cancels_the_expiry() {
    let (s, clock) = store_with_clock();
    s.kv()
        .put("ns", "k", b"v1", Some(Duration::from_secs(1)))
        .unwrap();
    s.kv().put("ns", "k", b"v2", None).unwrap();
    assert_eq!(counts(&s), (1, 0));
    clock.advance(Duration::from_secs(10));
    assert_eq!(s.kv().get("ns", "k").unwrap().unwrap().value, b"v2");
    assert_eq!(s.sweep_expired(100).unwrap(), 0);
    assert_eq!(counts(&s), (1, 0));
}

#[test]
fn overwriting_with_a_new_ttl_moves_the_expiry() {
    let (s, clock) = store_with_clock();
    s.kv()
        .put("ns", "k", b"v1", Some(Duration::from_secs(1)))
        .unwrap();
    s.kv()
        .put("ns", "k", b"v2", Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(counts(&s), (1, 1));
    clock.advance(Duration::from_secs(5));
    assert_eq!(s.sweep_expired(100).unwrap(), 0);
    assert_eq!(s.kv().get("ns", "k").unwrap().unwrap().value, b"v2");
    clock.advance(Duration::from_secs(5));
    assert_eq!(s.sweep_expired(100).unwrap(), 1);
    assert_eq!(counts(&s), (0, 0));
}

#[test]
fn delete_removes_the_expiry_entry() {
    let (s, _clock) = store_with_clock();
    s.kv()
        .put("ns", "k", b"v", Some(Duration::from_secs(1)))
        .unwrap();
    s.kv().delete("ns", "k").unwrap();
    assert_eq!(counts(&s), (0, 0));
}

#[test]
fn sweeping_100k_expired_records_leaves_none_and_touches_no_live_record() {
    let clock = ManualClock::new(T0);
    let s = Store::builder().clock(clock.clone()).temporary().unwrap();
    s.write(|tx| {
        for i in 0..100_000u32 {
            // Spread expiries over time so the index order matters.
            let ttl = Duration::from_millis(1 + u64::from(i % 1000));
            tx.kv().put("exp", &format!("k{i:06}"), b"x", Some(ttl))?;
        }
        for i in 0..1_000u32 {
            tx.kv().put("live", &format!("k{i:04}"), b"y", None)?;
            tx.kv().put(
                "later",
                &format!("k{i:04}"),
                b"z",
                Some(Duration::from_secs(3600)),
            )?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    clock.advance(Duration::from_secs(1));
    // Bounded batches: each call removes at most its limit.
    assert_eq!(s.sweep_expired(1_000).unwrap(), 1_000);
    let rest = s.sweep_all_expired(5_000).unwrap();
    assert_eq!(rest, 99_000);
    assert_eq!(counts(&s), (2_000, 1_000));
    assert_eq!(s.kv().list_up_to("live", "", 10_000).unwrap().len(), 1_000);
    assert_eq!(s.kv().list_up_to("later", "", 10_000).unwrap().len(), 1_000);
    assert!(s.kv().list_up_to("exp", "", 10).unwrap().is_empty());
    assert_eq!(s.sweep_all_expired(1_000).unwrap(), 0);
}

#[test]
fn sweep_only_removes_what_is_expired_now() {
    let (s, clock) = store_with_clock();
    for (k, secs) in [("a", 1), ("b", 2), ("c", 3)] {
        s.kv()
            .put("ns", k, b"v", Some(Duration::from_secs(secs)))
            .unwrap();
    }
    clock.advance(Duration::from_secs(2));
    assert_eq!(s.sweep_all_expired(1).unwrap(), 2);
    assert!(s.kv().get("ns", "c").unwrap().is_some());
    assert_eq!(counts(&s), (1, 1));
}

#[test]
fn background_sweeper_removes_expired_records_and_stops_on_drop() {
    let clock = ManualClock::new(T0);
    let s = Store::builder()
        .clock(clock.clone())
        .sweep_every(Duration::from_millis(5))
        .sweep_batch(7)
        .in_memory()
        .unwrap();
    for i in 0..50 {
        s.kv()
            .put("ns", &format!("k{i}"), b"v", Some(Duration::from_secs(1)))
            .unwrap();
    }
    s.kv().put("ns", "live", b"v", None).unwrap();
    clock.advance(Duration::from_secs(2));
    // Wait (bounded) for the sweeper thread; this waits for work, it does not time anything.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // The counter is bumped just after the sweeper's commit, so wait for both.
    while (counts(&s).0 > 1 || s.stats().unwrap().sweeper_removed < 50)
        && std::time::Instant::now() < deadline
    {
        std::thread::yield_now();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(counts(&s), (1, 0));
    let stats = s.stats().unwrap();
    assert_eq!(stats.sweeper_removed, 50);
    assert!(stats.sweeper_runs >= 1);
    assert_eq!(stats.sweeper_errors, 0);
    drop(s); // joins the sweeper thread
}

#[test]
fn ttl_saturates_instead_of_overflowing() {
    let clock = ManualClock::new(u64::MAX - 10);
    let s = Store::builder().clock(clock).in_memory().unwrap();
    s.kv().put("ns", "k", b"v", Some(Duration::MAX)).unwrap();
    assert_eq!(
        s.kv().get("ns", "k").unwrap().unwrap().expires_at_ms,
        Some(u64::MAX)
    );
}

#[test]
fn a_sweep_with_nothing_due_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.db");
    Store::open(&path).unwrap().close().unwrap();
    let clock = ManualClock::new(T0);
    let state = FaultState::new(Fault::None);
    let store = Store::builder()
        .clock(clock.clone())
        .open_with_backend(FaultyBackend::open(&path, state.clone()).unwrap())
        .unwrap();
    store
        .kv()
        .put("ns", "later", b"v", Some(Duration::from_secs(60)))
        .unwrap();
    let (syncs, writes) = (
        state.syncs.load(Ordering::SeqCst),
        state.writes.load(Ordering::SeqCst),
    );
    assert_eq!(store.sweep_expired(100).unwrap(), 0);
    assert_eq!(store.sweep_all_expired(10).unwrap(), 0);
    assert_eq!(state.syncs.load(Ordering::SeqCst), syncs);
    assert_eq!(state.writes.load(Ordering::SeqCst), writes);
    clock.advance(Duration::from_secs(60));
    assert_eq!(store.sweep_expired(100).unwrap(), 1);
    assert!(state.syncs.load(Ordering::SeqCst) > syncs);
}
