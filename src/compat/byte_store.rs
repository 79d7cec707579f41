//! The solver seed's byte store and its typed views, over the generic KV records:
//!
//! - [`ByteStore`]: bytes (`get` / `set` / `delete` / `list` / `batch_get`) in one KV
//!   namespace, with an optional TTL and item limit;
//! - [`PrefixStore`], [`OrderStore`], [`FillStore`]: typed views of a [`ByteStore`] under
//!   a key prefix.
//!
//! [`ByteStore`] implements [`SolverStateStore`](super::solver::SolverStateStore).

use std::sync::Arc;
use std::time::Duration;

use redb::ReadableTable;

use crate::codec::envelope;
use crate::error::{Error, Result};
use crate::limits;
use crate::schema::KV;
use crate::store::Store;
use crate::txn::WriteTx;

/// The solver's byte store: bytes under string keys in one KV namespace, with an
/// optional TTL for every value and an optional limit on live keys. Cheap to clone;
/// clones share the store and the settings.
///
/// **`max_items`** bounds the live keys of the namespace. When it is reached, setting a
/// NEW key is refused with [`Error::InvalidInput`] (field `max_items`) and nothing is
/// written; overwriting a live key is always allowed, and expired keys do not count.
/// Refusing rather than evicting is deliberate: a solver keeps orders and fills here, and
/// silently dropping one to make room would lose state the solver still relies on; the
/// refusal tells it to clean up (or raise the limit). Checking the limit walks the
/// namespace until it has counted `max_items` live records (expired-but-unswept ones
/// are walked past too), once per new key.
///
/// ```
/// use edgestate::compat::ByteStore;
/// use edgestate::Store;
///
/// # fn main() -> edgestate::Result<()> {
/// let store = ByteStore::new(Store::in_memory()?, "solver")?.with_max_items(2);
/// store.set("order:eip7683:1", b"open")?;
/// store.set("order:eip7683:2", b"open")?;
/// assert!(store.set("order:eip7683:3", b"open").is_err()); // full: refused
/// store.set("order:eip7683:1", b"filled")?; // overwriting is fine
///
/// assert_eq!(store.list("order:")?, vec!["order:eip7683:1", "order:eip7683:2"]);
/// let both = store.batch_get(&["order:eip7683:1", "order:missing"])?;
/// assert_eq!(both, vec![Some(b"filled".to_vec()), None]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ByteStore {
    store: Store,
    namespace: Arc<str>,
    ttl: Option<Duration>,
    max_items: Option<usize>,
}

impl ByteStore {
    /// A byte store over KV namespace `namespace` of `store`, without TTL or limit.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized namespace.
    pub fn new(store: Store, namespace: &str) -> Result<ByteStore> {
        limits::check_namespace("namespace", namespace)?;
        Ok(ByteStore {
            store,
            namespace: Arc::from(namespace),
            ttl: None,
            max_items: None,
        })
    }

    /// Every value set from now on expires `ttl` after it was set.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// At most `max_items` live keys (see the type docs for the policy).
    pub fn with_max_items(mut self, max_items: usize) -> Self {
        self.max_items = Some(max_items);
        self
    }

    /// The KV namespace the values live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The TTL given to every value, if any.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The limit on live keys, if any.
    pub fn max_items(&self) -> Option<usize> {
        self.max_items
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The live value under `key`, or `None` if absent or expired.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key;
    /// [`Corrupt`](crate::Error::Corrupt) for a damaged record; storage errors.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.store.kv().get(&self.namespace, key)?.map(|e| e.value))
    }

    /// Stores `value` under `key` (with the store's TTL), atomically checking
    /// `max_items` for a new key.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for a bad key, an oversized value, or (field
    /// `max_items`) a new key when the namespace is full; [`Corrupt`](crate::Error::Corrupt) for a
    /// damaged record it replaces; storage and commit errors.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let ns = &*self.namespace;
        self.store.write(|tx| {
            if let Some(max) = self.max_items {
                if tx.kv().get(ns, key)?.is_none() {
                    let live = count_live(tx, ns, max)?;
                    if live >= max {
                        return Err(Error::invalid(
                            "max_items",
                            format!("namespace `{ns}` already holds {live} live keys, the maximum"),
                        ));
                    }
                }
            }
            tx.kv().put(ns, key, value, self.ttl)?;
            Ok(())
        })
    }

    /// Removes `key`. Returns whether a live value was removed.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized key; storage
    /// and commit errors.
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.store.kv().delete(&self.namespace, key)
    }

    /// The live keys that start with `prefix` (all of them for `""`), in key order.
    ///
    /// # Errors
    /// [`Corrupt`](crate::Error::Corrupt) for a damaged record; storage errors.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let entries = self.store.kv().list(&self.namespace, prefix)?;
        Ok(entries.into_iter().map(|e| e.key).collect())
    }

    /// The values of `keys` from one consistent snapshot, in the order of `keys`.
    ///
    /// # Errors
    /// As [`get`](Self::get), for any of the keys.
    pub fn batch_get(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        let entries = self.store.kv().get_many(&self.namespace, keys)?;
        Ok(entries.into_iter().map(|e| e.map(|e| e.value)).collect())
    }

    /// How many live keys the namespace holds.
    ///
    /// # Errors
    /// As [`list`](Self::list).
    pub fn count(&self) -> Result<usize> {
        Ok(self.list("")?.len())
    }
}

