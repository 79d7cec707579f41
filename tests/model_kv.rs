//! Model-based test of the KV layer: random operation sequences (puts with and without
//! TTL, conditional writes, deletes, updates, listing, batch gets, clock jumps, sweeps,
//! failing transactions, reopen) against a `BTreeMap` model. After every step the store
//! and the model must agree exactly, including the records that are expired but not yet
//! swept. `PROPTEST_CASES=2000 cargo test --release --test model_kv` for a longer run.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use edgestate::{Error, Expect, ManualClock, Store, Table};
use proptest::prelude::*;

const NAMESPACES: [&str; 2] = ["a", "b"];
const KEYS: [&str; 5] = ["k", "k1", "k2", "ka", "x"];

#[derive(Debug, Clone)]
enum Op {
    Put {
        ns: usize,
        key: usize,
        value: u8,
        ttl_ms: Option<u64>,
    },
    PutIf {
        ns: usize,
        key: usize,
        value: u8,
        expect: Expect,
    },
    Delete {
        ns: usize,
        key: usize,
    },
    Increment {
        ns: usize,
        key: usize,
    },
    Get {
        ns: usize,
        key: usize,
    },
    List {
        ns: usize,
        prefix: usize,
        limit: usize,
    },
    GetMany {
        ns: usize,
    },
    Advance {
        ms: u64,
    },
    Sweep {
        limit: usize,
    },
    FailingWrite {
        ns: usize,
        key: usize,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let ns = 0..NAMESPACES.len();
    let key = 0..KEYS.len();
    prop_oneof![
        4 => (ns.clone(), key.clone(), any::<u8>(), prop::option::of(1u64..50))
            .prop_map(|(ns, key, value, ttl_ms)| Op::Put { ns, key, value, ttl_ms }),
        2 => (ns.clone(), key.clone(), any::<u8>(), prop_oneof![
                Just(Expect::Any), Just(Expect::Absent), (1u64..4).prop_map(Expect::Version)])
            .prop_map(|(ns, key, value, expect)| Op::PutIf { ns, key, value, expect }),
        2 => (ns.clone(), key.clone()).prop_map(|(ns, key)| Op::Delete { ns, key }),
        2 => (ns.clone(), key.clone()).prop_map(|(ns, key)| Op::Increment { ns, key }),
        2 => (ns.clone(), key.clone()).prop_map(|(ns, key)| Op::Get { ns, key }),
        1 => (ns.clone(), 0..3usize, 0..4usize).prop_map(|(ns, prefix, limit)| Op::List { ns, prefix, limit }),
        1 => ns.clone().prop_map(|ns| Op::GetMany { ns }),
        2 => (0u64..40).prop_map(|ms| Op::Advance { ms }),
        1 => (1usize..4).prop_map(|limit| Op::Sweep { limit }),
        1 => (ns, key).prop_map(|(ns, key)| Op::FailingWrite { ns, key }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    value: Vec<u8>,
    version: u64,
    expires_at: Option<u64>,
}

/// The physical records, expired ones included until swept.
#[derive(Default)]
struct Model {
    records: BTreeMap<(String, String), Rec>,
}

fn packed(ns: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [ns, key] {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

impl Model {
    fn live(&self, ns: &str, key: &str, now: u64) -> Option<&Rec> {
        self.records
            .get(&(ns.to_owned(), key.to_owned()))
            .filter(|r| r.expires_at.is_none_or(|at| now < at))
    }

    fn put(
        &mut self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<u64>,
        now: u64,
    ) -> u64 {
        let version = self.live(ns, key, now).map_or(1, |r| r.version + 1);
        self.records.insert(
            (ns.to_owned(), key.to_owned()),
            Rec {
                value,
                version,
                expires_at,
            },
        );
        version
    }

    fn sweep(&mut self, limit: usize, now: u64) -> usize {
        let mut due: Vec<(u64, Vec<u8>, (String, String))> = self
            .records
            .iter()
            .filter_map(|(k, r)| {
                r.expires_at
                    .filter(|at| *at <= now)
                    .map(|at| (at, packed(&k.0, &k.1), k.clone()))
            })
            .collect();
        due.sort();
        due.truncate(limit);
        for (_, _, k) in &due {
            self.records.remove(k);
        }
        due.len()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    clock: ManualClock,
    store: Option<Store>,
    model: Model,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.db");
        let clock = ManualClock::new(1_000_000);
        let store = Store::builder().clock(clock.clone()).open(&path).unwrap();
        Harness {
            _dir: dir,
            path,
            clock,
            store: Some(store),
            model: Model::default(),
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn step(&mut self, op: &Op) {
        let now = self.clock.now_ms_value();
        match *op {
            Op::Put {
                ns,
                key,
                value,
                ttl_ms,
            } => {
                let (ns, key) = (NAMESPACES[ns], KEYS[key]);
                let got = self
                    .store()
                    .kv()
                    .put(ns, key, &[value], ttl_ms.map(Duration::from_millis))
                    .unwrap();
                let want = self
                    .model
                    .put(ns, key, vec![value], ttl_ms.map(|t| now + t), now);
                assert_eq!(got, want);
            }
            Op::PutIf {
                ns,
                key,
                value,
                expect,
            } => {
                let (ns, key) = (NAMESPACES[ns], KEYS[key]);
                let live = self.model.live(ns, key, now).map(|r| r.version);
                let ok = match expect {
                    Expect::Any => true,
                    Expect::Absent => live.is_none(),
                    Expect::Version(v) => live == Some(v),
                };
                match self.store().kv().put_if(ns, key, &[value], None, expect) {
                    Ok(v) => {
                        assert!(ok, "{op:?} should conflict");
                        assert_eq!(v, self.model.put(ns, key, vec![value], None, now));
                    }
                    Err(Error::VersionConflict { actual, .. }) => {
                        assert!(!ok, "{op:?} should succeed");
                        assert_eq!(actual, live);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Delete { ns, key } => {
                let (ns, key) = (NAMESPACES[ns], KEYS[key]);
                let was_live = self.model.live(ns, key, now).is_some();
                assert_eq!(self.store().kv().delete(ns, key).unwrap(), was_live);
                self.model.records.remove(&(ns.to_owned(), key.to_owned()));
            }
            Op::Increment { ns, key } => {
                let (ns, key) = (NAMESPACES[ns], KEYS[key]);
                let got = self
                    .store()
                    .kv()
                    .update(ns, key, None, |cur| {
                        Ok(Some(vec![cur.map_or(0, |e| e.value[0]).wrapping_add(1)]))
                    })
                    .unwrap();
                let next = self
                    .model
                    .live(ns, key, now)
                    .map_or(0, |r| r.value[0])
                    .wrapping_add(1);
                assert_eq!(got, Some(self.model.put(ns, key, vec![next], None, now)));
            }
            Op::Get { ns, key } => {
                let (ns, key) = (NAMESPACES[ns], KEYS[key]);
                let got = self.store().kv().get(ns, key).unwrap();
                let want = self.model.live(ns, key, now);
                assert_eq!(
                    got.map(|e| (e.value, e.version, e.expires_at_ms)),
                    want.map(|r| (r.value.clone(), r.version, r.expires_at))
                );
            }
            Op::List { ns, prefix, limit } => {
                let ns = NAMESPACES[ns];
                let prefix = ["", "k", "k1"][prefix];
                let got: Vec<(String, u64)> = self
                    .store()
                    .kv()
                    .list_up_to(ns, prefix, limit)
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.key, e.version))
                    .collect();
                let want: Vec<(String, u64)> = self
                    .model
                    .records
                    .keys()
                    .filter(|(n, k)| n == ns && k.starts_with(prefix))
                    .filter_map(|(n, k)| self.model.live(n, k, now).map(|r| (k.clone(), r.version)))
                    .take(limit)
                    .collect();
                assert_eq!(got, want);
            }
            Op::GetMany { ns } => {
                let ns = NAMESPACES[ns];
                let got: Vec<Option<u64>> = self
                    .store()
                    .kv()
                    .get_many(ns, &KEYS)
                    .unwrap()
                    .into_iter()
                    .map(|e| e.map(|e| e.version))
                    .collect();
                let want: Vec<Option<u64>> = KEYS
                    .iter()
                    .map(|k| self.model.live(ns, k, now).map(|r| r.version))
                    .collect();
                assert_eq!(got, want);
            }
            Op::Advance { ms } => self.clock.advance(Duration::from_millis(ms)),
            Op::Sweep { limit } => {
                assert_eq!(
                    self.store().sweep_expired(limit).unwrap(),
                    self.model.sweep(limit, now)
                );
            }
            Op::FailingWrite { ns, key } => {
                let (ns, key) = (NAMESPACES[ns], KEYS[key]);
                let r: Result<(), Error> = self.store().write(|tx| {
                    tx.kv()
                        .put(ns, key, b"doomed", Some(Duration::from_millis(5)))?;
                    tx.kv().delete(ns, "k")?;
                    Err(Error::NotFound {
                        table: "model",
                        key: "abort".into(),
                    })
                });
                assert!(r.is_err());
            }
            Op::Reopen => {
                self.store.take().unwrap().close().unwrap();
                self.store = Some(
                    Store::builder()
                        .clock(self.clock.clone())
                        .open(&self.path)
                        .unwrap(),
                );
            }
        }
        self.check_physical();
    }

    fn check_physical(&self) {
        let stats = self.store().stats().unwrap();
        let expiring = self
            .model
            .records
            .values()
            .filter(|r| r.expires_at.is_some())
            .count() as u64;
        assert_eq!(stats.records(Table::Kv), self.model.records.len() as u64);
        assert_eq!(stats.records(Table::Expiry), expiring, "expiry index exact");
    }
}

trait NowValue {
    fn now_ms_value(&self) -> u64;
}

impl NowValue for ManualClock {
    fn now_ms_value(&self) -> u64 {
        edgestate::Clock::now_ms(self)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn kv_store_agrees_with_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut h = Harness::new();
        for op in &ops {
            h.step(op);
        }
    }
}
