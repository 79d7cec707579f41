//! The workload: a pure function of (seed, op index). Op `i` runs at clock `time(i)` and
//! is one transaction (plus, for the kinds that need their own transactions, a separate
//! cursor commit). Table operations are added as new [`Step`] variants.

use edgestate::Expect;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// The clock of op 0.
pub const T0: u64 = 1_700_000_000_000;
/// Namespaces of raw byte records.
pub const BYTE_NS: [&str; 2] = ["a", "b"];
/// Namespace of typed (postcard) records, written only by [`Step::TypedBump`].
pub const TYPED_NS: &str = "typed";
pub const BYTE_KEYS: [&str; 7] = ["k0", "k1", "k2", "k3", "p/0", "p/1", "p/2"];
pub const TYPED_KEYS: [&str; 3] = ["t0", "t1", "t2"];
/// Where a failed compare-and-swap is counted, so conflicts leave a trace in the state.
pub const CONFLICTS: (&str, &str) = ("b", "conflicts");

pub const USERS: [&str; 3] = ["u1", "u2", "u3"];
pub const CARDS: [&str; 5] = ["fp1", "fp2", "fp3", "fp4", "fp5"];
pub const LAST4: [&str; 3] = ["4242", "0005", "9999"];
pub const MERCHANTS: [&str; 3] = ["m_cafe", "m_books", "m_fuel"];
/// Transaction ids are `tx0` .. `tx255`: fresh ones wrap around long after their
/// claims expired, and replays of recent ones must come back as duplicates.
pub const TXN_POOL: u64 = 256;

/// The table defaults of every store the harness opens: small rings and short TTLs, so
/// eviction, expiry and sweeps of every table happen within a few dozen ops.
pub fn configure(builder: edgestate::StoreBuilder) -> edgestate::StoreBuilder {
    builder
        .pending_capacity(PENDING_CAPACITY)
        .max_recent_events(MAX_RECENT_EVENTS)
        .dedup_ttl(std::time::Duration::from_millis(DEDUP_TTL_MS))
        .pending_ttl(std::time::Duration::from_millis(PENDING_TTL_MS))
        .session_ttl(std::time::Duration::from_millis(SESSION_TTL_MS))
        .location_ttl(std::time::Duration::from_millis(LOCATION_TTL_MS))
        .idempotency_lease(std::time::Duration::from_millis(IDEMPOTENCY_LEASE_MS))
        .idempotency_ttl(std::time::Duration::from_millis(IDEMPOTENCY_TTL_MS))
}
pub const PENDING_CAPACITY: usize = 4;
pub const MAX_RECENT_EVENTS: usize = 6;
/// Shorter than the dedup TTL, so a capture never outlives its claim.
pub const PENDING_TTL_MS: u64 = 6 * 3_600_000;
pub const DEDUP_TTL_MS: u64 = 12 * 3_600_000;
pub const SESSION_TTL_MS: u64 = 4 * 3_600_000;
pub const LOCATION_TTL_MS: u64 = 30 * 60_000;
/// A few ops long, so retries meet both held and run-out leases.
pub const IDEMPOTENCY_LEASE_MS: u64 = 20_000;
pub const IDEMPOTENCY_TTL_MS: u64 = 2 * 3_600_000;

pub const EXECS: [&str; 3] = ["e1", "e2", "e3"];
pub const TENANTS: [&str; 2] = ["acme", "globex"];
pub const MEMORY_KEYS: [&str; 3] = ["m0", "m1", "m2"];
pub const IDEMPOTENCY_KEYS: [&str; 4] = ["r0", "r1", "r2", "r3"];
/// Two payload fingerprints, so a key is sometimes reused for another request.
pub const PAYLOADS: [&str; 2] = ["pA", "pB"];

/// The working-memory value a [`Step::MemorySet`] of op `op_index` writes: it names
/// its op (so a value that outlives a later cleanup of its execution is caught) and
/// its expiry (which the API does not show, but the expiry index counts).
pub fn memory_value(op_index: u64, expires_at_ms: Option<u64>) -> Vec<u8> {
    match expires_at_ms {
        Some(at) => format!("op {op_index} until {at}"),
        None => format!("op {op_index} until -"),
    }
    .into_bytes()
}

