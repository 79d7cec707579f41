//! Fault injection: a workload runs on a store whose disk fails at one chosen I/O call,
//! once per call (or an even sample of them). Every failure must surface as a typed
//! error (no panic, no abort), the store must then refuse writes or keep working, and
//! after reopening the file with a plain backend (verified on open) it must hold exactly
//! the acknowledged state, or that state plus the one in-flight operation whose commit
//! failed ("outcome unknown", DESIGN 5a).
//!
//! Size: `EDGESTATE_FAULT_POINTS` injection points per fault kind (default 60; `0` means
//! every call), `EDGESTATE_FAULT_OPS` workload steps (default 40), `EDGESTATE_FAULT_SEED`.
//! `cargo test --release --test fault_injection -- --nocapture` prints the figures.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use common::faulty_backend::{Fault, FaultState, FaultyBackend};
use common::model::{dump_store, workload, Dump, Model, Op, PROBE_NS};
use edgestate::{Error, ManualClock, Store, StoreBuilder};

const START_MS: u64 = 1_700_000_000_000;

/// What one trial saw.
#[derive(Debug, Default)]
struct TrialReport {
    fired: bool,
    open_failed: bool,
    /// Variant of the error the failing operation returned.
    error_variant: Option<&'static str>,
    /// A failed commit (outcome unknown) turned out durable after reopen.
    inflight_landed: Option<bool>,
    /// Reads on the failed store before reopening: `Some(true)` when they worked.
    reads_after_failure_ok: Option<bool>,
    /// A write attempted after the failure succeeded.
    probe_accepted: Option<bool>,
    close_failed: bool,
}

fn variant(e: &Error) -> &'static str {
    match e {
        Error::Storage(_) => "Storage",
        Error::CommitOutcomeUnknown(_) => "CommitOutcomeUnknown",
        Error::Io { .. } => "Io",
        Error::NotAStore { .. } => "NotAStore",
        Error::Corrupt { .. } => "Corrupt",
        Error::Closed => "Closed",
        _ => "other",
    }
}

/// An I/O failure may only surface as one of these; anything else (a version conflict,
/// a corrupt record, invalid input) would be a wrong error.
fn is_io_kind(e: &Error) -> bool {
    matches!(
        e,
        Error::Storage(_) | Error::CommitOutcomeUnknown(_) | Error::Io { .. }
    )
}

fn with_probe(mut d: Dump) -> Dump {
    d.insert(format!("kv/{PROBE_NS}/p"), "v1 exp=None probe".to_owned());
    let rows: u64 = d["rows/edgestate.kv"].parse().expect("number");
    d.insert("rows/edgestate.kv".into(), (rows + 1).to_string());
    d
}

fn first_difference(a: &Dump, b: &Dump) -> String {
    for (k, v) in a {
        if b.get(k) != Some(v) {
            return format!("{k}: found {v:?}, expected {:?}", b.get(k));
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            return format!("{k}: missing, expected {v:?}");
        }
    }
    "no difference".into()
}

