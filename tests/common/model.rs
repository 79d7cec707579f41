//! A reference model of the store and a deterministic workload over it, shared by the
//! fault-injection and crash tests.
//!
//! Both the model and a real store can be turned into a [`Dump`]: a sorted map of every
//! logical record plus per-table row counts (so hidden state such as expired-but-unswept
//! rows and expiry-index entries is compared too). Two stores are "the same state" when
//! their dumps are equal.
//!
//! To cover a new table: add its operations to [`Op`] (store side in `apply_tx` /
//! `apply_store`, model side in `apply_model`), its records to [`Model`], and a section to
//! both [`Model::dump`] and [`dump_store`]; then let [`workload`] generate the new ops.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use edgestate::{Error, Expect, ManualClock, Store, WriteTx};

use super::rng::XorShift;

/// Every KV namespace the workload touches (KV has no "list namespaces").
pub const NAMESPACES: [&str; 3] = ["a", "b", "ctr"];
/// A namespace the workload never uses, for probe writes after a failure.
pub const PROBE_NS: &str = "probe";

/// The logical content of a store: `"kv/<ns>/<key>" -> "v<version> exp=<..> <value>"`,
/// plus `"rows/<table>" -> count` for the physical row counts.
pub type Dump = BTreeMap<String, String>;

/// One KV record of the model (expired ones stay until swept, like in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// The bytes.
    pub value: Vec<u8>,
    /// Its version.
    pub version: u64,
    /// Its expiry.
    pub expires_at_ms: Option<u64>,
}

/// The expected state of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The clock.
    pub now_ms: u64,
    /// `(namespace, key) -> record`, expired-but-unswept records included.
    pub kv: BTreeMap<(String, String), Rec>,
}

fn describe(version: u64, expires_at_ms: Option<u64>, value: &[u8]) -> String {
    let mut s = format!("v{version} exp={expires_at_ms:?} ");
    match std::str::from_utf8(value) {
        Ok(text) if text.len() <= 64 => s.push_str(text),
        Ok(text) => {
            let _ = write!(s, "{}..({} bytes)", &text[..32], text.len());
            // Long values are compared by a checksum, not shown whole.
            let _ = write!(s, " crc={:08x}", crc(value));
        }
        Err(_) => {
            for b in value {
                let _ = write!(s, "{b:02x}");
            }
        }
    }
    s
}

fn crc(bytes: &[u8]) -> u32 {
    // FNV-1a: enough to tell two values apart in a test dump.
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

impl Model {
    /// An empty store at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Model {
            now_ms,
            kv: BTreeMap::new(),
        }
    }

    /// The live record.
    pub fn live(&self, ns: &str, key: &str) -> Option<&Rec> {
        self.kv
            .get(&(ns.to_owned(), key.to_owned()))
            .filter(|r| r.expires_at_ms.is_none_or(|at| self.now_ms < at))
    }

    /// A put (any expectation already checked); returns the new version.
    pub fn put(&mut self, ns: &str, key: &str, value: &[u8], ttl_ms: Option<u64>) -> u64 {
        let version = self.live(ns, key).map_or(1, |r| r.version + 1);
        self.kv.insert(
            (ns.to_owned(), key.to_owned()),
            Rec {
                value: value.to_vec(),
                version,
                expires_at_ms: ttl_ms.map(|t| self.now_ms.saturating_add(t)),
            },
        );
        version
    }

    /// A delete; returns whether a live record went away.
    pub fn delete(&mut self, ns: &str, key: &str) -> bool {
        let was_live = self.live(ns, key).is_some();
        self.kv.remove(&(ns.to_owned(), key.to_owned()));
        was_live
    }

    /// Removes every expired record; returns how many.
    pub fn sweep(&mut self) -> usize {
        let now = self.now_ms;
        let before = self.kv.len();
        self.kv
            .retain(|_, r| r.expires_at_ms.is_none_or(|at| now < at));
        before - self.kv.len()
    }

    /// The model as a [`Dump`].
    pub fn dump(&self) -> Dump {
        let mut d = Dump::new();
        for ((ns, key), r) in &self.kv {
            if self.live(ns, key).is_some() {
                d.insert(
                    format!("kv/{ns}/{key}"),
                    describe(r.version, r.expires_at_ms, &r.value),
                );
            }
        }
        d.insert("rows/edgestate.kv".into(), self.kv.len().to_string());
        let with_expiry = self
            .kv
            .values()
            .filter(|r| r.expires_at_ms.is_some())
            .count();
        d.insert("rows/edgestate.expiry".into(), with_expiry.to_string());
        d
    }
}

