//! The byte-flip grid: one byte flipped at 10 offsets of every page of a store file and
//! its page log, and at random positions; each damaged copy opened without verification
//! (the default), read entirely, written once and checked. No panic may reach the
//! caller, nothing may hang, and no damaged value may be read back as valid.
//!
//! Size: `EDGESTATE_FLIP_GRID` (`full`, or how many pages to sample, default 10) and
//! `EDGESTATE_FLIP_GRID_RANDOM` (random positions, default 24; 1,000 with `full`),
//! `EDGESTATE_FLIP_SEED`. The grid's findings: `EDGESTATE_FLIP_GRID_SHOW` (lines, default
//! 40); a trial that aborts the process: `EDGESTATE_FLIP_GRID_TRACE=1`,
//! `EDGESTATE_FLIP_GRID_SKIP` (see `trials_to_skip`); `EDGESTATE_FLIP_STRICT` (see
//! `DAMAGED_VALUES_FAIL`).
//!
//! Full grid: `EDGESTATE_FLIP_GRID=full cargo test --release --all-features --test
//! flip_grid -- --nocapture` (about 4,150 trials, some minutes).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use common::flips::*;
use common::rng::XorShift;
use common::watchdog::Watchdog;
use edgestate::Error;

// ---------------------------------------------------------------------------------------
// The flip grid (issue 9): with verification on open off (the O(1) open), flip one byte
// at a few places in every 4 KiB page of the store file and of its page log, and at
// random places; on each damaged copy open, read everything, write once and run
// `check_integrity`, and classify every answer. No panic may reach the caller, nothing
// may hang, and no damaged value may be read back as valid (see `DAMAGED_VALUES_FAIL`).

/// Whether the grid fails when a read returns a damaged value as valid (a value that
/// differs from the one written, a listed key that was never written, a record listed
/// twice). On: the record envelope's crc32 covers the table and key (schema 3), so a
/// flipped key byte, or an entry count that pairs keys with their neighbours' values,
/// fails the record's checksum; listings check that keys come in order, so a subtree
/// walked twice is damage. (Before the key was covered, the full grid returned 153
/// damaged values in 94 trials.) `EDGESTATE_FLIP_STRICT=0` turns it off for a run.
///
/// Hidden records (a `get` answering `None`, a listing leaving a record out) are counted,
/// not asserted: a damaged key out of order misleads the b-tree search to answer `None`
/// without reading any record, so no record checksum can catch it; `Store::verify` and
/// `check_integrity` do.
const DAMAGED_VALUES_FAIL: bool = true;

/// redb's page size.
const PAGE: usize = 4096;

/// Offsets flipped in each page of the grid: a b-tree page's header (type, entry count
/// and the first key and value end offsets: 0..16), where a leaf's keys usually are
/// (64, 160, 320), the middle and the last byte (values, or free space).
const GRID_OFFSETS: [usize; 10] = [0, 2, 5, 9, 15, 64, 160, 320, 2048, 4095];

/// Length of the page log's header (magic, salt, inode, checksum).
const LOG_HEADER: usize = 32;

/// Prefixes listed in every namespace (`""` lists it all).
const LIST_PREFIXES: [&str; 3] = ["", "key-01", "key-0299"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFile {
    Store,
    Log,
}

/// One byte of one file XORed with `mask` (never 0).
#[derive(Debug, Clone, Copy)]
struct Flip {
    file: InFile,
    at: usize,
    mask: u8,
    random: bool,
}

/// What a flip hits, judged from the pristine bytes. Page 0 holds redb's super header
/// (its header, then two commit slots of 128 bytes); a b-tree page starts with its type
/// (1 leaf, 2 branch); other pages hold allocator state, the tail of a leaf longer than
/// a page, or free space. A page log is a header, then frames (after a clean close,
/// every frame is from before the last checkpoint: replayed never).
fn region(fx: &Fixture, flip: &Flip) -> &'static str {
    match flip.file {
        InFile::Log if flip.at < LOG_HEADER => "log header",
        InFile::Log => "log frames",
        InFile::Store if flip.at < 64 => "super header",
        InFile::Store if flip.at < 192 => "commit slot 0",
        InFile::Store if flip.at < 320 => "commit slot 1",
        InFile::Store if flip.at < PAGE => "page 0 after the super header",
        InFile::Store => {
            let start = flip.at / PAGE * PAGE;
            let page = &fx.store[start..(start + PAGE).min(fx.store.len())];
            match page[0] {
                1 => "leaf page",
                2 => "branch page",
                _ if page.iter().all(|b| *b == 0) => "zeroed page",
                _ => "other page",
            }
        }
    }
}

