//! Kill -9 crash harness. The test re-executes its own binary as a CHILD that opens a
//! store file and runs a deterministic workload, one transaction per op, printing
//! `@ack <i>` after each commit returns. The PARENT kills the child with SIGKILL at a
//! random moment (after some acks, mid-commit, during open or recovery), reopens the
//! file and checks that:
//! - the cursor record `harness/cursor` (written in the same transaction as each op's
//!   effect) lies between the last acknowledged op and one more (Immediate durability),
//!   or between the last flushed op and one more than the last acknowledged (Relaxed);
//! - the whole state equals the model replayed to that cursor (versions and expiries
//!   included; a kill inside a sweep may leave a subset of due records removed);
//! - the expiry index holds exactly one entry per expiring record (counted, and proved
//!   on a copy of the file by sweeping at a far-future instant);
//! - `check_integrity()` passes and the store takes a durable write afterwards.
//!
//! Then the next cycle starts a new child on the same file.
//!
//! `EDGESTATE_CRASH_CYCLES` (default 200) and `EDGESTATE_CRASH_RELAXED_CYCLES` (default
//! 50) set the cycles, `EDGESTATE_CRASH_SEED` replays a seed. A long local run:
//! `EDGESTATE_CRASH_CYCLES=2000 cargo test --release --test crash -- --nocapture`.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod invariants;
mod model;
mod model_tables;
mod render;
mod rng;
mod run;
mod workload;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgestate::{Durability, ManualClock, Store};

use model::{diff, is_partial_sweep, Model};
use rng::Rng;
use run::{dump, read_cursor, run_op};
use workload::{configure, Workload, T0};

/// Set in a child's environment: `<mode>;<seed>;<max_ops>;<quick_repair>;<path>`.
const CHILD_ENV: &str = "EDGESTATE_CRASH_CHILD";
/// Ops a child runs at most before closing the store and exiting on its own.
const CHILD_MAX_OPS: u64 = 24;
/// How long the parent waits for a child's next line before calling it hung.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Immediate,
    /// `Durability::Relaxed`, with a `flush()` after every `flush_every` ops.
    Relaxed {
        flush_every: u64,
    },
}

impl Mode {
    fn encode(self) -> String {
        match self {
            Mode::Immediate => "immediate".into(),
            Mode::Relaxed { flush_every } => format!("relaxed{flush_every}"),
        }
    }

    fn decode(s: &str) -> Mode {
        match s.strip_prefix("relaxed") {
            Some(k) => Mode::Relaxed {
                flush_every: k.parse().unwrap(),
            },
            None => Mode::Immediate,
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            }
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        }
        Err(_) => default,
    }
}

fn default_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Rng::new(nanos ^ u64::from(std::process::id())).next_u64()
}

// ---------------------------------------------------------------------------------------
// The child.

/// If this process is a crash child, runs the workload and exits; otherwise returns.
fn run_child_if_asked() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(5, ';');
    let mode = Mode::decode(parts.next().unwrap());
    let seed: u64 = parts.next().unwrap().parse().unwrap();
    let max_ops: u64 = parts.next().unwrap().parse().unwrap();
    let quick_repair = parts.next().unwrap() == "1";
    let path = PathBuf::from(parts.next().unwrap());
    let code = match child(mode, seed, max_ops, quick_repair, &path) {
        Ok(()) => 0,
        Err(e) => {
            println!("@error {e}");
            3
        }
    };
    std::process::exit(code);
}

fn child(
    mode: Mode,
    seed: u64,
    max_ops: u64,
    quick_repair: bool,
    path: &Path,
) -> edgestate::Result<()> {
    let mut workload = Workload::new(seed);
    let clock = ManualClock::new(T0);
    let durability = match mode {
        Mode::Immediate => Durability::Immediate,
        Mode::Relaxed { .. } => Durability::Relaxed,
    };
    let store = configure(Store::builder())
        .clock(clock.clone())
        .durability(durability)
        .quick_repair(quick_repair)
        .open(path)?;
    let start = read_cursor(&store)?;
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        // The parent counts a line only once it is out of this process.
        writeln!(out, "\n{line}").unwrap();
        out.flush().unwrap();
    };
    say(format!("@start {start}"));
    for i in start..start + max_ops {
        clock.set_ms(workload.time(i));
        run_op(&store, &workload.op(i), i)?;
        say(format!("@ack {i}"));
        if let Mode::Relaxed { flush_every } = mode {
            if (i + 1) % flush_every == 0 {
                store.flush()?;
                say(format!("@flushed {}", i + 1));
            }
        }
    }
    store.close()
}

