//! The trading framework's real `rustrade_core::StateStore` trait, implemented for
//! [`Store`] (cargo feature `rustrade`). Snapshots are JSON blobs in the
//! [`blobs`](crate::tables::blobs) table; every call runs on tokio's blocking pool so the
//! async runtime is never stalled by an fsync.
//!
//! ```no_run
//! # async fn demo() -> rustrade_core::Result<()> {
//! use std::sync::Arc;
//! use rustrade_core::StateStore;
//!
//! let store = edgestate::Store::open("bot-state.edgestate")
//!     .map_err(|e| rustrade_core::Error::Storage(e.to_string()))?;
//! let state: Arc<dyn StateStore> = Arc::new(store);
//! state.save("bot/BTCUSDT", serde_json::json!({"halted": false})).await?;
//! assert!(state.load("bot/BTCUSDT").await?.is_some());
//! state.flush().await?;
//! # Ok(())
//! # }
//! ```

use async_trait::async_trait;

use crate::store::Store;

fn storage_error(e: impl std::fmt::Display) -> rustrade_core::Error {
    rustrade_core::Error::Storage(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> rustrade_core::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(storage_error)?
        .map_err(storage_error)
}

#[async_trait]
impl rustrade_core::StateStore for Store {
    async fn load(&self, key: &str) -> rustrade_core::Result<Option<serde_json::Value>> {
        let (store, key) = (self.clone(), key.to_owned());
        blocking(move || store.blobs().get(&key)).await
    }

    async fn save(&self, key: &str, value: serde_json::Value) -> rustrade_core::Result<()> {
        let (store, key) = (self.clone(), key.to_owned());
        blocking(move || store.blobs().put(&key, &value)).await
    }

    async fn flush(&self) -> rustrade_core::Result<()> {
        let store = self.clone();
        blocking(move || store.flush()).await
    }
}
