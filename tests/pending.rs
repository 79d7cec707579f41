//! Pending capture ring buffers: seqs, capacity, TTL, and a model test.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use edgestate::{Error, ManualClock, PendingCapture, PendingLocation, Store, Table};
use proptest::prelude::*;

const T0_MS: u64 = 1_700_000_000_000;
const T0_S: i64 = 1_700_000_000;

fn capture(amount_cents: u64, created_at: i64) -> PendingCapture {
    PendingCapture {
        merchant_id: "coffee-42".into(),
        merchant_name: Some("Coffee 42".into()),
        amount_cents,
        card_last4: Some("4242".into()),
        proof_data: Some("receipt-bytes".into()),
        proof_type: Some("receipt".into()),
        location: Some(PendingLocation {
            latitude: 38.7223,
            longitude: -9.1393,
            accuracy_m: 12.5,
        }),
        created_at_s: created_at,
        expires_at_s: created_at + 86_400,
    }
}

fn store_with(capacity: usize, ttl: Duration) -> (Store, ManualClock) {
    common::clocked_store_with(T0_MS, |b| b.pending_capacity(capacity).pending_ttl(ttl))
}

fn records(store: &Store, table: Table) -> u64 {
    store.stats().expect("stats").records(table)
}

fn seqs(store: &Store, user: &str) -> Vec<u64> {
    store
        .pending()
        .list(user)
        .expect("list")
        .iter()
        .map(|e| e.seq)
        .collect()
}

#[test]
fn two_captures_in_the_same_millisecond_both_survive() {
    let (store, _) = store_with(10, Duration::from_secs(3600));
    let p = store.pending();
    // Same clock instant, same created_at: the seed's key collided here.
    let a = p.push("alice", &capture(100, T0_S)).expect("add");
    let b = p.push("alice", &capture(200, T0_S)).expect("add");
    assert!(b.seq > a.seq);
    let listed = p.list("alice").expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].seq, b.seq);
    assert_eq!(listed[0].capture, capture(200, T0_S));
    assert_eq!(listed[1].capture, capture(100, T0_S));
    assert_eq!(listed[0].expires_at_ms, T0_MS + 3_600_000);
    assert_eq!(p.count("alice").expect("count"), 2);
}

#[test]
fn captures_round_trip_exactly() {
    let (store, _) = store_with(10, Duration::from_secs(3600));
    let bare = PendingCapture {
        merchant_id: "m".into(),
        merchant_name: None,
        amount_cents: u64::MAX,
        card_last4: None,
        proof_data: None,
        proof_type: None,
        location: None,
        created_at_s: -1,
        expires_at_s: i64::MIN,
    };
    let id = store.pending().push("alice", &bare).expect("add");
    let got = store.pending().get("alice", id.seq).expect("get");
    assert_eq!(got.map(|e| e.capture), Some(bare));
    assert_eq!(store.pending().get("alice", id.seq + 1).expect("get"), None);
}

#[test]
fn capacity_evicts_the_oldest_in_the_same_transaction() {
    let (store, _) = store_with(3, Duration::from_secs(3600));
    let p = store.pending();
    let ids: Vec<_> = (1..=5)
        .map(|i| p.push("alice", &capture(i, T0_S)).expect("add"))
        .collect();
    assert!(ids[..3].iter().all(|id| id.evicted.is_empty()));
    assert_eq!(ids[3].evicted, vec![ids[0].seq]);
    assert_eq!(ids[4].evicted, vec![ids[1].seq]);
    let listed = p.list("alice").expect("list");
    let amounts: Vec<u64> = listed.iter().map(|e| e.capture.amount_cents).collect();
    assert_eq!(amounts, vec![5, 4, 3]); // newest first
    assert_eq!(records(&store, Table::Pending), 3);
    // Evicted entries took their expiry entries with them.
    assert_eq!(records(&store, Table::Expiry), 3);
}

