//! The seeds' APIs on edgestate, so code written against a seed ports by changing one
//! line. Each drop-in module is named after the seed crate and keeps its types, field
//! names, JSON shapes, constructors, trait methods, argument and return types, config
//! structs (every field; fields with no meaning for a local file are accepted and
//! ignored) and, where the seed is async, async methods that run on tokio's blocking
//! pool (`tokio::task::spawn_blocking` via `Store::run_blocking`),
//! never blocking a runtime worker thread.
//!
//! | seed | drop-in module | cargo feature | the one-line change (runnable example in the module) |
//! |---|---|---|---|
//! | agent SDK (`loop_agent_sdk::{state, dynamo}`) | [`loop_agent_sdk`] | types and sync trait: none; async store methods: `tokio` | `use loop_agent_sdk::…` → `use edgestate::compat::loop_agent_sdk::…`; `DynamoStateStore::new().await` opens the file `DYNAMO_TABLE` names |
//! | agent runtime (`enact_core` state store) | `enact_core` | `seeds` | `Arc::new(InMemoryStateStore::new())` → `Arc::new(edgestate::Store::open(path)?)` |
//! | solver (`solver-state`) | `solver_state` | `seeds` | `InMemoryState::new()` → `EdgeState::open(path)?` |
//! | trading framework (`rustrade_core::StateStore`) | `rustrade` | `rustrade` | `JsonFileStore::open(path)?` → `edgestate::compat::rustrade::open(path)?` |
//!
//! Synchronous forms on edgestate's native types, for code that does not need the
//! seeds' exact signatures: [`loop_agent`] (`LoopAgentStore`), [`agent_runtime`]
//! (`AgentStateStore` for [`Store`](crate::Store)), [`solver`] and [`byte_store`]
//! (`SolverStateStore`, [`ByteStore`], [`PrefixStore`], [`OrderStore`], [`FillStore`]).
//! Where the native API returns more than the seed (a pending entry's id, a cleanup
//! report, whether a delete removed something), the native call keeps it and every
//! compat method returns what the seed returns.
//!
//! ## Deliberate differences from the seeds
//!
//! Every behaviour that differs from a seed, and why. Data a seed deployment already
//! holds (any card tail, expired sessions) is accepted: nothing here needs a migration.
//!
//! | seed | seed behaviour | edgestate behaviour | why |
//! |---|---|---|---|
//! | agent SDK | `link_card` stored any `card_last4` | any `card_last4` is accepted and read back as given; one that is not four ASCII digits is kept in KV namespace `compat.card_last4` beside the card (same transaction) and the native index ([`Cards`](crate::Cards)) shows `"0000"` for it | the native card index holds only four digits; seed data must still load |
//! | agent SDK | `store_session_key` stored an already expired session; `get_session_key` then returned `None` | the same as seen through the API: the expired session replaces the stored one (which is deleted) and reads as `None`; nothing unreadable is stored | the native [`Sessions::put`](crate::Sessions::put) refuses an expired session |
//! | agent SDK | `add_pending_capture` keyed captures by the second of the call: a second capture in the same second overwrote the first; eviction ran as separate calls | a per-user sequence keys captures, both survive; the oldest beyond `max_pending_captures` is evicted in the same transaction | lost captures (bug) |
//! | agent SDK | `remove_pending_capture(user, ts)` removed the capture added in second `ts` | removes the captures whose `created_at` is `ts` | the seed's key was the insertion second, which callers could not know |
//! | agent SDK | `get_user_cards` scanned the table (first page only) | reads a reverse index kept in the same transaction as each link: complete, no scan | missing cards on big tables (bug) |
//! | agent SDK | `mark_transaction_processed` overwrote an earlier mark; check and mark were two calls | the first mark wins and is never rewritten; the atomic check-and-mark is `Dedup::claim` / `LoopAgentStore::claim_transaction` / `Store::process_webhook` | double credit under retries (bug) |
//! | agent SDK | `context_patch` knew three paths and silently ignored any other path or a wrongly typed value (still bumping the version) | any field path; an unknown path or wrong type is an error (`StateError::StorageError("invalid input for …")`, nothing written) | silent data loss (bug) |
//! | agent SDK | `context_push` with `version <= 1` overwrote whatever was stored; a conflict reported `actual: version` | `version <= 1` only creates (a stored context gives `VersionConflict`); a conflict reports the version actually stored | lost updates (bug) |
//! | agent SDK | `context_push` stored the caller's `updated_at` | `updated_at` is the store's clock at the write | one clock for every timestamp the store writes |
//! | agent SDK | `push_event` was fetch, modify, push (could conflict) | one transaction; cannot conflict; keeps `DynamoStateConfig::max_events` | race (bug) |
//! | agent SDK | `context_batch_fetch` skipped users whose fetch failed for any reason | skips missing users only; a damaged record or bad input fails the call | errors were hidden |
//! | agent SDK | the sync `StateStore` trait called `Handle::block_on` (a panic inside a runtime) | the trait does the work on the calling thread and needs no runtime; async code uses the `*_async` methods | panic (bug) |
//! | agent SDK | `StateError` had no variant for bad input; `Timeout` on slow calls | bad input (an empty key, …) is `StorageError("invalid input for …")`; `Timeout` is never returned | the seed's variants are kept exactly so seed `match`es compile |
//! | agent SDK | `DynamoConfig`: `table_name`, `fingerprint_gsi`, `ttl_attribute`, `dax_endpoint`; `DynamoStateConfig`: `table_name`, `region`, `vault_cache_ttl` | `table_name` names the file (`DynamoConfig::store_path`, `EDGESTATE_PATH` overrides it in `from_env`); the others are accepted and ignored; a TTL of zero or less keeps the default | no table, index, region or cache cluster locally |
//! | agent SDK | `create_table` created the DynamoDB table | not provided: the file is created by the constructor | nothing to set up |
//! | all | expired DynamoDB items stayed readable for up to two days (reads filtered some) | expired records are invisible at once, swept in bounded batches | exact TTLs |
//! | agent runtime | `save_snapshot` overwrote unconditionally (best-effort cache) | durable; a snapshot with a lower `sequence_number` than the stored one is refused (`Error::StaleSnapshot`, inside the `anyhow::Error`) | a stale save must not replace a fresher snapshot |
//! | agent runtime | `timestamp: DateTime<Utc>` kept to the nanosecond | kept to the millisecond; a pre-1970 timestamp is refused (`Error::InvalidInput`) | the native snapshot stores milliseconds |
//! | agent runtime | `ExecutionState`, the id types and `StorageBackend` live in the runtime's kernel (not in the seed documents) | `ExecutionState` has `Pending`, `Running`, `Paused`, `Completed`, `Failed`, `Cancelled`, serialised as the variant name (lower case accepted); ids are string newtypes (`ExecutionId::new()` gives `exec_…`); `StorageBackend` is a marker trait | the seed's definitions were not available |
//! | agent runtime | `delete_execution_state` deleted the snapshot only (by default) | deletes the snapshot and every `exec:{id}:…` working-memory key in one transaction | leaked working memory |
//! | agent runtime | errors were whatever the backend raised | `anyhow::Error` wrapping [`Error`](crate::Error) (`downcast_ref`) | typed errors |
//! | solver | `list_orders` returned full keys (`"eip7683:0xabc"`), and the prefix match also caught `"eip7683x:…"` | returns the ids `get_order` takes, under `"{prefix}:"` only (same for fills) | wrong ids and foreign keys (bug) |
//! | solver | `max_items` policy left to each backend | a new key beyond `max_items` is refused (`BackendError`, nothing written); overwrites always succeed; nothing is evicted | silently dropping an order loses state |
//! | solver | `FileState`: a file per key, synced every `sync_interval`; `type = "redis://…"` chose a plugin | one store file (`{base_path}/state.edgestate`), every write durable when it returns; `sync_interval` ignored; any `type` but `"memory"` is that file; `StateBackendPlugin` not provided | one durable file |
//! | solver | `batch_get` issued one `get` per key | one consistent snapshot | consistency |
//! | trading framework | backend errors were the backend's | every edgestate error is `rustrade_core::Error::Storage(message)` | the framework reserves `Storage` for backend failures |
//!
//! The synchronous forms changed too: `LoopAgentStore::add_pending_capture`,
//! `AgentStateStore::delete_execution_state` and `SolverStateStore::delete` return `()`
//! as their seeds do; the native calls keep the richer results.

pub mod agent_runtime;
pub mod byte_store;
#[cfg(feature = "seeds")]
pub mod enact_core;
pub mod loop_agent;
pub mod loop_agent_sdk;
#[cfg(feature = "rustrade")]
pub mod rustrade;
mod seed_data;
pub mod solver;
#[cfg(feature = "seeds")]
pub mod solver_state;

pub use byte_store::{ByteStore, FillStore, OrderStore, PrefixStore};
pub use seed_data::{PLACEHOLDER_LAST4, SEED_LAST4_NAMESPACE};
