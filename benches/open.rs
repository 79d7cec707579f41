//! How long opening a store takes, against its size: edgestate (default open, and with
//! `verify_on_open(true)`), raw redb 4.6 and SQLite (rusqlite, WAL) on the same records,
//! with the page cache warm and cold (the files' cached pages dropped with
//! `posix_fadvise(DONTNEED)` before each open). Each open is timed to the first read of
//! one record, closed, and repeated; medians are printed with ratios.
//!
//! A last case opens a copy of the store's files taken while it was open after durable
//! writes: what a restart after kill -9 or a power cut finds (page log replay and redb's
//! recovery, which walks the whole file).
//!
//! `EDGESTATE_OPEN_QUICK_REPAIR=1` makes those writes use `quick_repair(true)`.
//!
//! `cargo bench --bench open` builds 1 GiB stores (about a minute) in a temporary
//! directory under `target/`. Settings: `EDGESTATE_OPEN_MB` (size, default 1024),
//! `EDGESTATE_OPEN_RUNS` (opens per case, default 7), `EDGESTATE_BENCH_DIR` (where the
//! files go; it must be a real disk, not tmpfs, for the cold figures to mean anything).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgestate::{Durability, Store};
use redb::{ReadableDatabase, TableDefinition};
use rusqlite::Connection;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const VALUE_LEN: usize = 1_000;
const PER_TXN: usize = 10_000;
const RAW: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key(i: usize) -> String {
    format!("key-{i:09}")
}

fn value(i: usize) -> Vec<u8> {
    (0..VALUE_LEN).map(|b| (b ^ i) as u8).collect()
}

fn namespace(i: usize) -> &'static str {
    ["bots", "agents", "tests", "users"][i % 4]
}

/// Drops the cached pages of every file whose name starts with `path`'s.
fn evict(path: &Path) -> Res<()> {
    let dir = path.parent().ok_or("no parent")?;
    let name = path
        .file_name()
        .ok_or("no name")?
        .to_string_lossy()
        .to_string();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&name) {
            let file = File::open(entry.path())?;
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
        }
    }
    Ok(())
}

fn build_edgestate(path: &Path, records: usize) -> Res<()> {
    let store = Store::builder()
        .durability(Durability::Relaxed)
        .open(path)?;
    for chunk in (0..records).step_by(PER_TXN) {
        store.transaction(|tx| {
            for i in chunk..(chunk + PER_TXN).min(records) {
                tx.kv().put(namespace(i), &key(i), &value(i), None)?;
            }
            Ok(())
        })?;
    }
    store.close()?;
    Ok(())
}

fn build_redb(path: &Path, records: usize) -> Res<()> {
    let db = redb::Database::create(path)?;
    for chunk in (0..records).step_by(PER_TXN) {
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(RAW)?;
            for i in chunk..(chunk + PER_TXN).min(records) {
                table.insert((namespace(i), key(i).as_str()), value(i).as_slice())?;
            }
        }
        tx.commit()?;
    }
    Ok(())
}

fn sqlite(path: &Path) -> Res<Connection> {
    let conn = Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, \
         value BLOB NOT NULL, PRIMARY KEY (ns, key));",
    )?;
    Ok(conn)
}

fn build_sqlite(path: &Path, records: usize) -> Res<()> {
    let mut conn = sqlite(path)?;
    for chunk in (0..records).step_by(PER_TXN) {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO kv VALUES (?1, ?2, ?3)")?;
            for i in chunk..(chunk + PER_TXN).min(records) {
                insert.execute((namespace(i), key(i), value(i)))?;
            }
        }
        tx.commit()?;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// What is opened, and how.
#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Edgestate,
    EdgestateVerified,
    /// edgestate opening the files of a store that was never closed.
    EdgestateAfterCrash,
    Redb,
    Sqlite,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Edgestate => "edgestate (default open)",
            Peer::EdgestateVerified => "edgestate verify_on_open(true)",
            Peer::EdgestateAfterCrash => "edgestate after kill -9",
            Peer::Redb => "raw redb 4.6",
            Peer::Sqlite => "SQLite (WAL)",
        }
    }

    /// Opens `path`, reads one record, closes; returns the time to the read.
    fn open_once(self, path: &Path, probe: usize) -> Res<Duration> {
        let ns = namespace(probe);
        let k = key(probe);
        let start = Instant::now();
        let elapsed = match self {
            Peer::Edgestate | Peer::EdgestateVerified | Peer::EdgestateAfterCrash => {
                let store = Store::builder()
                    .verify_on_open(self == Peer::EdgestateVerified)
                    .open(path)?;
                let found = store.kv().get(ns, &k)?.ok_or("probe missing")?;
                let elapsed = start.elapsed();
                assert_eq!(found.value, value(probe));
                store.close()?;
                elapsed
            }
            Peer::Redb => {
                let db = redb::Database::open(path)?;
                let read = db.begin_read()?;
                let table = read.open_table(RAW)?;
                let found = table.get((ns, k.as_str()))?.ok_or("probe missing")?;
                let elapsed = start.elapsed();
                assert_eq!(found.value(), value(probe).as_slice());
                elapsed
            }
            Peer::Sqlite => {
                let conn = sqlite(path)?;
                let found: Vec<u8> = conn.query_row(
                    "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
                    (ns, &k),
                    |r| r.get(0),
                )?;
                let elapsed = start.elapsed();
                assert_eq!(found, value(probe));
                elapsed
            }
        };
        Ok(elapsed)
    }
}