/// Dumps a real store in the same shape as [`Model::dump`] (only the workload's
/// namespaces, plus [`PROBE_NS`] when present).
pub fn dump_store(store: &Store) -> Result<Dump, Error> {
    let mut d = store.read(|tx| {
        let mut d = Dump::new();
        for ns in NAMESPACES.iter().chain(std::iter::once(&PROBE_NS)) {
            for e in tx.kv().list(ns, "")? {
                d.insert(
                    format!("kv/{ns}/{}", e.key),
                    describe(e.version, e.expires_at_ms, &e.value),
                );
            }
        }
        Ok::<_, Error>(d)
    })?;
    let stats = store.stats()?;
    for table in ["edgestate.kv", "edgestate.expiry"] {
        d.insert(
            format!("rows/{table}"),
            edgestate::Table::from_name(table)
                .map_or(0, |t| stats.records(t))
                .to_string(),
        );
    }
    Ok(d)
}

/// One step of a workload.
#[derive(Debug, Clone)]
pub enum Op {
    /// Unconditional put.
    Put {
        /// Namespace.
        ns: &'static str,
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// TTL.
        ttl_ms: Option<u64>,
    },
    /// Compare-and-swap against the version the model says is live (or absent).
    PutIfCurrent {
        /// Namespace.
        ns: &'static str,
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// TTL.
        ttl_ms: Option<u64>,
    },
    /// Delete.
    Delete {
        /// Namespace.
        ns: &'static str,
        /// Key.
        key: String,
    },
    /// `update_value::<u64>` +1 in namespace `ctr`.
    Increment {
        /// Key.
        key: String,
    },
    /// Several ops in one `store.write`.
    Batch(Vec<Op>),
    /// Several ops in one `store.write` whose closure then fails: nothing may land.
    RolledBack(Vec<Op>),
    /// `sweep_expired` (one transaction).
    Sweep,
    /// Moves the clock (no I/O).
    Advance(u64),
}

/// The error a [`Op::RolledBack`] closure returns on purpose.
fn rollback_marker() -> Error {
    Error::NotFound {
        table: "test",
        key: "deliberate rollback".into(),
    }
}

fn is_rollback_marker(e: &Error) -> bool {
    matches!(e, Error::NotFound { table: "test", key } if key == "deliberate rollback")
}

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

fn expect_for(model: &Model, ns: &str, key: &str) -> Expect {
    model
        .live(ns, key)
        .map_or(Expect::Absent, |r| Expect::Version(r.version))
}

impl Op {
    /// Runs a leaf op inside `tx`, checking results against (and advancing) `model`.
    pub fn apply_tx(&self, tx: &WriteTx, model: &mut Model) -> Result<(), Error> {
        match self {
            Op::Put {
                ns,
                key,
                value,
                ttl_ms,
            } => {
                let got = tx.kv().put(ns, key, value, ttl(*ttl_ms))?;
                let want = model.put(ns, key, value, *ttl_ms);
                assert_eq!(
                    got, want,
                    "store and model disagree on the version after put"
                );
            }
            Op::PutIfCurrent {
                ns,
                key,
                value,
                ttl_ms,
            } => {
                let expect = expect_for(model, ns, key);
                let got = tx.kv().put_if(ns, key, value, ttl(*ttl_ms), expect)?;
                let want = model.put(ns, key, value, *ttl_ms);
                assert_eq!(
                    got, want,
                    "store and model disagree on the version after put_if"
                );
            }
            Op::Delete { ns, key } => {
                let got = tx.kv().delete(ns, key)?;
                let want = model.delete(ns, key);
                assert_eq!(got, want, "delete of {ns}/{key} disagrees with the model");
            }
            Op::Increment { key } => {
                let next = model.live("ctr", key).map_or(0, |r| postcard_u64(&r.value)) + 1;
                let got = tx
                    .kv()
                    .update_value::<u64, _>("ctr", key, None, |v| Ok(v.unwrap_or(0) + 1))?;
                let bytes = postcard::to_stdvec(&next).expect("u64 encodes");
                let want = model.put("ctr", key, &bytes, None);
                assert_eq!(
                    got, want,
                    "store and model disagree on the version after update_value"
                );
            }
            Op::Batch(_) | Op::RolledBack(_) | Op::Sweep | Op::Advance(_) => {
                panic!("{self:?} cannot be nested in a transaction")
            }
        }
        Ok(())
    }

