//! Fault injection: a workload runs on a store whose disk fails at one chosen I/O call,
//! once per call (or an even sample of them). Every failure must surface as a typed
//! error (no panic, no abort), the store must then refuse writes or keep working, and
//! after reopening the file with a plain backend (verified on open) it must hold exactly
//! the acknowledged state, or that state plus the one in-flight operation whose commit
//! failed ("outcome unknown", DESIGN 5a).
//!
//! The self-healing setup (`with_self_healing_...`) opens through a backend factory
//! instead, so the store reopens itself after the fault: the workload goes on on the same
//! handle, each uncertain commit is resolved by observing the store, and at the end a
//! plain open of the file must show exactly the model's state.
//!
//! Size: `EDGESTATE_FAULT_POINTS` injection points per fault kind (default 60, a quarter
//! of that with self-healing; `0` means every call), `EDGESTATE_FAULT_OPS` workload steps
//! (default 40), `EDGESTATE_FAULT_SEED`.
//! `cargo test --release --test fault_injection -- --nocapture` prints the figures.

mod common;
#[path = "common/store_model/mod.rs"]
mod store_model;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::faulty_backend::{Fault, FaultState, FaultyBackend};
use edgestate::{Error, ManualClock, Store, StoreBuilder};
use store_model::{observation_diff, observe, run, ErrKind, Model, Op, Outcome, Workload, T0_MS};

/// Where the write attempted after a failure goes: outside the model's alphabets, so
/// only the KV record count shows it in an observation.
const PROBE: (&str, &str) = ("probe", "p");

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

/// An I/O failure may only surface as one of these; anything else (a version conflict,
/// a corrupt record, invalid input) would be a wrong error.
fn is_io_kind(e: &Error) -> bool {
    matches!(
        e,
        Error::Storage(_) | Error::CommitOutcomeUnknown(_) | Error::Io { .. }
    )
}

/// The ops of the store model's grammar this test runs: every write that is one
/// transaction (not `SweepAll`, whose batches commit one by one, nor compaction), plus
/// clock moves; no reopen (the faulty backend stays until the trial reopens).
fn fault_op(op: &Op) -> bool {
    !op.is_read()
        && !matches!(
            op,
            Op::SweepAll { .. } | Op::Compact | Op::Reopen | Op::ReopenAfterDrop
        )
}

/// The workload: `len` ops of the store model's grammar, a pure function of `seed`.
fn workload(seed: u64, len: usize) -> Vec<Op> {
    let w = Workload::new(seed, fault_op);
    (0..len as u64).map(|i| w.op(i)).collect()
}

/// Runs `op` on `store`, moving `clock` for the clock ops.
fn step(store: &Store, clock: &ManualClock, op: &Op) -> Outcome {
    match op {
        Op::Advance { ms } => {
            clock.advance(Duration::from_millis(*ms));
            Outcome::Unit
        }
        Op::Rewind { ms } => {
            let now = edgestate::Clock::now_ms(clock);
            clock.set_ms(now.saturating_sub(*ms));
            Outcome::Unit
        }
        _ => run(store, op),
    }
}

/// The I/O failure an outcome reports, if any: `(variant, needs_reopen)`.
fn io_failure(outcome: &Outcome) -> Option<(&'static str, bool)> {
    match outcome {
        Outcome::Err(ErrKind::Storage {
            variant,
            needs_reopen,
            ..
        }) => Some((variant, *needs_reopen)),
        _ => None,
    }
}

