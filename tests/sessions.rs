//! Session keys: TTL, lazy expiry, atomic action accounting.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::clocked_store as store;
use common::T0_MS;
use edgestate::{Error, ManualClock, SessionKeyData, SessionRefusal, Store, Table};

const T0_S: i64 = 1_700_000_000;
const HOUR: Duration = Duration::from_secs(3600);

fn session(expires_at: i64, max_actions: u32) -> SessionKeyData {
    SessionKeyData {
        key_pubkey: "session-pub".into(),
        vault_pubkey: "vault-pub".into(),
        scopes: vec!["capture".into(), "transfer".into()],
        expires_at_s: expires_at,
        created_at_s: T0_S,
        max_actions,
        actions_used: 0,
    }
}

fn records(store: &Store, table: Table) -> u64 {
    store.stats().expect("stats").records(table)
}

fn refusal(result: edgestate::Result<SessionKeyData>) -> SessionRefusal {
    match result {
        Err(Error::SessionRefused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn round_trip_and_replace() {
    let (store, _) = store();
    let s = store.sessions();
    assert_eq!(s.get("alice").expect("get"), None);
    let first = session(T0_S + 600, 3);
    s.put("alice", &first).expect("store");
    assert_eq!(s.get("alice").expect("get"), Some(first));

    let second = SessionKeyData {
        key_pubkey: "other".into(),
        ..session(T0_S + 600, 9)
    };
    s.put("alice", &second).expect("replace");
    assert_eq!(s.get("alice").expect("get"), Some(second));
    assert_eq!(s.get("bob").expect("get"), None);
    assert_eq!(records(&store, Table::Sessions), 1);
}

#[test]
fn store_ttl_caps_a_long_session_and_expired_reads_none_before_any_sweep() {
    let (store, clock) = store();
    let s = store.sessions();
    // The session claims a week; the store's session_ttl (24 h) wins.
    s.put("alice", &session(T0_S + 7 * 24 * 3600, 1))
        .expect("store");
    clock.advance(24 * HOUR - Duration::from_millis(1));
    assert!(s.get("alice").expect("get").is_some());
    clock.advance(Duration::from_millis(1));
    assert_eq!(s.get("alice").expect("get"), None);
    // Still on disk: invisibility does not wait for the sweeper.
    assert_eq!(records(&store, Table::Sessions), 1);
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 1);
    assert_eq!(records(&store, Table::Sessions), 0);
    assert_eq!(records(&store, Table::Expiry), 0);
}

#[test]
fn a_session_shorter_than_the_store_ttl_expires_at_its_own_expires_at() {
    let (store, clock) = store();
    let s = store.sessions();
    s.put("alice", &session(T0_S + 60, 1)).expect("store");
    clock.advance(Duration::from_millis(59_999));
    assert!(s.get("alice").expect("get").is_some());
    // The seed's rule: expired once now >= expires_at.
    clock.advance(Duration::from_millis(1));
    assert_eq!(s.get("alice").expect("get"), None);
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 1);
}

#[test]
fn a_custom_session_ttl_is_honoured() {
    let clock = ManualClock::new(T0_MS);
    let store = Store::builder()
        .clock(clock.clone())
        .session_ttl(Duration::from_secs(5))
        .in_memory()
        .expect("store");
    store
        .sessions()
        .put("alice", &session(T0_S + 3600, 1))
        .expect("store");
    clock.advance(Duration::from_secs(5));
    assert_eq!(store.sessions().get("alice").expect("get"), None);
}

#[test]
fn storing_an_already_expired_session_is_refused_and_keeps_the_old_one() {
    let (store, _) = store();
    let s = store.sessions();
    let live = session(T0_S + 600, 1);
    s.put("alice", &live).expect("store");
    for expires_at in [T0_S, T0_S - 1, 0, -5] {
        let err = s
            .put("alice", &session(expires_at, 1))
            .expect_err("expired");
        assert!(
            matches!(&err, Error::InvalidInput { field, .. } if field == "expires_at_s"),
            "{err:?}"
        );
    }
    assert_eq!(s.get("alice").expect("get"), Some(live));
}

#[test]
fn invalid_user_is_refused() {
    let (store, _) = store();
    let s = store.sessions();
    assert!(matches!(
        s.put("", &session(T0_S + 60, 1)),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        s.get(&"u".repeat(edgestate::limits::MAX_KEY_LEN + 1)),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(s.use_action(""), Err(Error::InvalidInput { .. })));
    assert!(matches!(s.delete(""), Err(Error::InvalidInput { .. })));
}

#[test]
fn invalidate_removes_the_session_and_its_expiry_entry() {
    let (store, _) = store();
    let s = store.sessions();
    s.put("alice", &session(T0_S + 60, 1)).expect("store");
    assert_eq!(records(&store, Table::Expiry), 1);
    assert!(s.delete("alice").expect("invalidate"));
    assert!(!s.delete("alice").expect("again"));
    assert_eq!(s.get("alice").expect("get"), None);
    assert_eq!(records(&store, Table::Sessions), 0);
    assert_eq!(records(&store, Table::Expiry), 0);
}

#[test]
fn use_action_counts_up_and_keeps_the_expiry() {
    let (store, clock) = store();
    let s = store.sessions();
    s.put("alice", &session(T0_S + 60, 3)).expect("store");
    let used = s.use_action("alice").expect("use");
    assert_eq!(used.actions_used, 1);
    assert_eq!(used.remaining_actions(), 2);
    assert_eq!(
        s.get("alice").expect("get").map(|x| x.actions_used),
        Some(1)
    );
    // Spending an action does not extend the session.
    clock.advance(Duration::from_secs(60));
    assert_eq!(s.get("alice").expect("get"), None);
    assert_eq!(records(&store, Table::Expiry), 1);
}

#[test]
fn use_action_refuses_missing_expired_and_exhausted_and_writes_nothing() {
    let (store, clock) = store();
    let s = store.sessions();
    assert_eq!(refusal(s.use_action("alice")), SessionRefusal::Missing);

    s.put("alice", &session(T0_S + 60, 1)).expect("store");
    s.use_action("alice").expect("first action");
    let before = s.get("alice").expect("get");
    assert_eq!(refusal(s.use_action("alice")), SessionRefusal::Exhausted);
    assert_eq!(s.get("alice").expect("get"), before);

    clock.advance(Duration::from_secs(60));
    assert_eq!(refusal(s.use_action("alice")), SessionRefusal::Expired);
    // The refused call removed nothing and wrote nothing: the row waits for the sweep.
    assert_eq!(records(&store, Table::Sessions), 1);
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 1);
    // Once swept, an expired session is indistinguishable from none.
    assert_eq!(refusal(s.use_action("alice")), SessionRefusal::Missing);
}

#[test]
fn a_session_with_zero_actions_is_exhausted_from_the_start() {
    let (store, _) = store();
    let s = store.sessions();
    s.put("alice", &session(T0_S + 60, 0)).expect("store");
    assert_eq!(refusal(s.use_action("alice")), SessionRefusal::Exhausted);
}

#[test]
fn a_refusal_inside_a_larger_transaction_rolls_back_the_rest() {
    let (store, _) = store();
    let outcome = store.write(|tx| {
        tx.kv().put("audit", "attempt", b"1", None)?;
        tx.sessions().use_action("alice")?;
        Ok::<_, Error>(())
    });
    assert!(matches!(outcome, Err(Error::SessionRefused { .. })));
    assert_eq!(store.kv().get("audit", "attempt").expect("get"), None);
}

#[test]
fn read_and_write_transactions_see_sessions() {
    let (store, _) = store();
    store
        .write(|tx| {
            tx.sessions().put("alice", &session(T0_S + 60, 2))?;
            // Visible to the same transaction at once.
            let used = tx.sessions().use_action("alice")?;
            assert_eq!(used.actions_used, 1);
            assert_eq!(tx.sessions().get("alice")?.map(|x| x.actions_used), Some(1));
            Ok::<_, Error>(())
        })
        .expect("write");
    let seen = store.read(|tx| tx.sessions().get("alice")).expect("read");
    assert_eq!(seen.map(|x| x.actions_used), Some(1));
}

#[test]
fn concurrent_use_action_never_overspends() {
    const THREADS: usize = 8;
    const ATTEMPTS: usize = 10;
    const MAX: u32 = 25;
    let store = Store::temporary().expect("store");
    // Real clock here: the session lives a day from now.
    let now_s = i64::try_from(store.clock().now_ms() / 1000).expect("now");
    store
        .sessions()
        .put("alice", &session(now_s + 24 * 3600, MAX))
        .expect("store");

    let granted = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let store = store.clone();
            let granted = Arc::clone(&granted);
            let exhausted = Arc::clone(&exhausted);
            thread::spawn(move || {
                for _ in 0..ATTEMPTS {
                    match store.sessions().use_action("alice") {
                        Ok(_) => granted.fetch_add(1, Ordering::SeqCst),
                        Err(Error::SessionRefused {
                            reason: SessionRefusal::Exhausted,
                            ..
                        }) => exhausted.fetch_add(1, Ordering::SeqCst),
                        Err(e) => panic!("unexpected error: {e}"),
                    };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(granted.load(Ordering::SeqCst), MAX as usize);
    assert_eq!(
        exhausted.load(Ordering::SeqCst),
        THREADS * ATTEMPTS - MAX as usize
    );
    let last = store.sessions().get("alice").expect("get").expect("live");
    assert_eq!(last.actions_used, MAX);
}