// ---------------------------------------------------------------------------------------
// The parent.

#[derive(Debug)]
enum Event {
    /// The child opened the file and found this cursor.
    Start(u64),
    /// Op `i` committed.
    Ack(u64),
    /// Everything up to this cursor is synced.
    Flushed(u64),
    Error(String),
}

fn parse(line: &str) -> Option<Event> {
    let at = line.find('@')?;
    let (word, rest) = line[at + 1..].split_once(' ')?;
    let n = || rest.trim().parse::<u64>().ok();
    match word {
        "start" => n().map(Event::Start),
        "ack" => n().map(Event::Ack),
        "flushed" => n().map(Event::Flushed),
        "error" => Some(Event::Error(rest.to_owned())),
        _ => None,
    }
}

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
struct Totals {
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
    mid_sweep_states: u64,
    rolled_back: u64,
    /// Ops the state reflects beyond what the evidence guaranteed (in-flight commits
    /// that landed; with Relaxed, unflushed commits that survived).
    beyond_lower_bound: u64,
    deep_checks: u64,
    records_checked: u64,
    first_ack_us: u64,
    ops_replayed: u64,
    coverage: String,
}

struct Harness {
    test_name: &'static str,
    mode: Mode,
    seed: u64,
    dir: tempfile::TempDir,
    path: PathBuf,
    clock: ManualClock,
    workload: Workload,
    model: Model,
    /// The cursor of the last verified state.
    verified: u64,
    /// Writes the parent made to `parent/probe` so far.
    probes: u64,
    rng: Rng,
    /// Running mean of the time from spawning a child to its first ack.
    first_ack_us: u64,
    totals: Totals,
}