fn describe(fx: &Fixture, flip: &Flip) -> String {
    let file = match flip.file {
        InFile::Store => "store",
        InFile::Log => "log",
    };
    format!(
        "{file} byte {} (page {} +{}, {}) ^ {:#04x}{}",
        flip.at,
        flip.at / PAGE,
        flip.at % PAGE,
        region(fx, flip),
        flip.mask,
        if flip.random { ", random" } else { "" }
    )
}

/// The flips of one run: [`GRID_OFFSETS`] in every page of the store file
/// (`EDGESTATE_FLIP_GRID=full`) or in an even sample of its pages (that many pages,
/// default 10, first and last included); the log header every 4 bytes and the middle of
/// as many log pages (at most 32); then `EDGESTATE_FLIP_GRID_RANDOM` random bytes of
/// the store file (default 24; 1,000 with `full`). Masks and random places come from
/// `seed`.
fn grid_plan(fx: &Fixture, seed: u64) -> Vec<Flip> {
    let setting = std::env::var("EDGESTATE_FLIP_GRID").unwrap_or_default();
    let full = setting.trim() == "full";
    let pages = fx.store.len().div_ceil(PAGE) as u64;
    let sample = match setting.trim() {
        "" => 10,
        "full" => pages,
        n => n
            .parse()
            .unwrap_or_else(|_| panic!("EDGESTATE_FLIP_GRID is `full` or a page count, not {n:?}")),
    };
    let random = common::env_u64("EDGESTATE_FLIP_GRID_RANDOM", if full { 1_000 } else { 24 });
    let mut rng = XorShift::new(seed);
    let mut mask = move || 1 + rng.below(255) as u8;
    let mut plan = Vec::new();
    let mut grid = |file: InFile, len: usize, at: usize, plan: &mut Vec<Flip>| {
        if at < len {
            plan.push(Flip {
                file,
                at,
                mask: mask(),
                random: false,
            });
        }
    };
    for page in common::spread(pages, sample) {
        for offset in GRID_OFFSETS {
            grid(
                InFile::Store,
                fx.store.len(),
                page as usize * PAGE + offset,
                &mut plan,
            );
        }
    }
    if let Some(log) = &fx.log {
        for at in (0..LOG_HEADER).step_by(4) {
            grid(InFile::Log, log.len(), at, &mut plan);
        }
        let log_pages = log.len().div_ceil(PAGE) as u64;
        // After a clean close every frame is stale (replayed never): a few suffice.
        for page in common::spread(log_pages, sample.min(32)) {
            grid(
                InFile::Log,
                log.len(),
                page as usize * PAGE + PAGE / 2,
                &mut plan,
            );
        }
    }
    let mut rng = XorShift::new(seed ^ 0x5EED);
    for _ in 0..random {
        plan.push(Flip {
            file: InFile::Store,
            at: rng.below(fx.store.len() as u64) as usize,
            mask: 1 + rng.below(255) as u8,
            random: true,
        });
    }
    plan
}

/// Trials not to run, from `EDGESTATE_FLIP_GRID_SKIP` (`3,17,40-99`): to measure the
/// rest of a grid in which some trial ends the process (a panic that cannot unwind
/// aborts it; `EDGESTATE_FLIP_GRID_TRACE=1` prints each trial before it runs). A run
/// that skips anything fails.
fn trials_to_skip() -> BTreeSet<usize> {
    let setting = std::env::var("EDGESTATE_FLIP_GRID_SKIP").unwrap_or_default();
    let mut skip = BTreeSet::new();
    for part in setting.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || panic!("EDGESTATE_FLIP_GRID_SKIP: {part:?} is not `n` or `a-b`");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.parse().unwrap_or_else(|_| bad()),
                    b.parse().unwrap_or_else(|_| bad()),
                );
                skip.extend(a..=b);
            }
            None => {
                skip.insert(part.parse().unwrap_or_else(|_| bad()));
            }
        }
    }
    skip
}

