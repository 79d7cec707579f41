//! One decoder from a stream of choices to ops: proptest and the fuzzer feed it
//! differently, so the grammar (and its weights) exists once.

use edgestate::Expect;

use super::ops::*;

const TTLS_MS: [Option<u64>; 5] = [None, Some(1), Some(50), Some(500), Some(3_000)];
const AMOUNTS: [u64; 4] = [0, 7, 1_250, u64::MAX];
const ADVANCES_MS: [u64; 10] = [0, 1, 10, 100, 299, 300, 500, 1_000, 1_500, 5_000];

/// A source of choices: `pick(n)` is in `0..n` (0 once the source is exhausted, so the
/// simplest op is what an empty source gives).
pub trait Choices {
    /// A number in `0..n` (`n > 0`).
    fn pick(&mut self, n: usize) -> usize;
}

fn one<T: Copy>(c: &mut dyn Choices, items: &[T]) -> T {
    items[c.pick(items.len())]
}

fn idx(c: &mut dyn Choices, n: usize) -> usize {
    c.pick(n)
}

fn flag(c: &mut dyn Choices) -> bool {
    c.pick(2) == 1
}

type Gen = fn(&mut dyn Choices) -> Op;

/// Data ops (usable inside a batch), with weights.
const DATA_OPS: &[(usize, Gen)] = &[
    (4, |c| Op::KvPut {
        ns: idx(c, 3),
        key: idx(c, 5),
        value: c.pick(256) as u8,
        ttl: one(c, &TTLS_MS),
    }),
    (2, |c| Op::KvPutIf {
        ns: idx(c, 3),
        key: idx(c, 5),
        value: c.pick(256) as u8,
        ttl: one(c, &TTLS_MS),
        expect: match c.pick(3) {
            0 => Expect::Any,
            1 => Expect::Absent,
            _ => Expect::Version(1 + c.pick(3) as u64),
        },
    }),
    (1, |c| Op::KvDelete {
        ns: idx(c, 3),
        key: idx(c, 5),
    }),
    (1, |c| Op::KvDeleteIf {
        ns: idx(c, 3),
        key: idx(c, 5),
        expect: match c.pick(3) {
            0 => Expect::Any,
            1 => Expect::Absent,
            _ => Expect::Version(1 + c.pick(3) as u64),
        },
    }),
    (1, |c| Op::KvDeletePrefix {
        ns: idx(c, 3),
        prefix: 1 + idx(c, 3),
    }),
    (2, |c| Op::KvUpdate {
        ns: idx(c, 3),
        key: idx(c, 5),
        ttl: one(c, &TTLS_MS),
        action: one(
            c,
            &[
                UpdateAction::Increment,
                UpdateAction::Increment,
                UpdateAction::Remove,
                UpdateAction::Refuse,
            ],
        ),
    }),
    (1, |c| Op::KvGet {
        ns: idx(c, 3),
        key: idx(c, 5),
    }),
    (2, |c| Op::KvList {
        ns: idx(c, 3),
        prefix: idx(c, 4),
        limit: one(c, &[0, 1, 1, 2, 2, 10]),
    }),
    (1, |c| {
        let ns = idx(c, 3);
        let n = c.pick(4);
        Op::KvGetMany {
            ns,
            keys: (0..n).map(|_| idx(c, 5)).collect(),
        }
    }),
    (2, |c| Op::BlobSave {
        key: idx(c, 3),
        value: idx(c, BLOB_VALUES),
    }),
    (1, |c| Op::BlobLoad { key: idx(c, 3) }),
    (1, |c| Op::BlobDelete { key: idx(c, 3) }),
    (1, |c| Op::CtxFetch { user: idx(c, 3) }),
    (1, |c| {
        let n = c.pick(4);
        Op::CtxFetchMany {
            users: (0..n).map(|_| idx(c, 3)).collect(),
        }
    }),
    (2, |c| Op::CtxGetOrInit { user: idx(c, 3) }),
    (2, |c| Op::CtxPush {
        user: idx(c, 3),
        version: c.pick(5) as u64,
        cred: c.pick(1000) as u64,
    }),
    (3, |c| Op::CtxPatch {
        user: idx(c, 3),
        patch: idx(c, PATCHES.len()),
    }),
    (3, |c| Op::CtxPushEvent {
        user: one(c, &[0, 0, 0, 1, 2]),
        amount: one(c, &AMOUNTS),
    }),
    (1, |c| Op::CtxDelete { user: idx(c, 3) }),
    // Links and webhooks favour the same card, so that webhooks find its owner.
    (4, |c| Op::CardLink {
        fp: one(c, &[0, 0, 1, 2]),
        user: idx(c, 3),
        last4: one(c, &[0, 0, 1, 2]),
    }),
    (1, |c| Op::CardUnlink { fp: idx(c, 3) }),
    (1, |c| Op::CardLookup { fp: idx(c, 3) }),
    (1, |c| Op::CardUserCards { user: idx(c, 3) }),
    (2, |c| Op::DedupClaim {
        txn: idx(c, 4),
        user: idx(c, 3),
        amount: one(c, &AMOUNTS),
    }),
    (1, |c| Op::DedupIsProcessed { txn: idx(c, 4) }),
    (1, |c| Op::DedupGet { txn: idx(c, 4) }),
    (1, |c| Op::DedupForget { txn: idx(c, 4) }),
    (3, |c| Op::IdemBegin {
        key: idx(c, 2),
        payload: one(c, &[0, 0, 0, 1]),
    }),
    (2, |c| Op::IdemComplete {
        key: idx(c, 2),
        payload: one(c, &[0, 0, 0, 1]),
        result: c.pick(256) as u8,
    }),
    (1, |c| Op::IdemAbandon { key: idx(c, 2) }),
    (1, |c| Op::IdemGet { key: idx(c, 2) }),
    (3, |c| Op::SessionStore {
        user: idx(c, 3),
        expires_in_s: one(c, &[-1, 0, 1, 1, 2, 5]),
        max_actions: c.pick(4) as u32,
        actions_used: c.pick(3) as u32,
    }),
    (1, |c| Op::SessionGet { user: idx(c, 3) }),
    (3, |c| Op::SessionUseAction { user: idx(c, 3) }),
    (1, |c| Op::SessionInvalidate { user: idx(c, 3) }),
    (2, |c| Op::LocCache {
        user: idx(c, 3),
        merchant: one(c, &[0, 0, 1, 1, 2]),
    }),
    (1, |c| Op::LocGet { user: idx(c, 3) }),
    (1, |c| Op::LocClear { user: idx(c, 3) }),
    // Mostly one user, so that rings overflow and evict.
    (6, |c| Op::PendingAdd {
        user: one(c, &[0, 0, 0, 1, 2]),
        amount: one(c, &AMOUNTS),
        created: c.pick(2) as i64,
    }),
    (1, |c| Op::PendingList { user: idx(c, 3) }),
    (1, |c| Op::PendingCount { user: idx(c, 3) }),
    (1, |c| Op::PendingGet {
        user: idx(c, 3),
        seq: c.pick(10) as u64,
    }),
    (2, |c| Op::PendingRemove {
        user: idx(c, 3),
        seq: c.pick(10) as u64,
    }),
    (1, |c| Op::PendingRemoveByTimestamp {
        user: idx(c, 3),
        created: c.pick(2) as i64,
    }),
    (3, |c| Op::SnapSave {
        exec: idx(c, 3),
        tenant: one(c, &[0, 0, 1, 1, 2]),
        seq: c.pick(5) as u64,
        state: idx(c, STATES.len()),
    }),
    (1, |c| Op::SnapLoad { exec: idx(c, 3) }),
    (1, |c| Op::SnapListByTenant {
        tenant: idx(c, 3),
        limit: one(c, &[0, 1, 10]),
    }),
    (1, |c| Op::SnapDelete { exec: idx(c, 3) }),
    (2, |c| Op::SnapDeleteExecutionState {
        exec: one(c, &[0, 0, 1, 2]),
    }),
    (3, |c| Op::MemSet {
        exec: one(c, &[0, 0, 1, 2]),
        key: one(c, &[0, 0, 1, 1, 2]),
        value: c.pick(256) as u8,
        ttl: one(c, &TTLS_MS),
    }),
    (1, |c| Op::MemGet {
        exec: idx(c, 3),
        key: idx(c, 3),
    }),
    (1, |c| Op::MemDelete {
        exec: idx(c, 3),
        key: idx(c, 3),
    }),
    (1, |c| Op::MemList { exec: idx(c, 3) }),
    (4, |c| Op::Webhook {
        txn: idx(c, 4),
        fp: one(c, &[0, 0, 0, 1, 2]),
        amount: one(c, &AMOUNTS),
        merchant: one(c, &[0, 0, 0, 1, 1, 2]),
        named: flag(c),
    }),
];

