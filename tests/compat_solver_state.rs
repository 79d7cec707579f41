//! The solver seed (`solver-state`): caller code written as the solver writes it,
//! compiled against `edgestate::compat::solver_state` with only the backend's
//! constructor changed.

#![cfg(feature = "seeds")]
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use common::gate_clock::GateClock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use edgestate::compat::solver_state::{
    EdgeState, FillStore, OrderStore, Result, StateConfig, StateError, StateStore,
};
use edgestate::{ManualClock, Store};
use serde_json::json;

/// Seed caller code: unchanged from the solver.
mod seed_caller {
    use super::*;

    pub async fn record_order<S: StateStore>(
        orders: &OrderStore<S>,
        id: &str,
        encoded: &[u8],
    ) -> Result<()> {
        orders.store_order(id, encoded).await
    }

    pub async fn pending_orders<S: StateStore>(orders: &OrderStore<S>) -> Result<Vec<Bytes>> {
        let mut out = Vec::new();
        for id in orders.list_orders().await? {
            if let Some(data) = orders.get_order(&id).await? {
                out.push(data);
            }
        }
        Ok(out)
    }

    pub async fn settle<S: StateStore>(store: &S, order_id: &str) -> Result<()> {
        store.delete(&format!("order:{order_id}")).await
    }

    pub fn describe(e: &StateError) -> &'static str {
        match e {
            StateError::KeyNotFound(_) => "missing",
            StateError::BackendError(_) => "backend",
            StateError::SerializationError(_) => "serde",
            StateError::IoError(_) => "io",
        }
    }

    /// A test double a solver writes against the seed trait: the trait's shape is
    /// implementable exactly as in the seed.
    #[derive(Default, Clone)]
    pub struct MapState(pub Arc<Mutex<HashMap<String, Bytes>>>);

    #[async_trait]
    impl StateStore for MapState {
        async fn get(&self, key: &str) -> Result<Option<Bytes>> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn set(&self, key: &str, value: Bytes) -> Result<()> {
            self.0.lock().unwrap().insert(key.to_string(), value);
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.0.lock().unwrap().remove(key);
            Ok(())
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>> {
            let mut keys: Vec<String> = self
                .0
                .lock()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect();
            keys.sort();
            Ok(keys)
        }
    }
}

async fn exercise<S: StateStore + Clone>(store: S) {
    let orders = OrderStore::new(store.clone(), "eip7683");
    let lookalike = OrderStore::new(store.clone(), "eip7683x");
    seed_caller::record_order(&orders, "o2", b"second")
        .await
        .unwrap();
    seed_caller::record_order(&orders, "o1", b"first")
        .await
        .unwrap();
    seed_caller::record_order(&lookalike, "o9", b"other")
        .await
        .unwrap();
    // Ids, not full keys, and only this prefix's (the seed's prefix match also listed
    // "eip7683x:...").
    assert_eq!(orders.list_orders().await.unwrap(), ["o1", "o2"]);
    assert_eq!(
        seed_caller::pending_orders(&orders).await.unwrap(),
        [Bytes::from_static(b"first"), Bytes::from_static(b"second")]
    );

    let fills = FillStore::new(store.clone(), "fill");
    fills.store_fill("o1:0xabc", b"filled").await.unwrap();
    assert_eq!(
        fills.get_fill("o1:0xabc").await.unwrap(),
        Some(Bytes::from_static(b"filled"))
    );
    assert_eq!(fills.list_fills().await.unwrap(), ["o1:0xabc"]);
    assert_eq!(fills.get_fill("nope").await.unwrap(), None);

    store
        .set("order:a", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(
        store
            .batch_get(&["order:a".to_string(), "order:b".to_string()])
            .await
            .unwrap(),
        vec![Some(Bytes::from_static(b"x")), None]
    );
    seed_caller::settle(&store, "a").await.unwrap();
    seed_caller::settle(&store, "a").await.unwrap(); // deleting twice is fine
    assert_eq!(store.get("order:a").await.unwrap(), None);
}

#[tokio::test(flavor = "current_thread")]
async fn the_solver_runs_unchanged_on_edgestate() {
    // was: let store = InMemoryState::new();
    exercise(EdgeState::temporary().unwrap()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_same_caller_code_runs_on_a_seed_style_backend() {
    exercise(seed_caller::MapState::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_ttl_and_errors() {
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Store::builder().clock(clock.clone()).temporary().unwrap();
    let state = EdgeState::from_store(store, "solver")
        .unwrap()
        .with_limits(2, Duration::from_secs(60));
    state.set("k1", Bytes::from_static(b"1")).await.unwrap();
    state.set("k2", Bytes::from_static(b"2")).await.unwrap();
    // Full: a new key is refused (never an eviction), an overwrite is fine.
    let err = state.set("k3", Bytes::from_static(b"3")).await.unwrap_err();
    assert_eq!(seed_caller::describe(&err), "backend");
    state.set("k1", Bytes::from_static(b"1b")).await.unwrap();
    clock.advance(Duration::from_secs(60));
    assert_eq!(state.get("k1").await.unwrap(), None);
    state.set("k3", Bytes::from_static(b"3")).await.unwrap();
    // Bad input is a typed error, never a panic.
    let err = state.get("").await.unwrap_err();
    assert_eq!(seed_caller::describe(&err), "backend");
    assert!(err.to_string().contains("invalid input"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_seed_config_section_opens_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let config: StateConfig = serde_json::from_value(json!({
        "type": "file",
        "max_items": 10000,
        "ttl_seconds": 3600,
        "file": {"base_path": dir.path(), "sync_interval": "30s"}
    }))
    .unwrap();
    {
        let state = EdgeState::from_config(&config).unwrap();
        state
            .set("state:solver:nonce", Bytes::from_static(b"7"))
            .await
            .unwrap();
        assert_eq!(state.byte_store().max_items(), Some(10_000));
        assert_eq!(state.byte_store().ttl(), Some(Duration::from_secs(3600)));
    }
    assert!(dir.path().join("state.edgestate").exists());
    // Reopened: durable.
    let state = EdgeState::from_config(&config).unwrap();
    assert_eq!(
        state.get("state:solver:nonce").await.unwrap(),
        Some(Bytes::from_static(b"7"))
    );
    let memory: StateConfig = serde_json::from_value(json!({"type": "memory"})).unwrap();
    let m = EdgeState::from_config(&memory).unwrap();
    assert_eq!(m.list("").await.unwrap(), Vec::<String>::new());
}

#[test]
fn async_calls_leave_the_runtime_thread_free() {
    use std::sync::atomic::Ordering::SeqCst;
    let clock = GateClock::default();
    let store = EdgeState::from_store(
        Store::builder().clock(clock.clone()).temporary().unwrap(),
        "solver",
    )
    .unwrap();
    clock.armed.store(true, SeqCst);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let call = store.set("order:1", Bytes::from_static(b"1"));
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
    assert!(rt.block_on(store.get("order:1")).unwrap().is_some());
}