#[test]
fn users_have_separate_rings_and_counters() {
    let (store, _) = store_with(2, Duration::from_secs(3600));
    let p = store.pending();
    for i in 0..3 {
        p.push("alice", &capture(i, T0_S)).expect("add");
    }
    let b = p.push("bob", &capture(9, T0_S)).expect("add");
    assert_eq!(b.seq, 1);
    assert!(b.evicted.is_empty());
    assert_eq!(p.count("alice").expect("count"), 2);
    assert_eq!(p.count("bob").expect("count"), 1);
    // A user whose id is a prefix of another's is a different ring.
    p.push("ali", &capture(7, T0_S)).expect("add");
    assert_eq!(p.count("ali").expect("count"), 1);
    assert_eq!(p.count("alice").expect("count"), 2);
}

#[test]
fn seqs_strictly_increase_across_evictions_removals_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pending.edgestate");
    let mut last = 0;
    {
        let store = Store::builder()
            .pending_capacity(2)
            .open(&path)
            .expect("open");
        let p = store.pending();
        for i in 0..4 {
            let id = p.push("alice", &capture(i, T0_S)).expect("add");
            assert!(id.seq > last);
            last = id.seq;
        }
        // Empty the ring entirely; the counter must not fall back.
        for e in p.list("alice").expect("list") {
            assert!(p.delete("alice", e.seq).expect("remove").is_some());
        }
        assert_eq!(p.count("alice").expect("count"), 0);
        let id = p.push("alice", &capture(10, T0_S)).expect("add");
        assert!(id.seq > last);
        last = id.seq;
        p.delete("alice", id.seq).expect("remove");
        store.close().expect("close");
    }
    let store = Store::builder()
        .pending_capacity(2)
        .open(&path)
        .expect("reopen");
    let id = store
        .pending()
        .push("alice", &capture(11, T0_S))
        .expect("add");
    assert!(
        id.seq > last,
        "seq {} reused after reopen (last {last})",
        id.seq
    );
}

#[test]
fn remove_returns_the_live_capture_once() {
    let (store, _) = store_with(10, Duration::from_secs(3600));
    let p = store.pending();
    let id = p.push("alice", &capture(100, T0_S)).expect("add");
    assert_eq!(
        p.delete("alice", id.seq).expect("remove"),
        Some(capture(100, T0_S))
    );
    assert_eq!(p.delete("alice", id.seq).expect("remove"), None);
    assert_eq!(p.delete("nobody", 1).expect("remove"), None);
    assert_eq!(records(&store, Table::Expiry), 0);
}

#[test]
fn remove_by_timestamp_removes_every_match() {
    let (store, _) = store_with(10, Duration::from_secs(3600));
    let p = store.pending();
    let a = p.push("alice", &capture(1, T0_S)).expect("add");
    let keep = p.push("alice", &capture(2, T0_S + 1)).expect("add");
    let c = p.push("alice", &capture(3, T0_S)).expect("add");
    let removed = p.delete_created_at("alice", T0_S).expect("remove");
    let removed_seqs: Vec<u64> = removed.iter().map(|e| e.seq).collect();
    assert_eq!(removed_seqs, vec![c.seq, a.seq]);
    assert_eq!(seqs(&store, "alice"), vec![keep.seq]);
    assert!(p
        .delete_created_at("alice", T0_S)
        .expect("again")
        .is_empty());
}

