//! The model of the agent-runtime tables: execution snapshots with their tenant index,
//! working memory, idempotency keys and the location cache, holding physical records
//! (expired ones included until swept).

use std::collections::BTreeMap;

use edgestate::{ExecutionSnapshot, ExecutionState, IdempotencyState};

use crate::render::{self, Flat};
use crate::workload::{
    memory_value, Step, IDEMPOTENCY_LEASE_MS, IDEMPOTENCY_TTL_MS, LOCATION_TTL_MS,
};

/// How often each agent-table path ran in the model.
#[derive(Debug, Clone, Default)]
pub struct AgentCoverage {
    pub snapshots_saved: u64,
    pub snapshots_stale: u64,
    pub snapshot_tenant_moves: u64,
    pub cleanups_with_memory: u64,
    pub idem_started: u64,
    pub idem_lease_takeovers: u64,
    pub idem_replayed: u64,
    pub idem_refused: u64,
    pub idem_completed: u64,
    pub idem_abandoned: u64,
    pub locations_cached: u64,
}

#[derive(Debug, Clone)]
struct Idem {
    payload: String,
    state: IdempotencyState,
    expires_at: u64,
}

#[derive(Debug, Clone, Default)]
pub struct AgentTables {
    pub coverage: AgentCoverage,
    snapshots: BTreeMap<String, ExecutionSnapshot>,
    /// (exec, key) -> (value, expiry).
    memory: BTreeMap<(String, String), (Vec<u8>, Option<u64>)>,
    idempotency: BTreeMap<String, Idem>,
    /// user -> (merchant, entered at, expiry).
    locations: BTreeMap<String, (String, u64, u64)>,
    /// exec -> (how many cleanups so far, op index of the last one).
    cleanups: BTreeMap<String, (u64, u64)>,
}

/// The snapshot a [`Step::SnapshotSave`] of op `op_index` offers.
pub fn snapshot_of(
    exec: &str,
    tenant: &str,
    sequence: u64,
    op_index: u64,
    now: u64,
) -> ExecutionSnapshot {
    let mut s = ExecutionSnapshot::new(exec, tenant, state_of(op_index), sequence);
    s.user_id = (!op_index.is_multiple_of(3)).then(|| format!("user-{}", op_index % 5));
    s.current_step_id = Some(format!("step-{op_index}"));
    s.step_outputs
        .insert("op".to_owned(), serde_json::json!({ "op": op_index }));
    s.variables.insert("now".to_owned(), serde_json::json!(now));
    s.timestamp_ms = now;
    s
}

fn state_of(op_index: u64) -> ExecutionState {
    match op_index % 4 {
        0 => ExecutionState::RUNNING,
        1 => ExecutionState::PAUSED,
        2 => ExecutionState::COMPLETED,
        _ => ExecutionState::new("custom"),
    }
}

/// The result a [`Step::IdemComplete`] of op `op_index` stores.
pub fn idem_result(op_index: u64) -> Vec<u8> {
    format!("result of op {op_index}").into_bytes()
}

impl AgentTables {
    /// Cleanups of `exec` so far, and the op index of the last one.
    pub fn cleanups(&self, exec: &str) -> (u64, Option<u64>) {
        self.cleanups
            .get(exec)
            .map_or((0, None), |(n, op)| (*n, Some(*op)))
    }

    fn live_idem(&self, key: &str, now: u64) -> Option<&Idem> {
        self.idempotency.get(key).filter(|r| r.expires_at > now)
    }

