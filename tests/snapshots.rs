//! Execution snapshots, the tenant index, and working memory.

mod common;

use std::time::Duration;

use common::clocked_store as store;
use common::T0_MS;
use edgestate::{Error, ExecutionSnapshot, ExecutionState, Store, Table};
use serde_json::json;

fn snap(exec: &str, tenant: &str, seq: u64) -> ExecutionSnapshot {
    let mut s = ExecutionSnapshot::new(exec, tenant, ExecutionState::RUNNING, seq);
    s.timestamp_ms = T0_MS;
    s
}

fn rich(exec: &str, tenant: &str, seq: u64) -> ExecutionSnapshot {
    let mut s = snap(exec, tenant, seq);
    s.user_id = Some("alice".into());
    s.current_step_id = Some("step-3".into());
    s.step_outputs.insert(
        "step-1".into(),
        json!({"hits": [1, 2.5, null, "x"], "nested": {"ok": true, "deep": [{"a": -1}]}}),
    );
    s.step_outputs
        .insert("step-2".into(), json!("plain text ✓"));
    s.variables.insert("budget".into(), json!(12.75));
    s.variables.insert("big".into(), json!(u64::MAX));
    s.variables.insert("empty".into(), json!({}));
    s
}

fn records(store: &Store, table: Table) -> u64 {
    store.stats().expect("stats").records(table)
}

#[test]
fn save_and_load_round_trip_with_json_values() {
    let (store, _) = store();
    let s = store.snapshots();
    assert_eq!(s.get("exec-1").expect("load"), None);
    let original = rich("exec-1", "acme", 3);
    assert_eq!(s.put(&original).expect("save"), 1);
    assert_eq!(s.get("exec-1").expect("load"), Some(original.clone()));
    let read = store.read(|tx| tx.snapshots().get("exec-1")).expect("read");
    assert_eq!(read, Some(original));
}

#[test]
fn snapshots_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("snap.edgestate");
    let original = rich("exec-1", "acme", 3);
    {
        let store = Store::open(&path).expect("open");
        store.snapshots().put(&original).expect("save");
        store
            .memory()
            .put("exec-1", "k", b"v", None)
            .expect("memory");
        store.close().expect("close");
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(
        store.snapshots().get("exec-1").expect("load"),
        Some(original)
    );
    assert_eq!(
        store.snapshots().list_up_to("acme", 10).expect("list"),
        vec!["exec-1"]
    );
    assert_eq!(
        store.memory().get("exec-1", "k").expect("get"),
        Some(b"v".to_vec())
    );
}

#[test]
fn a_stale_save_is_refused_and_writes_nothing() {
    let (store, _) = store();
    let s = store.snapshots();
    let newer = rich("exec-1", "acme", 10);
    s.put(&newer).expect("save");
    // Older, and under another tenant: neither the record nor the index may move.
    let mut older = snap("exec-1", "other", 9);
    older.state = ExecutionState::FAILED;
    match s.put(&older) {
        Err(Error::StaleSnapshot {
            key,
            stored,
            offered,
        }) => {
            assert_eq!(key, "exec-1");
            assert_eq!((stored, offered), (10, 9));
        }
        other => panic!("expected StaleSnapshot, got {other:?}"),
    }
    assert_eq!(s.get("exec-1").expect("load"), Some(newer));
    assert_eq!(s.list_up_to("acme", 10).expect("list"), vec!["exec-1"]);
    assert!(s.list_up_to("other", 10).expect("list").is_empty());

    // Also inside a larger transaction: the error rolls back everything with it.
    let outcome = store.write(|tx| {
        tx.kv().put("audit", "tried", b"1", None)?;
        tx.snapshots().put(&older)?;
        Ok::<_, Error>(())
    });
    assert!(matches!(outcome, Err(Error::StaleSnapshot { .. })));
    assert_eq!(store.kv().get("audit", "tried").expect("get"), None);
}

#[test]
fn an_equal_sequence_is_an_idempotent_resave_and_a_higher_one_replaces() {
    let (store, _) = store();
    let s = store.snapshots();
    s.put(&snap("exec-1", "acme", 5)).expect("save");
    assert_eq!(s.put(&snap("exec-1", "acme", 5)).expect("resave"), 2);
    let mut later = snap("exec-1", "acme", 6);
    later.state = ExecutionState::COMPLETED;
    s.put(&later).expect("save");
    assert_eq!(
        s.get("exec-1").expect("load").map(|x| x.state),
        Some(ExecutionState::COMPLETED)
    );
    assert_eq!(s.list_up_to("acme", 10).expect("list"), vec!["exec-1"]);
}

