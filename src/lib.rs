//! # edgestate
//!
//! An embedded, zero-network, single-file ACID state store for the state that a trading
//! bot or an AI agent must find again after a crash, built on [redb](https://docs.rs/redb).
//!
//! One [`Store`] over one file holds, in one transaction domain, the record families of
//! [`tables`]: generic namespaced key/value records with versions, TTL and
//! compare-and-swap ([`Kv`]); user contexts ([`Contexts`]); a card index ([`Cards`]);
//! exactly-once dedup ([`Dedup`]) and idempotency keys ([`Idempotency`]); sessions
//! ([`Sessions`]); a location cache ([`LocationCache`]); pending ring buffers
//! ([`Pending`]); execution snapshots ([`Snapshots`]) and their working memory
//! ([`WorkingMemory`]); JSON blobs ([`Blobs`]).
//!
//! Each family has one handle type, reached the same way from three places:
//! `store.kv()` (each call its own transaction), `tx.kv()` inside [`Store::write`] or
//! [`Store::transaction`] (any mix of families commits atomically), and `tx.kv()` inside
//! [`Store::read`] (one consistent snapshot; write methods do not exist there). The
//! payment webhook of [`flows`] is one such transaction ([`Store::process_webhook`]).
//! [`compat`] keeps the seeds' trait shapes and method names for code ported from them.
//! `ARCHITECTURE.md` in the repository maps the modules.
//!
//! ```
//! use edgestate::{Expect, ManualClock, Store};
//! use std::time::Duration;
//!
//! # fn main() -> edgestate::Result<()> {
//! let clock = ManualClock::new(1_700_000_000_000);
//! let store = Store::builder().clock(clock.clone()).temporary()?;
//!
//! // A record that lives one minute.
//! store.kv().put("cache", "quote:BTC", b"64000", Some(Duration::from_secs(60)))?;
//! assert!(store.kv().get("cache", "quote:BTC")?.is_some());
//! clock.advance(Duration::from_secs(60));
//! assert!(store.kv().get("cache", "quote:BTC")?.is_none()); // invisible at once
//! assert_eq!(store.sweep_expired(100)?, 1); // and reclaimed by a sweep
//!
//! // Several writes, one commit: all or nothing.
//! store.transaction(|tx| {
//!     let v = tx.kv().put("bot", "position", b"flat", None)?;
//!     tx.kv().put_if("bot", "position", b"long", None, Expect::Version(v))
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Durability
//! By default every write transaction is durable when it returns (one fsync). With
//! [`Durability::Relaxed`] commits return before the fsync; a crash then rolls back to
//! the last synced commit, never to half a transaction. [`Store::flush`] syncs.
//!
//! ## Time
//! Every TTL is judged by the store's [`Clock`]. Tests use [`ManualClock`] and move time
//! forward instead of sleeping.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod access;
mod clock;
pub mod codec;
pub mod compat;
mod config;
mod error;
pub mod export;
pub mod flows;
pub mod limits;
mod maintenance;
mod schema;
mod store;
pub mod tables;
mod ttl;
mod txn;

pub use access::{Access, WriteAccess};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result, SessionRefusal};
pub use flows::webhook::{PaymentWebhook, WebhookOutcome};
pub use maintenance::{BackupReport, VerifyReport};
pub use schema::{Table, SCHEMA_VERSION};
pub use store::{Durability, Store, StoreBuilder, StoreConfig, StoreStats, TableStats};
pub use tables::blobs::{Blobs, BLOB_NAMESPACE};
pub use tables::cards::{CardMapping, Cards, LinkOutcome};
pub use tables::contexts::{
    ContextBatch, ContextEvent, Contexts, NotificationPrefs, UserContext, UserPreferences,
    VaultState,
};
pub use tables::dedup::{Claim, Dedup, ProcessedTransaction};
pub use tables::idempotency::{Begin, Idempotency, IdempotencyRecord, IdempotencyState};
pub use tables::kv::{Kv, KvEntry};
pub use tables::location::{CurrentMerchant, LocationCache};
pub use tables::memory::WorkingMemory;
pub use tables::pending::{Pending, PendingCapture, PendingEntry, PendingId, PendingLocation};
pub use tables::sessions::{SessionKeyData, Sessions};
pub use tables::snapshots::{ExecutionCleanup, ExecutionSnapshot, ExecutionState, Snapshots};
pub use tables::{Expect, Versioned};
pub use txn::{ReadTx, WriteTx};