/// Runs `ops` on a copy of `template` with `fault` injected, then reopens and checks.
fn run_trial(
    template: &Path,
    ops: &[Op],
    config: &Config,
    fault: Fault,
) -> Result<TrialReport, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("store.edgestate");
    std::fs::copy(template, &path).map_err(|e| e.to_string())?;
    let clock = ManualClock::new(START_MS);
    let state = FaultState::new(fault.clone());
    let backend = FaultyBackend::open(&path, state.clone()).map_err(|e| e.to_string())?;
    let mut report = TrialReport::default();

    let mut model = Model::new(START_MS);
    // The acceptable states after reopen: the acknowledged one, or it plus the op in flight.
    let mut candidates: Vec<Model>;
    let mut probe_landed_must = false;
    let mut probe_may = false;

    match config.builder(&clock).open_with_backend(backend) {
        Err(e) => {
            if !is_io_kind(&e) {
                return Err(format!("open failed with a wrong error: {e:?}"));
            }
            report.open_failed = true;
            report.error_variant = Some(variant(&e));
            candidates = vec![model.clone()];
        }
        Ok(store) => {
            let mut inflight: Option<&Op> = None;
            let mut outcome_unknown = false;
            for op in ops {
                match op.apply_store(&store, &clock, &model) {
                    Ok(next) => model = next,
                    Err(e) => {
                        if !is_io_kind(&e) {
                            return Err(format!("{op:?} failed with a wrong error: {e:?}"));
                        }
                        report.error_variant = Some(variant(&e));
                        // Only a failed commit leaves the outcome open; any other error
                        // means the transaction was rolled back.
                        outcome_unknown = matches!(e, Error::CommitOutcomeUnknown(_));
                        inflight = Some(op);
                        break;
                    }
                }
            }
            candidates = vec![model.clone()];
            if let Some(op) = inflight {
                let landed = op.apply_model(&model);
                // Reads on the failed store: a value or a typed error, never a panic, and
                // a value shows a state that could be the file's after reopen.
                match dump_store(&store) {
                    Ok(d) => {
                        if d != model.dump() && d != landed.dump() {
                            return Err(format!(
                                "read after failure shows a state that never existed: {}",
                                first_difference(&d, &model.dump())
                            ));
                        }
                        report.reads_after_failure_ok = Some(true);
                    }
                    Err(e) if is_io_kind(&e) => report.reads_after_failure_ok = Some(false),
                    Err(e) => return Err(format!("read after failure: wrong error {e:?}")),
                }
                if outcome_unknown {
                    candidates.push(landed);
                }
                match store.kv().put(PROBE_NS, "p", b"probe", None) {
                    Ok(_) => {
                        report.probe_accepted = Some(true);
                        probe_landed_must = true;
                    }
                    Err(e) => {
                        if !is_io_kind(&e) {
                            return Err(format!("probe write: wrong error {e:?}"));
                        }
                        // A refused write must tell the caller that a reopen recovers.
                        if !e.needs_reopen() {
                            return Err(format!("probe write refused without needs_reopen: {e:?}"));
                        }
                        report.probe_accepted = Some(false);
                        probe_may = true;
                    }
                }
            }
            if let Err(e) = store.close() {
                if !is_io_kind(&e) {
                    return Err(format!("close: wrong error {e:?}"));
                }
                report.close_failed = true;
            }
        }
    }
    report.fired = state.has_fired();

    // Reopen the way a restarted process would: plain file backend, verified on open.
    let reopened = Store::builder()
        .clock(clock.clone())
        .open(&path)
        .map_err(|e| format!("reopen after the fault failed: {e:?}"))?;
    let found = dump_store(&reopened).map_err(|e| format!("dump after reopen: {e:?}"))?;
    let mut accepted: Vec<(bool, Dump)> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let d = c.dump();
        let landed = i == 1;
        if probe_landed_must {
            accepted.push((landed, with_probe(d)));
        } else {
            if probe_may {
                accepted.push((landed, with_probe(d.clone())));
            }
            accepted.push((landed, d));
        }
    }
    match accepted.iter().find(|(_, d)| *d == found) {
        Some((landed, _)) => {
            if candidates.len() > 1 {
                report.inflight_landed = Some(*landed);
            }
        }
        None => {
            return Err(format!(
                "state after reopen is neither the acknowledged one nor it plus the op in flight; \
                 vs acknowledged: {}",
                first_difference(&found, &accepted[0].1)
            ))
        }
    }
    // The reopened store is healthy: intact pages, and it takes writes again.
    match reopened.check_integrity() {
        Ok(_) => {}
        Err(e) => return Err(format!("check_integrity after reopen: {e:?}")),
    }
    reopened
        .kv()
        .put("a", "after-reopen", b"ok", None)
        .map_err(|e| format!("write after reopen: {e:?}"))?;
    reopened
        .close()
        .map_err(|e| format!("close after reopen: {e:?}"))?;
    Ok(report)
}

/// How the faulty store is opened.
struct Config {
    label: &'static str,
    cache_size: Option<usize>,
    quick_repair: bool,
}

impl Config {
    fn builder(&self, clock: &ManualClock) -> StoreBuilder {
        let mut builder = Store::builder()
            .clock(clock.clone())
            .quick_repair(self.quick_repair);
        if let Some(bytes) = self.cache_size {
            builder = builder.cache_size(bytes);
        }
        builder
    }
}

fn make_template(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("template.edgestate");
    Store::builder()
        .clock(ManualClock::new(START_MS))
        .open(&path)
        .expect("create template")
        .close()
        .expect("close template");
    path
}

#[derive(Default)]
struct Tally {
    trials: u64,
    fired: u64,
    open_failed: u64,
    inflight: u64,
    inflight_landed: u64,
    probe_accepted: u64,
    probe_refused: u64,
    close_failed: u64,
    reads_after_failure_ok: u64,
    reads_after_failure_err: u64,
    variants: BTreeMap<&'static str, u64>,
}

