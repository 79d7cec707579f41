//! A model of the WHOLE store, for model-based tests, fuzzing and crash harnesses.
//!
//! - [`Op`] ([`ops`]; [`decode_op`] decodes one from a stream of choices): every public
//!   record family (KV, blobs, byte store, contexts, cards, dedup, idempotency, sessions,
//!   location, pending, snapshots and working memory, the payment webhook) plus sweeps,
//!   multi-op transactions (committed or failing), clock jumps forward and back, and
//!   reopen (after `close` or after dropping the handle). Keys come from small alphabets
//!   so that operations collide.
//! - [`Model`] ([`model`]): a plain in-memory re-implementation of the documented
//!   semantics. It holds the PHYSICAL records: an expired record stays (invisible to
//!   reads) until a sweep, an eviction or an overwrite removes it, as in the file.
//!   `Model::apply(&Op) -> Outcome`.
//! - [`run`](run()): the same op on a real store, `run(&Store, &Op) -> Outcome`; [`Sut`]
//!   adds the clock and reopen.
//! - [`check_run`]: applies ops to both, requiring equal outcomes after every step and an
//!   equal full observation ([`observation_ops`]: every key of every alphabet, every
//!   list, and the physical record count of every table) after every `observe_every`
//!   steps and at the end.
//!
//! - [`Workload`] ([`workload`]): ops as a pure function of (seed, index), for the kill -9
//!   harness and the fault-injection test; [`observe`] and [`Model::observe`] give the
//!   full observation both compare.
//!
//! Included with `#[path]` by `tests/model_store.rs`, `tests/crash/main.rs`,
//! `tests/fault_injection.rs` and `fuzz/fuzz_targets/model.rs`;
//! it depends only on `edgestate`, `serde_json` and std.

#![allow(dead_code, unused_imports)] // each includer uses a subset

pub mod decode;
pub mod model;
pub mod ops;
pub mod run;
pub mod workload;

use std::path::PathBuf;
use std::time::Duration;

use edgestate::{
    Begin, CardMapping, Claim, ContextBatch, CurrentMerchant, Durability, Error, ExecutionCleanup,
    ExecutionSnapshot, IdempotencyRecord, KvEntry, LinkOutcome, ManualClock, PendingCapture,
    PendingEntry, PendingId, ProcessedTransaction, SessionKeyData, SessionRefusal, Store,
    StoreBuilder, UserContext, WebhookOutcome,
};

pub use decode::{decode_op, Choices};
pub use model::Model;
pub use ops::{observation_ops, Op};
pub use run::{run, run_tx};
pub use workload::{Rng, Workload};

/// The clock's start: a whole second, so session expiries (whole seconds) line up.
pub const T0_MS: u64 = 1_700_000_000_000;

// The store configuration of every run: small, so that rings fill and TTLs run out
// within a few clock jumps.
pub const PENDING_CAPACITY: usize = 3;
pub const PENDING_TTL_MS: u64 = 1_500;
pub const MAX_RECENT_EVENTS: usize = 3;
pub const DEDUP_TTL_MS: u64 = 2_000;
pub const SESSION_TTL_MS: u64 = 1_200;
pub const LOCATION_TTL_MS: u64 = 700;
pub const IDEMPOTENCY_LEASE_MS: u64 = 300;
pub const IDEMPOTENCY_TTL_MS: u64 = 1_600;

/// A builder with the model's configuration and `clock`.
pub fn builder(clock: &ManualClock) -> StoreBuilder {
    Store::builder()
        .clock(clock.clone())
        .pending_capacity(PENDING_CAPACITY)
        .pending_ttl(Duration::from_millis(PENDING_TTL_MS))
        .max_recent_events(MAX_RECENT_EVENTS)
        .dedup_ttl(Duration::from_millis(DEDUP_TTL_MS))
        .session_ttl(Duration::from_millis(SESSION_TTL_MS))
        .location_ttl(Duration::from_millis(LOCATION_TTL_MS))
        .idempotency_lease(Duration::from_millis(IDEMPOTENCY_LEASE_MS))
        .idempotency_ttl(Duration::from_millis(IDEMPOTENCY_TTL_MS))
}

