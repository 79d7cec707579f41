//! What a store does with damage it meets after a fast (unverified) open: a record found
//! under another table or key fails its checksum; a damaged b-tree page fails the call
//! that meets it with `Error::Corrupt` naming the table and then refuses writes until the
//! store is reopened or passes `check_integrity`; `verify()` and the background verifier
//! find damage without waiting for a read to meet it.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgestate::{Error, Store};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("edgestate.kv");
const CONTEXTS: TableDefinition<&str, &[u8]> = TableDefinition::new("edgestate.contexts");
const CANARY: &[u8] = b"CANARY-PAYLOAD-0123456789abcdef";
const PAGE: usize = 4096;

/// A closed store with 300 KV records (one of them the canary) and a context.
fn populated(path: &Path) {
    let store = Store::open(path).unwrap();
    store
        .transaction(|tx| {
            for i in 0..300 {
                tx.kv()
                    .put("a", &format!("neighbour-{i:03}"), &[i as u8; 40], None)?;
            }
            tx.kv().put("a", "victim", CANARY, None)?;
            Ok(())
        })
        .unwrap();
    store.contexts().get_or_init("alice").unwrap();
    store.close().unwrap();
}

/// Every offset of `needle` in the file.
fn find(bytes: &[u8], needle: &[u8]) -> Vec<usize> {
    bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn a_record_found_under_another_key_or_table_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moved.edgestate");
    populated(&path);
    {
        // What a damaged key, or a b-tree pointer into the wrong table, would show: a
        // record's intact bytes under another key and in another table.
        let db = redb::Database::open(&path).unwrap();
        let bytes = {
            let read = db.begin_read().unwrap();
            let kv = read.open_table(KV).unwrap();
            let bytes = kv.get(("a", "victim")).unwrap().unwrap().value().to_vec();
            bytes
        };
        let write = db.begin_write().unwrap();
        {
            write
                .open_table(KV)
                .unwrap()
                .insert(("a", "victin"), bytes.as_slice())
                .unwrap();
            let context = write
                .open_table(CONTEXTS)
                .unwrap()
                .get("alice")
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            write
                .open_table(CONTEXTS)
                .unwrap()
                .insert("bob", context.as_slice())
                .unwrap();
        }
        write.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.kv().get("a", "victim").unwrap().unwrap().value,
        CANARY
    );
    match store.kv().get("a", "victin") {
        Err(Error::Corrupt { table, key, reason }) => {
            assert_eq!((table, key.as_str()), ("edgestate.kv", "a/victin"));
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("a record under another key read as {other:?}"),
    }
    assert!(matches!(
        store.contexts().get("bob"),
        Err(Error::Corrupt {
            table: "edgestate.contexts",
            ..
        })
    ));
    assert!(store.contexts().get("alice").unwrap().is_some());
    // Record damage stays local: the store keeps taking writes, deleting clears it.
    store.kv().put("a", "elsewhere", b"fine", None).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(report.damaged_records, 2, "{report:?}");
    assert!(report.engine_damage.is_empty());
    // Deleting a damaged record removes it (it was not live, so `false`).
    assert!(!store.kv().delete("a", "victin").unwrap());
    assert_eq!(store.verify().unwrap().damaged_records, 1);
}

/// A disk whose reads of the page holding the canary come back with a broken page-type
/// byte while `broken` is set: damage that appears under a running store (a failing
/// disk), which redb cannot read past (it panics or reports corruption, depending on
/// where it looks). Debug builds of redb walk every page on open, so damage in the file
/// itself would be met there; this keeps it for the reads after open.
#[derive(Debug)]
struct FailingDisk {
    file: redb::backends::FileBackend,
    broken: Arc<AtomicBool>,
}

impl redb::StorageBackend for FailingDisk {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)?;
        if self.broken.load(Ordering::SeqCst) && !find(out, CANARY).is_empty() {
            out[0] = 0xEE;
        }
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.file.close()
    }
}

fn open_on_failing_disk(path: &Path, broken: &Arc<AtomicBool>) -> Store {
    let (path, broken) = (path.to_owned(), Arc::clone(broken));
    Store::builder()
        .cache_size(0)
        .open_with_backend_factory(move || {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)?;
            Ok(FailingDisk {
                file: redb::backends::FileBackend::new(file).map_err(std::io::Error::other)?,
                broken: Arc::clone(&broken),
            })
        })
        .unwrap()
}

/// Meets the damaged page, then checks that writes are refused on every clone.
fn meet_the_damage(store: &Store) {
    let clone = store.clone();
    match store.kv().get("a", "victim") {
        Err(Error::Corrupt { table, reason, .. }) => {
            assert_eq!(table, "edgestate.kv", "{reason}");
        }
        other => panic!("a damaged page read as {other:?}"),
    }
    // Writes are refused on every clone, whatever table they touch; reads go on.
    for attempt in [
        clone.contexts().get_or_init("carol").map(drop),
        store.kv().put("b", "x", b"y", None).map(drop),
    ] {
        match attempt {
            Err(Error::Damaged { table, .. }) => assert_eq!(table, "edgestate.kv"),
            other => panic!("a write after damage gave {other:?}"),
        }
    }
    assert!(store.contexts().get("alice").unwrap().is_some());
    let stats = store.stats().unwrap();
    assert!(stats.damage_found >= 1);
    assert!(stats
        .writes_refused
        .as_deref()
        .is_some_and(|s| s.contains("edgestate.kv")));
}

