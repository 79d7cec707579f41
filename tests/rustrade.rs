//! edgestate behind the trading framework's real `rustrade_core::StateStore` trait, used
//! the way the framework uses it: through `Arc<dyn StateStore>`, across a restart.

#![cfg(feature = "rustrade")]
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::faulty_backend::{Fault, FaultState, FaultyBackend};
use rustrade_core::StateStore;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_save_flush_through_a_trait_object_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.edgestate");
    {
        let state: Arc<dyn StateStore> = Arc::new(edgestate::Store::open(&path).unwrap());
        assert_eq!(
            state.load("bot/BTCUSDT").await.unwrap(),
            None,
            "a first boot is not an error"
        );
        let snapshot = json!({"realised": 12.5, "halted": true, "streak": [1, -1, -1]});
        state.save("bot/BTCUSDT", snapshot.clone()).await.unwrap();
        state
            .save("bot/BTCUSDT", json!({"realised": 13.0, "halted": false}))
            .await
            .unwrap();
        state.save("bot/ETHUSDT", snapshot).await.unwrap();
        state.flush().await.unwrap();
    }
    let state: Arc<dyn StateStore> = Arc::new(edgestate::Store::open(&path).unwrap());
    assert_eq!(
        state.load("bot/BTCUSDT").await.unwrap(),
        Some(json!({"realised": 13.0, "halted": false}))
    );
    assert_eq!(
        state.load("bot/ETHUSDT").await.unwrap().unwrap()["streak"],
        json!([1, -1, -1])
    );
    // Errors surface as the framework's Storage error, not a panic.
    let err = state.save("", json!(1)).await.unwrap_err();
    assert!(matches!(err, rustrade_core::Error::Storage(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_from_tasks() {
    let state: Arc<dyn StateStore> = Arc::new(edgestate::Store::temporary().unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let state = Arc::clone(&state);
            tokio::spawn(async move { state.save(&format!("bot/S{i}"), json!({"i": i})).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for i in 0..16 {
        assert_eq!(
            state.load(&format!("bot/S{i}")).await.unwrap(),
            Some(json!({"i": i}))
        );
    }
}

/// A bot that only holds `Arc<dyn StateStore>` cannot call `Store::reopen`: after a
/// failed save, the store heals itself and the next save lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_after_a_failed_save_lands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.edgestate");
    edgestate::Store::builder()
        .page_log(false)
        .open(&path)
        .unwrap()
        .close()
        .unwrap();
    let faults = FaultState::new(Fault::None);
    let store = {
        let (path, faults) = (path.clone(), Arc::clone(&faults));
        edgestate::Store::builder()
            .open_with_backend_factory(move || FaultyBackend::open(&path, Arc::clone(&faults)))
            .unwrap()
    };
    let state: Arc<dyn StateStore> = Arc::new(store.clone());
    state
        .save("bot/BTCUSDT", json!({"trades": 1}))
        .await
        .unwrap();
    faults.set_fault(Fault::FailSync(faults.syncs.load(Ordering::SeqCst)));
    assert!(state
        .save("bot/BTCUSDT", json!({"trades": 2}))
        .await
        .is_err());
    for trades in 3..=20 {
        state
            .save("bot/BTCUSDT", json!({ "trades": trades }))
            .await
            .unwrap();
    }
    state.flush().await.unwrap();
    assert_eq!(store.stats().unwrap().recoveries, 1);
    drop(state);
    drop(store);
    let state: Arc<dyn StateStore> = Arc::new(edgestate::Store::open(&path).unwrap());
    assert_eq!(
        state.load("bot/BTCUSDT").await.unwrap(),
        Some(json!({"trades": 20}))
    );
}
