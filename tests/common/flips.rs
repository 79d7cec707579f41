//! The damaged-file fixture shared by the flip tests (`corruption.rs`, `flip_grid.rs`):
//! a populated store file and its page log, what they hold, and fresh copies to damage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgestate::{Error, ManualClock, Store, TableStats};

use super::rng::XorShift;

pub const START_MS: u64 = 1_700_000_000_000;
pub const NAMESPACES: [&str; 4] = ["n0", "n1", "n2", "n3"];
pub const RECORDS: usize = 3_000;

/// A label for tallies: the variant, with the table a `Corrupt` names, and the variant's
/// own name (from `Debug`) where [`variant`] does not know it.
pub fn error_label(e: &Error) -> String {
    match (e, super::error_variant(e)) {
        (Error::Corrupt { table, .. }, _) => format!("Corrupt({table})"),
        (_, "other") => {
            let debug = format!("{e:?}");
            let name: String = debug
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            name
        }
        (_, known) => known.to_owned(),
    }
}

/// "[thread] <file>:<line>: <message>" (a recorded panic, perhaps behind a prefix) ->
/// "<file>:<line>", from the crate's `src/` on.
pub fn panic_site(p: &str) -> String {
    let site = p.split("] ").nth(1).unwrap_or(p);
    let location: String = site.splitn(3, ':').take(2).collect::<Vec<_>>().join(":");
    location
        .rsplit_once("/src/")
        .map_or(location.clone(), |(crate_dir, file)| {
            let krate = crate_dir.rsplit('/').next().unwrap_or(crate_dir);
            format!("{krate}/src/{file}")
        })
}

pub fn key_name(i: usize) -> String {
    format!("key-{i:05}")
}

/// A store file with a few thousand records of varied sizes: some without TTL, some
/// with a TTL that is still running, some already expired (unswept), some typed.
pub fn build_populated_store(path: &Path, clock: &ManualClock) -> Vec<(String, String)> {
    let store = Store::builder()
        .clock(clock.clone())
        .open(path)
        .expect("create populated store");
    let mut rng = XorShift::new(7);
    let mut written = Vec::new();
    for chunk in 0..(RECORDS / 100) {
        store
            .write(|tx| {
                for j in 0..100 {
                    let i = chunk * 100 + j;
                    let ns = NAMESPACES[i % NAMESPACES.len()];
                    let key = key_name(i);
                    let len = 8 + rng.below(400) as usize;
                    let value: Vec<u8> = (0..len).map(|b| (b as u8) ^ (i as u8)).collect();
                    let ttl = match i % 5 {
                        0 => Some(Duration::from_secs(10)),
                        1 => Some(Duration::from_secs(3_600)),
                        _ => None,
                    };
                    if i % 7 == 0 {
                        tx.kv().put_value(ns, &key, &(i as u64), ttl)?;
                    } else {
                        tx.kv().put(ns, &key, &value, ttl)?;
                    }
                    written.push((ns.to_owned(), key));
                }
                Ok::<_, Error>(())
            })
            .expect("populate");
    }
    // Some history: overwrite and delete a few so the file holds freed pages too.
    for i in (0..RECORDS).step_by(13) {
        let ns = NAMESPACES[i % NAMESPACES.len()];
        store
            .kv()
            .put(ns, &key_name(i), b"rewritten", None)
            .expect("rewrite");
    }
    for i in (0..RECORDS).step_by(29) {
        let ns = NAMESPACES[i % NAMESPACES.len()];
        store.kv().delete(ns, &key_name(i)).expect("delete");
    }
    store.close().expect("close populated store");
    // Readers of the damaged copies run 20 s later: the 10 s TTLs have expired.
    clock.advance(Duration::from_secs(20));
    written
}

/// What the pristine file holds at the test clock: `(ns, key) -> live bytes`.
pub type Truth = BTreeMap<(String, String), Vec<u8>>;

pub fn read_truth(path: &Path, clock: &ManualClock) -> (Truth, Vec<TableStats>) {
    let store = Store::builder()
        .clock(clock.clone())
        .open(path)
        .expect("open pristine");
    let mut truth = Truth::new();
    for ns in NAMESPACES {
        for e in store.kv().list(ns, "").expect("list") {
            truth.insert((ns.to_owned(), e.key), e.value);
        }
    }
    let tables = store.stats().expect("stats of the pristine store").tables;
    store.close().expect("close pristine");
    (truth, tables)
}

/// The page log beside a store file.
pub fn log_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// A page log names the inode of its store file and is ignored beside any other file.
/// A copy of the store's files must look like the files themselves: the copy's log is
/// made to name no inode (0, "unknown"), which its header checksum then covers.
pub fn unbind_log(log: &mut [u8]) {
    const MAGIC: &[u8; 8] = b"edgeWAL1";
    if log.len() < 32 || &log[..8] != MAGIC {
        return;
    }
    log[16..24].fill(0);
    let mut h = crc32fast::Hasher::new();
    h.update(&0u64.to_le_bytes()); // the header's checksum is salted with 0
    h.update(&log[..24]);
    log[24..28].copy_from_slice(&h.finalize().to_le_bytes());
}

/// A populated store, built once per test, and what it holds: each trial damages a copy
/// of its files.
pub struct Fixture {
    /// Holds the pristine store and the damaged copies.
    pub _dir: tempfile::TempDir,
    pub clock: ManualClock,
    /// Every key ever written, deleted ones included.
    pub keys: Vec<(String, String)>,
    pub truth: Truth,
    /// Record counts per table of the pristine store.
    pub tables: Vec<TableStats>,
    /// The store file's bytes.
    pub store: Vec<u8>,
    /// Its page log's bytes (`<file>-wal`), if one is left after a clean close.
    pub log: Option<Vec<u8>>,
    /// Where the damaged copy goes.
    pub copy: PathBuf,
}

impl Fixture {
    pub fn build() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pristine = dir.path().join("pristine.edgestate");
        let clock = ManualClock::new(START_MS);
        let keys = build_populated_store(&pristine, &clock);
        let (truth, tables) = read_truth(&pristine, &clock);
        let store = std::fs::read(&pristine).expect("read pristine");
        let log = std::fs::read(log_path(&pristine)).ok().map(|mut log| {
            unbind_log(&mut log);
            log
        });
        let copy = dir.path().join("damaged.edgestate");
        Fixture {
            _dir: dir,
            clock,
            keys,
            truth,
            tables,
            store,
            log,
            copy,
        }
    }

    /// Puts `store` at the copy's path and `log` (or no log) beside it, replacing what
    /// the previous trial left there.
    pub fn place(&self, store: &[u8], log: Option<&[u8]>) {
        std::fs::write(&self.copy, store).expect("write damaged copy");
        let log_path = log_path(&self.copy);
        match log {
            Some(bytes) => std::fs::write(&log_path, bytes).expect("write log copy"),
            None => match std::fs::remove_file(&log_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("remove {}: {e}", log_path.display()),
            },
        }
    }

    pub fn open_copy(&self, verify_on_open: bool) -> Result<Store, Error> {
        Store::builder()
            .clock(self.clock.clone())
            .verify_on_open(verify_on_open)
            .open(&self.copy)
    }
}