/// The op and the expiry a [`memory_value`] names.
pub fn parse_memory_value(value: &[u8]) -> Option<(u64, Option<u64>)> {
    let s = std::str::from_utf8(value).ok()?;
    let (op, until) = s.strip_prefix("op ")?.split_once(" until ")?;
    let until = match until {
        "-" => None,
        at => Some(at.parse().ok()?),
    };
    Some((op.parse().ok()?, until))
}

pub fn txn_id(n: u64) -> String {
    format!("tx{n}")
}

/// The typed value of [`Step::TypedBump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub n: u64,
    pub last_op: u64,
}

/// One effect inside a transaction.
#[derive(Debug, Clone)]
pub enum Step {
    Put {
        ns: &'static str,
        key: &'static str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    },
    /// Compare-and-swap; a conflict bumps [`CONFLICTS`] instead, in the same transaction.
    PutIf {
        ns: &'static str,
        key: &'static str,
        value: Vec<u8>,
        expect: Expect,
        ttl_ms: Option<u64>,
    },
    /// `kv().update` closure: see [`bump_value`] (sometimes deletes).
    Bump {
        ns: &'static str,
        key: &'static str,
        ttl_ms: Option<u64>,
    },
    /// `kv().update_value::<Counter>`.
    TypedBump {
        key: &'static str,
        ttl_ms: Option<u64>,
    },
    Delete {
        ns: &'static str,
        key: &'static str,
    },
    DeletePrefix {
        ns: &'static str,
        prefix: &'static str,
    },
    CardLink {
        fingerprint: &'static str,
        user: &'static str,
        last4: &'static str,
    },
    CardUnlink {
        fingerprint: &'static str,
    },
    /// `tx.process_webhook`: card lookup, dedup claim, pending capture and context
    /// event, all in this transaction (nothing on a duplicate or an unknown card).
    Webhook {
        txn: u64,
        fingerprint: &'static str,
        amount_cents: u64,
        merchant: &'static str,
        named: bool,
    },
    /// A context event that is not a capture (pushes captures out of the bounded list).
    ContextNote {
        user: &'static str,
    },
    /// `contexts().patch(user, "vault.cred_balance", n)`; no context: nothing.
    ContextPatch {
        user: &'static str,
        balance: u64,
    },
    /// Removes the user's oldest live pending capture, as processing it would.
    PendingTake {
        user: &'static str,
    },
    SessionStore {
        user: &'static str,
        /// The session's own lifetime in seconds (may exceed the store's session TTL).
        lifetime_s: i64,
        max_actions: u32,
    },
    /// `use_action`; a refusal writes nothing and the transaction goes on.
    SessionUse {
        user: &'static str,
    },
    SessionInvalidate {
        user: &'static str,
    },
    /// `snapshots().save`; a stale sequence number is refused, writing nothing, and the
    /// transaction goes on.
    SnapshotSave {
        exec: &'static str,
        tenant: &'static str,
        sequence: u64,
    },
    /// `snapshots().set_memory` of [`memory_value`].
    MemorySet {
        exec: &'static str,
        key: &'static str,
        ttl_ms: Option<u64>,
    },
    MemoryDelete {
        exec: &'static str,
        key: &'static str,
    },
    /// `snapshots().delete_execution_state`: snapshot, index entry, all memory.
    ExecCleanup {
        exec: &'static str,
    },
    /// `idempotency().begin`; a mismatch or a held lease writes nothing.
    IdemBegin {
        key: &'static str,
        payload: &'static str,
    },
    /// `idempotency().complete` with a result naming the op; a mismatch writes nothing.
    IdemComplete {
        key: &'static str,
        payload: &'static str,
    },
    IdemAbandon {
        key: &'static str,
    },
    LocationCache {
        user: &'static str,
        merchant: &'static str,
    },
    LocationClear {
        user: &'static str,
    },
}

/// One numbered operation of the workload.
#[derive(Debug, Clone)]
pub enum Op {
    /// The steps and the cursor, in one `store.write`.
    Tx(Vec<Step>),
    /// The steps, then an error: the transaction rolls back. The cursor follows in a
    /// transaction of its own.
    Doomed(Vec<Step>),
    /// `store.sweep_expired(usize::MAX)` (one transaction), then the cursor.
    Sweep,
    /// `store.sweep_all_expired(batch)` (several transactions), then the cursor.
    SweepBatched { batch: usize },
    /// `store.compact()` (rewrites the file; no logical effect), then the cursor.
    Compact,
}

impl Op {
    /// Sweeps run in transactions of their own before the cursor moves, so a crash can
    /// leave some expired records removed while the cursor still points at the sweep.
    pub fn is_sweep(&self) -> bool {
        matches!(self, Op::Sweep | Op::SweepBatched { .. })
    }
}

/// What the `Bump` closure makes of the current value: its first byte + 1, and a
/// delete (`None`) whenever that reaches a multiple of 7.
pub fn bump_value(current: Option<&[u8]>) -> Option<Vec<u8>> {
    let next = current
        .and_then(|v| v.first().copied())
        .unwrap_or(0)
        .wrapping_add(1);
    (!next.is_multiple_of(7)).then(|| vec![next])
}

/// The deterministic operation sequence of one seed.
#[derive(Debug, Clone)]
pub struct Workload {
    seed: u64,
    times: Vec<u64>,
}

const PURPOSE_OP: u64 = 1;
const PURPOSE_TIME: u64 = 2;

impl Workload {
    pub fn new(seed: u64) -> Self {
        Workload {
            seed,
            times: Vec::new(),
        }
    }

