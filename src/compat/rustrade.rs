//! The trading framework's real `rustrade_core::StateStore` trait, implemented for
//! [`Store`] (cargo feature `rustrade`). Snapshots are JSON blobs in the
//! [`blobs`](crate::tables::blobs) table; every call runs on tokio's blocking pool so the
//! async runtime is never stalled by an fsync.
//!
//! `From<edgestate::Error> for rustrade_core::Error` lets `?` cross from edgestate into
//! the framework's result type, and [`open`] returns that type directly, as the
//! framework's own `JsonFileStore::open` does. The one-line change:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> rustrade_core::Result<()> {
//! # let dir = tempfile::tempdir().map_err(|e| rustrade_core::Error::storage(e.to_string()))?;
//! # let path = dir.path().join("bot-state.edgestate");
//! use std::sync::Arc;
//! use rustrade_core::StateStore;
//!
//! // was: let state: Arc<dyn StateStore> = Arc::new(JsonFileStore::open(path)?);
//! let state: Arc<dyn StateStore> = Arc::new(edgestate::compat::rustrade::open(path)?);
//! state.save("bot/BTCUSDT", serde_json::json!({"halted": false})).await?;
//! assert!(state.load("bot/BTCUSDT").await?.is_some());
//! state.flush().await?;
//! # Ok(())
//! # }
//! ```

use async_trait::async_trait;

use crate::store::Store;

/// Every edgestate error is a [`rustrade_core::Error::Storage`] carrying edgestate's
/// message (the framework reserves that variant for backend failures, I/O and corrupt
/// snapshots).
impl From<crate::Error> for rustrade_core::Error {
    fn from(e: crate::Error) -> Self {
        rustrade_core::Error::Storage(e.to_string())
    }
}

/// Opens (or creates) the store at `path`, in the framework's result type.
///
/// # Errors
/// [`rustrade_core::Error::Storage`] when the file cannot be opened or created (not an
/// edgestate store, already open, an unsupported schema version, an I/O error).
pub fn open(path: impl AsRef<std::path::Path>) -> rustrade_core::Result<Store> {
    Ok(Store::open(path)?)
}

/// Opens the store at `path` with `builder`'s settings, in the framework's result type.
///
/// # Errors
/// As [`open`].
pub fn open_with(
    builder: crate::StoreBuilder,
    path: impl AsRef<std::path::Path>,
) -> rustrade_core::Result<Store> {
    Ok(builder.open(path)?)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> rustrade_core::Result<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| rustrade_core::Error::Storage(e.to_string()))??)
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
