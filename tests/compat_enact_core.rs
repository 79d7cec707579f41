//! The agent runtime seed (`enact_core`'s state store): caller code written as the
//! runtime's callers write it, compiled against `edgestate::compat::enact_core` with
//! only the store's constructor changed.

#![cfg(feature = "seeds")]
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use common::gate_clock::GateClock;
use std::sync::Arc;
use std::time::Duration;

use edgestate::compat::enact_core::{
    ExecutionId, ExecutionSnapshot, ExecutionState, StateStore, StateStoreJsonExt, StepId,
    TenantId, UserId,
};
use edgestate::{ManualClock, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Seed caller code: unchanged from the runtime.
mod seed_caller {
    use super::*;

    pub async fn checkpoint(
        store: &dyn StateStore,
        exec: &ExecutionId,
        tenant: &TenantId,
        state: ExecutionState,
        seq: u64,
    ) -> anyhow::Result<()> {
        let mut snapshot = ExecutionSnapshot::with_user(
            exec.clone(),
            tenant.clone(),
            Some(UserId::from("user-1")),
            state,
            seq,
        );
        snapshot.current_step_id = Some(StepId::from("step-2"));
        snapshot
            .step_outputs
            .insert(StepId::from("step-1"), json!({"ok": true}));
        snapshot.variables.insert("foo".to_string(), json!("bar"));
        store.save_snapshot(snapshot).await
    }

    /// Resume from the snapshot only if it is as fresh as the event store.
    pub async fn resume(
        store: &dyn StateStore,
        exec: &ExecutionId,
        event_store_sequence: u64,
    ) -> anyhow::Result<Option<ExecutionSnapshot>> {
        match store.load_snapshot(exec).await? {
            Some(s) if s.is_fresh(event_store_sequence) => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    pub fn is_terminal(state: ExecutionState) -> bool {
        match state {
            ExecutionState::Completed | ExecutionState::Failed | ExecutionState::Cancelled => true,
            ExecutionState::Pending | ExecutionState::Running | ExecutionState::Paused => false,
        }
    }

    /// Returns the call directly: compiles only with the seed's return type.
    pub async fn finish(store: &dyn StateStore, exec: &ExecutionId) -> anyhow::Result<()> {
        store.delete_execution_state(exec).await
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Plan {
        pub steps: Vec<String>,
    }

    /// Generic over any store, through the blanket JSON extension.
    pub async fn remember_plan<S: StateStore + ?Sized>(
        store: &S,
        exec: &ExecutionId,
        plan: &Plan,
        ttl: Option<Duration>,
    ) -> anyhow::Result<()> {
        store
            .set_json(&format!("exec:{exec}:var:plan"), plan, ttl)
            .await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_runtime_checkpoints_and_resumes() {
    // was: Arc::new(InMemoryStateStore::new())
    let store: Arc<dyn StateStore> = Arc::new(Store::temporary().unwrap());
    let exec = ExecutionId::new();
    let tenant = TenantId::from("acme");

    seed_caller::checkpoint(&*store, &exec, &tenant, ExecutionState::Running, 10)
        .await
        .unwrap();
    let s = seed_caller::resume(&*store, &exec, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.state, ExecutionState::Running);
    assert!(!seed_caller::is_terminal(s.state));
    assert_eq!(s.user_id, Some(UserId::from("user-1")));
    assert_eq!(s.current_step_id, Some(StepId::from("step-2")));
    assert_eq!(s.step_outputs[&StepId::from("step-1")], json!({"ok": true}));
    assert_eq!(s.variables["foo"], "bar");
    assert!(seed_caller::resume(&*store, &exec, 11)
        .await
        .unwrap()
        .is_none());

    // A lower sequence number than the stored one is refused (the seed overwrote a
    // fresher snapshot); the error is edgestate's, inside anyhow.
    let err = seed_caller::checkpoint(&*store, &exec, &tenant, ExecutionState::Paused, 9)
        .await
        .unwrap_err();
    assert!(matches!(
        err.downcast_ref::<edgestate::Error>(),
        Some(edgestate::Error::StaleSnapshot {
            stored: 10,
            offered: 9,
            ..
        })
    ));
    seed_caller::checkpoint(&*store, &exec, &tenant, ExecutionState::Completed, 12)
        .await
        .unwrap();
    assert!(seed_caller::is_terminal(
        store.load_snapshot(&exec).await.unwrap().unwrap().state
    ));

    let other = ExecutionId::new();
    assert_ne!(other, exec);
    seed_caller::checkpoint(&*store, &other, &tenant, ExecutionState::Pending, 1)
        .await
        .unwrap();
    let mut listed = store.list_snapshots(&tenant, 10).await.unwrap();
    listed.sort();
    let mut expected = vec![exec.clone(), other.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(store.list_snapshots(&tenant, 1).await.unwrap().len(), 1);
    assert!(store
        .list_snapshots(&TenantId::from("nobody"), 10)
        .await
        .unwrap()
        .is_empty());

    // Working memory and JSON helpers, then cleanup of everything the execution owns.
    let plan = seed_caller::Plan {
        steps: vec!["a".to_string(), "b".to_string()],
    };
    seed_caller::remember_plan(&*store, &exec, &plan, None)
        .await
        .unwrap();
    let back: Option<seed_caller::Plan> = store
        .get_json(&format!("exec:{exec}:var:plan"))
        .await
        .unwrap();
    assert_eq!(back, Some(plan));
    store.set("global:flag", b"1", None).await.unwrap();
    assert!(store.exists("global:flag").await.unwrap());
    seed_caller::finish(&*store, &exec).await.unwrap();
    assert!(store.load_snapshot(&exec).await.unwrap().is_none());
    assert!(!store
        .exists(&format!("exec:{exec}:var:plan"))
        .await
        .unwrap());
    assert!(store.load_snapshot(&other).await.unwrap().is_some());
    store.delete_snapshot(&other).await.unwrap();
    store.delete_snapshot(&other).await.unwrap();
    store.delete("global:flag").await.unwrap();
    assert_eq!(store.get("global:flag").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_helpers_on_store_itself_and_ttl() {
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Store::builder().clock(clock.clone()).temporary().unwrap();
    // set_json / get_json directly on Store (E0599 before).
    store
        .set_json("exec:e1:var:n", &42u32, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        store.get_json::<u32>("exec:e1:var:n").await.unwrap(),
        Some(42)
    );
    // Not a u32: a serde error, not a panic.
    store.set("exec:e1:var:s", b"\"text\"", None).await.unwrap();
    assert!(store.get_json::<u32>("exec:e1:var:s").await.is_err());
    clock.advance(Duration::from_secs(5));
    assert_eq!(store.get_json::<u32>("exec:e1:var:n").await.unwrap(), None);
    // Bad input is a typed error.
    let err = store.set("", b"x", None).await.unwrap_err();
    assert!(matches!(
        err.downcast_ref::<edgestate::Error>(),
        Some(edgestate::Error::InvalidInput { .. })
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn snapshots_the_seed_serialised_load_unchanged() {
    // A snapshot as the seed serialised it: state as the enum, timestamp as RFC 3339,
    // no user_id.
    let seed_json = json!({
        "execution_id": "exec_01",
        "tenant_id": "acme",
        "state": "Running",
        "current_step_id": null,
        "step_outputs": {"s1": [1, 2]},
        "variables": {"foo": "bar"},
        "timestamp": "2026-01-02T03:04:05.678Z",
        "sequence_number": 5
    });
    let snapshot: ExecutionSnapshot = serde_json::from_value(seed_json.clone()).unwrap();
    assert_eq!(snapshot.state, ExecutionState::Running);
    assert_eq!(snapshot.user_id, None);
    assert_eq!(serde_json::to_value(&snapshot).unwrap(), seed_json);

    let store = Store::temporary().unwrap();
    store.save_snapshot(snapshot.clone()).await.unwrap();
    let loaded = store
        .load_snapshot(&ExecutionId::from("exec_01"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, snapshot);
    assert_eq!(serde_json::to_value(&loaded).unwrap(), seed_json);

    // Sub-millisecond precision is not kept (listed difference).
    let mut precise = ExecutionSnapshot::new(
        ExecutionId::from("exec_02"),
        TenantId::from("acme"),
        ExecutionState::Paused,
        1,
    );
    precise.timestamp = "2026-01-02T03:04:05.678901Z".parse().unwrap();
    store.save_snapshot(precise.clone()).await.unwrap();
    let loaded = store
        .load_snapshot(&ExecutionId::from("exec_02"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        loaded.timestamp,
        "2026-01-02T03:04:05.678Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );

    // A snapshot written natively with a state the enum does not name is a typed
    // decode error.
    store
        .snapshots()
        .put(&edgestate::ExecutionSnapshot::new(
            "exec_03",
            "acme",
            edgestate::ExecutionState::new("sleeping"),
            1,
        ))
        .unwrap();
    let err = store
        .load_snapshot(&ExecutionId::from("exec_03"))
        .await
        .unwrap_err();
    assert!(matches!(
        err.downcast_ref::<edgestate::Error>(),
        Some(edgestate::Error::Decode { .. })
    ));
    // Lower-case native names read as the enum.
    store
        .snapshots()
        .put(&edgestate::ExecutionSnapshot::new(
            "exec_04",
            "acme",
            edgestate::ExecutionState::FAILED,
            1,
        ))
        .unwrap();
    assert_eq!(
        store
            .load_snapshot(&ExecutionId::from("exec_04"))
            .await
            .unwrap()
            .unwrap()
            .state,
        ExecutionState::Failed
    );
    for state in ExecutionState::ALL {
        let json = serde_json::to_value(state).unwrap();
        assert_eq!(
            serde_json::from_value::<ExecutionState>(json).unwrap(),
            state
        );
    }
}

#[test]
fn async_calls_leave_the_runtime_thread_free() {
    use std::sync::atomic::Ordering::SeqCst;
    let clock = GateClock::default();
    let store = Store::builder().clock(clock.clone()).temporary().unwrap();
    clock.armed.store(true, SeqCst);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let call = store.set("exec:e1:var:x", b"1", None);
        let opener = async {
            tokio::task::yield_now().await;
            clock.open();
        };
        let (result, ()) = tokio::join!(call, opener);
        result.unwrap();
    });
    assert!(
        !clock.timed_out.load(SeqCst),
        "the call held the runtime thread"
    );
    assert!(rt.block_on(store.exists("exec:e1:var:x")).unwrap());
}
