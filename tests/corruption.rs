//! Damaged store files: random byte flips anywhere in a store file, and a damaged record
//! envelope. Every case must end in a value or a typed error: never a panic, never a
//! hang, never data that was not written. (The grid of flips over every page:
//! `flip_grid.rs`; files that are not stores: `bad_files.rs`.)
//!
//! Size: `EDGESTATE_FLIP_TRIALS` (default 400), `EDGESTATE_FLIP_SEED`.
//! `cargo test --release --test corruption -- --nocapture` prints the figures.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use common::faulty_backend::{Fault, FaultState, FaultyBackend};
use common::flips::*;
use common::rng::XorShift;
use common::watchdog::Watchdog;
use edgestate::{Error, ManualClock, Store};

#[derive(Default, Debug)]
struct FlipTally {
    trials: u64,
    opened: u64,
    open_errors: BTreeMap<&'static str, u64>,
    read_ok: u64,
    read_errors: BTreeMap<&'static str, u64>,
    integrity_repaired: u64,
    /// Reads that returned data other than what was written (first few, and how many).
    wrong_values: Vec<String>,
    wrong_count: u64,
    panics: Vec<String>,
}

/// Every read (and a few writes and maintenance calls) on a store that opened; each call
/// must return a value or a typed error, and a value must be the one that was written.
fn exercise(
    store: &Store,
    keys: &[(String, String)],
    truth: &Truth,
    rng: &mut XorShift,
    tally: &mut FlipTally,
) {
    let note = |r: Result<(), Error>, tally: &mut FlipTally| match r {
        Ok(()) => tally.read_ok += 1,
        Err(e) => {
            *tally
                .read_errors
                .entry(common::error_variant(&e))
                .or_default() += 1
        }
    };
    let wrong = |what: String, tally: &mut FlipTally| {
        if tally.wrong_values.len() < 5 {
            tally.wrong_values.push(what);
        }
        tally.wrong_count += 1;
    };
    for _ in 0..24 {
        let (ns, key) = &keys[rng.below(keys.len() as u64) as usize];
        let got = store.kv().get(ns, key);
        if let Ok(found) = &got {
            let want = truth.get(&(ns.clone(), key.clone()));
            if found.as_ref().map(|e| &e.value) != want {
                wrong(format!("get {ns}/{key}"), tally);
            }
        }
        note(got.map(drop), tally);
    }
    for ns in NAMESPACES {
        let listed = store.kv().list(ns, "");
        if let Ok(entries) = &listed {
            let want: Vec<(&String, &Vec<u8>)> = truth
                .iter()
                .filter(|((n, _), _)| n == ns)
                .map(|((_, k), v)| (k, v))
                .collect();
            let got: Vec<(&String, &Vec<u8>)> =
                entries.iter().map(|e| (&e.key, &e.value)).collect();
            if got != want {
                wrong(format!("list_prefix {ns}"), tally);
            }
        }
        note(listed.map(drop), tally);
        let some: Vec<&str> = keys
            .iter()
            .filter(|(n, _)| n == ns)
            .step_by(17)
            .map(|(_, k)| k.as_str())
            .collect();
        let many = store.kv().get_many(ns, &some);
        if let Ok(found) = &many {
            for (k, e) in some.iter().zip(found) {
                if e.as_ref().map(|e| &e.value) != truth.get(&(ns.to_owned(), (*k).to_owned())) {
                    wrong(format!("get_many {ns}/{k}"), tally);
                }
            }
        }
        note(many.map(drop), tally);
    }
    note(
        store.kv().get_value::<u64>("n0", &key_name(28)).map(drop),
        tally,
    );
    note(store.stats().map(drop), tally);
    note(store.sweep_all_expired(500).map(drop), tally);
    note(
        store.kv().put("n0", "after-damage", b"x", None).map(drop),
        tally,
    );
    match store.check_integrity() {
        Ok(intact) => {
            tally.read_ok += 1;
            tally.integrity_repaired += u64::from(!intact);
        }
        Err(e) => {
            *tally
                .read_errors
                .entry(common::error_variant(&e))
                .or_default() += 1
        }
    }
    note(store.kv().get("n1", &key_name(1)).map(drop), tally);
}

