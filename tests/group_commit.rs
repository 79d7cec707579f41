//! Group commit: concurrent durable writers share fsyncs, a durable call returns only
//! once its commit is durable, and a failed shared sync reaches everyone it covered.
//!
//! - counted on a backend that counts `sync_data` calls;
//! - under an injected sync failure in the middle of a burst: every write acknowledged
//!   `Ok` is in the file after reopening, and the failure is reported as
//!   `CommitOutcomeUnknown`;
//! - under kill -9 of a child process with 8 durable writers: every acknowledged write
//!   survives (`EDGESTATE_GROUP_CRASH_CYCLES`, default 20).

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::faulty_backend::{Fault, FaultState, FaultyBackend};
use edgestate::{Error, Store};

const THREADS: usize = 8;

fn new_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    Store::open(&path).unwrap().close().unwrap();
    (dir, path)
}

/// Runs `THREADS` writers, each putting `per_thread` keys durably until one fails;
/// returns the keys acknowledged `Ok` and the errors seen.
fn burst(store: &Store, per_thread: usize) -> (Vec<String>, Vec<Error>) {
    let acked = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (acked, errors) = (&acked, &errors);
            s.spawn(move || {
                for i in 0..per_thread {
                    let key = format!("t{t}-{i:04}");
                    match store.kv().put("burst", &key, key.as_bytes(), None) {
                        Ok(_) => acked.lock().unwrap().push(key),
                        Err(e) => {
                            errors.lock().unwrap().push(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    (acked.into_inner().unwrap(), errors.into_inner().unwrap())
}

#[test]
fn concurrent_durable_writers_share_syncs() {
    let (_dir, path) = new_file();
    let state = FaultState::new(Fault::None);
    let store = Store::builder()
        .verify_on_open(false)
        .open_with_backend(FaultyBackend::open(&path, state.clone()).unwrap())
        .unwrap();
    let per_thread = 40;
    let before = state.syncs.load(Ordering::SeqCst);
    let (acked, errors) = burst(&store, per_thread);
    let syncs = state.syncs.load(Ordering::SeqCst) - before;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(acked.len(), THREADS * per_thread);
    let writes = u64::try_from(acked.len()).unwrap();
    println!("{writes} durable writes from {THREADS} threads took {syncs} syncs");
    assert!(
        syncs < writes,
        "{writes} durable writes took {syncs} syncs: nothing was shared"
    );
    for key in &acked {
        assert!(store.kv().get("burst", key).unwrap().is_some(), "{key}");
    }
}

#[test]
fn a_failed_group_sync_loses_nothing_acknowledged() {
    for fail_at in [3u64, 10, 25] {
        let (_dir, path) = new_file();
        let state = FaultState::new(Fault::None);
        let store = Store::builder()
            .verify_on_open(false)
            .open_with_backend(FaultyBackend::open(&path, state.clone()).unwrap())
            .unwrap();
        let start = state.syncs.load(Ordering::SeqCst);
        state.set_fault(Fault::FailSync(start + fail_at));
        let (acked, errors) = burst(&store, 60);
        assert!(state.has_fired(), "sync {fail_at} was never reached");
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, Error::CommitOutcomeUnknown(_))),
            "the failed sync was reported to nobody: {errors:?}"
        );
        assert!(errors.iter().all(Error::needs_reopen), "{errors:?}");
        drop(store);

        let store = Store::open(&path).unwrap();
        for key in &acked {
            assert!(
                store.kv().get("burst", key).unwrap().is_some(),
                "acknowledged {key} lost after a failed sync at {fail_at}"
            );
        }
        assert!(store.check_integrity().unwrap());
    }
}

const CHILD_ENV: &str = "EDGESTATE_GROUP_CHILD";

/// The child of the kill -9 test: 8 durable writers, each prints `ack <key>` once its
/// put returned.
#[test]
fn group_commit_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let cycle = std::env::var("EDGESTATE_GROUP_CYCLE").unwrap_or_default();
    let store = Store::open(&path).unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, out, cycle) = (&store, Arc::clone(&out), &cycle);
            s.spawn(move || {
                for i in 0.. {
                    let key = format!("c{cycle}-t{t}-{i:06}");
                    store.kv().put("crash", &key, b"v", None).unwrap();
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ack {key}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn kill_9_during_group_commits_loses_nothing_acknowledged() {
    let cycles: u64 = std::env::var("EDGESTATE_GROUP_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut acked: Vec<String> = Vec::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for cycle in 0..cycles {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "group_commit_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .env("EDGESTATE_GROUP_CYCLE", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let run_for = Duration::from_millis(50 + rng % 250);
        let reader = std::thread::spawn(move || {
            let mut keys = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(key) = line.strip_prefix("ack ") {
                    keys.push(key.to_owned());
                }
            }
            keys
        });
        let started = Instant::now();
        while started.elapsed() < run_for {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let this_cycle = reader.join().unwrap();
        acked.extend(this_cycle);

        let store = Store::open(&path).unwrap();
        let lost: Vec<&String> = acked
            .iter()
            .filter(|key| store.kv().get("crash", key).unwrap().is_none())
            .collect();
        assert!(
            lost.is_empty(),
            "cycle {cycle}: {} acknowledged writes lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
        store.close().unwrap();
    }
    println!(
        "group commit kill -9: {cycles} cycles, {} acknowledged writes checked, lost 0",
        acked.len()
    );
}