/// The observation with `n` records taken out of the KV count (the probe).
fn without_probe(mut observed: Vec<Outcome>, n: u64) -> Vec<Outcome> {
    for o in &mut observed {
        if let Outcome::Stats(counts) = o {
            for (table, count) in counts.iter_mut() {
                if *table == "edgestate.kv" {
                    *count = count.wrapping_sub(n);
                }
            }
        }
    }
    observed
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
    let clock = ManualClock::new(T0_MS);
    let state = FaultState::new(fault.clone());
    let backend = FaultyBackend::open(&path, state.clone()).map_err(|e| e.to_string())?;
    let mut report = TrialReport::default();

    let mut model = Model::new();
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
            report.error_variant = Some(common::error_variant(&e));
            candidates = vec![model.clone()];
        }
        Ok(store) => {
            let mut inflight: Option<Model> = None;
            let mut outcome_unknown = false;
            for (i, op) in ops.iter().enumerate() {
                let got = step(&store, &clock, op);
                let mut next = model.clone();
                let want = next.apply(op);
                if let Some((v, _)) = io_failure(&got) {
                    report.error_variant = Some(v);
                    // Only a failed commit leaves the outcome open; any other error
                    // means the transaction was rolled back.
                    outcome_unknown = v == "CommitOutcomeUnknown";
                    inflight = Some(next);
                    break;
                }
                if got != want {
                    return Err(format!(
                        "op {i} {op:?}: outcome {got:?}, the model says {want:?}"
                    ));
                }
                model = next;
            }
            candidates = vec![model.clone()];
            if let Some(landed) = inflight {
                // Reads on the failed store: a value or a typed error, never a panic, and
                // each value shows a state that could be the file's after reopen.
                let found = observe(&store);
                let (before, after) = (model.observe(), landed.observe());
                if found.iter().any(|o| io_failure(o).is_some()) {
                    for (j, o) in found.iter().enumerate() {
                        if io_failure(o).is_none() && *o != before[j] && *o != after[j] {
                            return Err(format!(
                                "read after failure shows a state that never existed: {o:?}"
                            ));
                        }
                    }
                    report.reads_after_failure_ok = Some(false);
                } else {
                    if observation_diff(&found, &before).is_some()
                        && observation_diff(&found, &after).is_some()
                    {
                        return Err(format!(
                            "read after failure shows a state that never existed: {}",
                            observation_diff(&found, &before).unwrap_or_default()
                        ));
                    }
                    report.reads_after_failure_ok = Some(true);
                }
                if outcome_unknown {
                    candidates.push(landed);
                }
                match store.kv().put(PROBE.0, PROBE.1, b"probe", None) {
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
    let reopened = store_model::builder(&clock)
        .open(&path)
        .map_err(|e| format!("reopen after the fault failed: {e:?}"))?;
    let probe_found = reopened
        .kv()
        .get(PROBE.0, PROBE.1)
        .map_err(|e| format!("probe read after reopen: {e:?}"))?
        .is_some();
    if probe_found != probe_landed_must && !(probe_may && probe_found) {
        return Err(format!(
            "probe after reopen: found {probe_found}, acknowledged {probe_landed_must}"
        ));
    }
    let found = without_probe(observe(&reopened), u64::from(probe_found));
    match candidates
        .iter()
        .position(|c| observation_diff(&found, &c.observe()).is_none())
    {
        Some(landed) => {
            if candidates.len() > 1 {
                report.inflight_landed = Some(landed == 1);
            }
        }
        None => {
            return Err(format!(
                "state after reopen is neither the acknowledged one nor it plus the op in flight; \
                 vs acknowledged: {}",
                observation_diff(&found, &candidates[0].observe()).unwrap_or_default()
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
        let mut builder = store_model::builder(clock).quick_repair(self.quick_repair);
        if let Some(bytes) = self.cache_size {
            builder = builder.cache_size(bytes);
        }
        builder
    }
}

fn make_template(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("template.edgestate");
    store_model::builder(&ManualClock::new(T0_MS))
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
        let clock = ManualClock::new(T0_MS);
        let dry = work.path().join("dry.edgestate");
        std::fs::copy(&template, &dry).expect("copy");
        let store = config
            .builder(&clock)
            .open_with_backend(FaultyBackend::open(&dry, counting.clone()).expect("backend"))
            .expect("open dry run");
        let mut model = Model::new();
        for (i, op) in ops.iter().enumerate() {
            let got = step(&store, &clock, op);
            assert_eq!(got, model.apply(op), "dry run, op {i}: {op:?}");
        }
        if let Some(d) = observation_diff(&observe(&store), &model.observe()) {
            panic!("dry run: the store differs from the model {d}");
        }
        store.close().expect("close dry run");
    }
    let (calls, writes, syncs, reads) = counting.counts();
    println!(
        "[{label}] workload: {} ops ({} doing I/O), seed {seed:#x}: {calls} I/O calls \
         ({writes} writes, {syncs} syncs, {reads} reads)",
        ops.len(),
        ops.iter()
            .filter(|o| !matches!(o, Op::Advance { .. } | Op::Rewind { .. }))
            .count()
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

// --- With self-healing -------------------------------------------------------------------
//
// The same workload on a store opened with `open_with_backend_factory`: every backend the
// factory makes wraps the same file and shares one fault plan, so the fault fires once
// (or, for a full disk, fails every call for a while and then clears by itself), and the
// store reopens its storage on its own. Nobody calls `reopen`: the workload goes on on the
// same handle after the faulted op.

/// The handle of a store on the faulty file that heals itself through a factory.
fn open_healing(path: &Path, state: &Arc<FaultState>, clock: &ManualClock) -> Result<Store, Error> {
    let (path, state) = (path.to_owned(), Arc::clone(state));
    store_model::builder(clock)
        .open_with_backend_factory(move || FaultyBackend::open(&path, Arc::clone(&state)))
}

/// An op of the workload that goes to the store (a write, not a clock move).
fn is_write(op: &Op) -> bool {
    !matches!(op, Op::Advance { .. } | Op::Rewind { .. })
}

/// What one self-healing trial saw.
#[derive(Debug, Default)]
struct HealReport {
    fired: bool,
    /// Opens that failed (the fault hit the first open) before one succeeded.
    open_failures: u64,
    /// Variant of every I/O error an op returned.
    variants: Vec<&'static str>,
    /// Ops whose commit failed (outcome unknown), and how many of them had landed.
    uncertain: u64,
    uncertain_landed: u64,
    /// Probe reads that failed while the disk was still failing, by error variant.
    probes_failed: BTreeMap<&'static str, u64>,
    /// The fault hit `close`.
    close_failed: bool,
    /// Writes acknowledged after the first failure, without anyone reopening.
    writes_after_heal: u64,
    /// Writes acknowledged (`Ok`) in the whole run, all checked after a plain reopen.
    acknowledged: u64,
    recoveries: u64,
    recovery_failures: u64,
}

/// Reads `stats()` until it works (the read heals the store once the disk works again):
/// an error is allowed only while the fault lasts.
fn wait_healthy(store: &Store, state: &FaultState, report: &mut HealReport) -> Result<(), String> {
    for _ in 0..200 {
        let over = state.is_over();
        match store.stats() {
            Ok(_) => return Ok(()),
            Err(e) if !is_io_kind(&e) && !matches!(e, Error::ReopenFailed { .. }) => {
                return Err(format!("read after a failure: wrong error {e:?}"))
            }
            Err(e) if over => {
                return Err(format!(
                    "read after the fault cleared still fails (no healing): {e:?}"
                ))
            }
            Err(e) => {
                *report
                    .probes_failed
                    .entry(common::error_variant(&e))
                    .or_default() += 1
            }
        }
    }
    Err("the store never became readable again".into())
}

/// How a trial reports that the file, reopened plainly, differs from the model.
const LOST: &str = "after a plain reopen the file differs from the acknowledged state";

/// Runs `ops` on a copy of `template` with `fault` injected, on a store that heals
/// itself; checks every outcome, resolves each uncertain commit by observation, and at
/// the end compares a plain reopen of the file with the model.
fn run_heal_trial(template: &Path, ops: &[Op], fault: Fault) -> Result<HealReport, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("store.edgestate");
    std::fs::copy(template, &path).map_err(|e| e.to_string())?;
    let clock = ManualClock::new(T0_MS);
    let state = FaultState::new(fault);
    let mut report = HealReport::default();

    // A fault during the first open fails it with a typed error; the application opens
    // again, as it would at startup.
    let store = loop {
        match open_healing(&path, &state, &clock) {
            Ok(store) => break store,
            Err(e) if is_io_kind(&e) && report.open_failures < 200 => report.open_failures += 1,
            Err(e) => return Err(format!("open: {e:?}")),
        }
    };

    let mut model = Model::new();
    let mut failed = false;
    let mut needed_reopen = false;
    for (i, op) in ops.iter().enumerate() {
        let over = state.is_over();
        let got = step(&store, &clock, op);
        let mut next = model.clone();
        let want = next.apply(op);
        let Some((v, needs_reopen)) = io_failure(&got) else {
            if got != want {
                return Err(format!(
                    "op {i} {op:?}: outcome {got:?}, the model says {want:?}"
                ));
            }
            model = next;
            if is_write(op) && !matches!(got, Outcome::Err(_) | Outcome::Aborted(_)) {
                report.acknowledged += 1;
                report.writes_after_heal += u64::from(failed);
            }
            continue;
        };
        // Once the fault is over (fired, or its window passed) the store must heal itself
        // and every op must work, including after an I/O error met inside a transaction
        // (not at begin or commit), which latches redb as a failed commit does.
        if over {
            return Err(format!(
                "op {i} {op:?} failed after the fault cleared (no healing): {got:?}"
            ));
        }
        failed = true;
        needed_reopen |= needs_reopen;
        report.variants.push(v);
        wait_healthy(&store, &state, &mut report)?;
        // Resolve the op by observation: rolled back, or (only after a failed commit,
        // whose outcome is unknown) applied whole.
        let found = observe(&store);
        let before = observation_diff(&found, &model.observe());
        if v == "CommitOutcomeUnknown" {
            report.uncertain += 1;
            if before.is_some() {
                if let Some(d) = observation_diff(&found, &next.observe()) {
                    return Err(format!(
                        "op {i} {op:?}: after a failed commit the store is neither without \
                         the op ({}) nor with it ({d})",
                        before.unwrap_or_default()
                    ));
                }
                report.uncertain_landed += 1;
                model = next;
            }
        } else if let Some(d) = before {
            return Err(format!(
                "op {i} {op:?} failed with {v} but was not rolled back: {d}"
            ));
        }
    }
    let stats = store
        .stats()
        .map_err(|e| format!("stats at the end: {e:?}"))?;
    report.recoveries = stats.recoveries;
    report.recovery_failures = stats.recovery_failures;
    if needed_reopen && stats.recoveries == 0 {
        return Err("an error latched the store, yet it never reopened itself".into());
    }
    if let Some(d) = observation_diff(&observe(&store), &model.observe()) {
        return Err(format!("at the end of the workload: {d}"));
    }
    // The fault may also hit the close (its final sync): a typed error, nothing lost.
    let over = state.is_over();
    match store.close() {
        Ok(()) => {}
        Err(e) if !over && is_io_kind(&e) => report.close_failed = true,
        Err(e) => return Err(format!("close: {e:?}")),
    }
    report.fired = state.has_fired();

    // A plain, verified open of the file shows exactly the model's state.
    let reopened = store_model::builder(&clock)
        .open(&path)
        .map_err(|e| format!("plain open at the end: {e:?}"))?;
    match reopened.check_integrity() {
        Ok(true) => {}
        other => return Err(format!("check_integrity at the end: {other:?}")),
    }
    if let Some(d) = observation_diff(&observe(&reopened), &model.observe()) {
        return Err(format!("{LOST}: {d}"));
    }
    reopened
        .close()
        .map_err(|e| format!("close after the plain open: {e:?}"))?;
    Ok(report)
}

#[derive(Default)]
struct HealTally {
    trials: u64,
    fired: u64,
    open_failures: u64,
    failed_ops: u64,
    variants: BTreeMap<&'static str, u64>,
    uncertain: u64,
    uncertain_landed: u64,
    probes_failed: BTreeMap<&'static str, u64>,
    closes_failed: u64,
    recoveries: u64,
    recovery_failures: u64,
    writes_after_heal: u64,
    acknowledged: u64,
}

/// The full-disk windows (in I/O calls): one call, a few, and long enough that the next
/// calls' reopen attempts fail too before the disk comes back.
const FULL_DISK_CALLS: [u64; 3] = [1, 5, 12];

#[test]
fn with_self_healing_the_workload_goes_on_and_nothing_acknowledged_is_lost() {
    let label = "self-healing";
    common::record_panics();
    let budget = common::env_u64("EDGESTATE_FAULT_POINTS", 60) / 4;
    let budget = if budget == 0 { u64::MAX } else { budget };
    let op_count = common::env_u64("EDGESTATE_FAULT_OPS", 40) as usize;
    let seed = seed() ^ 0x4EA1;
    let ops = workload(seed, op_count);

    let work = tempfile::tempdir().expect("tempdir");
    let template = make_template(work.path());

    // Dry run through the factory: count the I/O calls and check the model.
    let counting = FaultState::new(Fault::None);
    {
        let clock = ManualClock::new(T0_MS);
        let dry = work.path().join("dry.edgestate");
        std::fs::copy(&template, &dry).expect("copy");
        let store = open_healing(&dry, &counting, &clock).expect("open dry run");
        let mut model = Model::new();
        for (i, op) in ops.iter().enumerate() {
            let got = step(&store, &clock, op);
            assert_eq!(got, model.apply(op), "dry run, op {i}: {op:?}");
        }
        if let Some(d) = observation_diff(&observe(&store), &model.observe()) {
            panic!("dry run: the store differs from the model {d}");
        }
        store.close().expect("close dry run");
    }
    let (calls, writes, syncs, reads) = counting.counts();
    println!(
        "[{label}] workload: {} ops, seed {seed:#x}: {calls} I/O calls ({writes} writes, \
         {syncs} syncs, {reads} reads)",
        ops.len(),
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
            .enumerate()
            .map(|(i, at)| Fault::FailFor {
                at,
                calls: FULL_DISK_CALLS[i % FULL_DISK_CALLS.len()],
            }),
    );

    let mut tally = HealTally::default();
    let mut failures: Vec<String> = Vec::new();
    let mut panicked: Vec<String> = Vec::new();
    for fault in plan {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            run_heal_trial(&template, &ops, fault.clone())
        }));
        tally.trials += 1;
        match outcome {
            Ok(Ok(r)) => {
                tally.fired += u64::from(r.fired);
                tally.open_failures += r.open_failures;
                tally.failed_ops += r.variants.len() as u64;
                for v in r.variants {
                    *tally.variants.entry(v).or_default() += 1;
                }
                tally.uncertain += r.uncertain;
                tally.uncertain_landed += r.uncertain_landed;
                for (v, n) in r.probes_failed {
                    *tally.probes_failed.entry(v).or_default() += n;
                }
                tally.closes_failed += u64::from(r.close_failed);
                tally.recoveries += r.recoveries;
                tally.recovery_failures += r.recovery_failures;
                tally.writes_after_heal += r.writes_after_heal;
                tally.acknowledged += r.acknowledged;
            }
            Ok(Err(msg)) => failures.push(format!("{fault:?}: {msg}")),
            Err(_) => panicked.push(format!("{fault:?}: {:?}", common::take_panics())),
        }
    }
    let lost = failures.iter().filter(|f| f.contains(LOST)).count();
    println!(
        "[{label}] fault injection: {} injection points, {} faults fired, {} opens failed, \
         {} closes failed; {} ops failed, error variants {:?}; failed commits (outcome \
         unknown): {} (landed: {}); probe reads refused while the disk was failing: {:?}; \
         recoveries: {} ({} failed reopen attempts); writes accepted after healing: {}; acknowledged writes \
         checked after a plain reopen: {} (trials losing any: {lost}); panics: {}, wrong \
         outcomes: {}",
        tally.trials,
        tally.fired,
        tally.open_failures,
        tally.closes_failed,
        tally.failed_ops,
        tally.variants,
        tally.uncertain,
        tally.uncertain_landed,
        tally.probes_failed,
        tally.recoveries,
        tally.recovery_failures,
        tally.writes_after_heal,
        tally.acknowledged,
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
    assert!(
        tally.recoveries > 0,
        "[{label}] the store never healed itself"
    );
}
