//! The parent side: spawns children, kills them, reopens the file and checks it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgestate::{ManualClock, Store, Table};

use crate::child::{parse, Event, Mode, CHILD_ENV};
use crate::invariants::{self, History};
use crate::run::{is_harness_op, read_cursor, shares_cursor_tx, PROBE};
use crate::store_model::{
    builder, observation_diff, observe, Model, Op, Outcome, Rng, Workload, T0_MS,
};

/// Ops a child runs at most before closing the store and exiting on its own.
const CHILD_MAX_OPS: u64 = 24;
/// How long the parent waits for a child's next line before calling it hung.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);

/// What the children proved about the file in one cycle.
#[derive(Debug, Clone, Copy)]
struct Evidence {
    /// The cursor every acknowledged commit implies (a child's start counts: it read it
    /// back from the file).
    acked: u64,
    /// The cursor every flush (or fresh open) implies.
    synced: u64,
}

#[derive(Debug, Default)]
pub struct Totals {
    cycles: u64,
    acked_checked: u64,
    lost: u64,
    violations: Vec<String>,
    children: u64,
    killed_before_first_ack: u64,
    killed_before_open_returned: u64,
    clean_exits: u64,
    double_kills: u64,
    in_flight_landed: u64,
    /// States where the op at the cursor, run before the cursor's own transaction, had
    /// (partly) landed.
    ahead_of_cursor: u64,
    rolled_back: u64,
    /// Ops the state reflects beyond what the evidence guaranteed (in-flight commits
    /// that landed; with Relaxed, unflushed commits that survived).
    beyond_lower_bound: u64,
    deep_checks: u64,
    outcomes_compared: u64,
    first_ack_us: u64,
    ops_replayed: u64,
    coverage: String,
}

pub struct Harness {
    test_name: &'static str,
    mode: Mode,
    seed: u64,
    dir: tempfile::TempDir,
    path: PathBuf,
    clock: ManualClock,
    workload: Workload,
    /// The model replayed to `replayed` ops.
    model: Model,
    replayed: u64,
    history: History,
    /// The cursor of the last verified state.
    verified: u64,
    /// Writes the parent made to `parent/probe` so far.
    probes: u64,
    rng: Rng,
    /// Running mean of the time from spawning a child to its first ack.
    first_ack_us: u64,
    /// Each stored snapshot's sequence number at the last verified state, with how
    /// many deletions its execution had had then.
    snapshot_seqs: BTreeMap<usize, (u64, u64)>,
    totals: Totals,
}

impl Harness {
    pub fn new(test_name: &'static str, mode: Mode, seed: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("crash-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let path = dir.path().join("crash.edgestate");
        let clock = ManualClock::new(T0_MS);
        let store = builder(&clock).open(&path).unwrap();
        store.kv().put(PROBE.0, PROBE.1, b"0", None).unwrap();
        store.close().unwrap();
        Harness {
            test_name,
            mode,
            seed,
            dir,
            path,
            clock,
            workload: Workload::new(seed, is_harness_op),
            model: Model::new(),
            replayed: 0,
            history: History::default(),
            verified: 0,
            probes: 1,
            rng: Rng::derive(seed, 99, 0),
            first_ack_us: 20_000,
            snapshot_seqs: BTreeMap::new(),
            totals: Totals::default(),
        }
    }

    fn violation(&mut self, what: String) {
        eprintln!("crash harness VIOLATION (seed {:#x}): {what}", self.seed);
        self.totals.violations.push(what);
    }

    /// Runs one child to its kill (or its own exit) and folds what it said into `ev`.
    fn run_child(&mut self, ev: &mut Evidence) {
        self.totals.children += 1;
        let quick_repair = self.rng.percent(25);
        let spec = format!(
            "{};{};{};{};{}",
            self.mode.encode(),
            self.seed,
            CHILD_MAX_OPS,
            u8::from(quick_repair),
            self.path.display()
        );
        let spawned = Instant::now();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([self.test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, spec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(e) = parse(&line) {
                    if tx.send((Instant::now(), e)).is_err() {
                        break;
                    }
                }
            }
        });

