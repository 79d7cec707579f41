//! Model-based test of the WHOLE store: random sequences of operations on every record
//! family (KV, blobs, contexts, cards, dedup, idempotency, sessions, location, pending,
//! snapshots and working memory, the payment webhook), with clock jumps, sweeps,
//! multi-op transactions that commit or fail, and reopen, against the in-memory model of
//! `tests/common/store_model`. After every step the outcomes must be equal; after every
//! step the full observable state must be equal too: every key of every alphabet, every
//! list, and the physical record count of every table (expired-but-unswept records and
//! the expiry index included).
//!
//! A second proptest restricts the grammar to KV ops (the KV layer's own model test).
//!
//! Longer runs: `PROPTEST_CASES=2000 cargo test --release --test model_store`.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

#[path = "common/store_model/mod.rs"]
mod store_model;

use proptest::prelude::*;
use store_model::{check_run, decode_op, Choices, Model, Op, Outcome, Sut};

/// Choices from a proptest-generated list; 0 once it runs out.
struct Drawn<'a>(std::slice::Iter<'a, u16>);

impl Choices for Drawn<'_> {
    fn pick(&mut self, n: usize) -> usize {
        self.0.next().map_or(0, |x| usize::from(*x) % n)
    }
}

/// One op per list of choices: shrinking drops whole ops, and shrinks an op towards
/// the simplest one (all zeros).
fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(prop::collection::vec(any::<u16>(), 0..24), 1..120).prop_map(|lists| {
        lists
            .iter()
            .map(|choices| decode_op(&mut Drawn(choices.iter())))
            .collect()
    })
}

fn run_file(ops: &[Op]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut sut = Sut::file(dir.path().join("model.edgestate"));
    let mut model = Model::new();
    check_run(&mut sut, &mut model, ops, 1)
}