    /// Runs the op on `store` (its own transaction) and returns the model after it. On
    /// `Err` the model is unchanged and the op's outcome is unknown.
    pub fn apply_store(
        &self,
        store: &Store,
        clock: &ManualClock,
        model: &Model,
    ) -> Result<Model, Error> {
        let mut next = model.clone();
        match self {
            Op::Put {
                ns,
                key,
                value,
                ttl_ms,
            } => {
                let got = store.kv().put(ns, key, value, ttl(*ttl_ms))?;
                let want = next.put(ns, key, value, *ttl_ms);
                assert_eq!(
                    got, want,
                    "store and model disagree on the version after put"
                );
            }
            Op::PutIfCurrent { .. } | Op::Delete { .. } | Op::Increment { .. } => {
                store.write(|tx| self.apply_tx(tx, &mut next))?;
            }
            Op::Batch(ops) => {
                store.write(|tx| {
                    let mut staged = next.clone();
                    for op in ops {
                        op.apply_tx(tx, &mut staged)?;
                    }
                    next = staged;
                    Ok::<_, Error>(())
                })?;
            }
            Op::RolledBack(ops) => {
                let outcome: Result<(), Error> = store.write(|tx| {
                    let mut scratch = next.clone();
                    for op in ops {
                        op.apply_tx(tx, &mut scratch)?;
                    }
                    Err(rollback_marker())
                });
                match outcome {
                    Err(e) if is_rollback_marker(&e) => {}
                    Err(e) => return Err(e),
                    Ok(()) => panic!("a failing write closure reported success"),
                }
            }
            Op::Sweep => {
                // One transaction, so a failure leaves all or nothing of it.
                let got = store.sweep_expired(10_000)?;
                let want = next.sweep();
                assert_eq!(got, want, "sweep removed a different number than the model");
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(*ms));
                next.now_ms += ms;
            }
        }
        Ok(next)
    }

    /// The model after this op (for the "in-flight op landed" candidate).
    pub fn apply_model(&self, model: &Model) -> Model {
        let mut next = model.clone();
        match self {
            Op::Put {
                ns,
                key,
                value,
                ttl_ms,
            }
            | Op::PutIfCurrent {
                ns,
                key,
                value,
                ttl_ms,
            } => {
                next.put(ns, key, value, *ttl_ms);
            }
            Op::Delete { ns, key } => {
                next.delete(ns, key);
            }
            Op::Increment { key } => {
                let n = next.live("ctr", key).map_or(0, |r| postcard_u64(&r.value)) + 1;
                let bytes = postcard::to_stdvec(&n).expect("u64 encodes");
                next.put("ctr", key, &bytes, None);
            }
            Op::Batch(ops) => {
                for op in ops {
                    next = op.apply_model(&next);
                }
            }
            Op::RolledBack(_) => {}
            Op::Sweep => {
                next.sweep();
            }
            Op::Advance(ms) => next.now_ms += ms,
        }
        next
    }

    /// Whether the op writes (an `Advance` does no I/O).
    pub fn does_io(&self) -> bool {
        !matches!(self, Op::Advance(_))
    }
}

fn postcard_u64(bytes: &[u8]) -> u64 {
    postcard::from_bytes(bytes).expect("counter is a postcard u64")
}

fn leaf_op(rng: &mut XorShift, step: usize) -> Op {
    let ns = ["a", "b"][rng.below(2) as usize];
    let key = format!("k{}", rng.below(6));
    let ttl_ms = match rng.below(4) {
        0 => Some(20 + rng.below(60)),
        1 => Some(5_000),
        _ => None,
    };
    let value = if rng.below(8) == 0 {
        // Larger than a page now and then, so overflow pages are exercised.
        format!("{ns}/{key}@{step}:")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(5_000 + rng.below(3_000) as usize)
            .collect()
    } else {
        format!("{ns}/{key}@{step}").into_bytes()
    };
    match rng.below(10) {
        0..=3 => Op::Put {
            ns,
            key,
            value,
            ttl_ms,
        },
        4..=5 => Op::PutIfCurrent {
            ns,
            key,
            value,
            ttl_ms,
        },
        6..=7 => Op::Delete { ns, key },
        _ => Op::Increment {
            key: format!("c{}", rng.below(3)),
        },
    }
}

/// A deterministic workload of `len` steps: puts with and without TTL, CAS updates,
/// deletes, counter increments, multi-record transactions, rolled-back transactions,
/// sweeps and clock moves.
pub fn workload(seed: u64, len: usize) -> Vec<Op> {
    let mut rng = XorShift::new(seed);
    (0..len)
        .map(|step| match rng.below(16) {
            0..=8 => leaf_op(&mut rng, step),
            9..=10 => Op::Batch(
                (0..2 + rng.below(4))
                    .map(|_| leaf_op(&mut rng, step))
                    .collect(),
            ),
            11 => Op::RolledBack((0..2).map(|_| leaf_op(&mut rng, step)).collect()),
            12..=13 => Op::Advance(10 + rng.below(50)),
            _ => Op::Sweep,
        })
        .collect()
}
