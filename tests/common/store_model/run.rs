//! The store side: each op through the public API. Data ops go through the one-call
//! `Store` handles at top level and through the `WriteTx` handles inside a batch; the
//! method names are the same on both, so one macro serves both.

use std::time::Duration;

use edgestate::{Error, Store, WriteTx};

use super::ops::*;
use super::{ErrKind, Outcome, TABLES};

fn out<T>(r: edgestate::Result<T>, f: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => f(v),
        Err(e) => Outcome::Err(ErrKind::from(e)),
    }
}

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

fn update_closure(
    action: UpdateAction,
) -> impl FnOnce(Option<&edgestate::KvEntry>) -> edgestate::Result<Option<Vec<u8>>> {
    move |current| match action {
        UpdateAction::Increment => {
            let first = current.and_then(|e| e.value.first().copied()).unwrap_or(0);
            Ok(Some(vec![first.wrapping_add(1)]))
        }
        UpdateAction::Remove => Ok(None),
        UpdateAction::Refuse => Err(Error::invalid("update", "refused by the closure")),
    }
}

/// Runs a data op on `$s` (a `&Store` or a `&WriteTx`) at `$now` (ms).
macro_rules! data_op {
    ($s:expr, $now:expr, $op:expr) => {{
        let s = $s;
        let now: u64 = $now;
        match $op {
            Op::KvPut {
                ns,
                key,
                value,
                ttl: t,
            } => out(
                s.kv()
                    .put(NAMESPACES[*ns], KEYS[*key], &kv_bytes(*value), ttl(*t)),
                Outcome::Version,
            ),
            Op::KvPutIf {
                ns,
                key,
                value,
                ttl: t,
                expect,
            } => out(
                s.kv().put_if(
                    NAMESPACES[*ns],
                    KEYS[*key],
                    &kv_bytes(*value),
                    ttl(*t),
                    *expect,
                ),
                Outcome::Version,
            ),
            Op::KvDelete { ns, key } => {
                out(s.kv().delete(NAMESPACES[*ns], KEYS[*key]), Outcome::Bool)
            }
            Op::KvDeleteIf { ns, key, expect } => out(
                s.kv().delete_if(NAMESPACES[*ns], KEYS[*key], *expect),
                Outcome::Bool,
            ),
            Op::KvDeletePrefix { ns, prefix } => out(
                s.kv().delete_prefix(NAMESPACES[*ns], PREFIXES[*prefix]),
                Outcome::Count,
            ),
            Op::KvUpdate {
                ns,
                key,
                ttl: t,
                action,
            } => out(
                s.kv().update(
                    NAMESPACES[*ns],
                    KEYS[*key],
                    ttl(*t),
                    update_closure(*action),
                ),
                Outcome::MaybeVersion,
            ),
            Op::KvGet { ns, key } => out(s.kv().get(NAMESPACES[*ns], KEYS[*key]), Outcome::Kv),
            Op::KvList { ns, prefix, limit } => out(
                s.kv()
                    .list_up_to(NAMESPACES[*ns], PREFIXES[*prefix], *limit),
                Outcome::KvList,
            ),
            Op::KvGetMany { ns, keys } => {
                let keys: Vec<&str> = keys.iter().map(|k| KEYS[*k]).collect();
                out(s.kv().get_many(NAMESPACES[*ns], &keys), Outcome::KvMany)
            }

            Op::BlobSave { key, value } => {
                out(s.blobs().put(BLOB_KEYS[*key], &blob_value(*value)), |()| {
                    Outcome::Unit
                })
            }
            Op::BlobLoad { key } => out(s.blobs().get(BLOB_KEYS[*key]), Outcome::Blob),
            Op::BlobDelete { key } => out(s.blobs().delete(BLOB_KEYS[*key]), Outcome::Bool),

            Op::CtxFetch { user } => out(s.contexts().get(USERS[*user]), Outcome::MaybeCtx),
            Op::CtxFetchMany { users } => {
                let users: Vec<&str> = users.iter().map(|u| USERS[*u]).collect();
                out(s.contexts().get_many(&users), Outcome::CtxBatch)
            }
            Op::CtxGetOrInit { user } => out(s.contexts().get_or_init(USERS[*user]), Outcome::Ctx),
            Op::CtxPush {
                user,
                version,
                cred,
            } => out(
                s.contexts()
                    .put(pushed_context(USERS[*user], *version, *cred)),
                Outcome::Ctx,
            ),
            Op::CtxPatch { user, patch } => out(
                s.contexts()
                    .patch(USERS[*user], PATCHES[*patch].0, patch_value(*patch)),
                Outcome::Ctx,
            ),
            Op::CtxPushEvent { user, amount } => out(
                s.contexts()
                    .push_event(USERS[*user], note_event(now, *amount)),
                Outcome::Ctx,
            ),
            Op::CtxDelete { user } => out(s.contexts().delete(USERS[*user]), Outcome::MaybeCtx),

            Op::CardLink { fp, user, last4 } => out(
                s.cards()
                    .put(FINGERPRINTS[*fp], USERS[*user], LAST4[*last4]),
                Outcome::Link,
            ),
            Op::CardUnlink { fp } => out(s.cards().delete(FINGERPRINTS[*fp]), Outcome::Card),
            Op::CardLookup { fp } => out(s.cards().get(FINGERPRINTS[*fp]), Outcome::Card),
            Op::CardUserCards { user } => out(s.cards().list(USERS[*user]), Outcome::Cards),

            Op::DedupClaim { txn, user, amount } => out(
                s.dedup().claim(TXNS[*txn], USERS[*user], *amount),
                Outcome::Claim,
            ),
            Op::DedupIsProcessed { txn } => out(s.dedup().contains(TXNS[*txn]), Outcome::Bool),
            Op::DedupGet { txn } => out(s.dedup().get(TXNS[*txn]), Outcome::Processed),
            Op::DedupForget { txn } => out(s.dedup().delete(TXNS[*txn]), Outcome::Bool),

            Op::IdemBegin { key, payload } => out(
                s.idempotency().begin(IDEM_KEYS[*key], PAYLOADS[*payload]),
                Outcome::Begin,
            ),
            Op::IdemComplete {
                key,
                payload,
                result,
            } => out(
                s.idempotency()
                    .complete(IDEM_KEYS[*key], PAYLOADS[*payload], &[*result]),
                Outcome::Bool,
            ),
            Op::IdemAbandon { key } => out(s.idempotency().abandon(IDEM_KEYS[*key]), Outcome::Bool),
            Op::IdemGet { key } => out(s.idempotency().get(IDEM_KEYS[*key]), Outcome::Idem),

            Op::SessionStore {
                user,
                expires_in_s,
                max_actions,
                actions_used,
            } => out(
                s.sessions().put(
                    USERS[*user],
                    &session_data(
                        USERS[*user],
                        now,
                        *expires_in_s,
                        *max_actions,
                        *actions_used,
                    ),
                ),
                |()| Outcome::Unit,
            ),
            Op::SessionGet { user } => out(s.sessions().get(USERS[*user]), Outcome::Session),
            Op::SessionUseAction { user } => {
                out(s.sessions().use_action(USERS[*user]), Outcome::SessionUsed)
            }
            Op::SessionInvalidate { user } => out(s.sessions().delete(USERS[*user]), Outcome::Bool),

            Op::LocCache { user, merchant } => out(
                s.location().put(USERS[*user], MERCHANTS[*merchant]),
                Outcome::Merchant,
            ),
            Op::LocGet { user } => out(s.location().get(USERS[*user]), Outcome::MaybeMerchant),
            Op::LocClear { user } => out(s.location().delete(USERS[*user]), Outcome::Bool),

            Op::PendingAdd {
                user,
                amount,
                created,
            } => out(
                s.pending().push(USERS[*user], &capture(*amount, *created)),
                Outcome::PendingId,
            ),
            Op::PendingList { user } => out(s.pending().list(USERS[*user]), Outcome::Entries),
            Op::PendingCount { user } => out(s.pending().count(USERS[*user]), Outcome::Count),
            Op::PendingGet { user, seq } => {
                out(s.pending().get(USERS[*user], *seq), Outcome::Entry)
            }
            Op::PendingRemove { user, seq } => {
                out(s.pending().delete(USERS[*user], *seq), Outcome::Capture)
            }
            Op::PendingRemoveByTimestamp { user, created } => out(
                s.pending()
                    .delete_created_at(USERS[*user], CREATED_BASE_S + *created),
                Outcome::Entries,
            ),

            Op::SnapSave {
                exec,
                tenant,
                seq,
                state,
            } => out(
                s.snapshots().put(&snapshot(*exec, *tenant, *seq, *state)),
                Outcome::Version,
            ),
            Op::SnapLoad { exec } => out(s.snapshots().get(EXECS[*exec]), Outcome::Snapshot),
            Op::SnapListByTenant { tenant, limit } => out(
                s.snapshots().list_up_to(TENANTS[*tenant], *limit),
                Outcome::Ids,
            ),
            Op::SnapDelete { exec } => out(s.snapshots().delete(EXECS[*exec]), Outcome::Bool),
            Op::SnapDeleteExecutionState { exec } => out(
                s.snapshots().delete_with_memory(EXECS[*exec]),
                Outcome::Cleanup,
            ),
            Op::MemSet {
                exec,
                key,
                value,
                ttl: t,
            } => out(
                s.memory()
                    .put(EXECS[*exec], MEM_KEYS[*key], &[*value], ttl(*t)),
                Outcome::Version,
            ),
            Op::MemGet { exec, key } => {
                out(s.memory().get(EXECS[*exec], MEM_KEYS[*key]), Outcome::Bytes)
            }
            Op::MemDelete { exec, key } => out(
                s.memory().delete(EXECS[*exec], MEM_KEYS[*key]),
                Outcome::Bool,
            ),
            Op::MemList { exec } => out(s.memory().list(EXECS[*exec]), Outcome::Ids),

            Op::Webhook {
                txn,
                fp,
                amount,
                merchant,
                named,
            } => out(
                s.process_webhook(&webhook(*txn, *fp, *amount, *merchant, *named)),
                Outcome::Webhook,
            ),

            other => panic!("not a data op: {other:?}"),
        }
    }};
}