/// Live records of namespace `ns`, counting no further than `stop_at`. A record whose
/// header is unreadable counts: it holds its key until someone deletes it.
fn count_live(tx: &WriteTx, ns: &str, stop_at: usize) -> Result<usize> {
    let table = tx.open_table(KV.def)?;
    let now = tx.now_ms();
    let mut live = 0;
    for item in table.range((ns, "")..)? {
        if live >= stop_at {
            break;
        }
        let (k, v) = item?;
        if k.value().0 != ns {
            break;
        }
        let expired = envelope::peek_header(v.value()).is_ok_and(|h| h.is_expired(now));
        if !expired {
            live += 1;
        }
    }
    Ok(live)
}

/// A view of a [`ByteStore`] under `"{prefix}:"`, addressed by id (the seed's typed
/// wrappers). Ids are listed without the prefix.
#[derive(Debug, Clone)]
pub struct PrefixStore {
    bytes: ByteStore,
    prefix: Arc<str>,
}

impl PrefixStore {
    /// A view of `bytes` under `"{prefix}:"`.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized prefix.
    pub fn new(bytes: ByteStore, prefix: &str) -> Result<PrefixStore> {
        limits::check_key("prefix", prefix)?;
        Ok(PrefixStore {
            bytes,
            prefix: Arc::from(format!("{prefix}:")),
        })
    }

    fn key(&self, id: &str) -> Result<String> {
        limits::check_key("id", id)?;
        Ok(format!("{}{id}", self.prefix))
    }

    /// Stores `value` under `id`.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized id (or a full
    /// key over [`MAX_KEY_LEN`](crate::limits::MAX_KEY_LEN)); otherwise as
    /// [`ByteStore::set`].
    pub fn store(&self, id: &str, value: &[u8]) -> Result<()> {
        self.bytes.set(&self.key(id)?, value)
    }

    /// The live value under `id`, if any.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized id (or full
    /// key); otherwise as [`ByteStore::get`].
    pub fn get(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.bytes.get(&self.key(id)?)
    }

    /// Removes `id`. Returns whether a live value was removed.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::Error::InvalidInput) for an empty or oversized id (or full
    /// key); storage and commit errors.
    pub fn delete(&self, id: &str) -> Result<bool> {
        self.bytes.delete(&self.key(id)?)
    }

    /// The live ids, in order. (The seed listed full keys; these are the ids that
    /// [`get`](Self::get) takes. [`list_keys`](Self::list_keys) gives the keys.)
    ///
    /// # Errors
    /// As [`ByteStore::list`].
    pub fn list(&self) -> Result<Vec<String>> {
        let keys = self.list_keys()?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&*self.prefix).map(str::to_owned))
            .collect())
    }

    /// The live full keys (`"{prefix}:{id}"`), in order.
    ///
    /// # Errors
    /// As [`ByteStore::list`].
    pub fn list_keys(&self) -> Result<Vec<String>> {
        self.bytes.list(&self.prefix)
    }

    /// The byte store underneath.
    pub fn byte_store(&self) -> &ByteStore {
        &self.bytes
    }
}

/// The solver seed's order store: orders as bytes under `"{prefix}:{order id}"`.
#[derive(Debug, Clone)]
pub struct OrderStore(PrefixStore);

impl OrderStore {
    /// Orders of `bytes` under `"{prefix}:"`.
    ///
    /// # Errors
    /// As [`PrefixStore::new`].
    pub fn new(bytes: ByteStore, prefix: &str) -> Result<OrderStore> {
        Ok(OrderStore(PrefixStore::new(bytes, prefix)?))
    }

    /// Stores an encoded order.
    ///
    /// # Errors
    /// As [`PrefixStore::store`].
    pub fn store_order(&self, id: &str, order: &[u8]) -> Result<()> {
        self.0.store(id, order)
    }

    /// The encoded order, if stored and live.
    ///
    /// # Errors
    /// As [`PrefixStore::get`].
    pub fn get_order(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.0.get(id)
    }

    /// The live order ids, in order.
    ///
    /// # Errors
    /// As [`PrefixStore::list`].
    pub fn list_orders(&self) -> Result<Vec<String>> {
        self.0.list()
    }

    /// The prefix view underneath.
    pub fn prefix_store(&self) -> &PrefixStore {
        &self.0
    }
}

/// The solver seed's fill store: fills as bytes under `"{prefix}:{fill id}"`.
#[derive(Debug, Clone)]
pub struct FillStore(PrefixStore);

impl FillStore {
    /// Fills of `bytes` under `"{prefix}:"`.
    ///
    /// # Errors
    /// As [`PrefixStore::new`].
    pub fn new(bytes: ByteStore, prefix: &str) -> Result<FillStore> {
        Ok(FillStore(PrefixStore::new(bytes, prefix)?))
    }

    /// Stores an encoded fill.
    ///
    /// # Errors
    /// As [`PrefixStore::store`].
    pub fn store_fill(&self, id: &str, fill: &[u8]) -> Result<()> {
        self.0.store(id, fill)
    }

    /// The encoded fill, if stored and live.
    ///
    /// # Errors
    /// As [`PrefixStore::get`].
    pub fn get_fill(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.0.get(id)
    }

    /// The live fill ids, in order.
    ///
    /// # Errors
    /// As [`PrefixStore::list`].
    pub fn list_fills(&self) -> Result<Vec<String>> {
        self.0.list()
    }

    /// The prefix view underneath.
    pub fn prefix_store(&self) -> &PrefixStore {
        &self.0
    }
}