/// The KV layer's ops, and what acts on every table (clock, sweeps, stats, reopen);
/// batches of those.
fn is_kv_op(op: &Op) -> bool {
    match op {
        Op::Batch { ops, .. } => ops.iter().all(is_kv_op),
        Op::KvPut { .. }
        | Op::KvPutIf { .. }
        | Op::KvDelete { .. }
        | Op::KvDeleteIf { .. }
        | Op::KvDeletePrefix { .. }
        | Op::KvUpdate { .. }
        | Op::KvGet { .. }
        | Op::KvList { .. }
        | Op::KvGetMany { .. }
        | Op::Stats
        | Op::Sweep { .. }
        | Op::SweepAll { .. }
        | Op::Advance { .. }
        | Op::Rewind { .. }
        | Op::Reopen
        | Op::ReopenAfterDrop => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_whole_store_agrees_with_the_model(ops in ops()) {
        if let Err(report) = run_file(&ops) {
            prop_assert!(false, "{}", report);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The same grammar restricted to KV (puts with and without TTL, CAS, deletes,
    /// update closures, listing, batch gets, clock jumps, sweeps, failing batches,
    /// reopen), so that KV sequences run longer than in the mixed test.
    #[test]
    fn the_kv_layer_agrees_with_the_model(ops in ops()) {
        let ops: Vec<Op> = ops.into_iter().filter(is_kv_op).collect();
        if let Err(report) = run_file(&ops) {
            prop_assert!(false, "{}", report);
        }
    }
}

/// A fixed sequence through every family, so that a plain `cargo test` covers each op
/// kind at least once whatever the random cases draw.
#[test]
fn a_scripted_tour_agrees_with_the_model() {
    use store_model::ops::UpdateAction;
    use Op::*;
    let tour = vec![
        KvPut {
            ns: 0,
            key: 0,
            value: 1,
            ttl: Some(50),
        },
        KvPutIf {
            ns: 0,
            key: 0,
            value: 2,
            ttl: None,
            expect: edgestate::Expect::Version(1),
        },
        KvUpdate {
            ns: 0,
            key: 1,
            ttl: Some(500),
            action: UpdateAction::Increment,
        },
        KvUpdate {
            ns: 0,
            key: 1,
            ttl: None,
            action: UpdateAction::Refuse,
        },
        KvPut {
            ns: 2,
            key: 0,
            value: 9,
            ttl: None,
        },
        BlobLoad { key: 0 },
        BlobSave { key: 0, value: 2 },
        BlobSave { key: 2, value: 4 },
        BlobLoad { key: 0 },
        KvList {
            ns: 2,
            prefix: 0,
            limit: 10,
        },
        KvGetMany {
            ns: 0,
            keys: vec![0, 1, 1, 4],
        },
        KvDeletePrefix { ns: 0, prefix: 1 },
        CtxGetOrInit { user: 0 },
        CtxPush {
            user: 0,
            version: 3,
            cred: 5,
        },
        CtxPush {
            user: 0,
            version: 1,
            cred: 5,
        },
        CtxPatch { user: 0, patch: 6 },
        CtxPushEvent { user: 0, amount: 7 },
        CtxPatch { user: 0, patch: 6 },
        CtxPatch { user: 0, patch: 5 },
        CtxPatch { user: 0, patch: 4 },
        CtxPatch { user: 0, patch: 5 },
        CtxPatch { user: 1, patch: 0 },
        CtxFetchMany {
            users: vec![0, 1, 0],
        },
        CardLink {
            fp: 0,
            user: 0,
            last4: 0,
        },
        CardLink {
            fp: 0,
            user: 1,
            last4: 1,
        },
        CardLink {
            fp: 1,
            user: 1,
            last4: 2,
        },
        CardUserCards { user: 1 },
        Webhook {
            txn: 0,
            fp: 0,
            amount: 1_250,
            merchant: 0,
            named: true,
        },
        Webhook {
            txn: 0,
            fp: 0,
            amount: 1_250,
            merchant: 0,
            named: true,
        },
        Webhook {
            txn: 1,
            fp: 2,
            amount: 5,
            merchant: 1,
            named: false,
        },
        Webhook {
            txn: 1,
            fp: 0,
            amount: 5,
            merchant: 2,
            named: false,
        },
        DedupClaim {
            txn: 0,
            user: 2,
            amount: 1,
        },
        DedupClaim {
            txn: 2,
            user: 2,
            amount: 1,
        },
        IdemBegin { key: 0, payload: 0 },
        IdemBegin { key: 0, payload: 0 },
        IdemBegin { key: 0, payload: 1 },
        IdemComplete {
            key: 0,
            payload: 0,
            result: 42,
        },
        IdemBegin { key: 0, payload: 0 },
        IdemBegin { key: 1, payload: 0 },
        IdemAbandon { key: 1 },
        SessionStore {
            user: 0,
            expires_in_s: 2,
            max_actions: 1,
            actions_used: 0,
        },
        SessionStore {
            user: 1,
            expires_in_s: 0,
            max_actions: 1,
            actions_used: 0,
        },
        SessionUseAction { user: 0 },
        SessionUseAction { user: 0 },
        SessionUseAction { user: 1 },
        LocCache {
            user: 0,
            merchant: 1,
        },
        LocCache {
            user: 0,
            merchant: 2,
        },
        PendingAdd {
            user: 2,
            amount: 1,
            created: 0,
        },
        PendingAdd {
            user: 2,
            amount: 2,
            created: 1,
        },
        PendingAdd {
            user: 2,
            amount: 3,
            created: 0,
        },
        PendingAdd {
            user: 2,
            amount: 4,
            created: 0,
        },
        PendingRemove { user: 2, seq: 2 },
        PendingRemoveByTimestamp {
            user: 2,
            created: 0,
        },
        SnapSave {
            exec: 0,
            tenant: 0,
            seq: 3,
            state: 1,
        },
        SnapSave {
            exec: 0,
            tenant: 1,
            seq: 2,
            state: 1,
        },
        SnapSave {
            exec: 0,
            tenant: 1,
            seq: 3,
            state: 2,
        },
        SnapSave {
            exec: 1,
            tenant: 2,
            seq: 3,
            state: 2,
        },
        MemSet {
            exec: 0,
            key: 0,
            value: 1,
            ttl: Some(1),
        },
        MemSet {
            exec: 0,
            key: 1,
            value: 2,
            ttl: None,
        },
        SnapListByTenant {
            tenant: 1,
            limit: 10,
        },
        Batch {
            ops: vec![
                KvPut {
                    ns: 1,
                    key: 0,
                    value: 1,
                    ttl: None,
                },
                CtxPushEvent { user: 2, amount: 1 },
                CardLink {
                    fp: 2,
                    user: 2,
                    last4: 0,
                },
                Webhook {
                    txn: 3,
                    fp: 2,
                    amount: 9,
                    merchant: 0,
                    named: false,
                },
                SessionUseAction { user: 2 },
            ],
            fail: true,
        },
        Batch {
            ops: vec![
                CardLink {
                    fp: 2,
                    user: 2,
                    last4: 0,
                },
                Webhook {
                    txn: 3,
                    fp: 2,
                    amount: 9,
                    merchant: 0,
                    named: false,
                },
                Webhook {
                    txn: 3,
                    fp: 2,
                    amount: 9,
                    merchant: 0,
                    named: false,
                },
                KvPut {
                    ns: 1,
                    key: 0,
                    value: 1,
                    ttl: Some(1),
                },
                KvGet { ns: 1, key: 0 },
            ],
            fail: false,
        },
        Advance { ms: 1 },
        Sweep { limit: 2 },
        Reopen,
        Advance { ms: 1_500 },
        SessionUseAction { user: 0 },
        Sweep { limit: 100 },
        SessionUseAction { user: 0 },
        SnapDeleteExecutionState { exec: 0 },
        Advance { ms: 5_000 },
        Sweep { limit: 100 },
        Reopen,
        Stats,
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut sut = Sut::file(dir.path().join("tour.edgestate"));
    let mut model = Model::new();
    if let Err(report) = check_run(&mut sut, &mut model, &tour, 1) {
        panic!("{report}");
    }
}

/// Choices from a fixed-seed generator (no proptest), for the coverage guard.
struct Lcg(u64);

impl Choices for Lcg {
    fn pick(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize % n
    }
}

/// The interesting cases an (op, outcome) pair shows.
fn events(op: &Op, outcome: &Outcome) -> Vec<&'static str> {
    use edgestate::{Begin, Claim, SessionRefusal, WebhookOutcome};
    use store_model::ErrKind;
    let mut out = Vec::new();
    match (op, outcome) {
        (Op::Batch { ops, .. }, Outcome::Many(inner) | Outcome::Aborted(inner)) => {
            out.push(if matches!(outcome, Outcome::Many(_)) {
                "batch committed"
            } else {
                "batch rolled back"
            });
            for (op, o) in ops.iter().zip(inner) {
                out.extend(events(op, o));
            }
        }
        (Op::KvPutIf { .. }, Outcome::Err(ErrKind::Conflict { .. })) => out.push("kv conflict"),
        (Op::KvDeleteIf { .. }, Outcome::Err(ErrKind::Conflict { .. })) => {
            out.push("kv delete_if conflict")
        }
        (Op::ByteSet { .. }, Outcome::Err(ErrKind::Invalid { .. })) => out.push("byte store full"),
        (Op::ByteSet { .. }, Outcome::Unit) => out.push("byte store set"),
        (Op::Rewind { .. }, _) => out.push("clock rewound"),
        (Op::Compact, Outcome::Unit) => out.push("compacted"),
        (Op::KvPut { .. } | Op::KvPutIf { .. }, Outcome::Version(v)) if *v > 2 => {
            out.push("kv version > 2")
        }
        (Op::BlobLoad { .. }, Outcome::Err(ErrKind::Decode { .. })) => {
            out.push("blob over kv bytes")
        }
        (Op::BlobLoad { .. }, Outcome::Blob(Some(_))) => out.push("blob loaded"),
        (Op::CtxPush { .. }, Outcome::Ctx(_)) => out.push("context pushed"),
        (Op::CtxPush { .. }, Outcome::Err(ErrKind::Conflict { .. })) => {
            out.push("context conflict")
        }
        (Op::CtxPatch { .. }, Outcome::Ctx(_)) => out.push("patch applied"),
        (Op::CtxPatch { .. }, Outcome::Err(ErrKind::Invalid { .. })) => out.push("patch refused"),
        (Op::CtxPushEvent { .. }, Outcome::Ctx(c)) if c.recent_events.len() == 3 => {
            out.push("events full")
        }
        (Op::CardLink { .. }, Outcome::Link(l)) if l.previous_owner.is_some() => {
            out.push("card moved")
        }
        (Op::CardLink { .. }, Outcome::Link(l)) if l.relinked => out.push("card relinked"),
        (Op::DedupClaim { .. }, Outcome::Claim(Claim::Duplicate(_))) => out.push("dedup duplicate"),
        (Op::IdemBegin { .. }, Outcome::Begin(Begin::Completed(_))) => out.push("idem replayed"),
        (Op::IdemBegin { .. }, Outcome::Err(ErrKind::IdemInProgress { .. })) => {
            out.push("idem in progress")
        }
        (_, Outcome::Err(ErrKind::IdemMismatch { .. })) => out.push("idem mismatch"),
        (Op::IdemComplete { .. }, Outcome::Bool(false)) => out.push("idem completed twice"),
        (Op::IdemAbandon { .. }, Outcome::Bool(true)) => out.push("idem abandoned"),
        (Op::SessionUseAction { .. }, Outcome::SessionUsed(_)) => out.push("session used"),
        (_, Outcome::Err(ErrKind::SessionRefused { reason, .. })) => out.push(match reason {
            SessionRefusal::Missing => "session missing",
            SessionRefusal::Expired => "session expired",
            SessionRefusal::Exhausted => "session exhausted",
            _ => "session refused otherwise",
        }),
        (Op::LocGet { .. }, Outcome::MaybeMerchant(Some(_))) => out.push("location live"),
        (Op::PendingAdd { .. }, Outcome::PendingId(id)) if !id.evicted.is_empty() => {
            out.push("pending evicted")
        }
        (Op::PendingRemoveByTimestamp { .. }, Outcome::Entries(e)) if e.len() > 1 => {
            out.push("pending removed by timestamp")
        }
        (Op::SnapSave { .. }, Outcome::Err(ErrKind::Stale { .. })) => out.push("snapshot stale"),
        (Op::SnapDeleteExecutionState { .. }, Outcome::Cleanup(c)) if c.memory_keys_removed > 0 => {
            out.push("execution state cleaned")
        }
        (Op::Webhook { .. }, Outcome::Webhook(w)) => out.push(match w {
            WebhookOutcome::Processed { evicted, .. } if !evicted.is_empty() => {
                "webhook processed with eviction"
            }
            WebhookOutcome::Processed { .. } => "webhook processed",
            WebhookOutcome::Duplicate(_) => "webhook duplicate",
            WebhookOutcome::UnknownCard => "webhook unknown card",
            _ => "webhook other",
        }),
        (Op::Sweep { limit }, Outcome::Count(n)) if n == limit => out.push("sweep hit its limit"),
        (Op::Sweep { .. }, Outcome::Count(n)) if *n > 0 => out.push("sweep removed"),
        (Op::Reopen, _) => out.push("reopened"),
        (Op::ReopenAfterDrop, _) => out.push("reopened after drop"),
        (Op::SweepAll { .. }, Outcome::Count(n)) if *n > 0 => out.push("sweep all removed"),
        _ => {}
    }
    out
}

/// Guards the generator: a fixed-seed run must reach every interesting case, so a
/// change of weights or alphabets cannot quietly stop testing one of them. (Outcomes
/// are compared as well, on an in-memory store.)
#[test]
fn the_generator_reaches_every_interesting_case() {
    let expected = [
        "batch committed",
        "batch rolled back",
        "kv conflict",
        "kv delete_if conflict",
        "byte store full",
        "byte store set",
        "clock rewound",
        "kv version > 2",
        "blob over kv bytes",
        "blob loaded",
        "context pushed",
        "context conflict",
        "patch applied",
        "patch refused",
        "events full",
        "card moved",
        "card relinked",
        "dedup duplicate",
        "idem replayed",
        "idem in progress",
        "idem mismatch",
        "idem completed twice",
        "idem abandoned",
        "session used",
        "session missing",
        "session expired",
        "session exhausted",
        "location live",
        "pending evicted",
        "pending removed by timestamp",
        "snapshot stale",
        "execution state cleaned",
        "webhook processed",
        "webhook processed with eviction",
        "webhook duplicate",
        "webhook unknown card",
        "sweep hit its limit",
        "sweep removed",
        "reopened",
        "reopened after drop",
        "sweep all removed",
        "compacted",
    ];
    let mut seen: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut rng = Lcg(0x5eed);
    for _ in 0..80 {
        let ops: Vec<Op> = (0..100).map(|_| decode_op(&mut rng)).collect();
        let mut sut = Sut::in_memory();
        let mut model = Model::new();
        for op in &ops {
            let got = sut.step(op);
            assert_eq!(got, model.apply(op), "{op:?}");
            for e in events(op, &got) {
                *seen.entry(e).or_default() += 1;
            }
        }
    }
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|e| !seen.contains_key(e))
        .collect();
    assert!(
        missing.is_empty(),
        "never reached: {missing:?}; reached: {seen:?}"
    );
}