/// Every answer of one trial.
#[derive(Debug, Default)]
struct TrialReport {
    open_error: Option<String>,
    calls: u64,
    /// Errors of every call after open, by [`error_label`].
    errors: BTreeMap<String, u64>,
    /// Records read back as written (or absent as they should be).
    correct: u64,
    /// Records read back as valid with other bytes, or listed under a key never written.
    damaged: Vec<String>,
    /// Records that exist but were answered as absent (or left out of a listing).
    hidden: Vec<String>,
    /// `stats` answered other record counts than the pristine store's.
    stats_differ: bool,
    /// `Store::verify` (after the reads) reported damage: an error, a damaged record, or
    /// damage to a page or a search path.
    verify_found: bool,
    /// Errors before the write: the trial had seen the damage when it wrote.
    errors_before_write: u64,
    write: Option<Result<(), String>>,
    integrity: Option<Result<bool, String>>,
    close: Option<Result<(), String>>,
}

impl TrialReport {
    fn answer<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        self.calls += 1;
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                *self.errors.entry(error_label(&e)).or_default() += 1;
                None
            }
        }
    }

    fn record(&mut self, call: &str, ns: &str, key: &str, got: Option<&[u8]>, truth: &Truth) {
        match (got, truth.get(&(ns.to_owned(), key.to_owned()))) {
            (Some(got), Some(want)) if got == want.as_slice() => self.correct += 1,
            (None, None) => self.correct += 1,
            (None, Some(_)) => self.hidden.push(format!("{call} {ns}/{key}")),
            (Some(got), _) => {
                // Whose bytes came back: another record's (a key or an entry boundary was
                // damaged, which the value's checksum cannot see) or bytes never written.
                let owner = truth
                    .iter()
                    .find(|(_, v)| v.as_slice() == got)
                    .map_or("bytes never written".to_owned(), |((n, k), _)| {
                        format!("the value of {n}/{k}")
                    });
                self.damaged.push(format!("{call} {ns}/{key:?}: {owner}"));
            }
        }
    }

    /// Whether anything in the trial reported damage: a refused open, an error from any
    /// call (the pristine copy answers every call without one), or `check_integrity`
    /// finding something to repair.
    fn detected(&self) -> bool {
        self.open_error.is_some()
            || !self.errors.is_empty()
            || matches!(self.integrity, Some(Ok(false)) | Some(Err(_)))
            || matches!(self.close, Some(Err(_)))
    }

    /// Opened, answered everything as written, and nothing noticed anything.
    fn clean(&self) -> bool {
        self.open_error.is_none()
            && !self.detected()
            && self.damaged.is_empty()
            && self.hidden.is_empty()
            && !self.stats_differ
    }
}