impl Harness {
    fn new(test_name: &'static str, mode: Mode, seed: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("crash-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let path = dir.path().join("crash.edgestate");
        let clock = ManualClock::new(T0);
        let store = configure(Store::builder())
            .clock(clock.clone())
            .open(&path)
            .unwrap();
        store.kv().put("parent", "probe", b"0", None).unwrap();
        store.close().unwrap();
        Harness {
            test_name,
            mode,
            seed,
            dir,
            path,
            clock,
            workload: Workload::new(seed),
            model: Model::default(),
            verified: 0,
            probes: 1,
            rng: Rng::derive(seed, 99, 0),
            first_ack_us: 20_000,
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
        let store = match configure(Store::builder())
            .clock(self.clock.clone())
            .open(&self.path)
        {
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
        while self.model.cursor < c {
            let i = self.model.cursor;
            let now = self.workload.time(i);
            self.model.apply(&self.workload.op(i), i, now);
        }

        let now = self.workload.time(c);
        let dumps = dump(&store, &self.clock, 0).and_then(|physical| {
            let live = dump(&store, &self.clock, now)?;
            Ok((physical, live))
        });
        let (physical, live) = match dumps {
            Ok(d) => d,
            Err(e) => return self.violation(format!("reading the store back failed: {e}")),
        };
        let expected = self.model.flat(None);
        let expected_live = self.model.flat(Some(now));
        if physical.flat != expected {
            let op = self.workload.op(c);
            if op.is_sweep() && is_partial_sweep(&physical.flat, &expected, &expected_live) {
                self.totals.mid_sweep_states += 1;
            } else {
                let mut shown = format!("{op:?}");
                shown.truncate(300);
                return self.violation(format!(
                    "state at cursor {c} differs from the model (in-flight op {shown}):\n{}",
                    diff(&physical.flat, &expected)
                ));
            }
        }
        if live.flat != expected_live {
            return self.violation(format!(
                "live view at cursor {c} differs from the model:\n{}",
                diff(&live.flat, &expected_live)
            ));
        }
        let mut broken = invariants::check(&physical, &live, now);
        broken.extend(invariants::check_counts(
            &store.stats().unwrap(),
            &physical.flat,
            1,
        ));
        for b in broken {
            self.violation(b);
        }
        self.totals.records_checked += physical.flat.len() as u64;

        // The store takes a durable write, and the parent's own writes survive later kills.
        self.clock.set_ms(self.workload.time(c));
        match store.kv().put("parent", "probe", &c.to_le_bytes(), None) {
            Ok(v) if v == self.probes + 1 => self.probes += 1,
            Ok(v) => return self.violation(format!("probe version {v}, want {}", self.probes + 1)),
            Err(e) => return self.violation(format!("write after reopen failed: {e}")),
        }
        store.close().unwrap();
        self.deep_check(&physical.flat);
        self.verified = c;
    }

    /// On a copy of the file, a sweep far in the future must remove exactly the
    /// expiring records and leave the expiry index empty: every entry points at its
    /// record, and every expiring record has its entry.
    fn deep_check(&mut self, physical: &render::Flat) {
        self.totals.deep_checks += 1;
        let copy = self.dir.path().join("deep-check.edgestate");
        std::fs::copy(&self.path, &copy).unwrap();
        let clock = ManualClock::new(u64::MAX / 2);
        let store = Store::builder().clock(clock).open(&copy).unwrap();
        let expiring = render::expiring(physical) as usize;
        let removed = store.sweep_all_expired(64).unwrap();
        let stats = store.stats().unwrap();
        if removed != expiring || stats.records("edgestate.expiry") != Some(0) {
            self.violation(format!(
                "far-future sweep removed {removed} of {expiring} expiring records, \
                 {:?} index entries left",
                stats.records("edgestate.expiry")
            ));
        }
        store.close().unwrap();
        std::fs::remove_file(&copy).unwrap();
    }

    fn run(mut self, cycles: u64) -> Totals {
        eprintln!(
            "crash harness ({}): seed {:#x} (EDGESTATE_CRASH_SEED={:#x} replays it), {cycles} cycles",
            self.mode.encode(),
            self.seed,
            self.seed
        );
        for _ in 0..cycles {
            self.cycle();
            if !self.totals.violations.is_empty() {
                break;
            }
        }
        self.totals.first_ack_us = self.first_ack_us;
        self.totals.ops_replayed = self.model.cursor;
        self.totals.coverage = format!("{:?}", self.model.tables.coverage);
        self.totals
    }
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

fn report(label: &str, totals: &Totals, seed: u64, started: Instant) {
    println!(
        "{label}: cycles {}, acknowledged writes checked {}, lost: {}, invariant violations: {}",
        totals.cycles,
        totals.acked_checked,
        totals.lost,
        totals.violations.len()
    );
    println!(
        "{label} detail: seed {seed:#x}, ops {}, children {}, killed before their first ack {} \
         (before open returned {}), clean exits {}, double kills {}, in-flight commits that landed {}, \
         states left mid-sweep {}, acked ops rolled back {}, ops kept beyond the guarantee {}, \
         deep index checks {}, \
         records compared {}, \
         mean spawn-to-first-ack {} us, wall {:.1} s",
        totals.ops_replayed,
        totals.children,
        totals.killed_before_first_ack,
        totals.killed_before_open_returned,
        totals.clean_exits,
        totals.double_kills,
        totals.in_flight_landed,
        totals.mid_sweep_states,
        totals.rolled_back,
        totals.beyond_lower_bound,
        totals.deep_checks,
        totals.records_checked,
        totals.first_ack_us,
        started.elapsed().as_secs_f64()
    );
    println!("{label} coverage: {}", totals.coverage);
    assert!(
        totals.violations.is_empty() && totals.lost == 0,
        "crash harness failed (seed {seed:#x}):\n{}",
        totals.violations.join("\n")
    );
}

#[test]
fn kill_9_never_loses_an_acknowledged_write() {
    run_child_if_asked();
    let started = Instant::now();
    let seed = env_u64("EDGESTATE_CRASH_SEED", default_seed());
    let cycles = env_u64("EDGESTATE_CRASH_CYCLES", 200);
    let totals = Harness::new(
        "kill_9_never_loses_an_acknowledged_write",
        Mode::Immediate,
        seed,
    )
    .run(cycles);
    report("crash harness", &totals, seed, started);
}

#[test]
fn kill_9_with_relaxed_durability_keeps_a_consistent_prefix() {
    run_child_if_asked();
    let started = Instant::now();
    let seed = env_u64("EDGESTATE_CRASH_SEED", default_seed());
    let cycles = env_u64("EDGESTATE_CRASH_RELAXED_CYCLES", 50);
    let flush_every = Rng::derive(seed, 7, 0).range(2, 6);
    let totals = Harness::new(
        "kill_9_with_relaxed_durability_keeps_a_consistent_prefix",
        Mode::Relaxed { flush_every },
        seed,
    )
    .run(cycles);
    report(
        &format!("crash harness (relaxed, flush every {flush_every})"),
        &totals,
        seed,
        started,
    );
}
