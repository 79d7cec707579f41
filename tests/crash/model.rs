//! The model: a plain in-memory re-implementation of the workload's effects, holding
//! the physical records (expired ones included until swept), and the flat rendering
//! that both the model and a real store are reduced to for comparison.

use std::collections::BTreeMap;

use edgestate::Expect;

use crate::model_agent::AgentTables;
use crate::model_tables::Tables;
use crate::render::{self, Flat};
use crate::workload::{bump_value, Counter, Op, Step, CONFLICTS, TYPED_NS};

/// Namespace and key of the cursor record: the number of ops the state reflects.
pub const HARNESS_NS: &str = "harness";
pub const CURSOR_KEY: &str = "cursor";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    value: Vec<u8>,
    version: u64,
    expires_at: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Ops applied so far.
    pub cursor: u64,
    kv: BTreeMap<(String, String), Rec>,
    pub tables: Tables,
    pub agent: AgentTables,
    /// Ops applied, by kind: transactions, rolled back, sweeps, batched sweeps, compactions.
    pub op_kinds: [u64; 5],
}

fn expiry(now: u64, ttl_ms: Option<u64>) -> Option<u64> {
    ttl_ms.map(|t| now + t)
}

impl Model {
    fn live(&self, ns: &str, key: &str, now: u64) -> Option<&Rec> {
        self.kv
            .get(&(ns.to_owned(), key.to_owned()))
            .filter(|r| r.expires_at.is_none_or(|at| now < at))
    }

    fn put(&mut self, ns: &str, key: &str, value: Vec<u8>, expires_at: Option<u64>, now: u64) {
        let version = self.live(ns, key, now).map_or(1, |r| r.version + 1);
        self.kv.insert(
            (ns.to_owned(), key.to_owned()),
            Rec {
                value,
                version,
                expires_at,
            },
        );
    }

    fn remove(&mut self, ns: &str, key: &str) {
        self.kv.remove(&(ns.to_owned(), key.to_owned()));
    }

    fn bump(&mut self, ns: &str, key: &str, ttl_ms: Option<u64>, now: u64) {
        let current = self.live(ns, key, now).map(|r| r.value.clone());
        match bump_value(current.as_deref()) {
            Some(v) => self.put(ns, key, v, expiry(now, ttl_ms), now),
            None => self.remove(ns, key),
        }
    }

    fn step(&mut self, step: &Step, op_index: u64, now: u64) {
        match step {
            Step::Put {
                ns,
                key,
                value,
                ttl_ms,
            } => self.put(ns, key, value.clone(), expiry(now, *ttl_ms), now),
            Step::PutIf {
                ns,
                key,
                value,
                expect,
                ttl_ms,
            } => {
                let live = self.live(ns, key, now).map(|r| r.version);
                let ok = match expect {
                    Expect::Any => true,
                    Expect::Absent => live.is_none(),
                    Expect::Version(v) => live == Some(*v),
                };
                if ok {
                    self.put(ns, key, value.clone(), expiry(now, *ttl_ms), now);
                } else {
                    self.bump(CONFLICTS.0, CONFLICTS.1, None, now);
                }
            }
            Step::Bump { ns, key, ttl_ms } => self.bump(ns, key, *ttl_ms, now),
            Step::TypedBump { key, ttl_ms } => {
                let current: Option<Counter> = self
                    .live(TYPED_NS, key, now)
                    .map(|r| postcard::from_bytes(&r.value).expect("model counter"));
                let next = Counter {
                    n: current.map_or(1, |c| c.n + 1),
                    last_op: op_index,
                };
                let bytes = postcard::to_allocvec(&next).expect("encode counter");
                self.put(TYPED_NS, key, bytes, expiry(now, *ttl_ms), now);
            }
            Step::Delete { ns, key } => self.remove(ns, key),
            Step::DeletePrefix { ns, prefix } => self
                .kv
                .retain(|(n, k), _| !(n == ns && k.starts_with(prefix))),
            table_step => {
                assert!(
                    self.tables.step(table_step, op_index, now)
                        || self.agent.step(table_step, op_index, now),
                    "{table_step:?}"
                );
            }
        }
    }

    /// Removes every record due at `now`, as a complete sweep does.
    pub fn sweep_all(&mut self, now: u64) {
        self.kv
            .retain(|_, r| r.expires_at.is_none_or(|at| at > now));
        self.tables.sweep_all(now);
        self.agent.sweep_all(now);
    }

    /// Applies op `i` (run at clock `now`) and moves the cursor past it.
    pub fn apply(&mut self, op: &Op, i: u64, now: u64) {
        assert_eq!(i, self.cursor, "ops are applied in order");
        let kind = match op {
            Op::Tx(_) => 0,
            Op::Doomed(_) => 1,
            Op::Sweep => 2,
            Op::SweepBatched { .. } => 3,
            Op::Compact => 4,
        };
        self.op_kinds[kind] += 1;
        match op {
            Op::Tx(steps) => {
                for s in steps {
                    self.step(s, i, now);
                }
            }
            Op::Doomed(_) | Op::Compact => {}
            Op::Sweep | Op::SweepBatched { .. } => self.sweep_all(now),
        }
        self.cursor = i + 1;
    }

    /// The state as flat lines, the cursor record included: every physical record
    /// (`at == None`) or the records visible at `at`.
    pub fn flat(&self, at: Option<u64>) -> Flat {
        let mut out = Flat::new();
        for ((ns, key), r) in &self.kv {
            if at.is_none_or(|t| r.expires_at.is_none_or(|e| e > t)) {
                out.extend([render::kv(ns, key, &r.value, r.version, r.expires_at)]);
            }
        }
        if self.cursor > 0 {
            out.extend([render::kv(
                HARNESS_NS,
                CURSOR_KEY,
                &self.cursor.to_le_bytes(),
                self.cursor,
                None,
            )]);
        }
        self.tables.render_into(&mut out, at);
        self.agent.render_into(&mut out, at);
        out
    }
}

/// Whether `store` is `model` minus some records that `model_live` no longer shows:
/// what a crash in the middle of a sweep may leave.
pub fn is_partial_sweep(store: &Flat, model: &Flat, model_live: &Flat) -> bool {
    store.iter().all(|(k, line)| model.get(k) == Some(line))
        && model
            .keys()
            .all(|k| store.contains_key(k) || !model_live.contains_key(k))
}

/// A short description of how two flat states differ.
pub fn diff(store: &Flat, model: &Flat) -> String {
    let mut out = Vec::new();
    for (k, line) in store {
        match model.get(k) {
            None => out.push(format!("  extra in store: {k:?} {line:?}")),
            Some(m) if m != line => {
                out.push(format!("  differs: {k:?} store {line:?} model {m:?}"))
            }
            Some(_) => {}
        }
    }
    for (k, line) in model {
        if !store.contains_key(k) {
            out.push(format!("  missing from store: {k:?} {line:?}"));
        }
    }
    out.truncate(20);
    out.join("\n")
}