    /// Applies an agent-table step; returns `false` for other steps.
    pub fn step(&mut self, step: &Step, op_index: u64, now: u64) -> bool {
        match step {
            Step::SnapshotSave {
                exec,
                tenant,
                sequence,
            } => {
                if let Some(stored) = self.snapshots.get(*exec) {
                    if *sequence < stored.sequence_number {
                        self.coverage.snapshots_stale += 1;
                        return true;
                    }
                    if stored.tenant_id != *tenant {
                        self.coverage.snapshot_tenant_moves += 1;
                    }
                }
                self.coverage.snapshots_saved += 1;
                self.snapshots.insert(
                    (*exec).to_owned(),
                    snapshot_of(exec, tenant, *sequence, op_index, now),
                );
            }
            Step::MemorySet { exec, key, ttl_ms } => {
                let expiry = ttl_ms.map(|t| now + t);
                self.memory.insert(
                    ((*exec).to_owned(), (*key).to_owned()),
                    (memory_value(op_index, expiry), expiry),
                );
            }
            Step::MemoryDelete { exec, key } => {
                self.memory.remove(&((*exec).to_owned(), (*key).to_owned()));
            }
            Step::ExecCleanup { exec } => {
                self.snapshots.remove(*exec);
                let before = self.memory.len();
                self.memory.retain(|(e, _), _| e != exec);
                if self.memory.len() != before {
                    self.coverage.cleanups_with_memory += 1;
                }
                let entry = self.cleanups.entry((*exec).to_owned()).or_default();
                entry.0 += 1;
                entry.1 = op_index;
            }
            Step::IdemBegin { key, payload } => match self.live_idem(key, now) {
                Some(r) if r.payload != *payload => self.coverage.idem_refused += 1,
                Some(r) => match r.state {
                    IdempotencyState::InProgress { .. } => self.coverage.idem_refused += 1,
                    IdempotencyState::Completed { .. } => self.coverage.idem_replayed += 1,
                },
                None => {
                    if self.idempotency.contains_key(*key) {
                        self.coverage.idem_lease_takeovers += 1;
                    }
                    self.coverage.idem_started += 1;
                    let lease = now + IDEMPOTENCY_LEASE_MS;
                    self.idempotency.insert(
                        (*key).to_owned(),
                        Idem {
                            payload: (*payload).to_owned(),
                            state: IdempotencyState::InProgress {
                                started_at_ms: now,
                                lease_expires_at_ms: lease,
                            },
                            expires_at: lease,
                        },
                    );
                }
            },
            Step::IdemComplete { key, payload } => {
                let refused = self.live_idem(key, now).is_some_and(|r| {
                    r.payload != *payload || matches!(r.state, IdempotencyState::Completed { .. })
                });
                if refused {
                    self.coverage.idem_refused += 1;
                } else {
                    self.coverage.idem_completed += 1;
                    self.idempotency.insert(
                        (*key).to_owned(),
                        Idem {
                            payload: (*payload).to_owned(),
                            state: IdempotencyState::Completed {
                                result: idem_result(op_index),
                                completed_at_ms: now,
                            },
                            expires_at: now + IDEMPOTENCY_TTL_MS,
                        },
                    );
                }
            }
            Step::IdemAbandon { key } => {
                let in_progress = self
                    .live_idem(key, now)
                    .is_some_and(|r| matches!(r.state, IdempotencyState::InProgress { .. }));
                if in_progress {
                    self.coverage.idem_abandoned += 1;
                    self.idempotency.remove(*key);
                }
            }
            Step::LocationCache { user, merchant } => {
                self.coverage.locations_cached += 1;
                self.locations.insert(
                    (*user).to_owned(),
                    ((*merchant).to_owned(), now, now + LOCATION_TTL_MS),
                );
            }
            Step::LocationClear { user } => {
                self.locations.remove(*user);
            }
            _ => return false,
        }
        true
    }

    /// Removes every record due at `now`.
    pub fn sweep_all(&mut self, now: u64) {
        self.memory
            .retain(|_, (_, exp)| exp.is_none_or(|at| at > now));
        self.idempotency.retain(|_, r| r.expires_at > now);
        self.locations.retain(|_, (_, _, exp)| *exp > now);
    }

    /// Adds the lines of the records visible at `at` (`None`: every physical record).
    pub fn render_into(&self, out: &mut Flat, at: Option<u64>) {
        let live = |exp: u64| at.is_none_or(|t| exp > t);
        let mut by_tenant: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for s in self.snapshots.values() {
            out.extend([render::snapshot(s)]);
            by_tenant
                .entry(s.tenant_id.as_str())
                .or_default()
                .push(s.execution_id.clone());
        }
        for (tenant, execs) in by_tenant {
            out.extend([render::tenant_index(tenant, &execs)]);
        }
        for ((exec, key), (value, exp)) in &self.memory {
            if exp.is_none_or(live) {
                out.extend([render::memory(exec, key, value, *exp)]);
            }
        }
        for (key, r) in &self.idempotency {
            if live(r.expires_at) {
                out.extend([render::idempotency(
                    key,
                    r.payload.as_bytes(),
                    &r.state,
                    r.expires_at,
                )]);
            }
        }
        for (user, (merchant, entered, exp)) in &self.locations {
            if live(*exp) {
                out.extend([render::location(user, merchant, *entered, *exp)]);
            }
        }
    }
}