/// A data op inside a write transaction.
pub fn run_tx(tx: &WriteTx, op: &Op) -> Outcome {
    data_op!(tx, tx.now_ms(), op)
}

/// Why a batch's transaction ended without a commit.
enum BatchEnd {
    /// The batch asked to fail; its inner outcomes.
    Abort(Vec<Outcome>),
    /// An inner op met an I/O failure (fault injection): the batch gives up, as a caller
    /// propagating errors with `?` would.
    Failed(Box<Outcome>),
    Store(Error),
}

impl From<Error> for BatchEnd {
    fn from(e: Error) -> Self {
        BatchEnd::Store(e)
    }
}

/// Runs `op` on `store`. `Advance` and `Reopen` need the clock and the path: see
/// [`super::Sut::step`].
pub fn run(store: &Store, op: &Op) -> Outcome {
    match op {
        Op::Stats => out(store.stats(), |stats| {
            Outcome::Stats(
                TABLES
                    .iter()
                    .map(|t| {
                        (
                            *t,
                            edgestate::Table::from_name(t).map_or(u64::MAX, |t| stats.records(t)),
                        )
                    })
                    .collect(),
            )
        }),
        Op::Compact => out(store.compact(), |_| Outcome::Unit),
        Op::Sweep { limit } => out(store.sweep_expired(*limit), Outcome::Count),
        Op::SweepAll { batch } => out(store.sweep_all_expired(*batch), Outcome::Count),
        Op::ByteSet { key, value } => {
            let bytes = edgestate::compat::ByteStore::new(store.clone(), BYTE_NS)
                .expect("namespace")
                .with_ttl(Duration::from_millis(BYTE_TTL_MS))
                .with_max_items(BYTE_MAX_ITEMS);
            out(bytes.set(KEYS[*key], &[*value]), |()| Outcome::Unit)
        }
        Op::Batch { ops, fail } => {
            let result = store.write(|tx| {
                let mut outcomes = Vec::with_capacity(ops.len());
                for op in ops {
                    let outcome = run_tx(tx, op);
                    if let Outcome::Err(ErrKind::Storage { .. }) = outcome {
                        return Err(BatchEnd::Failed(Box::new(outcome)));
                    }
                    outcomes.push(outcome);
                }
                if *fail {
                    Err(BatchEnd::Abort(outcomes))
                } else {
                    Ok(outcomes)
                }
            });
            match result {
                Ok(outcomes) => Outcome::Many(outcomes),
                Err(BatchEnd::Abort(outcomes)) => Outcome::Aborted(outcomes),
                Err(BatchEnd::Failed(outcome)) => *outcome,
                Err(BatchEnd::Store(e)) => Outcome::Err(e.into()),
            }
        }
        Op::Advance { .. } | Op::Rewind { .. } | Op::Reopen | Op::ReopenAfterDrop => {
            panic!("{op:?} is not a store call; use Sut::step")
        }
        data => data_op!(store, edgestate::Clock::now_ms(&**store.clock()), data),
    }
}
