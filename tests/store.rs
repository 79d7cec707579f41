//! Store life cycle: reopen, schema checks, close, maintenance under load, stats.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgestate::{Durability, Error, ManualClock, Store, Table, SCHEMA_VERSION};

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

#[test]
fn store_is_send_sync_clone() {
    assert_send_sync_clone::<Store>();
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let s = Store::open(&path).unwrap();
        s.kv().put("ns", "k", b"v", None).unwrap();
        s.kv().put("ns", "k", b"v2", None).unwrap();
    }
    let s = Store::open(&path).unwrap();
    let e = s.kv().get("ns", "k").unwrap().unwrap();
    assert_eq!((e.value.as_slice(), e.version), (&b"v2"[..], 2));
    s.close().unwrap();
}

#[test]
fn relaxed_durability_still_commits_and_flush_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let s = Store::builder()
            .durability(Durability::Relaxed)
            .open(&path)
            .unwrap();
        s.kv().put("ns", "k", b"v", None).unwrap();
        s.flush().unwrap();
        s.write_with(Durability::Immediate, |tx| {
            tx.kv().put("ns", "k2", b"v", None)
        })
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert!(s.kv().get("ns", "k").unwrap().is_some());
    assert!(s.kv().get("ns", "k2").unwrap().is_some());
}

#[test]
fn second_open_in_the_same_process_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let _first = Store::open(&path).unwrap();
    match Store::open(&path) {
        Err(Error::AlreadyOpen { path: p }) => assert_eq!(p, path),
        other => panic!("expected AlreadyOpen, got {other:?}"),
    }
}

fn set_schema_version(path: &Path, version: u32) {
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("edgestate.meta");
        let mut meta = tx.open_table(def).unwrap();
        meta.insert("schema_version", version.to_le_bytes().as_slice())
            .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn a_newer_schema_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    Store::open(&path).unwrap().close().unwrap();
    set_schema_version(&path, SCHEMA_VERSION + 1);
    match Store::open(&path) {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    set_schema_version(&path, 0);
    assert!(matches!(
        Store::open(&path),
        Err(Error::SchemaTooOld { found: 0, .. })
    ));
}

#[test]
fn a_foreign_redb_file_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("their_table");
            tx.open_table(def).unwrap().insert(1, 2).unwrap();
        }
        tx.commit().unwrap();
    }
    assert!(matches!(Store::open(&path), Err(Error::NotAStore { .. })));
}

#[test]
fn new_files_are_owner_only() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        Store::open(&path).unwrap();
        for file in ["s.db", "s.db-wal"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
        // No temporary sibling is left behind: the store and its page log.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                std::ffi::OsString::from("s.db"),
                std::ffi::OsString::from("s.db-wal")
            ]
        );
    }
}

#[test]
fn close_makes_every_clone_report_closed() {
    let s = Store::in_memory().unwrap();
    let clone = s.clone();
    s.close().unwrap();
    assert!(matches!(clone.kv().get("ns", "k"), Err(Error::Closed)));
    assert!(matches!(
        clone.kv().put("ns", "k", b"v", None),
        Err(Error::Closed)
    ));
    assert!(matches!(clone.compact(), Err(Error::Closed)));
}

#[test]
fn temporary_store_deletes_its_file_on_drop() {
    let s = Store::temporary().unwrap();
    let path = s.path().unwrap().to_owned();
    assert!(path.exists());
    let clone = s.clone();
    drop(s);
    assert!(path.exists(), "a clone keeps it alive");
    drop(clone);
    assert!(!path.exists());
}

#[test]
fn stats_count_records_and_report_the_file() {
    let clock = ManualClock::new(10_000);
    let s = Store::builder().clock(clock).temporary().unwrap();
    s.kv().put("ns", "a", b"1", None).unwrap();
    s.kv()
        .put("ns", "b", b"2", Some(Duration::from_secs(1)))
        .unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.schema_version, SCHEMA_VERSION);
    assert_eq!(st.records(Table::Kv), 2);
    assert_eq!(st.records(Table::Expiry), 1);
    assert!(st.file_size_bytes > 0);
    assert_eq!(Table::from_name("no.such.table"), None);
    assert_eq!(Table::from_name("edgestate.kv"), Some(Table::Kv));
}

#[test]
fn compact_and_check_integrity_work_with_clones_and_live_readers() {
    let s = Store::temporary().unwrap();
    for i in 0..2_000 {
        s.kv()
            .put("ns", &format!("k{i}"), &[7u8; 200], None)
            .unwrap();
    }
    for i in 0..1_500 {
        s.kv().delete("ns", &format!("k{i}")).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for t in 0..2 {
        let s = s.clone();
        let stop = Arc::clone(&stop);
        workers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if t == 0 {
                    assert_eq!(s.kv().list_up_to("ns", "k1999", 10).unwrap().len(), 1);
                } else {
                    s.kv()
                        .put("w", &format!("k{}", n % 50), b"v", None)
                        .unwrap();
                }
                n += 1;
            }
            n
        }));
    }
    for _ in 0..3 {
        assert!(s.check_integrity().unwrap());
        s.compact().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
    assert_eq!(s.kv().list_up_to("ns", "", 10_000).unwrap().len(), 500);
    assert!(s.check_integrity().unwrap());
}

#[test]
fn reopen_keeps_data_and_every_clone_keeps_working() {
    let s = Store::temporary().unwrap();
    let clone = s.clone();
    s.kv().put("ns", "k", b"v", None).unwrap();
    let reader = std::thread::spawn({
        let s = s.clone();
        move || {
            for _ in 0..200 {
                // Every read either sees the record or waits for the reopen: never an error.
                assert!(s.kv().get("ns", "k").unwrap().is_some());
            }
        }
    });
    for _ in 0..3 {
        clone.reopen().unwrap();
    }
    reader.join().unwrap();
    assert_eq!(clone.kv().put("ns", "k", b"v2", None).unwrap(), 2);
    assert_eq!(s.kv().get("ns", "k").unwrap().unwrap().value, b"v2");
}

#[test]
fn reopen_is_refused_where_it_cannot_work() {
    let mem = Store::in_memory().unwrap();
    assert!(matches!(mem.reopen(), Err(Error::InvalidInput { .. })));
    let s = Store::temporary().unwrap();
    let r: Result<(), Error> = s.read(|_| {
        assert!(matches!(s.reopen(), Err(Error::NestedTransaction)));
        Ok(())
    });
    r.unwrap();
    // A file that disappeared is not recreated empty: the store stays closed.
    std::fs::remove_file(s.path().unwrap()).unwrap();
    assert!(matches!(s.reopen(), Err(Error::Io { .. })));
    assert!(matches!(s.kv().get("ns", "k"), Err(Error::Closed)));
}
