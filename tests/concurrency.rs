//! Concurrency: optimistic and closure increments from many threads are exact, readers
//! only ever see committed snapshots, the background sweeper never removes a live record,
//! and maintenance under load neither deadlocks nor loses data.
//!
//! Size: `EDGESTATE_CONCURRENCY_OPS` (default 200 operations per thread).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

// A file store; relaxed durability because these tests are about interleavings, not
// fsyncs (the fault-injection tests cover durability).
use common::relaxed_temporary_store as store;
use common::watchdog::Watchdog;
use edgestate::{Durability, Error, Expect, ManualClock, Store, Table};

const THREADS: usize = 8;
const START_MS: u64 = 1_700_000_000_000;

fn ops_per_thread() -> u64 {
    common::env_u64("EDGESTATE_CONCURRENCY_OPS", 200)
}

fn read_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8-byte counter"))
}

#[test]
fn cas_increments_from_eight_threads_are_exact() {
    let _watchdog = Watchdog::start(Duration::from_secs(120));
    let store = store();
    let counters = ["c0", "c1", "c2"];
    let n = ops_per_thread();
    let conflicts = AtomicU64::new(0);
    let start = Barrier::new(THREADS);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (store, conflicts, start) = (&store, &conflicts, &start);
            s.spawn(move || {
                start.wait();
                for i in 0..n {
                    let key = counters[(t + i as usize) % counters.len()];
                    loop {
                        let current = store.kv().get("cas", key).expect("get");
                        let (value, expect) = match &current {
                            Some(e) => (read_u64(&e.value), Expect::Version(e.version)),
                            None => (0, Expect::Absent),
                        };
                        match store.kv().put_if(
                            "cas",
                            key,
                            &(value + 1).to_le_bytes(),
                            None,
                            expect,
                        ) {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("unexpected error: {e:?}"),
                        }
                    }
                }
            });
        }
    });
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for t in 0..THREADS {
        for i in 0..n {
            *expected
                .entry(counters[(t + i as usize) % counters.len()])
                .or_default() += 1;
        }
    }
    for key in counters {
        let e = store.kv().get("cas", key).expect("get").expect("counter");
        assert_eq!(read_u64(&e.value), expected[key], "counter {key}");
        // Every successful CAS made exactly one new version.
        assert_eq!(e.version, expected[key], "versions of {key}");
    }
    println!(
        "CAS: {} increments from {THREADS} threads exact, {} conflicts retried",
        n * THREADS as u64,
        conflicts.load(Ordering::Relaxed)
    );
}

#[test]
fn update_value_increments_from_eight_threads_are_exact() {
    let _watchdog = Watchdog::start(Duration::from_secs(120));
    let store = store();
    let n = ops_per_thread();
    let start = Barrier::new(THREADS);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (store, start) = (&store, &start);
            s.spawn(move || {
                start.wait();
                for i in 0..n {
                    let key = if (t as u64 + i).is_multiple_of(2) {
                        "even"
                    } else {
                        "odd"
                    };
                    store
                        .kv()
                        .update_value::<u64, _>("upd", key, None, |v| Ok(v.unwrap_or(0) + 1))
                        .expect("update_value never conflicts: it runs in one transaction");
                }
            });
        }
    });
    let total: u64 = ["even", "odd"]
        .iter()
        .map(|k| {
            store
                .kv()
                .get_value::<u64>("upd", k)
                .expect("get")
                .expect("counter")
                .value
        })
        .sum();
    assert_eq!(total, n * THREADS as u64);
    let even = store
        .kv()
        .get_value::<u64>("upd", "even")
        .expect("get")
        .expect("even");
    assert_eq!(even.value, n * THREADS as u64 / 2);
    assert_eq!(even.version, even.value);
}