/// Flips bytes at `trials` places spread over every region of the file and opens each
/// damaged copy. Returns the tally; the caller decides what counts as failure.
fn flip_trials(verify_on_open: bool, trials: u64, seed: u64) -> FlipTally {
    common::record_panics();
    let watchdog = Watchdog::start(Duration::from_secs(120));
    let fx = Fixture::build();
    let pristine = &fx.store;
    let len = pristine.len() as u64;
    println!(
        "store file: {} records, {len} bytes; {trials} flip trials, seed {seed:#x}, verify on \
         open: {verify_on_open}",
        fx.keys.len()
    );

    let mut rng = XorShift::new(seed);
    let mut tally = FlipTally::default();
    for t in 0..trials {
        // Stratified: trial t lands in the t-th slice of the file, so every region is hit.
        let slice_start = t * len / trials;
        let slice_len = ((t + 1) * len / trials - slice_start).max(1);
        let at = (slice_start + rng.below(slice_len)) as usize;
        let mut bytes = pristine.clone();
        let burst = rng.below(4) == 0;
        if burst {
            for b in bytes.iter_mut().skip(at).take(16) {
                *b = rng.next_u64() as u8;
            }
        } else {
            bytes[at] ^= 1 + rng.below(255) as u8;
        }
        fx.place(&bytes, fx.log.as_deref());
        let what = format!(
            "trial {t}: {} at offset {at} (verify on open: {verify_on_open})",
            if burst {
                "16 random bytes"
            } else {
                "one byte flipped"
            }
        );
        watchdog.beat(what.clone());
        tally.trials += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut local = FlipTally::default();
            match fx.open_copy(verify_on_open) {
                Ok(store) => {
                    local.opened += 1;
                    exercise(&store, &fx.keys, &fx.truth, &mut rng, &mut local);
                    let _ = store.close();
                }
                Err(e) => {
                    *local
                        .open_errors
                        .entry(common::error_variant(&e))
                        .or_default() += 1
                }
            }
            local
        }));
        // Panics contained inside edgestate are recorded too: only those of a trial that
        // unwound reached the caller.
        let recorded = common::take_panics_of_this_thread();
        match outcome {
            Ok(local) => {
                tally.opened += local.opened;
                tally.read_ok += local.read_ok;
                tally.integrity_repaired += local.integrity_repaired;
                tally.wrong_count += local.wrong_count;
                for w in local.wrong_values {
                    if tally.wrong_values.len() < 10 {
                        tally.wrong_values.push(format!("{what}: {w}"));
                    }
                }
                for (k, v) in local.open_errors {
                    *tally.open_errors.entry(k).or_default() += v;
                }
                for (k, v) in local.read_errors {
                    *tally.read_errors.entry(k).or_default() += v;
                }
            }
            Err(_) => {
                for site in recorded {
                    tally.panics.push(format!("{what}: {site}"));
                }
            }
        }
    }
    println!(
        "byte flips: {} trials, {} opened ({} calls ok, errors {:?}, {} integrity checks \
         repaired, {} reads returned wrong data), open refused {:?}, panics {}",
        tally.trials,
        tally.opened,
        tally.read_ok,
        tally.read_errors,
        tally.integrity_repaired,
        tally.wrong_count,
        tally.open_errors,
        tally.panics.len()
    );
    for w in &tally.wrong_values {
        println!("  wrong data: {w}");
    }
    tally
}

#[test]
fn random_byte_flips_give_values_or_typed_errors_never_panics() {
    let trials = common::env_u64("EDGESTATE_FLIP_TRIALS", 400).max(1);
    let seed = common::env_u64("EDGESTATE_FLIP_SEED", 0xF11B);
    let tally = flip_trials(true, trials, seed);
    assert!(
        tally.panics.is_empty(),
        "{} panics:\n{}",
        tally.panics.len(),
        tally.panics.join("\n")
    );
    assert!(
        !tally.open_errors.contains_key("other"),
        "unexpected open error kinds: {:?}",
        tally.open_errors
    );
    assert_eq!(
        tally.wrong_count, 0,
        "reads returned data that was never written: {:?}",
        tally.wrong_values
    );
}

/// The same flips opened without page verification. redb panics on some damaged pages;
/// edgestate contains those panics (typed `Error::Corrupt`, the transaction rolled back,
/// the store reopened on the next call), so none may reach the caller. What this open
/// still cannot promise is shown, not asserted: a flipped byte in a key (no checksum
/// covers keys) can list a record under another key or hide it.
#[test]
fn random_byte_flips_without_verify_on_open_never_panic() {
    let trials = common::env_u64("EDGESTATE_FLIP_TRIALS", 200).max(1);
    let seed = common::env_u64("EDGESTATE_FLIP_SEED", 0xF11B);
    let tally = flip_trials(false, trials, seed);
    let mut places: BTreeMap<String, u64> = BTreeMap::new();
    for p in &tally.panics {
        *places.entry(panic_site(p)).or_default() += 1;
    }
    assert!(
        tally.panics.is_empty(),
        "{} panics reached the caller: {places:#?}",
        tally.panics.len()
    );
}

// ---------------------------------------------------------------------------------------
// A damaged record envelope: the crc32 is the only read-time check (redb verifies page
// checksums on open, not on reads), so damage that appears after open must be reported
// as Error::Corrupt naming the table and key, and must not spill onto other records.