/// Opens the copy without verification, reads everything, writes once, checks
/// integrity and closes. `beat` names each step for the watchdog.
fn grid_trial(fx: &Fixture, beat: &dyn Fn(&str)) -> TrialReport {
    let mut r = TrialReport::default();
    beat("open");
    let store = match fx.open_copy(false) {
        Ok(store) => store,
        Err(e) => {
            r.open_error = Some(error_label(&e));
            return r;
        }
    };
    beat("get every key");
    for (ns, key) in &fx.keys {
        if let Some(found) = r.answer(store.kv().get(ns, key)) {
            let got = found.as_ref().map(|e| e.value.as_slice());
            r.record("get", ns, key, got, &fx.truth);
        }
    }
    beat("get_many");
    for ns in NAMESPACES {
        let keys: Vec<&str> = fx
            .keys
            .iter()
            .filter(|(n, _)| n == ns)
            .map(|(_, k)| k.as_str())
            .collect();
        if let Some(found) = r.answer(store.kv().get_many(ns, &keys)) {
            if found.len() != keys.len() {
                r.damaged
                    .push(format!("get_many {ns}: {} answers", found.len()));
            }
            for (key, e) in keys.iter().zip(&found) {
                let got = e.as_ref().map(|e| e.value.as_slice());
                r.record("get_many", ns, key, got, &fx.truth);
            }
        }
    }
    beat("list");
    for ns in NAMESPACES {
        for prefix in LIST_PREFIXES {
            let Some(entries) = r.answer(store.kv().list(ns, prefix)) else {
                continue;
            };
            let call = format!("list({prefix:?})");
            let mut seen = BTreeSet::new();
            for e in &entries {
                if e.key.starts_with(prefix) && seen.insert(e.key.as_str()) {
                    r.record(&call, ns, &e.key, Some(&e.value), &fx.truth);
                } else {
                    r.damaged
                        .push(format!("{call} {ns}/{:?} listed out of place", e.key));
                }
            }
            for (n, k) in fx.truth.keys() {
                if n == ns && k.starts_with(prefix) && !seen.contains(k.as_str()) {
                    r.hidden.push(format!("{call} {ns}/{k}"));
                }
            }
        }
    }
    beat("stats");
    if let Some(stats) = r.answer(store.stats()) {
        r.stats_differ = stats.tables != fx.tables;
    }
    beat("verify");
    r.verify_found = match r.answer(store.verify()) {
        Some(report) => report.damaged_records > 0 || !report.engine_damage.is_empty(),
        None => true,
    };
    beat("sweep");
    r.answer(store.sweep_all_expired(500));
    r.errors_before_write = r.errors.values().sum();
    beat("write");
    let written = store
        .kv()
        .put("n0", "written-after-the-flip", b"after", None)
        .map(drop)
        .map_err(|e| error_label(&e));
    r.calls += 1;
    if let Err(e) = &written {
        *r.errors.entry(e.clone()).or_default() += 1;
    }
    r.write = Some(written);
    beat("check_integrity");
    r.integrity = Some(match store.check_integrity() {
        Ok(intact) => Ok(intact),
        Err(e) => Err(error_label(&e)),
    });
    beat("close");
    r.close = Some(store.close().map_err(|e| error_label(&e)));
    r
}

/// What redb's own checks say about damaged files that a trial read wrong, before
/// anything is written to them.
#[derive(Debug, Clone, Copy, Default)]
struct SecondLook {
    /// A verified open (redb's checksum pass over every page) refuses them.
    verified_open_refuses: bool,
    /// `check_integrity` right after an unverified open finds the damage.
    integrity_before_writes_fails: bool,
}

/// Each look at a fresh copy of `store` and `log`.
fn second_look(fx: &Fixture, store: &[u8], log: Option<&[u8]>) -> SecondLook {
    fx.place(store, log);
    let verified_open_refuses = match fx.open_copy(true) {
        Ok(store) => {
            let _ = store.close();
            false
        }
        Err(_) => true,
    };
    fx.place(store, log);
    let integrity_before_writes_fails = match fx.open_copy(false) {
        Ok(store) => {
            let fails = !matches!(store.check_integrity(), Ok(true));
            let _ = store.close();
            fails
        }
        Err(_) => true,
    };
    SecondLook {
        verified_open_refuses,
        integrity_before_writes_fails,
    }
}

/// Outcomes of the trials that hit one kind of region.
#[derive(Debug, Default)]
struct RegionTally {
    trials: u64,
    refused_at_open: u64,
    detected: u64,
    with_damaged: u64,
    with_hidden: u64,
    no_effect: u64,
}

