//! The model: every table as a `BTreeMap` of PHYSICAL records (expired ones included
//! until something removes them), re-implementing the documented semantics:
//!
//! - versions start at 1 and grow by 1 per write; a write over an expired record starts
//!   at 1 again (an expired record counts as absent everywhere);
//! - a delete removes the physical record whatever its state, and reports whether it
//!   was live;
//! - a sweep removes up to `limit` records whose expiry has passed, in expiry-index
//!   order `(expires_at, table tag, packed key)`;
//! - every failed call writes nothing, inside a batch as well; a failing batch leaves
//!   nothing at all.

use std::collections::{BTreeMap, BTreeSet};

use edgestate::{
    CardMapping, ExecutionSnapshot, IdempotencyState, PendingCapture, ProcessedTransaction,
    SessionKeyData, UserContext,
};

use super::ops::*;
use super::*;

mod accounts;
mod kv;
mod leases;
mod queues;

/// A stored record: value, version, expiry.
#[derive(Debug, Clone, PartialEq)]
struct Rec<T> {
    value: T,
    version: u64,
    expires: Option<u64>,
}

impl<T> Rec<T> {
    fn is_live(&self, now: u64) -> bool {
        self.expires.is_none_or(|at| now < at)
    }
}

fn live<'m, K: Ord, T>(map: &'m BTreeMap<K, Rec<T>>, key: &K, now: u64) -> Option<&'m Rec<T>> {
    map.get(key).filter(|r| r.is_live(now))
}

/// Writes a record with the next version; returns it.
fn put<K: Ord + Clone, T>(
    map: &mut BTreeMap<K, Rec<T>>,
    key: &K,
    value: T,
    expires: Option<u64>,
    now: u64,
) -> u64 {
    let version = live(map, key, now).map_or(1, |r| r.version + 1);
    map.insert(
        key.clone(),
        Rec {
            value,
            version,
            expires,
        },
    );
    version
}

/// Removes the physical record; returns it if it was live.
fn remove<K: Ord, T>(map: &mut BTreeMap<K, Rec<T>>, key: &K, now: u64) -> Option<Rec<T>> {
    map.remove(key).filter(|r| r.is_live(now))
}

fn err(kind: ErrKind) -> Outcome {
    Outcome::Err(kind)
}

fn invalid(field: &str) -> Outcome {
    err(ErrKind::Invalid {
        field: field.to_owned(),
    })
}

