//! The operations of the whole-store model, the small alphabets they draw keys from, and
//! the inputs both sides build from an operation.

use edgestate::{
    ContextEvent, ExecutionSnapshot, ExecutionState, Expect, PaymentWebhook, PendingCapture,
    PendingLocation, SessionKeyData, UserContext,
};
use serde_json::{json, Value};

/// KV namespaces; `"blobs"` is the blob store's namespace, so KV bytes and JSON blobs
/// collide there on purpose.
pub const NAMESPACES: [&str; 3] = ["a", "b", "blobs"];
/// KV keys (several share prefixes, for listing).
pub const KEYS: [&str; 5] = ["k", "k1", "k2", "ka", "x"];
/// Prefixes for KV listing and prefix deletion.
pub const PREFIXES: [&str; 4] = ["", "k", "k1", "z"];
/// Blob keys; the first two are also KV keys of namespace `"blobs"`.
pub const BLOB_KEYS: [&str; 3] = ["k", "x", "bot/1"];
/// Users of contexts, cards, sessions, locations and pending captures.
pub const USERS: [&str; 3] = ["alice", "bob", "carol"];
/// Card fingerprints.
pub const FINGERPRINTS: [&str; 3] = ["fp1", "fp2", "fp3"];
/// Card tails; the last one is invalid.
pub const LAST4: [&str; 3] = ["4242", "0007", "42a4"];
/// Transaction ids, shared by dedup claims and webhooks.
pub const TXNS: [&str; 4] = ["t1", "t2", "t3", "t4"];
/// Idempotency keys.
pub const IDEM_KEYS: [&str; 2] = ["i1", "i2"];
/// Idempotency payload fingerprints.
pub const PAYLOADS: [&[u8]; 2] = [b"p1", b"p2"];
/// Merchants; the empty one is invalid input.
pub const MERCHANTS: [&str; 3] = ["m1", "m2", ""];
/// Execution ids.
pub const EXECS: [&str; 3] = ["e1", "e2", "e3"];
/// Tenants; the empty one is invalid input.
pub const TENANTS: [&str; 3] = ["acme", "globex", ""];
/// Working-memory keys; the empty one is invalid input.
pub const MEM_KEYS: [&str; 3] = ["m", "n", ""];
/// Snapshot states.
pub const STATES: [&str; 4] = ["pending", "running", "completed", "custom"];

/// The KV namespace of the `ByteStore` op (shared with KV ops on purpose).
pub const BYTE_NS: &str = "a";
/// The `ByteStore`'s TTL.
pub const BYTE_TTL_MS: u64 = 500;
/// The `ByteStore`'s limit on live keys.
pub const BYTE_MAX_ITEMS: usize = 3;

/// The bytes a KV put of `value` writes: the byte itself, or for the top few values a
/// large run of it (tens of KiB, over several pages), so that some commits are long.
pub fn kv_bytes(value: u8) -> Vec<u8> {
    match value {
        0..=249 => vec![value],
        _ => vec![value; usize::from(value - 249) * 12 * 1024],
    }
}

/// JSON values saved as blobs.
pub fn blob_value(i: usize) -> Value {
    match i {
        0 => json!(null),
        1 => json!(1),
        2 => json!({"a": [1, 2, {"b": "c"}]}),
        3 => json!("text"),
        _ => json!({"realised": 12.5, "halted": true}),
    }
}
/// How many blob values there are.
pub const BLOB_VALUES: usize = 5;

/// Context patches by path: some always valid, some valid only in some states, some
/// always refused.
pub const PATCHES: [(&str, &str); 15] = [
    ("vault.cred_balance", "7"),
    ("preferences.risk_tolerance", "\"aggressive\""),
    ("preferences.notifications.min_notify_amount", "5"),
    ("agent_memory.goal", "\"bike\""),
    ("agent_memory.plan", "{\"steps\": 1}"),
    ("agent_memory.plan.done", "true"),
    ("recent_events.0.summary", "\"edited\""),
    ("agent_memory", "{\"reset\": 1}"),
    ("preferences.risk_tolerence", "\"x\""),
    ("vault.cred_balance", "-1"),
    ("pubkey", "\"mallory\""),
    ("vault", "{\"cred_balance\": 1}"),
    ("agent_memory", "[1]"),
    ("recent_events.5", "null"),
    ("vault.active_positions", "70000"),
];

