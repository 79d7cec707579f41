//! The store side: runs workload ops against a real store, and reduces a store to the
//! same flat lines as the model.

use std::time::Duration;

use edgestate::{
    CardMapping, Error, ExecutionSnapshot, ManualClock, PaymentWebhook, PendingEntry,
    ProcessedTransaction, Result, SessionKeyData, Store, UserContext, WriteTx,
};

use crate::model::{CURSOR_KEY, HARNESS_NS};
use crate::model_agent::{idem_result, snapshot_of};
use crate::model_tables::{merchant_name, note, session_data};
use crate::render::{self, Flat};
use crate::workload::{
    bump_value, memory_value, parse_memory_value, txn_id, Counter, Op, Step, BYTE_NS, CARDS,
    CONFLICTS, EXECS, IDEMPOTENCY_KEYS, TENANTS, TXN_POOL, TYPED_NS, USERS,
};

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

fn write_cursor(tx: &WriteTx, cursor: u64) -> Result<()> {
    tx.kv()
        .put(HARNESS_NS, CURSOR_KEY, &cursor.to_le_bytes(), None)
        .map(|_| ())
}

/// The cursor stored in the file: how many ops its state reflects.
pub fn read_cursor(store: &Store) -> Result<u64> {
    let entry = store.kv().get(HARNESS_NS, CURSOR_KEY)?;
    Ok(entry.map_or(0, |e| {
        u64::from_le_bytes(e.value.as_slice().try_into().expect("8-byte cursor"))
    }))
}

fn bump(tx: &WriteTx, ns: &str, key: &str, ttl_ms: Option<u64>) -> Result<()> {
    tx.kv().update(ns, key, ttl(ttl_ms), |current| {
        Ok(bump_value(current.map(|e| e.value.as_slice())))
    })?;
    Ok(())
}