#[test]
fn readers_never_see_a_half_applied_transfer() {
    let _watchdog = Watchdog::start(Duration::from_secs(120));
    let store = store();
    const TOTAL: u64 = 1_000;
    store
        .write(|tx| {
            tx.kv().put("bank", "a", &TOTAL.to_le_bytes(), None)?;
            tx.kv().put("bank", "b", &0u64.to_le_bytes(), None)?;
            Ok::<_, Error>(())
        })
        .expect("seed");
    let transfers = ops_per_thread() * 2;
    let writers_done = AtomicBool::new(false);
    let snapshots_checked = AtomicU64::new(0);
    thread::scope(|s| {
        let mut writers = Vec::new();
        for w in 0..2u64 {
            let store = &store;
            writers.push(s.spawn(move || {
                let mut rng = common::rng::XorShift::new(w + 1);
                for _ in 0..transfers {
                    let amount = rng.below(50);
                    store
                        .write(|tx| {
                            let a = read_u64(&tx.kv().get("bank", "a")?.expect("a").value);
                            let b = read_u64(&tx.kv().get("bank", "b")?.expect("b").value);
                            let (from, to) = if rng.below(2) == 0 {
                                ("a", "b")
                            } else {
                                ("b", "a")
                            };
                            let (have, other) = if from == "a" { (a, b) } else { (b, a) };
                            let moved = amount.min(have);
                            tx.kv()
                                .put("bank", from, &(have - moved).to_le_bytes(), None)?;
                            tx.kv()
                                .put("bank", to, &(other + moved).to_le_bytes(), None)?;
                            Ok::<_, Error>(())
                        })
                        .expect("transfer");
                }
            }));
        }
        for r in 0..4 {
            let (store, writers_done, checked) = (&store, &writers_done, &snapshots_checked);
            s.spawn(move || {
                // At least a few checks each, then until the writers are done.
                let mut rounds = 0u64;
                while rounds < 20 || !writers_done.load(Ordering::SeqCst) {
                    rounds += 1;
                    let sum = if (r + rounds).is_multiple_of(2) {
                        store
                            .read(|tx| {
                                let a = tx.kv().get("bank", "a")?.expect("a");
                                let b = tx.kv().get("bank", "b")?.expect("b");
                                Ok::<_, Error>(read_u64(&a.value) + read_u64(&b.value))
                            })
                            .expect("read")
                    } else {
                        store
                            .kv()
                            .get_many("bank", &["a", "b"])
                            .expect("get_many")
                            .iter()
                            .map(|e| read_u64(&e.as_ref().expect("present").value))
                            .sum()
                    };
                    assert_eq!(sum, TOTAL, "a reader saw a half-applied transfer");
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for w in writers {
            w.join().expect("writer");
        }
        writers_done.store(true, Ordering::SeqCst);
    });
    println!(
        "snapshots: {} reads checked during {} transfers, invariant held in all",
        snapshots_checked.load(Ordering::Relaxed),
        transfers * 2
    );
}

#[test]
fn the_background_sweeper_never_removes_a_live_record() {
    let _watchdog = Watchdog::start(Duration::from_secs(180));
    let clock = ManualClock::new(START_MS);
    let store = Store::builder()
        .clock(clock.clone())
        .durability(Durability::Relaxed)
        .sweep_every(Duration::from_millis(1))
        .sweep_batch(16)
        .temporary()
        .expect("store");
    const DAY: Duration = Duration::from_secs(86_400);
    // Records that must survive the whole test, checked by a reader throughout.
    for i in 0..20 {
        let ttl = if i % 2 == 0 { None } else { Some(DAY) };
        store
            .kv()
            .put("stable", &format!("s{i}"), b"here", ttl)
            .expect("seed");
    }
    let n = ops_per_thread();
    let writers = 4usize;
    let done = AtomicBool::new(false);
    let final_live: BTreeMap<String, Vec<u8>> = thread::scope(|s| {
        // The clock keeps moving in 1 ms steps while writers run (never near a day).
        let clock_thread = {
            let (clock, done) = (&clock, &done);
            s.spawn(move || {
                let mut advanced = 0u64;
                while !done.load(Ordering::SeqCst) && advanced < 3_600_000 {
                    clock.advance(Duration::from_millis(1));
                    advanced += 1;
                    thread::yield_now();
                }
            })
        };
        let reader = {
            let (store, done) = (&store, &done);
            s.spawn(move || {
                let mut rounds = 0u64;
                while rounds < 10 || !done.load(Ordering::SeqCst) {
                    rounds += 1;
                    let live = store.kv().list("stable", "s").expect("list");
                    assert_eq!(live.len(), 20, "a live stable record vanished");
                }
            })
        };
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let store = &store;
                s.spawn(move || {
                    let mut rng = common::rng::XorShift::new(w as u64 + 99);
                    let mut last: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for i in 0..n {
                        // Short-lived records for the sweeper to chew on.
                        let tmp = format!("w{w}-t{i}");
                        let short = Duration::from_millis(1 + rng.below(20));
                        store
                            .kv()
                            .put("tmp", &tmp, b"soon gone", Some(short))
                            .expect("tmp");
                        // A live key first written short-lived, then extended: the stale
                        // expiry entry must not take the extended record with it.
                        let key = format!("w{w}-k{}", rng.below(16));
                        let value = format!("{key}@{i}").into_bytes();
                        store
                            .kv()
                            .put("live", &key, b"brief", Some(Duration::from_millis(2)))
                            .expect("brief");
                        let ttl = if rng.below(2) == 0 { None } else { Some(DAY) };
                        let version = store.kv().put("live", &key, &value, ttl).expect("live");
                        let seen = store.kv().get("live", &key).expect("get");
                        let seen = seen.expect("a record just written live is visible");
                        assert_eq!(seen.value, value);
                        assert_eq!(seen.version, version);
                        last.insert(key, value);
                    }
                    last
                })
            })
            .collect();
        let mut all = BTreeMap::new();
        for h in handles {
            all.extend(h.join().expect("writer"));
        }
        done.store(true, Ordering::SeqCst);
        clock_thread.join().expect("clock");
        reader.join().expect("reader");
        all
    });

    for (key, value) in &final_live {
        let e = store
            .kv()
            .get("live", key)
            .expect("get")
            .unwrap_or_else(|| panic!("live record {key} was removed"));
        assert_eq!(&e.value, value, "{key}");
    }
    // Past every short TTL (but far from a day): the sweeper alone must clean up the
    // rest. Wait for it (it is a background thread) without asserting any timing.
    clock.advance(Duration::from_secs(3_600));
    let expected_rows = (final_live.len() + 20) as u64;
    let mut polls = 0u64;
    loop {
        let stats = store.stats().expect("stats");
        if stats.records(Table::Kv) == expected_rows {
            println!(
                "sweeper: {} runs, {} records removed, {} errors; {} live records intact",
                stats.sweeper_runs,
                stats.sweeper_removed,
                stats.sweeper_errors,
                final_live.len() + 20
            );
            assert_eq!(stats.sweeper_errors, 0);
            assert!(stats.sweeper_removed > 0);
            // Only records with a TTL keep an expiry entry.
            let with_ttl = store
                .kv()
                .list("live", "")
                .expect("list")
                .iter()
                .chain(store.kv().list("stable", "").expect("list").iter())
                .filter(|e| e.expires_at_ms.is_some())
                .count() as u64;
            assert_eq!(stats.records(Table::Expiry), with_ttl);
            break;
        }
        polls += 1;
        assert!(polls < 60_000, "the sweeper never finished: {stats:?}");
        thread::park_timeout(Duration::from_millis(1));
    }
    for (key, value) in &final_live {
        assert_eq!(
            &store
                .kv()
                .get("live", key)
                .expect("get")
                .expect("live")
                .value,
            value
        );
    }
}

/// Writers, readers and a maintenance thread running compact() and check_integrity()
/// together: no deadlock, no error, every acknowledged write intact afterwards. The load
/// keeps running until maintenance has run several times, so a maintenance call starved
/// by the load (a regression: new transactions used to jump the queue) hangs the test and
/// the watchdog fails it.
fn maintenance_under_load(durability: Durability) {
    let _watchdog = Watchdog::start(Duration::from_secs(180));
    let store = Store::builder()
        .durability(durability)
        .temporary()
        .expect("store");
    const MAINTENANCE_RUNS: u64 = 6;
    let n = ops_per_thread() / 2;
    let writers_done = AtomicBool::new(false);
    let maintenance_runs = AtomicU64::new(0);
    let writes = AtomicU64::new(0);
    let acked: BTreeMap<String, Vec<u8>> = thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (store, runs, writes) = (&store, &maintenance_runs, &writes);
                s.spawn(move || {
                    let mut acked = BTreeMap::new();
                    let mut i = 0u64;
                    while i < n || runs.load(Ordering::SeqCst) < MAINTENANCE_RUNS {
                        let key = format!("w{w}-{}", i % 40);
                        // Values of a few KiB so compaction has pages to move.
                        let value = format!("{key}@{i}|").repeat(1 + (i % 300) as usize);
                        store
                            .kv()
                            .put("m", &key, value.as_bytes(), None)
                            .expect("write under maintenance");
                        acked.insert(key, value.into_bytes());
                        if i.is_multiple_of(10) {
                            let doomed = format!("w{w}-{}", (i + 7) % 40);
                            store.kv().delete("m", &doomed).expect("delete");
                            acked.remove(&doomed);
                        }
                        i += 1;
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    acked
                })
            })
            .collect();
        for _ in 0..2 {
            let (store, done) = (&store, &writers_done);
            s.spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    store.kv().list("m", "w").expect("read under maintenance");
                    store.stats().expect("stats under maintenance");
                }
            });
        }
        {
            let (store, runs) = (&store, &maintenance_runs);
            s.spawn(move || {
                for i in 0..MAINTENANCE_RUNS {
                    if i % 2 == 0 {
                        store.compact().expect("compact under load");
                    } else {
                        assert!(
                            store.check_integrity().expect("check_integrity under load"),
                            "check_integrity found damage"
                        );
                    }
                    runs.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let mut acked = BTreeMap::new();
        for w in writers {
            acked.extend(w.join().expect("writer"));
        }
        writers_done.store(true, Ordering::SeqCst);
        acked
    });
    let found: BTreeMap<String, Vec<u8>> = store
        .kv()
        .list("m", "")
        .expect("list")
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    assert_eq!(found.len(), acked.len(), "record count after maintenance");
    assert!(
        found == acked,
        "acknowledged data changed under maintenance"
    );
    assert!(store.check_integrity().expect("final check"));
    println!(
        "maintenance ({durability:?}): {MAINTENANCE_RUNS} compact/check_integrity runs while \
         {} writes and continuous reads ran; {} records intact",
        writes.load(Ordering::Relaxed),
        acked.len()
    );
}

#[test]
fn compact_and_check_integrity_under_load_immediate() {
    maintenance_under_load(Durability::Immediate);
}

#[test]
fn compact_and_check_integrity_under_load_relaxed() {
    maintenance_under_load(Durability::Relaxed);
}

/// Regression: `compact`, `check_integrity` and `close` called from inside a read
/// transaction waited for that same transaction forever.
#[test]
fn maintenance_inside_a_read_is_refused_instead_of_deadlocking() {
    let _watchdog = Watchdog::start(Duration::from_secs(60));
    let store = Store::temporary().expect("store");
    store.kv().put("a", "b", b"c", None).expect("put");
    let clone = store.clone();
    let outcomes: Vec<Result<bool, Error>> = store
        .read(|_| {
            Ok::<_, Error>(vec![
                store.compact(),
                store.check_integrity(),
                store.read(|_| store.compact()),
                clone.clone().close().map(|()| true),
            ])
        })
        .expect("read");
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(Error::NestedTransaction)),
            "expected NestedTransaction, got {outcome:?}"
        );
    }
    // Inside a write too.
    let in_write: Result<bool, Error> =
        store.write(|_| Ok(store.check_integrity())).and_then(|r| r);
    assert!(matches!(in_write, Err(Error::NestedTransaction)));
    // Outside, all fine, and the store was not closed by the refused close.
    assert!(store.compact().is_ok());
    assert!(store.check_integrity().expect("check"));
    assert!(clone.kv().get("a", "b").expect("get").is_some());
}

/// close() while other clones keep reading and writing: it gets through (it is not
/// starved by the load), and every clone then sees `Error::Closed`, never a panic.
#[test]
fn close_under_load_completes_and_clones_see_closed() {
    let _watchdog = Watchdog::start(Duration::from_secs(120));
    let store = store();
    store.kv().put("a", "x", b"1", None).expect("seed");
    let started = Barrier::new(5);
    thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (clone, started) = (store.clone(), &started);
                s.spawn(move || {
                    started.wait();
                    let mut ops = 0u64;
                    loop {
                        let outcome = if t % 2 == 0 {
                            clone.kv().get("a", "x").map(drop)
                        } else {
                            clone.kv().put("a", &format!("t{t}"), b"v", None).map(drop)
                        };
                        match outcome {
                            Ok(()) => ops += 1,
                            Err(Error::Closed) => return ops,
                            Err(e) => panic!("unexpected error during close: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        started.wait();
        store.clone().close().expect("close under load");
        for w in workers {
            w.join().expect("worker");
        }
    });
    assert!(matches!(store.kv().get("a", "x"), Err(Error::Closed)));
    assert!(matches!(store.compact(), Err(Error::Closed)));
}