/// An error, reduced to what the caller can act on (messages are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrKind {
    Invalid {
        field: String,
    },
    NotFound {
        table: &'static str,
        key: String,
    },
    Conflict {
        table: &'static str,
        key: String,
        expected: Option<u64>,
        actual: Option<u64>,
    },
    Stale {
        key: String,
        stored: u64,
        offered: u64,
    },
    IdemMismatch {
        key: String,
    },
    IdemInProgress {
        key: String,
        lease_expires_at_ms: u64,
    },
    SessionRefused {
        user: String,
        reason: SessionRefusal,
    },
    Decode {
        table: &'static str,
        key: String,
    },
    /// An I/O failure: never expected, except under fault injection. `variant` names the
    /// error (`Storage`, `CommitOutcomeUnknown`, `Io`, or `ReopenFailed` when the store
    /// could not heal itself yet).
    Storage {
        variant: &'static str,
        needs_reopen: bool,
        message: String,
    },
    /// Anything else: never expected.
    Other(String),
}

impl From<Error> for ErrKind {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput { field, .. } => ErrKind::Invalid { field },
            Error::NotFound { table, key } => ErrKind::NotFound { table, key },
            Error::VersionConflict {
                table,
                key,
                expected,
                actual,
            } => ErrKind::Conflict {
                table,
                key,
                expected,
                actual,
            },
            Error::StaleSnapshot {
                key,
                stored,
                offered,
            } => ErrKind::Stale {
                key,
                stored,
                offered,
            },
            Error::IdempotencyMismatch { key } => ErrKind::IdemMismatch { key },
            Error::IdempotencyInProgress {
                key,
                lease_expires_at_ms,
            } => ErrKind::IdemInProgress {
                key,
                lease_expires_at_ms,
            },
            Error::SessionRefused { user, reason } => ErrKind::SessionRefused { user, reason },
            Error::Decode { table, key, .. } => ErrKind::Decode { table, key },
            Error::Storage(_)
            | Error::CommitOutcomeUnknown(_)
            | Error::Io { .. }
            | Error::ReopenFailed { .. } => ErrKind::Storage {
                variant: match e {
                    Error::Storage(_) => "Storage",
                    Error::CommitOutcomeUnknown(_) => "CommitOutcomeUnknown",
                    Error::ReopenFailed { .. } => "ReopenFailed",
                    _ => "Io",
                },
                needs_reopen: e.needs_reopen(),
                message: e.to_string(),
            },
            other => ErrKind::Other(other.to_string()),
        }
    }
}

/// What an op returned, on either side.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Unit,
    Bool(bool),
    Count(usize),
    Version(u64),
    MaybeVersion(Option<u64>),
    Kv(Option<KvEntry>),
    KvList(Vec<KvEntry>),
    KvMany(Vec<Option<KvEntry>>),
    Blob(Option<serde_json::Value>),
    Ctx(UserContext),
    MaybeCtx(Option<UserContext>),
    CtxBatch(ContextBatch),
    Link(LinkOutcome),
    Card(Option<CardMapping>),
    Cards(Vec<CardMapping>),
    Claim(Claim),
    Processed(Option<ProcessedTransaction>),
    Begin(Begin),
    Idem(Option<IdempotencyRecord>),
    Session(Option<SessionKeyData>),
    SessionUsed(SessionKeyData),
    Merchant(CurrentMerchant),
    MaybeMerchant(Option<CurrentMerchant>),
    PendingId(PendingId),
    Entries(Vec<PendingEntry>),
    Entry(Option<PendingEntry>),
    Capture(Option<PendingCapture>),
    Snapshot(Option<ExecutionSnapshot>),
    Ids(Vec<String>),
    Bytes(Option<Vec<u8>>),
    Cleanup(ExecutionCleanup),
    Webhook(WebhookOutcome),
    /// Physical record counts, by table name, in [`TABLES`] order.
    Stats(Vec<(&'static str, u64)>),
    /// The outcomes inside a committed batch.
    Many(Vec<Outcome>),
    /// The outcomes inside a batch that was then rolled back.
    Aborted(Vec<Outcome>),
    Err(ErrKind),
}

/// The tables whose physical record counts are compared.
pub const TABLES: [&str; 14] = [
    "edgestate.kv",
    "edgestate.expiry",
    "edgestate.contexts",
    "edgestate.cards",
    "edgestate.user_cards",
    "edgestate.dedup",
    "edgestate.idempotency",
    "edgestate.sessions",
    "edgestate.locations",
    "edgestate.pending",
    "edgestate.pending_seq",
    "edgestate.snapshots",
    "edgestate.snapshots_by_tenant",
    "edgestate.working_memory",
];

/// The system under test: a store, its clock, and (for a file store) its path.
pub struct Sut {
    pub clock: ManualClock,
    path: Option<PathBuf>,
    store: Option<Store>,
}

impl Sut {
    /// An in-memory store; the reopen ops are no-ops.
    pub fn in_memory() -> Sut {
        let clock = ManualClock::new(T0_MS);
        let store = builder(&clock).in_memory().expect("in-memory store");
        Sut {
            clock,
            path: None,
            store: Some(store),
        }
    }

    /// A file store at `path` with relaxed durability: no commit pays an fsync, and the
    /// reopen ops check that closing (or dropping) the last handle keeps every commit.
    pub fn file(path: PathBuf) -> Sut {
        let clock = ManualClock::new(T0_MS);
        let store = Self::open(&clock, &path);
        Sut {
            clock,
            path: Some(path),
            store: Some(store),
        }
    }

    fn open(clock: &ManualClock, path: &std::path::Path) -> Store {
        builder(clock)
            .durability(Durability::Relaxed)
            .open(path)
            .expect("open the model's store")
    }

    /// The open store.
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("store is open")
    }

    /// Applies one op, including the clock and reopen.
    pub fn step(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Advance { ms } => {
                self.clock.advance(Duration::from_millis(*ms));
                Outcome::Unit
            }
            Op::Rewind { ms } => {
                let now = edgestate::Clock::now_ms(&self.clock);
                self.clock.set_ms(now.saturating_sub(*ms));
                Outcome::Unit
            }
            Op::Reopen => {
                if let Some(path) = &self.path {
                    self.store.take().expect("open").close().expect("close");
                    self.store = Some(Self::open(&self.clock, path));
                }
                Outcome::Unit
            }
            Op::ReopenAfterDrop => {
                if let Some(path) = &self.path {
                    drop(self.store.take());
                    self.store = Some(Self::open(&self.clock, path));
                }
                Outcome::Unit
            }
            _ => run(self.store(), op),
        }
    }
}