#[test]
fn entries_expire_after_the_pending_ttl_and_are_swept() {
    let (store, clock) = store_with(10, Duration::from_secs(10));
    let p = store.pending();
    let old = p.push("alice", &capture(1, T0_S)).expect("add");
    clock.advance(Duration::from_secs(5));
    let young = p.push("alice", &capture(2, T0_S + 5)).expect("add");
    clock.advance(Duration::from_secs(5));
    // `old` is exactly at its expiry: invisible to every read, before any sweep.
    assert_eq!(seqs(&store, "alice"), vec![young.seq]);
    assert_eq!(p.count("alice").expect("count"), 1);
    assert_eq!(p.get("alice", old.seq).expect("get"), None);
    assert_eq!(p.delete("alice", old.seq).expect("remove"), None);
    let old2 = p.push("alice", &capture(3, T0_S + 10)).expect("add");
    clock.advance(Duration::from_secs(10));
    assert_eq!(records(&store, Table::Pending), 2);
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 2);
    assert_eq!(records(&store, Table::Pending), 0);
    assert_eq!(records(&store, Table::Expiry), 0);
    assert!(old2.seq > young.seq);
}

#[test]
fn expired_unswept_entries_count_toward_capacity_and_go_first() {
    let (store, clock) = store_with(2, Duration::from_secs(10));
    let p = store.pending();
    let stale = p.push("alice", &capture(1, T0_S)).expect("add");
    clock.advance(Duration::from_secs(10));
    let b = p.push("alice", &capture(2, T0_S)).expect("add");
    assert!(b.evicted.is_empty());
    let c = p.push("alice", &capture(3, T0_S)).expect("add");
    assert_eq!(c.evicted, vec![stale.seq]);
    assert_eq!(records(&store, Table::Pending), 2);
    assert_eq!(seqs(&store, "alice"), vec![c.seq, b.seq]);
}

#[test]
fn zero_capacity_refuses_and_writes_nothing() {
    let (store, _) = store_with(0, Duration::from_secs(10));
    let err = store
        .pending()
        .push("alice", &capture(1, T0_S))
        .expect_err("capacity 0");
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "pending_capacity"),
        "{err:?}"
    );
    assert_eq!(records(&store, Table::Pending), 0);
    assert!(store.pending().list("alice").expect("list").is_empty());
}

#[test]
fn a_smaller_capacity_after_reopen_trims_on_the_next_add() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pending.edgestate");
    {
        let store = Store::builder()
            .pending_capacity(5)
            .open(&path)
            .expect("open");
        for i in 0..5 {
            store
                .pending()
                .push("alice", &capture(i, T0_S))
                .expect("add");
        }
        store.close().expect("close");
    }
    let store = Store::builder()
        .pending_capacity(2)
        .open(&path)
        .expect("reopen");
    let id = store
        .pending()
        .push("alice", &capture(9, T0_S))
        .expect("add");
    assert_eq!(id.evicted, vec![1, 2, 3, 4]);
    assert_eq!(seqs(&store, "alice"), vec![6, 5]);
}

#[test]
fn bad_user_is_refused() {
    let (store, _) = store_with(10, Duration::from_secs(10));
    let p = store.pending();
    assert!(matches!(
        p.push("", &capture(1, T0_S)),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(p.list(""), Err(Error::InvalidInput { .. })));
    assert!(matches!(p.delete("", 1), Err(Error::InvalidInput { .. })));
}

#[test]
fn an_add_in_a_failed_transaction_leaves_no_trace() {
    let (store, _) = store_with(10, Duration::from_secs(10));
    let outcome: Result<(), Error> = store.write(|tx| {
        tx.pending().push("alice", &capture(1, T0_S))?;
        Err(Error::NotFound {
            table: "test",
            key: "abort".into(),
        })
    });
    assert!(outcome.is_err());
    assert_eq!(records(&store, Table::Pending), 0);
    // The rolled-back add did not consume a seq either.
    let id = store
        .pending()
        .push("alice", &capture(1, T0_S))
        .expect("add");
    assert_eq!(id.seq, 1);
    let read = store.read(|tx| tx.pending().list("alice")).expect("read");
    assert_eq!(read.len(), 1);
}

// The model: per user, the rows in seq order with their expiry, and the next seq.

const USERS: [&str; 2] = ["alice", "bob"];
const CAPACITY: usize = 3;
const TTL_MS: u64 = 10_000;

#[derive(Debug, Clone)]
enum Op {
    Add {
        user: usize,
        amount: u64,
    },
    /// Removes the `pick`-th seq ever handed to the user (or a never-issued one).
    Remove {
        user: usize,
        pick: usize,
    },
    Advance {
        ms: u64,
    },
    Sweep,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..USERS.len(), any::<u64>()).prop_map(|(user, amount)| Op::Add { user, amount }),
        2 => (0..USERS.len(), 0..12usize).prop_map(|(user, pick)| Op::Remove { user, pick }),
        2 => (0..6_000u64).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Sweep),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Default)]
