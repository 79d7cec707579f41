//! [`ReadTx`] and [`WriteTx`]: one redb transaction each, with the instant it started.
//! Every table is reached from them (`tx.kv()`, `tx.contexts()`, ...), so any mix of
//! tables changes in one atomic commit.

use std::sync::Arc;

use crate::config::StoreConfig;
use crate::error::{Error, Result};

/// A write transaction. Obtained from [`crate::Store::write`]; commits when the closure
/// returns `Ok`, rolls back otherwise.
pub struct WriteTx {
    txn: redb::WriteTransaction,
    now_ms: u64,
    config: Arc<StoreConfig>,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

impl WriteTx {
    pub(crate) fn new(txn: redb::WriteTransaction, now_ms: u64, config: Arc<StoreConfig>) -> Self {
        WriteTx {
            txn,
            now_ms,
            config,
        }
    }

    /// The clock's reading when the transaction began; every TTL in it is relative to this.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The store's table defaults.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn raw(&self) -> &redb::WriteTransaction {
        &self.txn
    }

    pub(crate) fn set_durability(&mut self, durability: redb::Durability) -> Result<()> {
        self.txn
            .set_durability(durability)
            .map_err(|e| Error::CommitOutcomeUnknown(e.into()))
    }

    pub(crate) fn commit(self) -> Result<()> {
        self.txn
            .commit()
            .map_err(|e| Error::CommitOutcomeUnknown(e.into()))
    }

    pub(crate) fn abort(self) {
        // An abort that fails leaves nothing committed either; the error adds nothing.
        let _ = self.txn.abort();
    }
}

/// A read transaction: one consistent snapshot. Obtained from [`crate::Store::read`].
pub struct ReadTx {
    txn: redb::ReadTransaction,
    now_ms: u64,
    config: Arc<StoreConfig>,
}

impl std::fmt::Debug for ReadTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTx")
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

impl ReadTx {
    pub(crate) fn new(txn: redb::ReadTransaction, now_ms: u64, config: Arc<StoreConfig>) -> Self {
        ReadTx {
            txn,
            now_ms,
            config,
        }
    }

    /// The clock's reading when the snapshot was taken; expiry is judged at this instant.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The store's table defaults.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn raw(&self) -> &redb::ReadTransaction {
        &self.txn
    }
}