/// Compares the full observable state of `sut` and `model`. Returns the first
/// difference as a message.
pub fn compare_state(sut: &mut Sut, model: &mut Model) -> Result<(), String> {
    for op in observation_ops() {
        let got = sut.step(&op);
        let want = model.apply(&op);
        if got != want {
            return Err(format!(
                "state differs at {op:?}\n store: {got:?}\n model: {want:?}"
            ));
        }
    }
    Ok(())
}

/// The full observation of `store` at its clock's time: the outcome of every
/// [`observation_ops`] op.
pub fn observe(store: &Store) -> Vec<Outcome> {
    observation_ops().iter().map(|op| run(store, op)).collect()
}

impl Model {
    /// The full observation the model predicts at its clock's time.
    pub fn observe(&self) -> Vec<Outcome> {
        let mut model = self.clone();
        observation_ops().iter().map(|op| model.apply(op)).collect()
    }
}

/// The first difference between two observations, if any.
pub fn observation_diff(got: &[Outcome], want: &[Outcome]) -> Option<String> {
    let ops = observation_ops();
    if got.len() != want.len() {
        return Some(format!("{} outcomes, want {}", got.len(), want.len()));
    }
    let shown = |o: &Outcome| {
        let mut s = format!("{o:?}");
        s.truncate(2_000);
        s
    };
    got.iter()
        .zip(want)
        .zip(&ops)
        .find(|((g, w), _)| g != w)
        .map(|((g, w), op)| {
            format!(
                "at {op:?}
 store: {}
 model: {}",
                shown(g),
                shown(w)
            )
        })
}

/// Runs `ops` on both sides. Outcomes must agree after every step, and the whole state
/// every `observe_every` steps (0: only at the end) and at the end. Returns the first
/// difference, with the ops that led to it.
pub fn check_run(
    sut: &mut Sut,
    model: &mut Model,
    ops: &[Op],
    observe_every: usize,
) -> Result<(), String> {
    let history = |upto: usize| {
        ops[..=upto]
            .iter()
            .enumerate()
            .map(|(i, op)| format!("  {i:3}: {op:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (i, op) in ops.iter().enumerate() {
        let got = sut.step(op);
        let want = model.apply(op);
        if got != want {
            return Err(format!(
                "outcome differs at step {i} (now {} ms after start)\n store: {got:?}\n model: {want:?}\nops:\n{}",
                model.now - T0_MS,
                history(i)
            ));
        }
        let last = i + 1 == ops.len();
        if last || (observe_every > 0 && (i + 1) % observe_every == 0) {
            compare_state(sut, model).map_err(|e| {
                format!(
                    "after step {i} (now {} ms after start): {e}\nops:\n{}",
                    model.now - T0_MS,
                    history(i)
                )
            })?;
        }
    }
    Ok(())
}