#[derive(Debug, Default)]
struct GridTally {
    trials: u64,
    opened: u64,
    open_errors: BTreeMap<String, u64>,
    calls: u64,
    errors: BTreeMap<String, u64>,
    correct: u64,
    damaged: u64,
    hidden: u64,
    trials_damaged: u64,
    trials_damaged_undetected: u64,
    trials_hidden: u64,
    trials_hidden_undetected: u64,
    /// Trials with hidden records in which `Store::verify` reported damage.
    trials_hidden_verify_found: u64,
    stats_differ: u64,
    detected: u64,
    no_effect: u64,
    write_after_detection: BTreeMap<String, u64>,
    write_undetected: BTreeMap<String, u64>,
    integrity: BTreeMap<String, u64>,
    close_errors: BTreeMap<String, u64>,
    contained_panics: BTreeMap<String, u64>,
    /// Panics that reached the test: the only failure besides a hang.
    panics: Vec<String>,
    by_region: BTreeMap<&'static str, RegionTally>,
    /// Grid flips by offset in their page: (trials, with damaged values, with hidden
    /// records).
    by_offset: BTreeMap<usize, (u64, u64, u64)>,
    /// Of the trials with damaged values or hidden records: how many copies a verified
    /// open refuses, and how many fail a `check_integrity` made before any write...
    verified_open_refuses: u64,
    early_integrity_fails: u64,
    /// ...of which the trial's own `check_integrity`, after the sweep and the write,
    /// found nothing: those writes rewrote the damaged page under a fresh checksum.
    laundered: u64,
    /// One line per trial that read a damaged value as valid or hid a record.
    findings: Vec<String>,
}

impl GridTally {
    /// Adds a trial; `look` is the second look at a trial with findings.
    fn add(
        &mut self,
        flip: &Flip,
        region: &'static str,
        what: &str,
        r: TrialReport,
        look: Option<SecondLook>,
    ) {
        if !flip.random && flip.file == InFile::Store {
            let o = self.by_offset.entry(flip.at % PAGE).or_default();
            o.0 += 1;
            o.1 += u64::from(!r.damaged.is_empty());
            o.2 += u64::from(!r.hidden.is_empty());
        }
        if let Some(look) = look {
            self.verified_open_refuses += u64::from(look.verified_open_refuses);
            self.early_integrity_fails += u64::from(look.integrity_before_writes_fails);
            self.laundered +=
                u64::from(look.integrity_before_writes_fails && r.integrity == Some(Ok(true)));
        }
        let by = self.by_region.entry(region).or_default();
        by.trials += 1;
        self.trials += 1;
        if let Some(e) = r.open_error {
            by.refused_at_open += 1;
            by.detected += 1;
            self.detected += 1;
            *self.open_errors.entry(e).or_default() += 1;
            return;
        }
        self.opened += 1;
        self.calls += r.calls;
        self.correct += r.correct;
        for (k, v) in &r.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        let detected = r.detected();
        self.detected += u64::from(detected);
        by.detected += u64::from(detected);
        self.stats_differ += u64::from(r.stats_differ);
        let clean = r.clean();
        self.no_effect += u64::from(clean);
        by.no_effect += u64::from(clean);
        self.damaged += r.damaged.len() as u64;
        self.hidden += r.hidden.len() as u64;
        if !r.damaged.is_empty() {
            self.trials_damaged += 1;
            self.trials_damaged_undetected += u64::from(!detected);
            by.with_damaged += 1;
        }
        if !r.hidden.is_empty() {
            self.trials_hidden += 1;
            self.trials_hidden_undetected += u64::from(!detected);
            self.trials_hidden_verify_found += u64::from(r.verify_found);
            by.with_hidden += 1;
        }
        if let Some(write) = &r.write {
            let outcome = match write {
                Ok(()) => "accepted".to_owned(),
                Err(e) => format!("refused: {e}"),
            };
            let bucket = if r.errors_before_write > 0 {
                &mut self.write_after_detection
            } else {
                &mut self.write_undetected
            };
            *bucket.entry(outcome).or_default() += 1;
        }
        let integrity = match &r.integrity {
            Some(Ok(true)) => "intact".to_owned(),
            Some(Ok(false)) => "repaired".to_owned(),
            Some(Err(e)) => format!("error: {e}"),
            None => "not reached".to_owned(),
        };
        *self.integrity.entry(integrity.clone()).or_default() += 1;
        if let Some(Err(e)) = &r.close {
            *self.close_errors.entry(e.clone()).or_default() += 1;
        }
        if !r.damaged.is_empty() || !r.hidden.is_empty() {
            let first = |v: &[String]| v.first().cloned().unwrap_or_default();
            self.findings.push(format!(
                "{what}: {} damaged as valid ({}), {} hidden ({}); detected: {}{}, \
                 check_integrity {}; before any write: {}",
                r.damaged.len(),
                first(&r.damaged),
                r.hidden.len(),
                first(&r.hidden),
                if detected { "yes" } else { "NO" },
                if r.errors.is_empty() {
                    String::new()
                } else {
                    format!(" {:?}", r.errors)
                },
                integrity,
                look.map_or("not looked at".to_owned(), |l| format!(
                    "a verified open {}, check_integrity {}",
                    if l.verified_open_refuses {
                        "refuses the copy"
                    } else {
                        "accepts the copy"
                    },
                    if l.integrity_before_writes_fails {
                        "fails"
                    } else {
                        "passes"
                    },
                )),
            ));
        }
    }