/// Copies every file of the store at `from` (store file and page log) to `to`.
fn copy_store(from: &Path, to: &Path) -> Res<()> {
    std::fs::copy(from, to)?;
    let (mut from_log, mut to_log) = (from.as_os_str().to_owned(), to.as_os_str().to_owned());
    from_log.push("-wal");
    to_log.push("-wal");
    let _ = std::fs::remove_file(&to_log);
    if Path::new(&from_log).exists() {
        std::fs::copy(&from_log, &to_log)?;
    }
    Ok(())
}

/// The files of the store at `path` as a crash leaves them: copied while it is open,
/// after 1,000 durable writes since it was opened (in the page log, not yet
/// checkpointed). The copy is taken with no write running, so it is one commit's state.
fn crash_image(path: &Path, image: &Path) -> Res<()> {
    // EDGESTATE_OPEN_QUICK_REPAIR=1: those writes save redb's allocator state in every
    // commit (`quick_repair`), so that recovery need not read the whole file.
    let quick_repair = env_u64("EDGESTATE_OPEN_QUICK_REPAIR", 0) == 1;
    let store = Store::builder().quick_repair(quick_repair).open(path)?;
    for i in 0..1_000 {
        store.kv().put("crash", &key(i), &value(i), None)?;
    }
    copy_store(path, image)?;
    store.close()?;
    Ok(())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Res<()> {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` run passes nothing
    // we need to act on.
    let mb = env_u64("EDGESTATE_OPEN_MB", 1024) as usize;
    let runs = env_u64("EDGESTATE_OPEN_RUNS", 7).max(1) as usize;
    let records = mb * 1024 * 1024 / (VALUE_LEN + 64);
    let base = std::env::var("EDGESTATE_BENCH_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&base)?;
    let dir = tempfile::Builder::new()
        .prefix("edgestate-open-")
        .tempdir_in(&base)?;
    let paths = [
        (Peer::Edgestate, dir.path().join("edgestate.redb")),
        (Peer::Redb, dir.path().join("raw.redb")),
        (Peer::Sqlite, dir.path().join("sqlite.db")),
    ];
    eprintln!(
        "building {records} records of {VALUE_LEN} bytes in each store under {}",
        dir.path().display()
    );
    for (peer, path) in &paths {
        let start = Instant::now();
        match peer {
            Peer::Edgestate => build_edgestate(path, records)?,
            Peer::Redb => build_redb(path, records)?,
            _ => build_sqlite(path, records)?,
        }
        eprintln!(
            "  {}: {:.0} MB in {:.1} s",
            peer.name(),
            size_of(path) as f64 / 1e6,
            start.elapsed().as_secs_f64()
        );
    }

    let image = dir.path().join("crash-image.redb");
    let reopened = dir.path().join("after-crash.redb");
    crash_image(&paths[0].1, &image)?;
    let cases = [
        (Peer::Edgestate, &paths[0].1),
        (Peer::EdgestateVerified, &paths[0].1),
        (Peer::EdgestateAfterCrash, &reopened),
        (Peer::Redb, &paths[1].1),
        (Peer::Sqlite, &paths[2].1),
    ];
    println!(
        "\nopen + first read of a {:.0} MB store, median of {runs} (ms)",
        size_of(&paths[0].1) as f64 / 1e6
    );
    println!(
        "{:<32} {:>10} {:>10} {:>14} {:>14}",
        "", "warm", "cold", "cold vs SQLite", "cold vs redb"
    );
    let mut results = Vec::new();
    for (peer, path) in cases {
        // The verified open and recovery read the whole file: fewer runs of them.
        let n = if matches!(peer, Peer::EdgestateVerified | Peer::EdgestateAfterCrash) {
            runs.min(3)
        } else {
            runs
        };
        let mut warm = Vec::new();
        let mut cold = Vec::new();
        if peer != Peer::EdgestateAfterCrash {
            peer.open_once(path, 1)?; // settle: a first open may finish a log or a repair
        }
        for run in 0..n {
            let probe = (run * 7_919 + 13) % records;
            // Each open after a crash starts from a fresh copy of the crash image (the
            // open before it recovered the last one).
            if peer == Peer::EdgestateAfterCrash {
                copy_store(&image, path)?;
            }
            warm.push(peer.open_once(path, probe)?);
            if peer == Peer::EdgestateAfterCrash {
                copy_store(&image, path)?;
            }
            evict(path)?;
            cold.push(peer.open_once(path, probe)?);
        }
        results.push((peer, median(warm), median(cold)));
    }
    let cold_of = |p: Peer| results.iter().find(|r| r.0 == p).map(|r| r.2);
    let (sq, rd) = (cold_of(Peer::Sqlite), cold_of(Peer::Redb));
    for (peer, warm, cold) in &results {
        let ratio = |base: Option<Duration>| {
            base.map_or("-".to_owned(), |b| {
                format!("{:.2}x", cold.as_secs_f64() / b.as_secs_f64())
            })
        };
        println!(
            "{:<32} {:>10.2} {:>10.2} {:>14} {:>14}",
            peer.name(),
            ms(*warm),
            ms(*cold),
            ratio(sq),
            ratio(rd)
        );
    }
    println!("(ratio: edgestate time / peer time; below 1 is faster)");
    Ok(())
}