/// The JSON value of patch `i`.
pub fn patch_value(i: usize) -> Value {
    serde_json::from_str(PATCHES[i].1).unwrap_or(Value::Null)
}

/// What a KV update closure does with the live value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateAction {
    /// Writes the first byte + 1 (0 + 1 when absent).
    Increment,
    /// Returns `None`: deletes.
    Remove,
    /// Fails: nothing is written.
    Refuse,
}

/// One step of a run. Indices point into the alphabets above.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    KvPut {
        ns: usize,
        key: usize,
        value: u8,
        ttl: Option<u64>,
    },
    KvPutIf {
        ns: usize,
        key: usize,
        value: u8,
        ttl: Option<u64>,
        expect: Expect,
    },
    KvDelete {
        ns: usize,
        key: usize,
    },
    KvDeleteIf {
        ns: usize,
        key: usize,
        expect: Expect,
    },
    KvDeletePrefix {
        ns: usize,
        prefix: usize,
    },
    KvUpdate {
        ns: usize,
        key: usize,
        ttl: Option<u64>,
        action: UpdateAction,
    },
    KvGet {
        ns: usize,
        key: usize,
    },
    KvList {
        ns: usize,
        prefix: usize,
        limit: usize,
    },
    KvGetMany {
        ns: usize,
        keys: Vec<usize>,
    },

    BlobSave {
        key: usize,
        value: usize,
    },
    BlobLoad {
        key: usize,
    },
    BlobDelete {
        key: usize,
    },

    CtxFetch {
        user: usize,
    },
    CtxFetchMany {
        users: Vec<usize>,
    },
    CtxGetOrInit {
        user: usize,
    },
    /// Pushes a fresh document claiming `version` (0: "none stored").
    CtxPush {
        user: usize,
        version: u64,
        cred: u64,
    },
    CtxPatch {
        user: usize,
        patch: usize,
    },
    CtxPushEvent {
        user: usize,
        amount: u64,
    },
    CtxDelete {
        user: usize,
    },

    CardLink {
        fp: usize,
        user: usize,
        last4: usize,
    },
    CardUnlink {
        fp: usize,
    },
    CardLookup {
        fp: usize,
    },
    CardUserCards {
        user: usize,
    },

    DedupClaim {
        txn: usize,
        user: usize,
        amount: u64,
    },
    DedupIsProcessed {
        txn: usize,
    },
    DedupGet {
        txn: usize,
    },
    DedupForget {
        txn: usize,
    },

    IdemBegin {
        key: usize,
        payload: usize,
    },
    IdemComplete {
        key: usize,
        payload: usize,
        result: u8,
    },
    IdemAbandon {
        key: usize,
    },
    IdemGet {
        key: usize,
    },

    /// Stores a session whose own `expires_at` is `now_s + expires_in_s`.
    SessionStore {
        user: usize,
        expires_in_s: i64,
        max_actions: u32,
        actions_used: u32,
    },
    SessionGet {
        user: usize,
    },
    SessionUseAction {
        user: usize,
    },
    SessionInvalidate {
        user: usize,
    },

    LocCache {
        user: usize,
        merchant: usize,
    },
    LocGet {
        user: usize,
    },
    LocClear {
        user: usize,
    },

    PendingAdd {
        user: usize,
        amount: u64,
        created: i64,
    },
    PendingList {
        user: usize,
    },
    PendingCount {
        user: usize,
    },
    PendingGet {
        user: usize,
        seq: u64,
    },
    PendingRemove {
        user: usize,
        seq: u64,
    },
    PendingRemoveByTimestamp {
        user: usize,
        created: i64,
    },

    SnapSave {
        exec: usize,
        tenant: usize,
        seq: u64,
        state: usize,
    },
    SnapLoad {
        exec: usize,
    },
    SnapListByTenant {
        tenant: usize,
        limit: usize,
    },
    SnapDelete {
        exec: usize,
    },
    SnapDeleteExecutionState {
        exec: usize,
    },
    MemSet {
        exec: usize,
        key: usize,
        value: u8,
        ttl: Option<u64>,
    },
    MemGet {
        exec: usize,
        key: usize,
    },
    MemDelete {
        exec: usize,
        key: usize,
    },
    MemList {
        exec: usize,
    },

    Webhook {
        txn: usize,
        fp: usize,
        amount: u64,
        merchant: usize,
        named: bool,
    },

    /// `ByteStore::set` over KV namespace [`BYTE_NS`] with [`BYTE_TTL_MS`] and
    /// [`BYTE_MAX_ITEMS`] (a store-level call: not inside batches).
    ByteSet {
        key: usize,
        value: u8,
    },
    /// Physical record counts of every table.
    Stats,
    /// `Store::compact` (rewrites the file; no logical effect; not inside batches).
    Compact,
    /// `sweep_expired(limit)`.
    Sweep {
        limit: usize,
    },
    /// `sweep_all_expired(batch)`.
    SweepAll {
        batch: usize,
    },
    /// Data ops in one `Store::write`; with `fail` the closure then returns an error, so
    /// nothing of it may remain.
    Batch {
        ops: Vec<Op>,
        fail: bool,
    },
    /// `ManualClock::advance`.
    Advance {
        ms: u64,
    },
    /// Moves the clock back (`ManualClock::set_ms`): clock skew.
    Rewind {
        ms: u64,
    },
    /// Close the store and open the same file again (a no-op for in-memory stores).
    Reopen,
    /// Drop the last handle without `close` and open the file again (a no-op for
    /// in-memory stores).
    ReopenAfterDrop,
}