    fn corrupt_errors(&self, engine: bool) -> u64 {
        self.errors
            .iter()
            .filter(|(k, _)| k.starts_with("Corrupt(") && k.contains("(storage engine)") == engine)
            .map(|(_, v)| v)
            .sum()
    }

    fn print(&self, plan_len: usize, store_len: usize, log_len: Option<usize>) {
        println!(
            "flip grid (verify on open off): {} trials over a {store_len}-byte store file{} \
             ({plan_len} planned flips); {} opened, open refused {:?}. {} calls answered \
             {} records as written, errors {:?} (Corrupt naming a table: {}, naming \
             \"(storage engine)\": {}). Damaged values returned as valid: {} in {} trials \
             ({} of them with no damage detected anywhere in the trial); hidden records: {} \
             in {} trials ({} with no damage detected by the reads; Store::verify found damage \
             in {} of them). stats with other counts: {}. Damage \
             detected in {} trials; no effect at all in {}. Of the trials with damaged values \
             or hidden records, a verified open (full checksum pass) refuses {} copies, a \
             check_integrity before any write fails on {}, and {} of those passed the trial's \
             check_integrity after the sweep and the write. Write after a detected damage: \
             {:?}; write with nothing detected yet: {:?}. check_integrity: {:?}. close \
             errors: {:?}. Panics contained inside edgestate: {:?}; panics reaching the \
             caller: {}; hangs: 0.",
            self.trials,
            log_len.map_or(String::new(), |l| format!(" and its {l}-byte page log")),
            self.opened,
            self.open_errors,
            self.calls,
            self.correct,
            self.errors,
            self.corrupt_errors(false),
            self.corrupt_errors(true),
            self.damaged,
            self.trials_damaged,
            self.trials_damaged_undetected,
            self.hidden,
            self.trials_hidden,
            self.trials_hidden_undetected,
            self.trials_hidden_verify_found,
            self.stats_differ,
            self.detected,
            self.no_effect,
            self.verified_open_refuses,
            self.early_integrity_fails,
            self.laundered,
            self.write_after_detection,
            self.write_undetected,
            self.integrity,
            self.close_errors,
            self.contained_panics,
            self.panics.len(),
        );
        for (region, t) in &self.by_region {
            println!(
                "  {region}: {} trials, {} refused at open, {} detected, {} with damaged values, \
                 {} with hidden records, {} without effect",
                t.trials, t.refused_at_open, t.detected, t.with_damaged, t.with_hidden, t.no_effect
            );
        }
        let offsets: Vec<String> = self
            .by_offset
            .iter()
            .map(|(o, (t, d, h))| format!("+{o}: {t}/{d}/{h}"))
            .collect();
        println!(
            "  grid flips by offset in the page (trials/with damaged values/with hidden \
             records): {}",
            offsets.join(", ")
        );
        let shown = common::env_u64("EDGESTATE_FLIP_GRID_SHOW", 40) as usize;
        for f in self.findings.iter().take(shown) {
            println!("  {f}");
        }
        if self.findings.len() > shown {
            println!(
                "  ... {} more (EDGESTATE_FLIP_GRID_SHOW)",
                self.findings.len() - shown
            );
        }
        for p in &self.panics {
            println!("  PANIC reached the caller: {p}");
        }
    }
}

