//! edgestate behind the trading framework's real `rustrade_core::StateStore` trait, used
//! the way the framework uses it: through `Arc<dyn StateStore>`, across a restart.

#![cfg(feature = "rustrade")]
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::sync::Arc;

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
