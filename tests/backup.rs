//! Online backup under concurrent durable writers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use edgestate::{Error, Store, Table};

fn counter(store: &Store) -> u64 {
    store
        .kv()
        .get("meta", "counter")
        .expect("read")
        .map_or(0, |e| {
            String::from_utf8(e.value)
                .expect("utf8")
                .parse()
                .expect("number")
        })
}

/// One transaction: bump the counter and write a record and a pending entry with it.
fn step(store: &Store, writer: usize) {
    store
        .transaction(|tx| {
            let n = tx.kv().get("meta", "counter")?.map_or(0, |e| {
                String::from_utf8_lossy(&e.value).parse().unwrap_or(0)
            }) + 1;
            tx.kv()
                .put("meta", "counter", n.to_string().as_bytes(), None)?;
            tx.kv().put(
                "rec",
                &format!("{n:08}"),
                format!("w{writer}").as_bytes(),
                None,
            )?;
            tx.pending().push(
                "alice",
                &edgestate::PendingCapture {
                    merchant_id: format!("m{n}"),
                    amount_cents: n,
                    ..Default::default()
                },
            )?;
            Ok(())
        })
        .expect("write");
}

#[test]
fn backup_under_concurrent_durable_writers_is_one_commit() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::builder()
        .pending_capacity(1_000_000)
        .open(dir.path().join("bot.db"))
        .expect("open");
    for _ in 0..20 {
        step(&store, 0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (1..=3)
        .map(|w| {
            let store = store.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    step(&store, w);
                }
            })
        })
        .collect();
    let mut copies = Vec::new();
    for i in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(30));
        let dest = dir.path().join(format!("copy{i}.db"));
        let report = store.backup_to(&dest).expect("backup");
        assert_eq!(report.path, dest);
        assert!(report.records() > 0);
        copies.push(dest);
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let final_count = counter(&store);
    drop(store);

    let mut last = 0;
    for dest in copies {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner-only permissions");
        }
        let copy = Store::open(&dest).expect("copy opens");
        assert!(copy.check_integrity().expect("check"));
        let n = counter(&copy);
        assert!(n >= 20 && n <= final_count && n >= last, "counter {n}");
        last = n;
        // Exactly the records of commits 1..=n, nothing from a later commit.
        let recs = copy.kv().list("rec", "").expect("list");
        assert_eq!(recs.len() as u64, n);
        let stats = copy.stats().expect("stats");
        assert_eq!(stats.records(Table::Pending), n);
        assert_eq!(stats.records(Table::Kv), n + 1);
        let pending = copy.pending().list("alice").expect("pending");
        assert_eq!(pending.len() as u64, n);
        // The copy is a working store: it takes writes.
        step(&copy, 9);
        assert_eq!(counter(&copy), n + 1);
        copy.close().expect("close");
    }
}

#[test]
fn backup_refuses_an_existing_destination() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path().join("bot.db")).expect("open");
    std::fs::write(dir.path().join("taken.db"), b"x").expect("write");
    let err = store
        .backup_to(dir.path().join("taken.db"))
        .expect_err("refused");
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(dir.path().join("taken.db")).expect("read"),
        b"x"
    );
    // Nothing temporary left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(names
        .iter()
        .all(|n| !n.to_string_lossy().contains(".backup.")));
}
