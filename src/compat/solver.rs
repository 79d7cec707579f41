//! The solver seed's key/value store shape (`get / set / delete / list / batch_get` over
//! bytes), synchronous, implemented by [`ByteStore`]. The typed wrappers `OrderStore`
//! and `FillStore` live beside `ByteStore` in [`byte_store`](super::byte_store).
//!
//! The seed's trait is async: its drop-in (async trait, `Bytes`, the generic
//! `OrderStore<S>` / `FillStore<S>`) is `solver_state` (cargo feature `seeds`).
//! Differences: `set` can refuse a
//! new key when `max_items` is reached (the seed left the policy to each backend), and
//! every write is durable and atomic where the seed's file backend synced on a timer.

use super::byte_store::ByteStore;
use crate::error::Result;

/// The seed's byte store methods.
///
/// ```
/// use edgestate::compat::solver::SolverStateStore;
/// use edgestate::compat::ByteStore;
/// use edgestate::Store;
///
/// # fn main() -> edgestate::Result<()> {
/// let solver = ByteStore::new(Store::in_memory()?, "solver")?;
/// SolverStateStore::set(&solver, "fill:o1:0xabc", b"settled")?;
/// assert_eq!(SolverStateStore::list(&solver, "fill:o1:")?, vec!["fill:o1:0xabc"]);
/// # Ok(())
/// # }
/// ```
pub trait SolverStateStore {
    /// The value under `key`, `None` if absent or expired.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key;
    /// [`Corrupt`](crate::Error::Corrupt) for a damaged record; storage errors.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad key, an oversized value, or
    /// (field `max_items`) a new key when full; [`Corrupt`](crate::Error::Corrupt) for a
    /// damaged record it replaces; storage and commit errors.
    fn set(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Removes `key` (no error if absent). Returns `()` as the seed does; the native
    /// [`ByteStore::delete`] reports whether a live value was removed.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key; storage
    /// and commit errors.
    fn delete(&self, key: &str) -> Result<()>;
    /// Keys starting with `prefix`, in key order.
    ///
    /// # Errors
    /// [`Corrupt`](crate::Error::Corrupt) for a damaged record; storage errors.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Values of `keys` from one snapshot, in order.
    ///
    /// # Errors
    /// As [`get`](Self::get), for any of the keys.
    fn batch_get(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;
}

impl SolverStateStore for ByteStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        ByteStore::get(self, key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        ByteStore::set(self, key, value)
    }

    fn delete(&self, key: &str) -> Result<()> {
        ByteStore::delete(self, key)?;
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        ByteStore::list(self, prefix)
    }

    fn batch_get(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        ByteStore::batch_get(self, &keys)
    }
}
