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
    Begin, CardMapping, Claim, ContextBatch, ContextEvent, CurrentMerchant, ExecutionCleanup,
    ExecutionSnapshot, Expect, IdempotencyRecord, IdempotencyState, KvEntry, LinkOutcome,
    PendingCapture, PendingEntry, PendingId, ProcessedTransaction, SessionKeyData, SessionRefusal,
    UserContext, WebhookOutcome,
};
use serde_json::Value;

use super::ops::*;
use super::*;

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
        let now = self.now;
        match op {
            Op::KvPut {
                ns,
                key,
                value,
                ttl,
            } => self.kv_put(NAMESPACES[*ns], KEYS[*key], vec![*value], *ttl, Expect::Any),
            Op::KvPutIf {
                ns,
                key,
                value,
                ttl,
                expect,
            } => self.kv_put(NAMESPACES[*ns], KEYS[*key], vec![*value], *ttl, *expect),
            Op::KvDelete { ns, key } => Outcome::Bool(
                remove(&mut self.kv, &pair(NAMESPACES[*ns], KEYS[*key]), now).is_some(),
            ),
            Op::KvDeleteIf { ns, key, expect } => {
                let (ns, key) = (NAMESPACES[*ns], KEYS[*key]);
                let k = pair(ns, key);
                let actual = live(&self.kv, &k, now).map(|r| r.version);
                match check(expect, actual) {
                    Ok(()) => Outcome::Bool(remove(&mut self.kv, &k, now).is_some()),
                    Err(()) => err(conflict(
                        "edgestate.kv",
                        format!("{ns}/{key}"),
                        *expect,
                        actual,
                    )),
                }
            }
            Op::KvDeletePrefix { ns, prefix } => {
                let ns = NAMESPACES[*ns];
                let doomed: Vec<Pair> = self
                    .kv
                    .keys()
                    .filter(|(n, k)| n == ns && k.starts_with(PREFIXES[*prefix]))
                    .cloned()
                    .collect();
                let live = doomed
                    .iter()
                    .filter(|k| remove(&mut self.kv, k, now).is_some())
                    .count();
                Outcome::Count(live)
            }
            Op::KvUpdate {
                ns,
                key,
                ttl,
                action,
            } => {
                let k = pair(NAMESPACES[*ns], KEYS[*key]);
                match action {
                    UpdateAction::Refuse => invalid("update"),
                    UpdateAction::Remove => {
                        self.kv.remove(&k);
                        Outcome::MaybeVersion(None)
                    }
                    UpdateAction::Increment => {
                        let first = live(&self.kv, &k, now)
                            .and_then(|r| r.value.bytes.first().copied())
                            .unwrap_or(0);
                        let value = KvValue {
                            json: false,
                            bytes: vec![first.wrapping_add(1)],
                        };
                        let expires = ttl.map(|t| now + t);
                        Outcome::MaybeVersion(Some(put(&mut self.kv, &k, value, expires, now)))
                    }
                }
            }
            Op::KvGet { ns, key } => Outcome::Kv(self.kv_entry(NAMESPACES[*ns], KEYS[*key])),
            Op::KvList { ns, prefix, limit } => {
                let ns = NAMESPACES[*ns];
                let entries = self
                    .kv
                    .iter()
                    .filter(|((n, k), r)| {
                        n == ns && k.starts_with(PREFIXES[*prefix]) && r.is_live(now)
                    })
                    .map(|((_, k), r)| kv_entry(k, r))
                    .take(*limit)
                    .collect();
                Outcome::KvList(entries)
            }
            Op::KvGetMany { ns, keys } => Outcome::KvMany(
                keys.iter()
                    .map(|k| self.kv_entry(NAMESPACES[*ns], KEYS[*k]))
                    .collect(),
            ),

            Op::BlobSave { key, value } => {
                let bytes = serde_json::to_vec(&blob_value(*value)).expect("json");
                let k = pair(edgestate::BLOB_NAMESPACE, BLOB_KEYS[*key]);
                put(&mut self.kv, &k, KvValue { json: true, bytes }, None, now);
                Outcome::Unit
            }
            Op::BlobLoad { key } => {
                let k = pair(edgestate::BLOB_NAMESPACE, BLOB_KEYS[*key]);
                match live(&self.kv, &k, now) {
                    None => Outcome::Blob(None),
                    Some(r) if r.value.json => Outcome::Blob(Some(
                        serde_json::from_slice::<Value>(&r.value.bytes).expect("json"),
                    )),
                    // Bytes are not a blob; postcard cannot read a `Value`.
                    Some(_) => err(ErrKind::Decode {
                        table: "edgestate.kv",
                        key: format!("{}/{}", k.0, k.1),
                    }),
                }
            }
            Op::BlobDelete { key } => {
                let k = pair(edgestate::BLOB_NAMESPACE, BLOB_KEYS[*key]);
                Outcome::Bool(remove(&mut self.kv, &k, now).is_some())
            }

            Op::CtxFetch { user } => Outcome::MaybeCtx(self.contexts.get(USERS[*user]).cloned()),
            Op::CtxFetchMany { users } => {
                let mut batch = ContextBatch::default();
                for u in users {
                    match self.contexts.get(USERS[*u]) {
                        Some(ctx) => batch.found.push(ctx.clone()),
                        None => batch.missing.push(USERS[*u].to_owned()),
                    }
                }
                Outcome::CtxBatch(batch)
            }
            Op::CtxGetOrInit { user } => {
                let user = USERS[*user];
                match self.contexts.get(user) {
                    Some(ctx) => Outcome::Ctx(ctx.clone()),
                    None => Outcome::Ctx(self.ctx_write(UserContext::new(user, now))),
                }
            }
            Op::CtxPush {
                user,
                version,
                cred,
            } => {
                let user = USERS[*user];
                let actual = self.contexts.get(user).map(|c| c.version);
                let ok = match version {
                    0 => actual.is_none(),
                    v => actual == Some(*v),
                };
                if ok {
                    Outcome::Ctx(self.ctx_write(pushed_context(user, *version, *cred)))
                } else {
                    err(ErrKind::Conflict {
                        table: "edgestate.contexts",
                        key: user.to_owned(),
                        expected: (*version != 0).then_some(*version),
                        actual,
                    })
                }
            }
            Op::CtxPatch { user, patch } => {
                let user = USERS[*user];
                let Some(mut ctx) = self.contexts.get(user).cloned() else {
                    return err(ErrKind::NotFound {
                        table: "edgestate.contexts",
                        key: user.to_owned(),
                    });
                };
                if apply_patch(&mut ctx, *patch) {
                    Outcome::Ctx(self.ctx_write(ctx))
                } else {
                    invalid(PATCHES[*patch].0)
                }
            }
            Op::CtxPushEvent { user, amount } => {
                Outcome::Ctx(self.push_event(USERS[*user], note_event(now, *amount)))
            }
            Op::CtxDelete { user } => Outcome::MaybeCtx(self.contexts.remove(USERS[*user])),

            Op::CardLink { fp, user, last4 } => {
                let (fp, user, last4) = (FINGERPRINTS[*fp], USERS[*user], LAST4[*last4]);
                if !(last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit())) {
                    return invalid("card_last4");
                }
                let mapping = CardMapping {
                    fingerprint: fp.to_owned(),
                    user_pubkey: user.to_owned(),
                    card_last4: last4.to_owned(),
                    linked_at: secs(now),
                };
                let previous = self.cards.insert(fp.to_owned(), mapping.clone());
                if let Some(old) = &previous {
                    self.user_cards.remove(&pair(&old.user_pubkey, fp));
                }
                self.user_cards.insert(pair(user, fp));
                Outcome::Link(LinkOutcome {
                    mapping,
                    previous_owner: previous
                        .as_ref()
                        .filter(|old| old.user_pubkey != user)
                        .map(|old| old.user_pubkey.clone()),
                    relinked: previous.is_some_and(|old| old.user_pubkey == user),
                })
            }
            Op::CardUnlink { fp } => {
                let fp = FINGERPRINTS[*fp];
                let old = self.cards.remove(fp);
                if let Some(old) = &old {
                    self.user_cards.remove(&pair(&old.user_pubkey, fp));
                }
                Outcome::Card(old)
            }
            Op::CardLookup { fp } => Outcome::Card(self.cards.get(FINGERPRINTS[*fp]).cloned()),
            Op::CardUserCards { user } => {
                let user = USERS[*user];
                Outcome::Cards(
                    self.user_cards
                        .iter()
                        .filter(|(u, _)| u == user)
                        .map(|(_, fp)| self.cards[fp].clone())
                        .collect(),
                )
            }

            Op::DedupClaim { txn, user, amount } => {
                Outcome::Claim(self.claim(TXNS[*txn], USERS[*user], *amount))
            }
            Op::DedupIsProcessed { txn } => {
                Outcome::Bool(live(&self.dedup, &TXNS[*txn].to_owned(), now).is_some())
            }
            Op::DedupGet { txn } => Outcome::Processed(
                live(&self.dedup, &TXNS[*txn].to_owned(), now).map(|r| r.value.clone()),
            ),
            Op::DedupForget { txn } => {
                Outcome::Bool(remove(&mut self.dedup, &TXNS[*txn].to_owned(), now).is_some())
            }

            Op::IdemBegin { key, payload } => {
                let (key, fp) = (IDEM_KEYS[*key].to_owned(), PAYLOADS[*payload]);
                match live(&self.idempotency, &key, now).map(|r| &r.value) {
                    Some((stored_fp, _)) if stored_fp != fp => err(ErrKind::IdemMismatch { key }),
                    Some((
                        _,
                        IdempotencyState::InProgress {
                            lease_expires_at_ms,
                            ..
                        },
                    )) => err(ErrKind::IdemInProgress {
                        key,
                        lease_expires_at_ms: *lease_expires_at_ms,
                    }),
                    Some((_, IdempotencyState::Completed { result, .. })) => {
                        Outcome::Begin(Begin::Completed(result.clone()))
                    }
                    None => {
                        let lease = now + IDEMPOTENCY_LEASE_MS;
                        let state = IdempotencyState::InProgress {
                            started_at_ms: now,
                            lease_expires_at_ms: lease,
                        };
                        put(
                            &mut self.idempotency,
                            &key,
                            (fp.to_vec(), state),
                            Some(lease),
                            now,
                        );
                        Outcome::Begin(Begin::Started {
                            lease_expires_at_ms: lease,
                        })
                    }
                }
            }
            Op::IdemComplete {
                key,
                payload,
                result,
            } => {
                let (key, fp) = (IDEM_KEYS[*key].to_owned(), PAYLOADS[*payload]);
                match live(&self.idempotency, &key, now).map(|r| &r.value) {
                    Some((stored_fp, _)) if stored_fp != fp => err(ErrKind::IdemMismatch { key }),
                    Some((_, IdempotencyState::Completed { .. })) => Outcome::Bool(false),
                    _ => {
                        let state = IdempotencyState::Completed {
                            result: vec![*result],
                            completed_at_ms: now,
                        };
                        let expires = now + IDEMPOTENCY_TTL_MS;
                        put(
                            &mut self.idempotency,
                            &key,
                            (fp.to_vec(), state),
                            Some(expires),
                            now,
                        );
                        Outcome::Bool(true)
                    }
                }
            }
            Op::IdemAbandon { key } => {
                let key = IDEM_KEYS[*key].to_owned();
                let in_progress = matches!(
                    live(&self.idempotency, &key, now).map(|r| &r.value.1),
                    Some(IdempotencyState::InProgress { .. })
                );
                if in_progress {
                    self.idempotency.remove(&key);
                }
                Outcome::Bool(in_progress)
            }
            Op::IdemGet { key } => {
                let key = IDEM_KEYS[*key].to_owned();
                Outcome::Idem(
                    live(&self.idempotency, &key, now).map(|r| IdempotencyRecord {
                        key: key.clone(),
                        payload_fingerprint: r.value.0.clone(),
                        state: r.value.1.clone(),
                        expires_at_ms: r.expires,
                    }),
                )
            }

            Op::SessionStore {
                user,
                expires_in_s,
                max_actions,
                actions_used,
            } => {
                let user = USERS[*user];
                let session = session_data(user, now, *expires_in_s, *max_actions, *actions_used);
                let own = u64::try_from(session.expires_at)
                    .ok()
                    .filter(|s| *s > 0)
                    .map(|s| s * 1000);
                match own.filter(|at| *at > now) {
                    None => invalid("expires_at"),
                    Some(own) => {
                        let expires = own.min(now + SESSION_TTL_MS);
                        put(
                            &mut self.sessions,
                            &user.to_owned(),
                            session,
                            Some(expires),
                            now,
                        );
                        Outcome::Unit
                    }
                }
            }
            Op::SessionGet { user } => Outcome::Session(
                live(&self.sessions, &USERS[*user].to_owned(), now).map(|r| r.value.clone()),
            ),
            Op::SessionUseAction { user } => {
                let user = USERS[*user].to_owned();
                let refuse = |reason| {
                    err(ErrKind::SessionRefused {
                        user: user.clone(),
                        reason,
                    })
                };
                match self.sessions.get(&user) {
                    None => refuse(SessionRefusal::Missing),
                    Some(r) if !r.is_live(now) => refuse(SessionRefusal::Expired),
                    Some(r) if r.value.actions_used >= r.value.max_actions => {
                        refuse(SessionRefusal::Exhausted)
                    }
                    Some(r) => {
                        let mut session = r.value.clone();
                        session.actions_used += 1;
                        let expires = r.expires;
                        put(&mut self.sessions, &user, session.clone(), expires, now);
                        Outcome::SessionUsed(session)
                    }
                }
            }
            Op::SessionInvalidate { user } => {
                Outcome::Bool(remove(&mut self.sessions, &USERS[*user].to_owned(), now).is_some())
            }

            Op::LocCache { user, merchant } => {
                let merchant = MERCHANTS[*merchant];
                if merchant.is_empty() {
                    return invalid("merchant_id");
                }
                let expires = now + LOCATION_TTL_MS;
                let user = USERS[*user].to_owned();
                put(
                    &mut self.locations,
                    &user,
                    (merchant.to_owned(), now),
                    Some(expires),
                    now,
                );
                Outcome::Merchant(CurrentMerchant {
                    merchant_id: merchant.to_owned(),
                    entered_at_ms: now,
                    expires_at_ms: expires,
                })
            }
            Op::LocGet { user } => Outcome::MaybeMerchant(
                live(&self.locations, &USERS[*user].to_owned(), now).map(|r| CurrentMerchant {
                    merchant_id: r.value.0.clone(),
                    entered_at_ms: r.value.1,
                    expires_at_ms: r.expires.unwrap_or(u64::MAX),
                }),
            ),
            Op::LocClear { user } => {
                Outcome::Bool(remove(&mut self.locations, &USERS[*user].to_owned(), now).is_some())
            }

            Op::PendingAdd {
                user,
                amount,
                created,
            } => Outcome::PendingId(self.pending_add(USERS[*user], capture(*amount, *created))),
            Op::PendingList { user } => Outcome::Entries(self.pending_live(USERS[*user])),
            Op::PendingCount { user } => Outcome::Count(self.pending_live(USERS[*user]).len()),
            Op::PendingGet { user, seq } => Outcome::Entry(
                live(&self.pending, &(USERS[*user].to_owned(), *seq), now)
                    .map(|r| pending_entry(*seq, r)),
            ),
            Op::PendingRemove { user, seq } => Outcome::Capture(
                remove(&mut self.pending, &(USERS[*user].to_owned(), *seq), now).map(|r| r.value),
            ),
            Op::PendingRemoveByTimestamp { user, created } => {
                let user = USERS[*user];
                let matching: Vec<PendingEntry> = self
                    .pending_live(user)
                    .into_iter()
                    .filter(|e| e.capture.created_at == CREATED_BASE_S + created)
                    .collect();
                for e in &matching {
                    self.pending.remove(&(user.to_owned(), e.seq));
                }
                Outcome::Entries(matching)
            }

            Op::SnapSave {
                exec,
                tenant,
                seq,
                state,
            } => {
                let snap = snapshot(*exec, *tenant, *seq, *state);
                if snap.tenant_id.is_empty() {
                    return invalid("tenant_id");
                }
                let exec = snap.execution_id.clone();
                if let Some(current) = self.snapshots.get(&exec) {
                    if snap.sequence_number < current.value.sequence_number {
                        return err(ErrKind::Stale {
                            key: exec,
                            stored: current.value.sequence_number,
                            offered: snap.sequence_number,
                        });
                    }
                    self.by_tenant
                        .remove(&pair(&current.value.tenant_id, &exec));
                }
                self.by_tenant.insert(pair(&snap.tenant_id, &exec));
                Outcome::Version(put(&mut self.snapshots, &exec, snap, None, now))
            }
            Op::SnapLoad { exec } => {
                Outcome::Snapshot(self.snapshots.get(EXECS[*exec]).map(|r| r.value.clone()))
            }
            Op::SnapListByTenant { tenant, limit } => {
                let tenant = TENANTS[*tenant];
                if tenant.is_empty() {
                    return invalid("tenant_id");
                }
                Outcome::Ids(
                    self.by_tenant
                        .iter()
                        .filter(|(t, _)| t == tenant)
                        .map(|(_, e)| e.clone())
                        .take(*limit)
                        .collect(),
                )
            }
            Op::SnapDelete { exec } => Outcome::Bool(self.snap_delete(EXECS[*exec])),
            Op::SnapDeleteExecutionState { exec } => {
                let exec = EXECS[*exec];
                let snapshot_removed = self.snap_delete(exec);
                let keys: Vec<Pair> = self
                    .memory
                    .keys()
                    .filter(|(e, _)| e == exec)
                    .cloned()
                    .collect();
                let memory_keys_removed = keys
                    .iter()
                    .filter(|k| remove(&mut self.memory, k, now).is_some())
                    .count();
                Outcome::Cleanup(ExecutionCleanup {
                    snapshot_removed,
                    memory_keys_removed,
                })
            }
            Op::MemSet {
                exec,
                key,
                value,
                ttl,
            } => {
                let key = MEM_KEYS[*key];
                if key.is_empty() {
                    return invalid("key");
                }
                let expires = ttl.map(|t| now + t);
                Outcome::Version(put(
                    &mut self.memory,
                    &pair(EXECS[*exec], key),
                    vec![*value],
                    expires,
                    now,
                ))
            }
            Op::MemGet { exec, key } => {
                let key = MEM_KEYS[*key];
                if key.is_empty() {
                    return invalid("key");
                }
                Outcome::Bytes(
                    live(&self.memory, &pair(EXECS[*exec], key), now).map(|r| r.value.clone()),
                )
            }
            Op::MemDelete { exec, key } => {
                let key = MEM_KEYS[*key];
                if key.is_empty() {
                    return invalid("key");
                }
                Outcome::Bool(remove(&mut self.memory, &pair(EXECS[*exec], key), now).is_some())
            }
            Op::MemList { exec } => {
                let exec = EXECS[*exec];
                Outcome::Ids(
                    self.memory
                        .iter()
                        .filter(|((e, _), r)| e == exec && r.is_live(now))
                        .map(|((_, k), _)| k.clone())
                        .collect(),
                )
            }

            Op::Webhook {
                txn,
                fp,
                amount,
                merchant,
                named,
            } => Outcome::Webhook(match self.webhook(*txn, *fp, *amount, *merchant, *named) {
                Ok(outcome) => outcome,
                Err(kind) => return err(kind),
            }),

            Op::ByteSet { key, value } => {
                let k = pair(BYTE_NS, KEYS[*key]);
                let live_keys = self
                    .kv
                    .iter()
                    .filter(|((n, _), r)| n == BYTE_NS && r.is_live(now))
                    .count();
                if live(&self.kv, &k, now).is_none() && live_keys >= BYTE_MAX_ITEMS {
                    return invalid("max_items");
                }
                let value = KvValue {
                    json: false,
                    bytes: vec![*value],
                };
                put(&mut self.kv, &k, value, Some(now + BYTE_TTL_MS), now);
                Outcome::Unit
            }
            Op::Stats => Outcome::Stats(self.physical_counts()),
            Op::Sweep { limit } => Outcome::Count(self.sweep(*limit)),
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
            Op::Reopen => Outcome::Unit,
        }
    }

    fn kv_put(
        &mut self,
        ns: &str,
        key: &str,
        bytes: Vec<u8>,
        ttl: Option<u64>,
        expect: Expect,
    ) -> Outcome {
        let k = pair(ns, key);
        let actual = live(&self.kv, &k, self.now).map(|r| r.version);
        if check(&expect, actual).is_err() {
            return err(conflict(
                "edgestate.kv",
                format!("{ns}/{key}"),
                expect,
                actual,
            ));
        }
        let expires = ttl.map(|t| self.now + t);
        let value = KvValue { json: false, bytes };
        Outcome::Version(put(&mut self.kv, &k, value, expires, self.now))
    }

    fn kv_entry(&self, ns: &str, key: &str) -> Option<KvEntry> {
        live(&self.kv, &pair(ns, key), self.now).map(|r| kv_entry(key, r))
    }

    /// Stores a context with the next version, stamped now.
    fn ctx_write(&mut self, mut ctx: UserContext) -> UserContext {
        ctx.version = self.contexts.get(&ctx.pubkey).map_or(1, |c| c.version + 1);
        ctx.updated_at = secs(self.now);
        self.contexts.insert(ctx.pubkey.clone(), ctx.clone());
        ctx
    }

    fn push_event(&mut self, user: &str, event: ContextEvent) -> UserContext {
        let mut ctx = self
            .contexts
            .get(user)
            .cloned()
            .unwrap_or_else(|| UserContext::new(user, self.now));
        ctx.recent_events.insert(0, event);
        ctx.recent_events.truncate(MAX_RECENT_EVENTS);
        self.ctx_write(ctx)
    }

    fn claim(&mut self, txn: &str, user: &str, amount: u64) -> Claim {
        let key = txn.to_owned();
        if let Some(first) = live(&self.dedup, &key, self.now) {
            return Claim::Duplicate(first.value.clone());
        }
        let record = ProcessedTransaction {
            txn_id: key.clone(),
            user_pubkey: user.to_owned(),
            amount,
            processed_at: secs(self.now),
        };
        put(
            &mut self.dedup,
            &key,
            record,
            Some(self.now + DEDUP_TTL_MS),
            self.now,
        );
        Claim::New
    }

    fn pending_add(&mut self, user: &str, capture: PendingCapture) -> PendingId {
        let seq = *self.pending_seq.get(user).unwrap_or(&1);
        self.pending_seq.insert(user.to_owned(), seq + 1);
        let expires = self.now + PENDING_TTL_MS;
        put(
            &mut self.pending,
            &(user.to_owned(), seq),
            capture,
            Some(expires),
            self.now,
        );
        let rows: Vec<u64> = self
            .pending
            .keys()
            .filter(|(u, _)| u == user)
            .map(|(_, s)| *s)
            .collect();
        let excess = rows.len().saturating_sub(PENDING_CAPACITY);
        let evicted: Vec<u64> = rows[..excess].to_vec();
        for s in &evicted {
            self.pending.remove(&(user.to_owned(), *s));
        }
        PendingId {
            seq,
            expires_at_ms: expires,
            evicted,
        }
    }

    /// The user's live entries, newest first.
    fn pending_live(&self, user: &str) -> Vec<PendingEntry> {
        self.pending
            .iter()
            .rev()
            .filter(|((u, _), r)| u == user && r.is_live(self.now))
            .map(|((_, seq), r)| pending_entry(*seq, r))
            .collect()
    }

    fn snap_delete(&mut self, exec: &str) -> bool {
        match self.snapshots.remove(exec) {
            Some(old) => {
                self.by_tenant.remove(&pair(&old.value.tenant_id, exec));
                true
            }
            None => false,
        }
    }

    fn webhook(
        &mut self,
        txn: usize,
        fp: usize,
        amount: u64,
        merchant: usize,
        named: bool,
    ) -> Result<WebhookOutcome, ErrKind> {
        let merchant_id = MERCHANTS[merchant];
        if merchant_id.is_empty() {
            return Err(ErrKind::Invalid {
                field: "merchant_id".into(),
            });
        }
        let Some(card) = self.cards.get(FINGERPRINTS[fp]).cloned() else {
            return Ok(WebhookOutcome::UnknownCard);
        };
        let user = card.user_pubkey;
        if let Claim::Duplicate(first) = self.claim(TXNS[txn], &user, amount) {
            return Ok(WebhookOutcome::Duplicate(first));
        }
        let now_s = secs(self.now);
        let merchant_name = named.then(|| "Cafe".to_owned());
        let shown_merchant = merchant_name
            .clone()
            .unwrap_or_else(|| merchant_id.to_owned());
        let capture = PendingCapture {
            merchant_id: merchant_id.to_owned(),
            merchant_name,
            amount_cents: amount,
            card_last4: Some(card.card_last4),
            proof_data: None,
            proof_type: None,
            location: None,
            created_at: now_s,
            expires_at: now_s + (PENDING_TTL_MS / 1000) as i64,
        };
        let id = self.pending_add(&user, capture);
        let ctx = self.push_event(
            &user,
            ContextEvent {
                event_type: "capture_pending".into(),
                timestamp: now_s,
                summary: format!("{amount} cents at {shown_merchant} (txn {})", TXNS[txn]),
                amount: Some(amount),
            },
        );
        Ok(WebhookOutcome::Processed {
            user,
            pending_seq: id.seq,
            evicted: id.evicted,
            context_version: ctx.version,
        })
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
            self.snapshots.len(),
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

/// `Expect::check`: whether a record at version `actual` (`None`: no live record)
/// meets the expectation.
fn check(expect: &Expect, actual: Option<u64>) -> Result<(), ()> {
    let ok = match expect {
        Expect::Any => true,
        Expect::Absent => actual.is_none(),
        Expect::Version(v) => actual == Some(*v),
    };
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

fn conflict(table: &'static str, key: String, expect: Expect, actual: Option<u64>) -> ErrKind {
    ErrKind::Conflict {
        table,
        key,
        expected: match expect {
            Expect::Version(v) => Some(v),
            Expect::Any | Expect::Absent => None,
        },
        actual,
    }
}

fn kv_entry(key: &str, r: &Rec<KvValue>) -> KvEntry {
    KvEntry {
        key: key.to_owned(),
        value: r.value.bytes.clone(),
        version: r.version,
        expires_at_ms: r.expires,
    }
}

fn pending_entry(seq: u64, r: &Rec<PendingCapture>) -> PendingEntry {
    PendingEntry {
        seq,
        capture: r.value.clone(),
        expires_at_ms: r.expires.unwrap_or(u64::MAX),
    }
}

/// Patch `i` of [`PATCHES`], by hand: returns false (and leaves `ctx` alone) where the
/// store must refuse it.
fn apply_patch(ctx: &mut UserContext, i: usize) -> bool {
    let value = patch_value(i);
    match i {
        0 => ctx.vault.cred_balance = 7,
        1 => ctx.preferences.risk_tolerance = "aggressive".into(),
        2 => ctx.preferences.notifications.min_notify_amount = 5,
        3 | 4 => {
            let key = if i == 3 { "goal" } else { "plan" };
            ctx.agent_memory.insert(key.into(), value);
        }
        5 => match ctx.agent_memory.get_mut("plan") {
            Some(Value::Object(plan)) => {
                plan.insert("done".into(), value);
            }
            _ => return false,
        },
        6 => match ctx.recent_events.first_mut() {
            Some(event) => event.summary = "edited".into(),
            None => return false,
        },
        7 => {
            let Value::Object(map) = value else {
                unreachable!("patch 7 is an object")
            };
            ctx.agent_memory = map.into_iter().collect();
        }
        _ => return false,
    }
    true
}