#[test]
fn freshness() {
    let (store, _) = store();
    let s = store.snapshots();
    assert_eq!(s.is_fresh("exec-1", 0).expect("fresh"), None);
    s.put(&snap("exec-1", "acme", 10)).expect("save");
    assert_eq!(s.is_fresh("exec-1", 5).expect("fresh"), Some(true));
    assert_eq!(s.is_fresh("exec-1", 10).expect("fresh"), Some(true));
    assert_eq!(s.is_fresh("exec-1", 11).expect("fresh"), Some(false));
    let one = snap("x", "t", 10);
    assert!(one.is_fresh(10) && one.is_fresh(0) && !one.is_fresh(15));
}

#[test]
fn tenant_listing_uses_the_index_with_a_limit() {
    let (store, _) = store();
    let s = store.snapshots();
    for i in [3, 1, 4, 0, 2] {
        s.put(&snap(&format!("exec-{i}"), "acme", 1)).expect("save");
    }
    s.put(&snap("exec-9", "globex", 1)).expect("save");
    // A tenant whose name is a prefix of another's is its own tenant.
    s.put(&snap("exec-8", "acm", 1)).expect("save");
    assert_eq!(
        s.list_up_to("acme", 3).expect("list"),
        vec!["exec-0", "exec-1", "exec-2"]
    );
    assert_eq!(s.list_up_to("acme", 100).expect("list").len(), 5);
    assert!(s.list_up_to("acme", 0).expect("list").is_empty());
    assert_eq!(s.list_up_to("globex", 10).expect("list"), vec!["exec-9"]);
    assert_eq!(s.list_up_to("acm", 10).expect("list"), vec!["exec-8"]);
    assert!(s.list_up_to("initech", 10).expect("list").is_empty());
}

#[test]
fn a_snapshot_that_changes_tenant_moves_in_the_index() {
    let (store, _) = store();
    let s = store.snapshots();
    s.put(&snap("exec-1", "acme", 1)).expect("save");
    s.put(&snap("exec-2", "acme", 1)).expect("save");
    s.put(&snap("exec-1", "globex", 2)).expect("move");
    assert_eq!(s.list_up_to("acme", 10).expect("list"), vec!["exec-2"]);
    assert_eq!(s.list_up_to("globex", 10).expect("list"), vec!["exec-1"]);
}

#[test]
fn delete_removes_the_snapshot_and_its_index_entry() {
    let (store, _) = store();
    let s = store.snapshots();
    s.put(&snap("exec-1", "acme", 1)).expect("save");
    s.put(&snap("exec-2", "acme", 1)).expect("save");
    assert!(s.delete("exec-1").expect("delete"));
    assert!(!s.delete("exec-1").expect("delete again"));
    assert_eq!(s.get("exec-1").expect("load"), None);
    assert_eq!(s.list_up_to("acme", 10).expect("list"), vec!["exec-2"]);
    // A deleted execution starts over: any sequence is accepted again.
    s.put(&snap("exec-1", "acme", 0))
        .expect("save after delete");
}

#[test]
fn working_memory_set_get_list_delete() {
    let (store, _) = store();
    let m = store.memory();
    assert_eq!(m.put("exec-1", "b", b"2", None).expect("set"), 1);
    m.put("exec-1", "a", b"1", None).expect("set");
    assert_eq!(m.put("exec-1", "a", b"1'", None).expect("set"), 2);
    // Execution ids that share a prefix stay apart.
    m.put("exec-10", "a", b"other", None).expect("set");
    assert_eq!(m.get("exec-1", "a").expect("get"), Some(b"1'".to_vec()));
    assert_eq!(m.get("exec-1", "zzz").expect("get"), None);
    assert_eq!(m.list("exec-1").expect("list"), vec!["a", "b"]);
    assert_eq!(m.list("exec-10").expect("list"), vec!["a"]);
    assert!(m.delete("exec-1", "a").expect("delete"));
    assert!(!m.delete("exec-1", "a").expect("delete again"));
    assert_eq!(m.list("exec-1").expect("list"), vec!["b"]);
    let empty: &[u8] = b"";
    m.put("exec-1", "empty", empty, None).expect("set");
    assert_eq!(m.get("exec-1", "empty").expect("get"), Some(Vec::new()));
}