struct UserModel {
    rows: VecDeque<(u64, u64, u64)>, // (seq, amount, expires_at_ms)
    next_seq: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pending_matches_a_vecdeque_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.edgestate");
        let clock = ManualClock::new(T0_MS);
        let open = || {
            Store::builder()
                .clock(clock.clone())
                .pending_capacity(CAPACITY)
                .pending_ttl(Duration::from_millis(TTL_MS))
                .open(&path)
                .expect("open")
        };
        let mut store = open();
        let mut model: Vec<UserModel> = USERS
            .iter()
            .map(|_| UserModel { rows: VecDeque::new(), next_seq: 1 })
            .collect();
        let mut now = T0_MS;

        for op in ops {
            match op {
                Op::Add { user, amount } => {
                    let id = store
                        .pending()
                        .push(USERS[user], &capture(amount, T0_S))
                        .expect("add");
                    let m = &mut model[user];
                    prop_assert_eq!(id.seq, m.next_seq);
                    prop_assert_eq!(id.expires_at_ms, now + TTL_MS);
                    m.rows.push_back((m.next_seq, amount, now + TTL_MS));
                    m.next_seq += 1;
                    let mut evicted = Vec::new();
                    while m.rows.len() > CAPACITY {
                        evicted.extend(m.rows.pop_front().map(|r| r.0));
                    }
                    prop_assert_eq!(id.evicted, evicted);
                }
                Op::Remove { user, pick } => {
                    let seq = pick as u64 + 1;
                    let got = store.pending().delete(USERS[user], seq).expect("remove");
                    let m = &mut model[user];
                    let expected = match m.rows.iter().position(|r| r.0 == seq) {
                        Some(i) => m.rows.remove(i).filter(|r| r.2 > now).map(|r| r.1),
                        None => None,
                    };
                    prop_assert_eq!(got.map(|c| c.amount_cents), expected);
                }
                Op::Advance { ms } => {
                    clock.advance(Duration::from_millis(ms));
                    now += ms;
                }
                Op::Sweep => {
                    let removed = store.sweep_all_expired(4).expect("sweep");
                    let mut expected = 0;
                    for m in &mut model {
                        let before = m.rows.len();
                        m.rows.retain(|r| r.2 > now);
                        expected += before - m.rows.len();
                    }
                    prop_assert_eq!(removed, expected);
                }
                Op::Reopen => {
                    store.close().expect("close");
                    store = open();
                }
            }
            let mut rows = 0;
            for (user, m) in USERS.iter().zip(&model) {
                let listed: Vec<(u64, u64)> = store
                    .pending()
                    .list(user)
                    .expect("list")
                    .iter()
                    .map(|e| (e.seq, e.capture.amount_cents))
                    .collect();
                let live: Vec<(u64, u64)> = m
                    .rows
                    .iter()
                    .rev()
                    .filter(|r| r.2 > now)
                    .map(|r| (r.0, r.1))
                    .collect();
                prop_assert_eq!(store.pending().count(user).expect("count"), live.len());
                prop_assert_eq!(listed, live);
                prop_assert!(m.rows.len() <= CAPACITY);
                rows += m.rows.len();
            }
            prop_assert_eq!(records(&store, Table::Pending), rows as u64);
            prop_assert_eq!(records(&store, Table::Expiry), rows as u64);
        }
    }
}
