//! Per-user pending ring buffers, execution snapshots with their tenant index, and
//! working memory.

use edgestate::{ExecutionCleanup, PendingCapture, PendingEntry, PendingId};

use super::*;

impl Model {
    pub(super) fn apply_queues(&mut self, op: &Op) -> Outcome {
        let now = self.now;
        match op {
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
                    .filter(|e| e.capture.created_at_s == CREATED_BASE_S + created)
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
                let mut snap = snapshot(*exec, *tenant, *seq, *state);
                if snap.timestamp_ms == 0 {
                    // An unstamped snapshot takes the store's clock.
                    snap.timestamp_ms = now;
                }
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

            _ => unreachable!("not a queue op: {op:?}"),
        }
    }

    pub(super) fn pending_add(&mut self, user: &str, capture: PendingCapture) -> PendingId {
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
}

fn pending_entry(seq: u64, r: &Rec<PendingCapture>) -> PendingEntry {
    PendingEntry {
        seq,
        capture: r.value.clone(),
        expires_at_ms: r.expires.unwrap_or(u64::MAX),
    }
}