/// Store-level ops, with weights.
const STORE_OPS: &[(usize, Gen)] = &[
    (1, |_| Op::Stats),
    (1, |_| Op::Compact),
    (1, |c| Op::SweepAll {
        batch: one(c, &[0, 1, 3]),
    }),
    (3, |c| Op::Sweep {
        limit: one(c, &[1, 2, 5, 100]),
    }),
    (3, |c| {
        let n = 1 + c.pick(4);
        let ops = (0..n).map(|_| pick_from(c, DATA_OPS)).collect();
        Op::Batch { ops, fail: flag(c) }
    }),
    // Often enough that the namespace fills up to its limit.
    (4, |c| Op::ByteSet {
        key: idx(c, 5),
        value: c.pick(256) as u8,
    }),
    (7, |c| Op::Advance {
        ms: one(c, &ADVANCES_MS),
    }),
    (1, |c| Op::Rewind {
        ms: one(c, &[1, 10, 300, 1_000]),
    }),
    (1, |_| Op::Reopen),
    (1, |_| Op::ReopenAfterDrop),
];

fn pick_from(c: &mut dyn Choices, table: &[(usize, Gen)]) -> Op {
    let total: usize = table.iter().map(|(w, _)| w).sum();
    let mut at = c.pick(total);
    for (weight, gen) in table {
        if at < *weight {
            return gen(c);
        }
        at -= weight;
    }
    unreachable!("the pick is below the total weight")
}

/// Decodes one op of any kind.
pub fn decode_op(c: &mut dyn Choices) -> Op {
    // Data ops first, so that an exhausted source (all zeros) gives a plain KV put.
    let data: usize = DATA_OPS.iter().map(|(w, _)| w).sum();
    let store: usize = STORE_OPS.iter().map(|(w, _)| w).sum();
    if c.pick(data + store) < data {
        pick_from(c, DATA_OPS)
    } else {
        pick_from(c, STORE_OPS)
    }
}
