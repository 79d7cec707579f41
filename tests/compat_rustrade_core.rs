//! The trading framework (`rustrade_core::StateStore`): caller code written as the
//! framework's users write it, with only the store's constructor changed.

#![cfg(feature = "rustrade")]
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::path::Path;
use std::sync::Arc;

use rustrade_core::{Error, Result, StateStore};
use serde_json::json;

/// Framework caller code: unchanged except the constructor.
mod seed_caller {
    use super::*;

    /// was: `Ok(Arc::new(JsonFileStore::open(path)?))`
    pub fn state_store(path: &Path) -> Result<Arc<dyn StateStore>> {
        Ok(Arc::new(edgestate::compat::rustrade::open(path)?))
    }

    /// `?` on edgestate's own constructor inside the framework's result type.
    pub fn state_store_native(path: &Path) -> Result<Arc<dyn StateStore>> {
        let store = edgestate::Store::open(path)?;
        Ok(Arc::new(store))
    }

    pub async fn persist(state: &dyn StateStore, symbol: &str, realised: f64) -> Result<()> {
        state
            .save(
                &format!("bot/{symbol}"),
                json!({"realised": realised, "halted": false}),
            )
            .await
    }

    pub async fn restore(state: &dyn StateStore, symbol: &str) -> Result<f64> {
        Ok(state
            .load(&format!("bot/{symbol}"))
            .await?
            .and_then(|v| v["realised"].as_f64())
            .unwrap_or(0.0))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_framework_persists_and_restores_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.edgestate");
    {
        let state = seed_caller::state_store(&path).unwrap();
        assert_eq!(seed_caller::restore(&*state, "BTCUSDT").await.unwrap(), 0.0);
        seed_caller::persist(&*state, "BTCUSDT", 12.5)
            .await
            .unwrap();
        seed_caller::persist(&*state, "BTCUSDT", -3.0)
            .await
            .unwrap();
        state.flush().await.unwrap();
    }
    let state = seed_caller::state_store_native(&path).unwrap();
    assert_eq!(
        seed_caller::restore(&*state, "BTCUSDT").await.unwrap(),
        -3.0
    );
}

#[test]
fn edgestate_errors_become_framework_storage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-store.edgestate");
    std::fs::write(&path, b"this is not a database").unwrap();
    let err = match seed_caller::state_store(&path) {
        Err(e) => e,
        Ok(_) => panic!("opened a file that is not a store"),
    };
    assert!(matches!(err, Error::Storage(_)), "{err:?}");

    let converted: Error = edgestate::Error::Closed.into();
    assert!(
        matches!(converted, Error::Storage(ref m) if m.contains("closed")),
        "{converted:?}"
    );

    // Opening the same file twice is a typed error in the framework's type too.
    let ok = dir.path().join("ok.edgestate");
    let _first = edgestate::compat::rustrade::open(&ok).unwrap();
    let second = edgestate::compat::rustrade::open_with(edgestate::Store::builder(), &ok);
    assert!(matches!(second, Err(Error::Storage(_))));
}