impl Op {
    /// Whether the op only reads (it can then be used to observe a state).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Op::KvGet { .. }
                | Op::KvList { .. }
                | Op::KvGetMany { .. }
                | Op::BlobLoad { .. }
                | Op::CtxFetch { .. }
                | Op::CtxFetchMany { .. }
                | Op::CardLookup { .. }
                | Op::CardUserCards { .. }
                | Op::DedupIsProcessed { .. }
                | Op::DedupGet { .. }
                | Op::IdemGet { .. }
                | Op::SessionGet { .. }
                | Op::LocGet { .. }
                | Op::PendingList { .. }
                | Op::PendingCount { .. }
                | Op::PendingGet { .. }
                | Op::SnapLoad { .. }
                | Op::SnapListByTenant { .. }
                | Op::MemGet { .. }
                | Op::MemList { .. }
                | Op::Stats
        )
    }
}

/// The reads that together show the whole observable state: every key of every alphabet,
/// every list, and the physical counts.
pub fn observation_ops() -> Vec<Op> {
    let all_keys: Vec<usize> = (0..KEYS.len()).collect();
    let mut ops = Vec::new();
    for ns in 0..NAMESPACES.len() {
        ops.push(Op::KvGetMany {
            ns,
            keys: all_keys.clone(),
        });
        ops.push(Op::KvList {
            ns,
            prefix: 0,
            limit: usize::MAX,
        });
    }
    for key in 0..BLOB_KEYS.len() {
        ops.push(Op::BlobLoad { key });
    }
    ops.push(Op::CtxFetchMany {
        users: (0..USERS.len()).collect(),
    });
    for fp in 0..FINGERPRINTS.len() {
        ops.push(Op::CardLookup { fp });
    }
    for txn in 0..TXNS.len() {
        ops.push(Op::DedupGet { txn });
    }
    for key in 0..IDEM_KEYS.len() {
        ops.push(Op::IdemGet { key });
    }
    for user in 0..USERS.len() {
        ops.push(Op::CardUserCards { user });
        ops.push(Op::SessionGet { user });
        ops.push(Op::LocGet { user });
        ops.push(Op::PendingList { user });
    }
    for exec in 0..EXECS.len() {
        ops.push(Op::SnapLoad { exec });
        ops.push(Op::MemList { exec });
        for key in 0..MEM_KEYS.len() - 1 {
            ops.push(Op::MemGet { exec, key });
        }
    }
    for tenant in 0..TENANTS.len() - 1 {
        ops.push(Op::SnapListByTenant {
            tenant,
            limit: usize::MAX,
        });
    }
    ops.push(Op::Stats);
    ops
}

