//! Exactly-once claims: new then duplicate, expiry with a manual clock, sweeps, and
//! concurrent claims of one id.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use edgestate::{Claim, Error, ManualClock, Store, Table};

const T0_MS: u64 = 1_700_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);

fn store_with_ttl(ttl: Duration) -> (Store, ManualClock) {
    common::clocked_store_with(T0_MS, |b| b.dedup_ttl(ttl))
}

#[test]
fn claim_is_new_then_duplicate_with_the_first_metadata() {
    let (store, clock) = store_with_ttl(HOUR);
    let dedup = store.dedup();
    assert!(!dedup.contains("t1").expect("check"));
    assert_eq!(dedup.claim("t1", "alice", 500).expect("claim"), Claim::New);
    assert!(dedup.contains("t1").expect("check"));

    clock.advance(Duration::from_secs(10));
    match dedup.claim("t1", "bob", 9_999).expect("claim again") {
        Claim::Duplicate(first) => {
            assert_eq!(first.txn_id, "t1");
            assert_eq!(first.user_pubkey, "alice");
            assert_eq!(first.amount, 500);
            assert_eq!(first.processed_at_s, 1_700_000_000);
        }
        Claim::New => panic!("a second claim must not win"),
    }
    let stored = dedup.get("t1").expect("get").expect("claimed");
    assert_eq!(stored.user_pubkey, "alice");
}

#[test]
fn a_second_claim_never_overwrites_the_first() {
    let (store, _) = store_with_ttl(HOUR);
    let dedup = store.dedup();
    assert!(dedup.claim("t1", "alice", 1).expect("claim").is_new());
    assert!(!dedup.claim("t1", "bob", 2).expect("claim again").is_new());
    let stored = dedup.get("t1").expect("get").expect("claimed");
    assert_eq!((stored.user_pubkey.as_str(), stored.amount), ("alice", 1));
    assert!(matches!(
        dedup.claim("t1", "carol", 3).expect("claim"),
        Claim::Duplicate(_)
    ));
}

#[test]
fn an_expired_claim_is_claimable_again() {
    let (store, clock) = store_with_ttl(HOUR);
    let dedup = store.dedup();
    assert!(dedup.claim("t1", "alice", 1).expect("claim").is_new());

    clock.advance(HOUR - Duration::from_millis(1));
    assert!(dedup.contains("t1").expect("still live"));
    assert!(!dedup.claim("t1", "bob", 2).expect("dup").is_new());

    clock.advance(Duration::from_millis(1));
    assert!(!dedup.contains("t1").expect("expired"));
    assert!(dedup.get("t1").expect("get").is_none());
    assert!(dedup.claim("t1", "bob", 2).expect("reclaim").is_new());
    let stored = dedup.get("t1").expect("get").expect("claimed");
    assert_eq!(stored.user_pubkey, "bob");
    assert_eq!(stored.processed_at_s, 1_700_003_600);
}

#[test]
fn sweeps_remove_expired_claims_and_keep_live_ones() {
    let (store, clock) = store_with_ttl(HOUR);
    let dedup = store.dedup();
    for i in 0..3 {
        dedup.claim(&format!("old-{i}"), "alice", i).expect("claim");
    }
    clock.advance(Duration::from_secs(1800));
    dedup.claim("young", "alice", 9).expect("claim");
    clock.advance(Duration::from_secs(1800));

    // The old claims are invisible at once, and still on disk until swept.
    assert!(!dedup.contains("old-0").expect("check"));
    assert_eq!(store.stats().expect("stats").records(Table::Dedup), 4);
    assert_eq!(store.sweep_expired(100).expect("sweep"), 3);
    assert_eq!(store.stats().expect("stats").records(Table::Dedup), 1);
    assert!(dedup.contains("young").expect("check"));
    assert_eq!(store.sweep_expired(100).expect("sweep"), 0);
}

#[test]
fn a_reclaimed_id_is_not_swept_by_its_old_expiry() {
    let (store, clock) = store_with_ttl(HOUR);
    let dedup = store.dedup();
    dedup.claim("t1", "alice", 1).expect("claim");
    clock.advance(HOUR);
    dedup.claim("t1", "bob", 2).expect("reclaim");
    assert_eq!(store.sweep_expired(100).expect("sweep"), 0);
    assert!(dedup.contains("t1").expect("check"));
    clock.advance(HOUR);
    assert_eq!(store.sweep_expired(100).expect("sweep"), 1);
}

#[test]
fn forget_releases_a_claim() {
    let (store, _) = store_with_ttl(HOUR);
    let dedup = store.dedup();
    dedup.claim("t1", "alice", 1).expect("claim");
    assert!(dedup.delete("t1").expect("forget"));
    assert!(!dedup.delete("t1").expect("forget again"));
    assert!(dedup.claim("t1", "alice", 1).expect("claim").is_new());
    // No expiry entry is left dangling by the forget.
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 0);
}

#[test]
fn a_claim_rolls_back_with_its_transaction() {
    let (store, _) = store_with_ttl(HOUR);
    let outcome: Result<(), Error> = store.write(|tx| {
        assert!(tx.dedup().claim("t1", "alice", 1)?.is_new());
        assert!(tx.dedup().contains("t1")?, "sees its own claim");
        Err(Error::NotFound {
            table: "demo",
            key: "abort".into(),
        })
    });
    assert!(outcome.is_err());
    assert!(!store.dedup().contains("t1").expect("check"));
    assert!(store
        .dedup()
        .claim("t1", "alice", 1)
        .expect("claim")
        .is_new());
}

#[test]
fn concurrent_claims_of_one_id_have_exactly_one_winner() {
    // A file store, so the real commit path is raced.
    let store = Store::builder()
        .clock(ManualClock::new(T0_MS))
        .temporary()
        .expect("store");
    const THREADS: usize = 4;
    const IDS: usize = 25;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut wins = Vec::new();
                for id in 0..IDS {
                    barrier.wait();
                    let claim = store
                        .dedup()
                        .claim(&format!("txn-{id}"), &format!("worker-{t}"), 1)
                        .expect("claim");
                    if claim.is_new() {
                        wins.push(id);
                    }
                }
                wins
            })
        })
        .collect();
    let mut winners_per_id = [0usize; IDS];
    for handle in handles {
        for id in handle.join().expect("thread") {
            winners_per_id[id] += 1;
        }
    }
    assert!(
        winners_per_id.iter().all(|&n| n == 1),
        "winners per id: {winners_per_id:?}"
    );
}

#[test]
fn invalid_ids_are_refused() {
    let (store, _) = store_with_ttl(HOUR);
    assert!(matches!(
        store.dedup().claim("", "alice", 1),
        Err(Error::InvalidInput { field, .. }) if field == "txn_id"
    ));
    assert!(matches!(
        store.dedup().claim("t1", "", 1),
        Err(Error::InvalidInput { field, .. }) if field == "user"
    ));
    assert!(store.dedup().contains("").is_err());
    assert!(!store.dedup().contains("t1").expect("check"));
}

#[test]
fn the_default_ttl_is_thirty_days() {
    let clock = ManualClock::new(T0_MS);
    let store = Store::builder()
        .clock(clock.clone())
        .in_memory()
        .expect("store");
    store.dedup().claim("t1", "alice", 1).expect("claim");
    clock.advance(Duration::from_secs(30 * 24 * 3600) - Duration::from_millis(1));
    assert!(store.dedup().contains("t1").expect("check"));
    clock.advance(Duration::from_millis(1));
    assert!(!store.dedup().contains("t1").expect("check"));
}
