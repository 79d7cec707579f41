//! JSON blobs under string keys: the trading framework's snapshot store (`get` / `put` /
//! `delete`), kept as JSON records in the KV namespace [`BLOB_NAMESPACE`].
//!
//! The solver's byte store and its typed views live in
//! [`compat::byte_store`](crate::compat::byte_store).

use super::handle;
use super::kv::Kv;
use crate::access::{Access, WriteAccess};
use crate::error::Result;

/// The KV namespace that [`Blobs`] stores its JSON values in.
pub const BLOB_NAMESPACE: &str = "blobs";

handle! {
    /// JSON blobs, from `tx.blobs()`, `read.blobs()` or `store.blobs()`. On a
    /// [`Store`](crate::Store) each call is its own transaction; inside
    /// [`Store::write`](crate::Store::write) reads see the transaction's own writes.
    ///
    /// A missing key reads as `None`, never an error; a value under the key that is not
    /// a JSON blob (written through [`Kv::put`] as bytes, say) is an
    /// [`Error::Decode`](crate::Error::Decode). Every `put` on a store is durable when it
    /// returns under the default durability; [`Store::flush`](crate::Store::flush) makes
    /// writes under [`Durability::Relaxed`](crate::Durability::Relaxed) durable too.
    ///
    /// ```
    /// use edgestate::Store;
    /// use serde_json::json;
    ///
    /// # fn main() -> edgestate::Result<()> {
    /// let store = Store::temporary()?;
    /// let blobs = store.blobs();
    /// assert_eq!(blobs.get("bot/BTCUSDT")?, None); // first boot
    /// let state = json!({"realised": 12.5, "breaker": {"halted": true, "streak": [1, 2]}});
    /// blobs.put("bot/BTCUSDT", &state)?;
    /// store.flush()?;
    /// assert_eq!(blobs.get("bot/BTCUSDT")?, Some(state));
    ///
    /// // Several blobs in one transaction.
    /// store.write(|tx| {
    ///     tx.blobs().put("bot/ETHUSDT", &json!({"realised": 0.0}))?;
    ///     tx.blobs().delete("bot/BTCUSDT")?;
    ///     Ok::<_, edgestate::Error>(())
    /// })?;
    /// assert_eq!(blobs.get("bot/BTCUSDT")?, None);
    /// # Ok(())
    /// # }
    /// ```
    Blobs
}

impl<A: Access> Blobs<'_, A> {
    /// The blob under `key`, or `None` if there is none.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key;
    /// [`Corrupt`](crate::Error::Corrupt) for a damaged record;
    /// [`Decode`](crate::Error::Decode) when the value under `key` is not a JSON blob;
    /// storage errors.
    pub fn get(&self, key: &str) -> Result<Option<serde_json::Value>> {
        Ok(Kv::new(self.src)
            .get_value::<serde_json::Value>(BLOB_NAMESPACE, key)?
            .map(|v| v.value))
    }
}

impl<A: WriteAccess> Blobs<'_, A> {
    /// Stores `value` under `key`, replacing any previous blob.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key or an
    /// oversized value; [`Encode`](crate::Error::Encode) when `value` does not serialize;
    /// [`Corrupt`](crate::Error::Corrupt) when the record it replaces is damaged; storage
    /// and commit errors.
    pub fn put(&self, key: &str, value: &serde_json::Value) -> Result<()> {
        Kv::new(self.src).put_json(BLOB_NAMESPACE, key, value, None)?;
        Ok(())
    }

    /// Removes the blob. Returns whether there was one.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key;
    /// storage and commit errors.
    pub fn delete(&self, key: &str) -> Result<bool> {
        Kv::new(self.src).delete(BLOB_NAMESPACE, key)
    }
}