/// Runs the whole plan (every fault kind at every sampled call) for one configuration and
/// returns the tally; panics and wrong outcomes fail the test with their list.
fn sweep_faults(config: &Config, budget: u64, seed: u64) -> Tally {
    let label = config.label;
    common::record_panics();
    let budget = if budget == 0 { u64::MAX } else { budget };
    let op_count = common::env_u64("EDGESTATE_FAULT_OPS", 40) as usize;
    let ops = workload(seed, op_count);

    let work = tempfile::tempdir().expect("tempdir");
    let template = make_template(work.path());

    // Dry run: count the I/O calls of the workload (open, ops, close) and check the model.
    let counting = FaultState::new(Fault::None);
    {
        let clock = ManualClock::new(START_MS);
        let dry = work.path().join("dry.edgestate");
        std::fs::copy(&template, &dry).expect("copy");
        let store = config
            .builder(&clock)
            .open_with_backend(FaultyBackend::open(&dry, counting.clone()).expect("backend"))
            .expect("open dry run");
        let mut model = Model::new(START_MS);
        for op in &ops {
            model = op.apply_store(&store, &clock, &model).expect("dry run op");
        }
        assert_eq!(dump_store(&store).expect("dump"), model.dump());
        store.close().expect("close dry run");
    }
    let (calls, writes, syncs, reads) = counting.counts();
    println!(
        "[{label}] workload: {} ops ({} doing I/O), seed {seed:#x}: {calls} I/O calls \
         ({writes} writes, {syncs} syncs, {reads} reads)",
        ops.len(),
        ops.iter().filter(|o| o.does_io()).count()
    );

    let mut plan: Vec<Fault> = Vec::new();
    plan.extend(
        common::spread(writes, budget)
            .into_iter()
            .map(Fault::FailWrite),
    );
    plan.extend(
        common::spread(writes, budget)
            .into_iter()
            .map(Fault::TornWrite),
    );
    plan.extend(
        common::spread(syncs, budget)
            .into_iter()
            .map(Fault::FailSync),
    );
    plan.extend(
        common::spread(calls, budget)
            .into_iter()
            .map(Fault::CrashAt),
    );
    plan.extend(
        common::spread(writes, budget)
            .into_iter()
            .map(Fault::TornCrash),
    );

    let mut tally = Tally::default();
    let mut failures: Vec<String> = Vec::new();
    let mut panicked: Vec<String> = Vec::new();
    for fault in plan {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            run_trial(&template, &ops, config, fault.clone())
        }));
        tally.trials += 1;
        match outcome {
            Ok(Ok(r)) => {
                tally.fired += u64::from(r.fired);
                tally.open_failed += u64::from(r.open_failed);
                tally.close_failed += u64::from(r.close_failed);
                if let Some(v) = r.error_variant {
                    *tally.variants.entry(v).or_default() += 1;
                }
                if let Some(landed) = r.inflight_landed {
                    tally.inflight += 1;
                    tally.inflight_landed += u64::from(landed);
                }
                match r.reads_after_failure_ok {
                    Some(true) => tally.reads_after_failure_ok += 1,
                    Some(false) => tally.reads_after_failure_err += 1,
                    None => {}
                }
                match r.probe_accepted {
                    Some(true) => tally.probe_accepted += 1,
                    Some(false) => tally.probe_refused += 1,
                    None => {}
                }
            }
            Ok(Err(msg)) => failures.push(format!("{fault:?}: {msg}")),
            Err(_) => panicked.push(format!("{fault:?}: {:?}", common::take_panics())),
        }
    }
    println!(
        "[{label}] fault injection: {} trials, {} faults fired, {} opens failed, {} closes \
         failed; error variants {:?}; failed commits (outcome unknown): {} (durable after reopen: \
         {}); reads after a failure: {} worked, {} typed errors; writes after a failure: {} \
         refused, {} accepted; panics: {}, wrong outcomes: {}",
        tally.trials,
        tally.fired,
        tally.open_failed,
        tally.close_failed,
        tally.variants,
        tally.inflight,
        tally.inflight_landed,
        tally.reads_after_failure_ok,
        tally.reads_after_failure_err,
        tally.probe_refused,
        tally.probe_accepted,
        panicked.len(),
        failures.len(),
    );
    assert!(
        panicked.is_empty(),
        "[{label}] panics under injected faults:\n{}",
        panicked.join("\n")
    );
    assert!(
        failures.is_empty(),
        "[{label}] wrong outcomes:\n{}",
        failures.join("\n")
    );
    assert!(
        tally.fired > 0,
        "[{label}] no fault ever fired: the plan is wrong"
    );
    tally
}

fn seed() -> u64 {
    common::env_u64("EDGESTATE_FAULT_SEED", 0x5EED)
}

#[test]
fn every_io_failure_is_a_typed_error_and_reopen_restores_the_acknowledged_state() {
    let config = Config {
        label: "default",
        cache_size: None,
        quick_repair: false,
    };
    sweep_faults(
        &config,
        common::env_u64("EDGESTATE_FAULT_POINTS", 60),
        seed(),
    );
}

/// With a cache far smaller than the data, pages are read back from the file inside
/// transactions, so failed reads hit the middle of operations, not only commits.
#[test]
fn io_failures_with_a_tiny_page_cache() {
    let config = Config {
        label: "tiny cache",
        cache_size: Some(16 * 1024),
        quick_repair: false,
    };
    let budget = common::env_u64("EDGESTATE_FAULT_POINTS", 60) / 2;
    sweep_faults(&config, budget, seed() ^ 0xCAC4E);
}

/// Quick repair commits in two phases (two fsyncs) and saves allocator state: another
/// commit path, another set of failure points.
#[test]
fn io_failures_with_quick_repair() {
    let config = Config {
        label: "quick repair",
        cache_size: None,
        quick_repair: true,
    };
    let budget = common::env_u64("EDGESTATE_FAULT_POINTS", 60) / 2;
    sweep_faults(&config, budget, seed() ^ 0x2FC);
}