const CANARY: &[u8] = b"CANARY-PAYLOAD-0123456789abcdef";

fn write_canary_store(path: &Path, clock: &ManualClock) {
    let store = Store::builder()
        .clock(clock.clone())
        .open(path)
        .expect("create");
    store
        .write(|tx| {
            for i in 0..50 {
                tx.kv()
                    .put("a", &format!("neighbour-{i:02}"), b"fine", None)?;
            }
            tx.kv().put("a", "victim", CANARY, None)?;
            Ok::<_, Error>(())
        })
        .expect("write");
    store.close().expect("close");
}

fn assert_corrupt_victim(e: Error) {
    match e {
        Error::Corrupt { table, key, reason } => {
            assert_eq!(table, "edgestate.kv");
            assert_eq!(key, "a/victim");
            assert!(reason.contains("checksum"), "reason: {reason}");
        }
        other => panic!("expected Error::Corrupt for a/victim, got {other:?}"),
    }
}

/// Checks every read path on a store whose `a/victim` record is damaged.
fn assert_damage_is_reported_and_contained(store: &Store) {
    assert_corrupt_victim(store.kv().get("a", "victim").expect_err("damaged"));
    assert_corrupt_victim(
        store
            .kv()
            .list("a", "")
            .expect_err("listing crosses the damaged record"),
    );
    assert_corrupt_victim(
        store
            .kv()
            .get_many("a", &["neighbour-00", "victim"])
            .expect_err("batch includes the damaged record"),
    );
    // Records around it are unaffected.
    assert_eq!(
        store
            .kv()
            .get("a", "neighbour-07")
            .expect("neighbour readable")
            .expect("present")
            .value,
        b"fine"
    );
    assert_eq!(
        store
            .kv()
            .list("a", "neighbour-")
            .expect("listing beside the damage")
            .len(),
        50
    );
    // Overwriting does not silently paper over damage it cannot read...
    assert_corrupt_victim(
        store
            .kv()
            .put("a", "victim", b"new", None)
            .expect_err("put over a damaged record"),
    );
    // ...but deleting it does work, and then the key can be written again.
    assert!(!store.kv().delete("a", "victim").expect("delete damaged"));
    assert!(store.kv().get("a", "victim").expect("get").is_none());
    assert_eq!(store.kv().put("a", "victim", b"new", None).expect("put"), 1);
}

#[test]
fn damage_appearing_after_open_is_reported_as_corrupt_naming_table_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("canary.edgestate");
    let clock = ManualClock::new(START_MS);
    write_canary_store(&path, &clock);

    // Verified on open with the disk intact; the damage appears afterwards (a failing
    // disk, a bad cable): the tiny cache makes reads go back to the file.
    let state = FaultState::new(Fault::None);
    let store = Store::builder()
        .clock(clock.clone())
        .cache_size(0)
        .open_with_backend(FaultyBackend::open(&path, state.clone()).expect("backend"))
        .expect("open verified");
    state.set_fault(Fault::FlipOnRead {
        needle: CANARY.to_vec(),
        needle_offset: 9,
    });
    assert_corrupt_victim(store.kv().get("a", "victim").expect_err("damaged"));
    assert!(
        state
            .flipped_reads
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0,
        "the backend never saw the record's page"
    );
    assert_damage_is_reported_and_contained(&store);
}

/// Finds every copy of `needle` in the file (old page versions included) and damages one
/// byte of each.
fn damage_in_file(path: &Path, needle: &[u8], offset: usize) -> usize {
    let mut bytes = std::fs::read(path).expect("read");
    let hits: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    for at in &hits {
        bytes[at + offset] ^= 0x20;
    }
    std::fs::write(path, bytes).expect("write");
    hits.len()
}

#[test]
fn a_damaged_record_in_the_file_is_caught_by_verify_on_open_or_by_its_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("canary.edgestate");
    let clock = ManualClock::new(START_MS);
    write_canary_store(&path, &clock);
    assert!(
        damage_in_file(&path, CANARY, 3) > 0,
        "canary not found in file"
    );

    // Verified open: redb's page checksums catch it before any read.
    match Store::builder()
        .clock(clock.clone())
        .verify_on_open(true)
        .open(&path)
    {
        Err(Error::NotAStore { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(!reason.is_empty());
        }
        other => panic!("expected NotAStore from a verified open, got {other:?}"),
    }
    // Unverified open: the envelope checksum catches it at read time.
    let store = Store::builder()
        .clock(clock.clone())
        .verify_on_open(false)
        .open(&path)
        .expect("unverified open of a cleanly closed file");
    assert_damage_is_reported_and_contained(&store);
}