#[test]
fn byte_flip_grid_without_verify_on_open_never_panics_or_hangs() {
    common::record_panics();
    let seed = common::env_u64("EDGESTATE_FLIP_SEED", 0xF11B);
    let strict = match std::env::var("EDGESTATE_FLIP_STRICT").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => DAMAGED_VALUES_FAIL,
    };
    // A trial beats at every step, so a limit well above one step's time is a hang.
    let watchdog = Watchdog::start(Duration::from_secs(60));
    let fx = Fixture::build();
    let plan = grid_plan(&fx, seed);

    // The untouched files first: every answer must be right, or the tallies below would
    // count the test's own mistakes.
    fx.place(&fx.store, fx.log.as_deref());
    let control = grid_trial(&fx, &|step| watchdog.beat(format!("control: {step}")));
    assert!(
        control.clean() && control.correct > 0 && control.write == Some(Ok(())),
        "the undamaged copy did not read back exactly: {control:?}"
    );
    let _ = common::take_panics_of_this_thread();

    let trace = std::env::var_os("EDGESTATE_FLIP_GRID_TRACE").is_some();
    let skip = trials_to_skip();
    let mut skipped = Vec::new();
    let mut tally = GridTally::default();
    let mut store = fx.store.clone();
    let mut log = fx.log.clone();
    let toggle = |flip: &Flip, store: &mut Vec<u8>, log: &mut Option<Vec<u8>>| {
        let target = match flip.file {
            InFile::Store => store,
            InFile::Log => log.as_mut().expect("a log flip needs a log"),
        };
        target[flip.at] ^= flip.mask;
    };
    for (t, flip) in plan.iter().enumerate() {
        if skip.contains(&t) {
            skipped.push(format!("trial {t}: {}", describe(&fx, flip)));
            continue;
        }
        toggle(flip, &mut store, &mut log);
        fx.place(&store, log.as_deref());
        let what = format!("trial {t}: {}", describe(&fx, flip));
        if trace {
            // What ran last, should the process die (an abort cannot be caught).
            eprintln!("{what}");
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            grid_trial(&fx, &|step| watchdog.beat(format!("{what}: {step}")))
        }));
        // Panics inside edgestate's containment are recorded too; only the last one of a
        // trial that unwound reached the test.
        let mut recorded = common::take_panics_of_this_thread();
        match outcome {
            Ok(report) => {
                // Would redb's own checks have caught it, before anything was written?
                let look = (!report.damaged.is_empty() || !report.hidden.is_empty()).then(|| {
                    watchdog.beat(format!("{what}: second look"));
                    let look = || second_look(&fx, &store, log.as_deref());
                    catch_unwind(AssertUnwindSafe(look)).unwrap_or_else(|_| {
                        tally
                            .panics
                            .push(format!("{what}: panic in the second look"));
                        SecondLook::default()
                    })
                });
                recorded.extend(common::take_panics_of_this_thread());
                tally.add(flip, region(&fx, flip), &what, report, look);
            }
            Err(_) => {
                let escaped = recorded.pop().unwrap_or_else(|| "(not recorded)".into());
                tally.panics.push(format!("{what}: {escaped}"));
                tally.trials += 1;
            }
        }
        for p in recorded {
            *tally.contained_panics.entry(panic_site(&p)).or_default() += 1;
        }
        toggle(flip, &mut store, &mut log);
    }
    tally.print(plan.len(), fx.store.len(), fx.log.as_ref().map(|l| l.len()));
    let mut places: BTreeMap<String, u64> = BTreeMap::new();
    for p in &tally.panics {
        *places.entry(panic_site(p)).or_default() += 1;
    }
    assert!(
        tally.panics.is_empty(),
        "{} panics reached the caller: {places:#?}\n{}",
        tally.panics.len(),
        tally.panics.join("\n")
    );
    assert!(
        skipped.is_empty(),
        "{} trials skipped (EDGESTATE_FLIP_GRID_SKIP), so this run proves nothing about them: {}",
        skipped.len(),
        if skipped.len() <= 20 {
            skipped.join("; ")
        } else {
            format!("{} ... {}", skipped[0], skipped[skipped.len() - 1])
        }
    );
    if strict {
        assert_eq!(
            tally.damaged,
            0,
            "reads returned damaged values as valid:\n{}",
            tally.findings.join("\n")
        );
    }
}