/// `codec::keys::pack`: each part as a little-endian u32 length and its bytes.
fn pack(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// A KV value: its bytes and whether they are JSON text (a blob).
#[derive(Debug, Clone, PartialEq)]
struct KvValue {
    json: bool,
    bytes: Vec<u8>,
}

type Pair = (String, String);

fn pair(a: &str, b: &str) -> Pair {
    (a.to_owned(), b.to_owned())
}

/// The whole store, physically.
#[derive(Debug, Clone)]
pub struct Model {
    /// The clock.
    pub now: u64,
    kv: BTreeMap<Pair, Rec<KvValue>>,
    /// Contexts never expire; `version` lives in the document.
    contexts: BTreeMap<String, UserContext>,
    cards: BTreeMap<String, CardMapping>,
    /// `(user, fingerprint)` pairs of the reverse index.
    user_cards: BTreeSet<Pair>,
    dedup: BTreeMap<String, Rec<ProcessedTransaction>>,
    idempotency: BTreeMap<String, Rec<(Vec<u8>, IdempotencyState)>>,
    sessions: BTreeMap<String, Rec<SessionKeyData>>,
    /// `(merchant id, entered at ms)`.
    locations: BTreeMap<String, Rec<(String, u64)>>,
    pending: BTreeMap<(String, u64), Rec<PendingCapture>>,
    /// Next seq per user; never goes back.
    pending_seq: BTreeMap<String, u64>,
    snapshots: BTreeMap<String, Rec<ExecutionSnapshot>>,
    /// `(tenant, execution id)` pairs of the tenant index.
    by_tenant: BTreeSet<Pair>,
    memory: BTreeMap<Pair, Rec<Vec<u8>>>,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Model {
    /// An empty store at [`T0_MS`].
    pub fn new() -> Model {
        Model {
            now: T0_MS,
            kv: BTreeMap::new(),
            contexts: BTreeMap::new(),
            cards: BTreeMap::new(),
            user_cards: BTreeSet::new(),
            dedup: BTreeMap::new(),
            idempotency: BTreeMap::new(),
            sessions: BTreeMap::new(),
            locations: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_seq: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            by_tenant: BTreeSet::new(),
            memory: BTreeMap::new(),
        }
    }

    /// Applies `op` and returns what the store should return.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::KvPut { .. }
            | Op::KvPutIf { .. }
            | Op::KvDelete { .. }
            | Op::KvDeleteIf { .. }
            | Op::KvDeletePrefix { .. }
            | Op::KvUpdate { .. }
            | Op::KvGet { .. }
            | Op::KvList { .. }
            | Op::KvGetMany { .. }
            | Op::BlobSave { .. }
            | Op::BlobLoad { .. }
            | Op::BlobDelete { .. }
            | Op::ByteSet { .. } => self.apply_kv(op),
            Op::CtxFetch { .. }
            | Op::CtxFetchMany { .. }
            | Op::CtxGetOrInit { .. }
            | Op::CtxPush { .. }
            | Op::CtxPatch { .. }
            | Op::CtxPushEvent { .. }
            | Op::CtxDelete { .. }
            | Op::CardLink { .. }
            | Op::CardUnlink { .. }
            | Op::CardLookup { .. }
            | Op::CardUserCards { .. }
            | Op::DedupClaim { .. }
            | Op::DedupIsProcessed { .. }
            | Op::DedupGet { .. }
            | Op::DedupForget { .. }
            | Op::Webhook { .. } => self.apply_accounts(op),
            Op::IdemBegin { .. }
            | Op::IdemComplete { .. }
            | Op::IdemAbandon { .. }
            | Op::IdemGet { .. }
            | Op::SessionStore { .. }
            | Op::SessionGet { .. }
            | Op::SessionUseAction { .. }
            | Op::SessionInvalidate { .. }
            | Op::LocCache { .. }
            | Op::LocGet { .. }
            | Op::LocClear { .. } => self.apply_leases(op),
            Op::PendingAdd { .. }
            | Op::PendingList { .. }
            | Op::PendingCount { .. }
            | Op::PendingGet { .. }
            | Op::PendingRemove { .. }
            | Op::PendingRemoveByTimestamp { .. }
            | Op::SnapSave { .. }
            | Op::SnapLoad { .. }
            | Op::SnapListByTenant { .. }
            | Op::SnapDelete { .. }
            | Op::SnapDeleteExecutionState { .. }
            | Op::MemSet { .. }
            | Op::MemGet { .. }
            | Op::MemDelete { .. }
            | Op::MemList { .. } => self.apply_queues(op),

            Op::Stats => Outcome::Stats(self.physical_counts()),
            Op::Sweep { limit } => Outcome::Count(self.sweep(*limit)),
            Op::SweepAll { .. } => Outcome::Count(self.sweep(usize::MAX)),
            Op::Batch { ops, fail } => {
                let mut scratch = self.clone();
                let outcomes = ops.iter().map(|op| scratch.apply(op)).collect();
                if *fail {
                    Outcome::Aborted(outcomes)
                } else {
                    *self = scratch;
                    Outcome::Many(outcomes)
                }
            }
            Op::Advance { ms } => {
                self.now += ms;
                Outcome::Unit
            }
            Op::Rewind { ms } => {
                self.now = self.now.saturating_sub(*ms);
                Outcome::Unit
            }
            Op::Reopen | Op::ReopenAfterDrop | Op::Compact => Outcome::Unit,
        }
    }

    /// Physical record counts, in [`TABLES`] order.
    fn physical_counts(&self) -> Vec<(&'static str, u64)> {
        let expiring = self.kv.values().filter(|r| r.expires.is_some()).count()
            + self.dedup.len()
            + self.idempotency.len()
            + self.sessions.len()
            + self.locations.len()
            + self.pending.len()
            + self.memory.values().filter(|r| r.expires.is_some()).count();
        let counts = [
            self.kv.len(),
            expiring,
            self.contexts.len(),
            self.cards.len(),
            self.user_cards.len(),
            self.dedup.len(),
            self.idempotency.len(),
            self.sessions.len(),
            self.locations.len(),
            self.pending.len(),
            self.pending_seq.len(),
            self.snapshots.len(),
            self.by_tenant.len(),
            self.memory.len(),
        ];
        TABLES
            .iter()
            .zip(counts)
            .map(|(t, n)| (*t, n as u64))
            .collect()
    }

    /// Removes up to `limit` due records in expiry-index order.
    fn sweep(&mut self, limit: usize) -> usize {
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Target {
            Kv(Pair),
            Dedup(String),
            Idem(String),
            Session(String),
            Location(String),
            Pending((String, u64)),
            Memory(Pair),
        }
        let now = self.now;
        let mut due: Vec<(u64, u8, Vec<u8>, Target)> = Vec::new();
        let due_at = |expires: Option<u64>| expires.filter(|at| *at <= now);
        for (k, r) in &self.kv {
            if let Some(at) = due_at(r.expires) {
                due.push((
                    at,
                    1,
                    pack(&[k.0.as_bytes(), k.1.as_bytes()]),
                    Target::Kv(k.clone()),
                ));
            }
        }
        for (k, r) in &self.dedup {
            if let Some(at) = due_at(r.expires) {
                due.push((at, 2, pack(&[k.as_bytes()]), Target::Dedup(k.clone())));
            }
        }
        for (k, r) in &self.idempotency {
            if let Some(at) = due_at(r.expires) {
                due.push((at, 3, pack(&[k.as_bytes()]), Target::Idem(k.clone())));
            }
        }
        for (k, r) in &self.sessions {
            if let Some(at) = due_at(r.expires) {
                due.push((at, 4, pack(&[k.as_bytes()]), Target::Session(k.clone())));
            }
        }
        for (k, r) in &self.locations {
            if let Some(at) = due_at(r.expires) {
                due.push((at, 5, pack(&[k.as_bytes()]), Target::Location(k.clone())));
            }
        }
        for (k, r) in &self.pending {
            if let Some(at) = due_at(r.expires) {
                let packed = pack(&[k.0.as_bytes(), &k.1.to_be_bytes()]);
                due.push((at, 6, packed, Target::Pending(k.clone())));
            }
        }
        for (k, r) in &self.memory {
            if let Some(at) = due_at(r.expires) {
                due.push((
                    at,
                    7,
                    pack(&[k.0.as_bytes(), k.1.as_bytes()]),
                    Target::Memory(k.clone()),
                ));
            }
        }
        due.sort();
        due.truncate(limit);
        for (_, _, _, target) in &due {
            match target {
                Target::Kv(k) => drop(self.kv.remove(k)),
                Target::Dedup(k) => drop(self.dedup.remove(k)),
                Target::Idem(k) => drop(self.idempotency.remove(k)),
                Target::Session(k) => drop(self.sessions.remove(k)),
                Target::Location(k) => drop(self.locations.remove(k)),
                Target::Pending(k) => drop(self.pending.remove(k)),
                Target::Memory(k) => drop(self.memory.remove(k)),
            }
        }
        due.len()
    }
}