#[test]
fn working_memory_ttl_expires_before_any_sweep() {
    let (store, clock) = store();
    let m = store.memory();
    m.put("exec-1", "short", b"x", Some(Duration::from_secs(5)))
        .expect("set");
    m.put("exec-1", "long", b"y", None).expect("set");
    clock.advance(Duration::from_secs(5));
    assert_eq!(m.get("exec-1", "short").expect("get"), None);
    assert_eq!(m.list("exec-1").expect("list"), vec!["long"]);
    assert_eq!(records(&store, Table::WorkingMemory), 2);
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 1);
    assert_eq!(records(&store, Table::WorkingMemory), 1);
    assert_eq!(records(&store, Table::Expiry), 0);
}

#[test]
fn delete_execution_state_removes_everything_of_that_execution_only() {
    let (store, clock) = store();
    let s = store.snapshots();
    let m = store.memory();
    s.put(&rich("exec-1", "acme", 4)).expect("save");
    s.put(&snap("exec-2", "acme", 4)).expect("save");
    m.put("exec-1", "plain", b"1", None).expect("set");
    m.put("exec-1", "ttl-a", b"2", Some(Duration::from_secs(60)))
        .expect("set");
    m.put("exec-1", "ttl-b", b"3", Some(Duration::from_secs(5)))
        .expect("set");
    m.put("exec-2", "ttl", b"4", Some(Duration::from_secs(60)))
        .expect("set");
    // One of exec-1's keys is expired but not swept: it must go too, expiry entry and all.
    clock.advance(Duration::from_secs(5));
    assert_eq!(records(&store, Table::WorkingMemory), 4);
    assert_eq!(records(&store, Table::Expiry), 3);

    let cleanup = s.delete_with_memory("exec-1").expect("cleanup");
    assert!(cleanup.snapshot_removed);
    assert_eq!(cleanup.memory_keys_removed, 2);

    assert_eq!(records(&store, Table::WorkingMemory), 1);
    assert_eq!(records(&store, Table::Expiry), 1);
    assert_eq!(records(&store, Table::Snapshots), 1);
    assert_eq!(s.get("exec-1").expect("load"), None);
    assert!(m.list("exec-1").expect("list").is_empty());
    assert_eq!(s.list_up_to("acme", 10).expect("list"), vec!["exec-2"]);
    assert_eq!(m.get("exec-2", "ttl").expect("get"), Some(b"4".to_vec()));
    // Nothing is left for a sweep to trip over.
    assert_eq!(store.sweep_all_expired(10).expect("sweep"), 0);

    let nothing = s.delete_with_memory("exec-1").expect("again");
    assert!(!nothing.snapshot_removed);
    assert_eq!(nothing.memory_keys_removed, 0);
}

#[test]
fn delete_execution_state_without_a_snapshot_still_clears_memory() {
    let (store, _) = store();
    let s = store.snapshots();
    let m = store.memory();
    m.put("exec-1", "k", b"v", Some(Duration::from_secs(60)))
        .expect("set");
    let cleanup = s.delete_with_memory("exec-1").expect("cleanup");
    assert!(!cleanup.snapshot_removed);
    assert_eq!(cleanup.memory_keys_removed, 1);
    assert_eq!(records(&store, Table::Expiry), 0);
}

#[test]
fn bad_ids_are_refused_and_nothing_is_written() {
    let (store, _) = store();
    let s = store.snapshots();
    let m = store.memory();
    assert!(matches!(
        s.put(&snap("", "acme", 1)),
        Err(Error::InvalidInput { field, .. }) if field == "execution_id"
    ));
    assert!(matches!(
        s.put(&snap("exec-1", "", 1)),
        Err(Error::InvalidInput { field, .. }) if field == "tenant_id"
    ));
    assert!(matches!(
        m.put("exec-1", "", b"v", None),
        Err(Error::InvalidInput { field, .. }) if field == "key"
    ));
    assert!(matches!(
        s.list_up_to("", 1),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        s.delete_with_memory(""),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(records(&store, Table::Snapshots), 0);
    assert_eq!(records(&store, Table::WorkingMemory), 0);
}

#[test]
fn execution_state_names() {
    assert_eq!(ExecutionState::RUNNING.as_str(), "running");
    assert_eq!(ExecutionState::from("running"), ExecutionState::RUNNING);
    assert_eq!(ExecutionState::new("custom").to_string(), "custom");
}