    /// The clock of op `i`: mostly small steps, sometimes jumps of minutes or hours so
    /// that records expire between ops.
    pub fn time(&mut self, i: u64) -> u64 {
        while self.times.len() as u64 <= i {
            let j = self.times.len() as u64;
            let mut r = Rng::derive(self.seed, PURPOSE_TIME, j);
            let delta = match r.below(100) {
                0..=84 => r.below(2_000),
                85..=94 => r.range(60_000, 20 * 60_000),
                _ => r.range(3_600_000, 4 * 3_600_000),
            };
            let prev = self.times.last().copied().unwrap_or(T0);
            self.times.push(prev + delta);
        }
        self.times[i as usize]
    }

    pub fn op(&self, i: u64) -> Op {
        let mut r = Rng::derive(self.seed, PURPOSE_OP, i);
        match r.below(100) {
            0..=77 => Op::Tx(steps(&mut r, i)),
            78..=79 => Op::Compact,
            80..=84 => Op::Doomed(steps(&mut r, i)),
            85..=92 => Op::Sweep,
            _ => Op::SweepBatched {
                batch: r.range(1, 4) as usize,
            },
        }
    }
}

fn steps(r: &mut Rng, i: u64) -> Vec<Step> {
    let n = if r.percent(60) { 1 } else { r.range(2, 7) };
    (0..n)
        .map(|_| match r.below(100) {
            0..=41 => kv_step(r),
            42..=76 => table_step(r, i),
            _ => agent_step(r, i),
        })
        .collect()
}

fn ttl(r: &mut Rng) -> Option<u64> {
    match r.below(100) {
        0..=49 => None,
        50..=64 => Some(r.range(500, 5_000)),
        65..=89 => Some(r.range(10_000, 10 * 60_000)),
        _ => Some(r.range(3_600_000, 3 * 3_600_000)),
    }
}

/// Mostly small values, some of a few pages, a few large ones (long commits widen the
/// window in which a kill lands mid-commit).
fn value(r: &mut Rng) -> Vec<u8> {
    let len = match r.below(100) {
        0..=69 => r.range(0, 64),
        70..=94 => r.range(64, 8_192),
        _ => r.range(8_192, 120_000),
    } as usize;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&r.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn kv_step(r: &mut Rng) -> Step {
    let ns = BYTE_NS[r.index(BYTE_NS.len())];
    let key = BYTE_KEYS[r.index(BYTE_KEYS.len())];
    match r.below(100) {
        0..=34 => Step::Put {
            ns,
            key,
            value: value(r),
            ttl_ms: ttl(r),
        },
        35..=49 => Step::PutIf {
            ns,
            key,
            value: value(r),
            expect: match r.below(10) {
                0..=2 => Expect::Absent,
                3..=7 => Expect::Version(r.range(1, 5)),
                _ => Expect::Any,
            },
            ttl_ms: ttl(r),
        },
        50..=64 => Step::Bump {
            ns,
            key,
            ttl_ms: ttl(r),
        },
        65..=74 => Step::TypedBump {
            key: TYPED_KEYS[r.index(TYPED_KEYS.len())],
            ttl_ms: ttl(r),
        },
        75..=91 => {
            if r.percent(20) {
                Step::Delete {
                    ns: TYPED_NS,
                    key: TYPED_KEYS[r.index(TYPED_KEYS.len())],
                }
            } else {
                Step::Delete { ns, key }
            }
        }
        _ => Step::DeletePrefix {
            ns: if r.percent(20) { TYPED_NS } else { ns },
            prefix: ["p/", "k", "t", ""][r.index(4)],
        },
    }
}

fn table_step(r: &mut Rng, i: u64) -> Step {
    let user = USERS[r.index(USERS.len())];
    let fingerprint = CARDS[r.index(CARDS.len())];
    match r.below(100) {
        0..=39 => Step::Webhook {
            // Mostly fresh ids, sometimes a replay of a recent one.
            txn: if r.percent(70) {
                i % TXN_POOL
            } else {
                i.saturating_sub(r.range(1, 8)) % TXN_POOL
            },
            fingerprint,
            amount_cents: r.range(1, 100_000),
            merchant: MERCHANTS[r.index(MERCHANTS.len())],
            named: r.percent(50),
        },
        40..=51 => Step::CardLink {
            fingerprint,
            user,
            last4: LAST4[r.index(LAST4.len())],
        },
        52..=56 => Step::CardUnlink { fingerprint },
        57..=63 => Step::ContextNote { user },
        64..=69 => Step::ContextPatch {
            user,
            balance: r.below(1_000_000),
        },
        70..=79 => Step::PendingTake { user },
        80..=85 => Step::SessionStore {
            user,
            lifetime_s: r.range(60, 6 * 3_600) as i64,
            max_actions: r.range(1, 5) as u32,
        },
        86..=96 => Step::SessionUse { user },
        _ => Step::SessionInvalidate { user },
    }
}

/// Snapshots, working memory, idempotency keys and the location cache.
fn agent_step(r: &mut Rng, i: u64) -> Step {
    let exec = EXECS[r.index(EXECS.len())];
    let key = IDEMPOTENCY_KEYS[r.index(IDEMPOTENCY_KEYS.len())];
    let payload = PAYLOADS[if r.percent(85) { 0 } else { 1 }];
    let user = USERS[r.index(USERS.len())];
    match r.below(100) {
        0..=19 => Step::SnapshotSave {
            exec,
            tenant: TENANTS[if r.percent(80) { 0 } else { 1 }],
            // Mostly ahead of any earlier save, sometimes behind a recent one (stale),
            // sometimes equal to it.
            sequence: match r.below(10) {
                0..=6 => i * 4 + r.below(4),
                7 => i * 4,
                _ => (i * 4).saturating_sub(r.range(1, 400)),
            },
        },
        20..=36 => Step::MemorySet {
            exec,
            key: MEMORY_KEYS[r.index(MEMORY_KEYS.len())],
            ttl_ms: ttl(r),
        },
        37..=41 => Step::MemoryDelete {
            exec,
            key: MEMORY_KEYS[r.index(MEMORY_KEYS.len())],
        },
        42..=47 => Step::ExecCleanup { exec },
        48..=62 => Step::IdemBegin { key, payload },
        63..=74 => Step::IdemComplete { key, payload },
        75..=79 => Step::IdemAbandon { key },
        80..=93 => Step::LocationCache {
            user,
            merchant: MERCHANTS[r.index(MERCHANTS.len())],
        },
        _ => Step::LocationClear { user },
    }
}