        // Where to kill: by a timer alone (during start-up, open, recovery or the first
        // commits), after a few acks plus a short random delay (mostly mid-commit), or
        // never (the child finishes and closes the store).
        let (after_acks, delay_us) = match self.rng.below(100) {
            0..=19 => {
                let window = self.first_ack_us.saturating_mul(13) / 10;
                (0, self.rng.below(window.max(1)))
            }
            20..=94 => (self.rng.range(1, 9), self.rng.below(4_000)),
            _ => (u64::MAX, 0),
        };
        let mut acks = 0;
        let mut events = Vec::new();
        while acks < after_acks {
            match rx.recv_timeout(HANG_TIMEOUT) {
                Ok((at, e)) => {
                    if matches!(e, Event::Ack(_)) {
                        if acks == 0 {
                            // Calibrates timer kills to land anywhere up to the first ack.
                            let us = at.duration_since(spawned).as_micros() as u64;
                            self.first_ack_us = (self.first_ack_us * 7 + us) / 8;
                        }
                        acks += 1;
                    }
                    events.push(e);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "crash child hung for {HANG_TIMEOUT:?} (seed {:#x})",
                        self.seed
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_micros(delay_us));
        // SIGKILL on unix. Killing a child that already exited is harmless.
        let _ = child.kill();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        events.extend(rx.try_iter().map(|(_, e)| e));

        let mut saw_ack = false;
        let mut saw_start = false;
        for e in events {
            match e {
                Event::Start(c) => {
                    saw_start = true;
                    ev.acked = ev.acked.max(c);
                    ev.synced = ev.synced.max(c);
                }
                Event::Ack(i) => {
                    saw_ack = true;
                    ev.acked = ev.acked.max(i + 1);
                }
                Event::Flushed(c) => ev.synced = ev.synced.max(c),
                Event::Error(msg) => self.violation(format!("child failed: {msg}")),
            }
        }
        if !saw_ack {
            self.totals.killed_before_first_ack += 1;
        }
        if !saw_start {
            self.totals.killed_before_open_returned += 1;
        }
        if !was_killed(&status) {
            if status.success() {
                self.totals.clean_exits += 1;
            } else {
                self.violation(format!("child exited with {status}"));
            }
        }
    }

    /// One cycle: one child (sometimes two, the second recovering the first's crash
    /// without a parent open in between), then the checks.
    fn cycle(&mut self) {
        let before = self.verified;
        let mut ev = Evidence {
            acked: before,
            synced: before,
        };
        let children = if self.rng.percent(15) { 2 } else { 1 };
        if children == 2 {
            self.totals.double_kills += 1;
        }
        for _ in 0..children {
            self.run_child(&mut ev);
        }
        self.totals.cycles += 1;
        self.totals.acked_checked += ev.acked - before;
        self.verify(ev);
    }

    fn verify(&mut self, ev: Evidence) {
        let store = match builder(&self.clock).open(&self.path) {
            Ok(s) => s,
            Err(e) => return self.violation(format!("reopen after kill failed: {e}")),
        };
        match store.check_integrity() {
            Ok(true) => {}
            Ok(false) => self.violation("check_integrity repaired the file".into()),
            Err(e) => self.violation(format!("check_integrity failed: {e}")),
        }
        let c = read_cursor(&store).unwrap();
        let lower = match self.mode {
            Mode::Immediate => ev.acked,
            Mode::Relaxed { .. } => ev.synced.max(self.verified),
        };
        let upper = ev.acked + 1;
        if c < lower {
            self.totals.lost += lower - c;
            return self.violation(format!(
                "cursor {c} below {lower}: {} acknowledged op(s) lost (evidence {ev:?})",
                lower - c
            ));
        }
        if c > upper {
            return self.violation(format!(
                "cursor {c} beyond anything attempted (evidence {ev:?})"
            ));
        }
        if c == upper {
            self.totals.in_flight_landed += 1;
        }
        if c < ev.acked {
            self.totals.rolled_back += ev.acked - c;
        }
        self.totals.beyond_lower_bound += c - lower;
        // `c >= lower >= verified == replayed`: the model only moves forward.
        while self.replayed < c {
            let i = self.replayed;
            self.model.now = self.workload.time(i);
            let op = self.workload.op(i);
            let outcome = self.model.apply(&op);
            self.history.record(&op, &outcome);
            self.replayed += 1;
        }

        // The acceptable states: the model at the cursor, and when the op at the cursor
        // runs before the cursor's own transaction and was attempted, it (partly) done.
        let now = self.workload.time(c);
        let mut candidates = vec![self.model.clone()];
        let in_flight = self.workload.op(c);
        if c <= ev.acked && !shares_cursor_tx(&in_flight) {
            candidates.extend(landed_states(&self.model, &in_flight, now));
        }
        // Records outside the model: the cursor (once written) and the parent's probe.
        let extra = u64::from(c > 0) + 1;
        let found = [T0_MS, now].map(|at| {
            self.clock.set_ms(at);
            without_harness_records(observe(&store), extra)
        });
        let matched = candidates.iter().position(|m| {
            [T0_MS, now].iter().zip(&found).all(|(at, found)| {
                let mut m = m.clone();
                m.now = *at;
                observation_diff(found, &m.observe()).is_none()
            })
        });
        match matched {
            Some(0) => {}
            Some(_) => self.totals.ahead_of_cursor += 1,
            None => {
                let mut shown = format!("{in_flight:?}");
                shown.truncate(300);
                let (which, at) = {
                    let mut m = self.model.clone();
                    m.now = T0_MS;
                    match observation_diff(&found[0], &m.observe()) {
                        Some(d) => ("every physical record", d),
                        None => {
                            m.now = now;
                            (
                                "the live view",
                                observation_diff(&found[1], &m.observe()).unwrap(),
                            )
                        }
                    }
                };
                return self.violation(format!(
                    "{which} at cursor {c} differs from the model (op at the cursor {shown}): {at}"
                ));
            }
        }
        self.totals.outcomes_compared += 2 * found[0].len() as u64;

        self.clock.set_ms(T0_MS);
        match invariants::check(&store, &self.history, &mut self.snapshot_seqs) {
            Ok(broken) => {
                for b in broken {
                    self.violation(b);
                }
            }
            Err(e) => self.violation(format!("reading the store back failed: {e}")),
        }
        let expiring = store.stats().unwrap().records(edgestate::Table::Expiry);

        // The store takes a durable write, and the parent's own writes survive later kills.
        self.clock.set_ms(now);
        match store.kv().put(PROBE.0, PROBE.1, &c.to_le_bytes(), None) {
            Ok(v) if v == self.probes + 1 => self.probes += 1,
            Ok(v) => return self.violation(format!("probe version {v}, want {}", self.probes + 1)),
            Err(e) => return self.violation(format!("write after reopen failed: {e}")),
        }
        store.close().unwrap();
        self.deep_check(expiring);
        self.verified = c;
    }

    /// On a copy of the file, a sweep far in the future must remove exactly the
    /// expiring records and leave the expiry index empty: every entry points at its
    /// record, and every expiring record has its entry.
    fn deep_check(&mut self, expiring: u64) {
        self.totals.deep_checks += 1;
        let copy = self.dir.path().join("deep-check.edgestate");
        std::fs::copy(&self.path, &copy).unwrap();
        let clock = ManualClock::new(u64::MAX / 2);
        let store = Store::builder().clock(clock).open(&copy).unwrap();
        let removed = store.sweep_all_expired(64).unwrap() as u64;
        let stats = store.stats().unwrap();
        if removed != expiring || stats.records(Table::Expiry) != 0 {
            self.violation(format!(
                "far-future sweep removed {removed} of {expiring} expiring records, \
                 {:?} index entries left",
                stats.records(Table::Expiry)
            ));
        }
        store.close().unwrap();
        std::fs::remove_file(&copy).unwrap();
    }

    pub fn run(mut self, cycles: u64) -> Totals {
        eprintln!(
            "crash harness ({}): seed {:#x} (EDGESTATE_CRASH_SEED={:#x} replays it), {cycles} cycles",
            self.mode.encode(),
            self.seed,
            self.seed
        );
        let started = Instant::now();
        for n in 1..=cycles {
            self.cycle();
            if n % 1000 == 0 {
                eprintln!(
                    "crash harness ({}): {n} cycles, {} acks checked, {:.0} s",
                    self.mode.encode(),
                    self.totals.acked_checked,
                    started.elapsed().as_secs_f64()
                );
            }
            if !self.totals.violations.is_empty() {
                break;
            }
        }
        self.totals.first_ack_us = self.first_ack_us;
        self.totals.ops_replayed = self.replayed;
        self.totals.coverage = format!(
            "ops by kind {:?}; refused by the store (as the model says) {}",
            self.history.kinds, self.history.refused
        );
        self.totals
    }
}

impl Totals {
    /// Prints the summary lines and fails the test on any violation.
    pub fn report(&self, label: &str, seed: u64, started: Instant) {
        println!(
            "{label}: cycles {}, acknowledged writes checked {}, lost: {}, invariant violations: {}",
            self.cycles,
            self.acked_checked,
            self.lost,
            self.violations.len()
        );
        println!(
            "{label} detail: seed {seed:#x}, ops {}, children {}, killed before their first ack {} \
             (before open returned {}), clean exits {}, double kills {}, in-flight commits that landed {}, \
             states with the op at the cursor (partly) done {}, acked ops rolled back {}, \
             ops kept beyond the guarantee {}, deep index checks {}, outcomes compared {}, \
             mean spawn-to-first-ack {} us, wall {:.1} s",
            self.ops_replayed,
            self.children,
            self.killed_before_first_ack,
            self.killed_before_open_returned,
            self.clean_exits,
            self.double_kills,
            self.in_flight_landed,
            self.ahead_of_cursor,
            self.rolled_back,
            self.beyond_lower_bound,
            self.deep_checks,
            self.outcomes_compared,
            self.first_ack_us,
            started.elapsed().as_secs_f64()
        );
        println!("{label} coverage: {}", self.coverage);
        assert!(
            self.violations.is_empty() && self.lost == 0,
            "crash harness failed (seed {seed:#x}):\n{}",
            self.violations.join("\n")
        );
    }
}

/// The states `op` (run at `now` in transactions of its own) may leave, whole or in
/// part. Running it again from any of them gives the same state as running it once.
fn landed_states(model: &Model, op: &Op, now: u64) -> Vec<Model> {
    let mut m = model.clone();
    m.now = now;
    match op {
        // One transaction per batch, in expiry-index order.
        Op::SweepAll { batch } => {
            let batch = (*batch).max(1);
            let mut states = Vec::new();
            loop {
                let removed = m.apply(&Op::Sweep { limit: batch });
                states.push(m.clone());
                if !matches!(removed, Outcome::Count(n) if n >= batch) {
                    return states;
                }
            }
        }
        Op::Sweep { .. } => {
            m.apply(op);
            vec![m]
        }
        _ => Vec::new(),
    }
}

/// The observation without the harness's own KV records (cursor, probe), which only
/// the KV record count shows.
fn without_harness_records(mut observed: Vec<Outcome>, extra: u64) -> Vec<Outcome> {
    for o in &mut observed {
        if let Outcome::Stats(counts) = o {
            for (table, n) in counts.iter_mut() {
                if *table == "edgestate.kv" {
                    *n = n.wrapping_sub(extra);
                }
            }
        }
    }
    observed
}

#[cfg(unix)]
fn was_killed(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
fn was_killed(status: &ExitStatus) -> bool {
    !status.success() && status.code() == Some(1)
}