fn run_step(tx: &WriteTx, step: &Step, op_index: u64) -> Result<()> {
    let kv = tx.kv();
    match step {
        Step::Put {
            ns,
            key,
            value,
            ttl_ms,
        } => {
            kv.put(ns, key, value, ttl(*ttl_ms))?;
        }
        Step::PutIf {
            ns,
            key,
            value,
            expect,
            ttl_ms,
        } => match kv.put_if(ns, key, value, ttl(*ttl_ms), *expect) {
            Ok(_) => {}
            Err(Error::VersionConflict { .. }) => bump(tx, CONFLICTS.0, CONFLICTS.1, None)?,
            Err(e) => return Err(e),
        },
        Step::Bump { ns, key, ttl_ms } => bump(tx, ns, key, *ttl_ms)?,
        Step::TypedBump { key, ttl_ms } => {
            kv.update_value::<Counter, _>(TYPED_NS, key, ttl(*ttl_ms), |current| {
                Ok(Counter {
                    n: current.map_or(1, |c| c.n + 1),
                    last_op: op_index,
                })
            })?;
        }
        Step::Delete { ns, key } => {
            kv.delete(ns, key)?;
        }
        Step::DeletePrefix { ns, prefix } => {
            kv.delete_prefix(ns, prefix)?;
        }
        Step::CardLink {
            fingerprint,
            user,
            last4,
        } => {
            tx.cards().put(fingerprint, user, last4)?;
        }
        Step::CardUnlink { fingerprint } => {
            tx.cards().delete(fingerprint)?;
        }
        Step::Webhook {
            txn,
            fingerprint,
            amount_cents,
            merchant,
            named,
        } => {
            let id = txn_id(*txn);
            tx.process_webhook(&PaymentWebhook {
                txn_id: id.clone(),
                card_fingerprint: (*fingerprint).to_owned(),
                amount_cents: *amount_cents,
                merchant_id: (*merchant).to_owned(),
                merchant_name: named.then(|| merchant_name(merchant)),
                proof_data: Some(id),
                proof_type: Some("receipt".to_owned()),
                location: None,
            })?;
        }
        Step::ContextNote { user } => {
            tx.contexts()
                .push_event(user, note(op_index, tx.now_ms()))?;
        }
        Step::ContextPatch { user, balance } => {
            match tx
                .contexts()
                .patch(user, "vault.cred_balance", serde_json::json!(balance))
            {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Step::PendingTake { user } => {
            let oldest = tx.pending().list(user)?.last().map(|e| e.seq);
            if let Some(seq) = oldest {
                tx.pending().delete(user, seq)?;
            }
        }
        Step::SessionStore {
            user,
            lifetime_s,
            max_actions,
        } => {
            let data = session_data(user, op_index, *lifetime_s, *max_actions, tx.now_ms());
            tx.sessions().put(user, &data)?;
        }
        Step::SessionUse { user } => match tx.sessions().use_action(user) {
            Ok(_) | Err(Error::SessionRefused { .. }) => {}
            Err(e) => return Err(e),
        },
        Step::SessionInvalidate { user } => {
            tx.sessions().delete(user)?;
        }
        Step::SnapshotSave {
            exec,
            tenant,
            sequence,
        } => {
            let snap = snapshot_of(exec, tenant, *sequence, op_index, tx.now_ms());
            // A stale save writes nothing, so the transaction may go on.
            match tx.snapshots().put(&snap) {
                Ok(_) | Err(Error::StaleSnapshot { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Step::MemorySet { exec, key, ttl_ms } => {
            let value = memory_value(op_index, ttl_ms.map(|t| tx.now_ms() + t));
            tx.memory().put(exec, key, &value, ttl(*ttl_ms))?;
        }
        Step::MemoryDelete { exec, key } => {
            tx.memory().delete(exec, key)?;
        }
        Step::ExecCleanup { exec } => {
            tx.snapshots().delete_with_memory(exec)?;
        }
        Step::IdemBegin { key, payload } => {
            // A refusal writes nothing, so the transaction may go on.
            match tx.idempotency().begin(key, payload.as_bytes()) {
                Ok(_)
                | Err(Error::IdempotencyMismatch { .. } | Error::IdempotencyInProgress { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Step::IdemComplete { key, payload } => {
            match tx
                .idempotency()
                .complete(key, payload.as_bytes(), &idem_result(op_index))
            {
                Ok(_) | Err(Error::IdempotencyMismatch { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Step::IdemAbandon { key } => {
            tx.idempotency().abandon(key)?;
        }
        Step::LocationCache { user, merchant } => {
            tx.location().put(user, merchant)?;
        }
        Step::LocationClear { user } => {
            tx.location().delete(user)?;
        }
    }
    Ok(())
}

/// The error a doomed transaction returns to roll itself back.
fn doomed() -> Error {
    Error::NotFound {
        table: "crash-harness",
        key: "doomed on purpose".into(),
    }
}

/// Runs op `i`; when this returns, the cursor reads `i + 1` (durably, with
/// `Durability::Immediate`).
pub fn run_op(store: &Store, op: &Op, i: u64) -> Result<()> {
    let in_one_tx = |steps: &[Step]| {
        store.write(|tx| {
            for s in steps {
                run_step(tx, s, i)?;
            }
            write_cursor(tx, i + 1)
        })
    };
    match op {
        Op::Tx(steps) => return in_one_tx(steps),
        Op::Doomed(steps) => {
            let outcome = store.write(|tx| {
                for s in steps {
                    run_step(tx, s, i)?;
                }
                write_cursor(tx, i + 1)?;
                Err::<(), _>(doomed())
            });
            match outcome {
                Err(Error::NotFound {
                    table: "crash-harness",
                    ..
                }) => {}
                Err(e) => return Err(e),
                Ok(()) => unreachable!("a doomed transaction returns an error"),
            }
        }
        Op::Sweep => {
            store.sweep_expired(usize::MAX)?;
        }
        Op::SweepBatched { batch } => {
            store.sweep_all_expired(*batch)?;
        }
        Op::Compact => {
            store.compact()?;
        }
    }
    store.write(|tx| write_cursor(tx, i + 1))
}

/// What a store holds, as typed records (for invariants) and flat lines (to compare
/// with the model).
#[derive(Debug, Default)]
pub struct Dump {
    pub flat: Flat,
    pub cards: Vec<CardMapping>,
    /// Each user's cards by the reverse index.
    pub user_cards: Vec<(String, Vec<CardMapping>)>,
    pub claims: Vec<ProcessedTransaction>,
    pub contexts: Vec<UserContext>,
    pub sessions: Vec<(String, SessionKeyData)>,
    /// Each user's pending captures, newest first.
    pub pending: Vec<(String, Vec<PendingEntry>)>,
    pub snapshots: Vec<ExecutionSnapshot>,
    /// Each tenant's execution ids by the tenant index.
    pub tenant_index: Vec<(String, Vec<String>)>,
    /// (exec, key, value) of every working-memory record.
    pub memory: Vec<(String, String, Vec<u8>)>,
}

/// Everything visible at `at` (0: every physical record, since nothing has expired at
/// the epoch), from one snapshot. Moves `clock` to `at`.
pub fn dump(store: &Store, clock: &ManualClock, at: u64) -> Result<Dump> {
    clock.set_ms(at);
    store.read(|tx| {
        let mut d = Dump::default();
        for ns in BYTE_NS.iter().chain(&[TYPED_NS, HARNESS_NS]) {
            for e in tx.kv().list(ns, "")? {
                d.flat
                    .extend([render::kv(ns, &e.key, &e.value, e.version, e.expires_at_ms)]);
            }
        }
        for fp in CARDS {
            if let Some(c) = tx.cards().get(fp)? {
                d.flat.extend([render::card(&c)]);
                d.cards.push(c);
            }
        }
        for user in USERS {
            let cards = tx.cards().list(user)?;
            if !cards.is_empty() {
                let fps: Vec<String> = cards.iter().map(|c| c.fingerprint.clone()).collect();
                d.flat.extend([render::user_cards(user, &fps)]);
            }
            d.user_cards.push((user.to_owned(), cards));
            if let Some(c) = tx.contexts().get(user)? {
                d.flat.extend([render::context(&c)]);
                d.contexts.push(c);
            }
            if let Some(s) = tx.sessions().get(user)? {
                d.flat.extend([render::session(user, &s)]);
                d.sessions.push((user.to_owned(), s));
            }
            let entries = tx.pending().list(user)?;
            for e in &entries {
                d.flat.extend([render::pending(user, e)]);
            }
            d.pending.push((user.to_owned(), entries));
        }
        for exec in EXECS {
            if let Some(s) = tx.snapshots().get(exec)? {
                d.flat.extend([render::snapshot(&s)]);
                d.snapshots.push(s);
            }
            for key in tx.memory().list(exec)? {
                let value = tx.memory().get(exec, &key)?.unwrap_or_default();
                let expiry = parse_memory_value(&value).and_then(|(_, at)| at);
                d.flat.extend([render::memory(exec, &key, &value, expiry)]);
                d.memory.push((exec.to_owned(), key, value));
            }
        }
        for tenant in TENANTS {
            let execs = tx.snapshots().list_up_to(tenant, usize::MAX)?;
            if !execs.is_empty() {
                d.flat.extend([render::tenant_index(tenant, &execs)]);
            }
            d.tenant_index.push((tenant.to_owned(), execs));
        }
        for key in IDEMPOTENCY_KEYS {
            if let Some(r) = tx.idempotency().get(key)? {
                let expiry = r.expires_at_ms.unwrap_or(u64::MAX);
                d.flat.extend([render::idempotency(
                    key,
                    &r.payload_fingerprint,
                    &r.state,
                    expiry,
                )]);
            }
        }
        for user in USERS {
            if let Some(m) = tx.location().get(user)? {
                d.flat.extend([render::location(
                    user,
                    &m.merchant_id,
                    m.entered_at_ms,
                    m.expires_at_ms,
                )]);
            }
        }
        for n in 0..TXN_POOL {
            if let Some(c) = tx.dedup().get(&txn_id(n))? {
                d.flat.extend([render::claim(&c)]);
                d.claims.push(c);
            }
        }
        Ok(d)
    })
}