#[test]
fn a_damaged_page_names_its_table_and_refuses_writes_until_reopen_or_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("page.edgestate");
    populated(&path);
    let broken = Arc::new(AtomicBool::new(false));
    let store = open_on_failing_disk(&path, &broken);
    broken.store(true, Ordering::SeqCst);
    meet_the_damage(&store);

    // verify() finds it too.
    let report = store.verify().unwrap();
    assert!(!report.engine_damage.is_empty(), "{report:?}");
    assert!(
        report.engine_damage[0].contains("edgestate.kv"),
        "{report:?}"
    );

    // The disk reads right again: a passing check lifts the refusal.
    broken.store(false, Ordering::SeqCst);
    store.check_integrity().unwrap();
    assert!(store.stats().unwrap().writes_refused.is_none());
    store.contexts().get_or_init("carol").unwrap();

    // Met again, and this time check_integrity cannot get past it: writes stay refused
    // until the owner reopens (having dealt with the disk).
    broken.store(true, Ordering::SeqCst);
    store.kv().get("a", "victim").unwrap_err();
    assert!(store.check_integrity().is_err());
    assert!(matches!(
        store.kv().put("b", "x", b"y", None),
        Err(Error::Damaged { .. })
    ));
    broken.store(false, Ordering::SeqCst);
    store.reopen().unwrap();
    store.kv().put("b", "x", b"y", None).unwrap();
    assert_eq!(
        store.kv().get("a", "victim").unwrap().unwrap().value,
        CANARY
    );
    assert!(store.contexts().get("carol").unwrap().is_some());
}

#[test]
fn a_verified_open_refuses_a_damaged_page_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verified.edgestate");
    populated(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    for at in find(&bytes, CANARY) {
        bytes[at / PAGE * PAGE] = 0xEE;
    }
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(
        Store::builder().verify_on_open(true).open(&path),
        Err(Error::NotAStore { .. })
    ));
}

/// Waits (bounded) for the background verifier's report.
fn background_report(store: &Store) -> edgestate::VerifyReport {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(report) = store.stats().unwrap().background_verification {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "no background verification report"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn background_verification_reports_a_clean_store_and_finds_a_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("background.edgestate");
    populated(&path);
    let store = Store::builder()
        .verify_in_background(true)
        .open(&path)
        .unwrap();
    let report = background_report(&store);
    assert!(report.is_clean(), "{report:?}");
    assert!(report.entries_checked >= 302, "{report:?}");
    store.close().unwrap();

    // Damage inside the canary's value: the record's checksum fails.
    let mut bytes = std::fs::read(&path).unwrap();
    for at in find(&bytes, CANARY) {
        bytes[at + 3] ^= 0x20;
    }
    std::fs::write(&path, bytes).unwrap();
    let store = Store::builder()
        .verify_in_background(true)
        .open(&path)
        .unwrap();
    let report = background_report(&store);
    assert_eq!(report.damaged_records, 1, "{report:?}");
    assert!(report.damaged[0].contains("a/victim"), "{report:?}");
    // A damaged record does not stop the store.
    store.kv().put("a", "after", b"ok", None).unwrap();
}

#[test]
fn closing_stops_a_background_verification() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stop.edgestate");
    populated(&path);
    for _ in 0..20 {
        let store = Store::builder()
            .verify_in_background(true)
            .open(&path)
            .unwrap();
        store.close().unwrap();
        // Dropping the last handle stops it too.
        drop(
            Store::builder()
                .verify_in_background(true)
                .open(&path)
                .unwrap(),
        );
    }
}

#[test]
fn a_panic_in_an_update_closure_is_the_callers_and_does_not_latch_the_store() {
    let store = Store::temporary().unwrap();
    store.kv().put("a", "k", b"v", None).unwrap();
    store.contexts().get_or_init("alice").unwrap();
    let kv_panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store
            .kv()
            .update("a", "k", None, |_| panic!("the caller's bug"))
    }));
    assert_eq!(
        kv_panic.unwrap_err().downcast_ref::<&str>(),
        Some(&"the caller's bug")
    );
    let context_panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store
            .contexts()
            .update("alice", |_| panic!("another caller bug"))
    }));
    assert!(context_panic.is_err());
    // Not taken for damage: writes go on, nothing was counted.
    store.kv().put("a", "k2", b"v", None).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.damage_found, 0);
    assert!(stats.writes_refused.is_none());
    assert_eq!(store.kv().get("a", "k").unwrap().unwrap().value, b"v");
}