// Inputs that both the model and the store build from an op.

/// Unix seconds of a ms instant, as the store computes them.
pub fn secs(now_ms: u64) -> i64 {
    i64::try_from(now_ms / 1000).unwrap_or(i64::MAX)
}

/// The document `CtxPush` pushes.
pub fn pushed_context(user: &str, version: u64, cred: u64) -> UserContext {
    let mut ctx = UserContext::new(user, 0);
    ctx.version = version;
    ctx.vault.cred_balance = cred;
    ctx.agent_memory.insert("pushed".into(), json!(cred));
    ctx
}

/// The event `CtxPushEvent` adds.
pub fn note_event(now_ms: u64, amount: u64) -> ContextEvent {
    ContextEvent {
        event_type: "note".into(),
        timestamp_s: secs(now_ms),
        summary: format!("note {amount}"),
        amount: Some(amount),
    }
}

/// The session `SessionStore` stores.
pub fn session_data(
    user: &str,
    now_ms: u64,
    expires_in_s: i64,
    max_actions: u32,
    actions_used: u32,
) -> SessionKeyData {
    SessionKeyData {
        key_pubkey: format!("sk-{user}"),
        vault_pubkey: "vault".into(),
        scopes: vec!["capture".into()],
        expires_at_s: secs(now_ms) + expires_in_s,
        created_at_s: secs(now_ms),
        max_actions,
        actions_used,
    }
}

/// The base of `created_at` of pending captures (seconds).
pub const CREATED_BASE_S: i64 = 1_700_000_000;

/// The capture `PendingAdd` adds.
pub fn capture(amount: u64, created: i64) -> PendingCapture {
    PendingCapture {
        merchant_id: "m1".into(),
        merchant_name: None,
        amount_cents: amount,
        card_last4: None,
        proof_data: Some("proof".into()),
        proof_type: None,
        location: Some(PendingLocation {
            latitude: 1.5,
            longitude: -2.25,
            accuracy_m: 3.0,
        }),
        created_at_s: CREATED_BASE_S + created,
        expires_at_s: CREATED_BASE_S + created + 60,
    }
}

/// The snapshot `SnapSave` saves.
pub fn snapshot(exec: usize, tenant: usize, seq: u64, state: usize) -> ExecutionSnapshot {
    let mut s = ExecutionSnapshot::new(
        EXECS[exec],
        TENANTS[tenant],
        ExecutionState::new(STATES[state]),
        seq,
    );
    s.timestamp_ms = seq * 10;
    s.user_id = seq.is_multiple_of(2).then(|| "alice".to_owned());
    s.current_step_id = Some(format!("step{seq}"));
    s.step_outputs.insert("s".into(), json!({"seq": seq}));
    s
}

/// The webhook `Webhook` delivers.
pub fn webhook(txn: usize, fp: usize, amount: u64, merchant: usize, named: bool) -> PaymentWebhook {
    PaymentWebhook {
        txn_id: TXNS[txn].into(),
        card_fingerprint: FINGERPRINTS[fp].into(),
        amount_cents: amount,
        merchant_id: MERCHANTS[merchant].into(),
        merchant_name: named.then(|| "Cafe".to_owned()),
        proof_data: None,
        proof_type: None,
        location: None,
    }
}
