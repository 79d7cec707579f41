//! The page log under power loss: a simulated disk keeps what was synced and loses any
//! part of what was not (each unsynced write survives whole, torn, or not at all), and
//! after every simulated power cut the store must hold every acknowledged write, pass
//! `check_integrity`, and take writes again. Kill -9 cannot test this (the page cache
//! survives a killed process), so the disk is simulated.
//!
//! `EDGESTATE_POWER_CUTS` (default 60) sets the number of power cuts.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod common;

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use common::env_u64;
use common::rng::XorShift;
use edgestate::{Durability, Store};
use redb::StorageBackend;

/// One write the disk has not synced yet.
#[derive(Debug, Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Disk {
    /// What survives a power cut for sure.
    durable: Vec<u8>,
    /// What reads see.
    volatile: Vec<u8>,
    unsynced: Vec<Pending>,
    /// Calls left before the power goes (None: never).
    calls_left: Option<u64>,
    /// Set when the power went: every later call fails.
    dead: bool,
}

fn apply(image: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write(offset, data) => {
            let end = *offset as usize + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[*offset as usize..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => image.resize(*len as usize, 0),
    }
}

/// A simulated disk shared between a backend (owned by redb) and the test.
#[derive(Debug, Clone, Default)]
struct SimDisk(Arc<Mutex<Disk>>);

impl SimDisk {
    fn from_image(image: Vec<u8>) -> Self {
        SimDisk(Arc::new(Mutex::new(Disk {
            durable: image.clone(),
            volatile: image,
            ..Disk::default()
        })))
    }

    /// The power goes after `calls` more I/O calls (on this disk).
    fn fail_after(&self, calls: u64) {
        self.0.lock().unwrap().calls_left = Some(calls);
    }

    /// What is on the platter after a power cut: the synced image plus, of each unsynced
    /// write, all, a sector-aligned prefix, or nothing.
    fn after_power_cut(&self, rng: &mut XorShift) -> Vec<u8> {
        let disk = self.0.lock().unwrap();
        let mut image = disk.durable.clone();
        for op in &disk.unsynced {
            match op {
                Pending::Write(offset, data) => match rng.below(3) {
                    0 => {}
                    1 => apply(&mut image, op),
                    _ => {
                        let keep = (rng.below(data.len() as u64 / 512 + 1) * 512) as usize;
                        let keep = keep.min(data.len());
                        apply(&mut image, &Pending::Write(*offset, data[..keep].to_vec()));
                    }
                },
                Pending::SetLen(_) => {
                    if rng.below(2) == 0 {
                        apply(&mut image, op);
                    }
                }
            }
        }
        image
    }

    fn enter(&self) -> io::Result<std::sync::MutexGuard<'_, Disk>> {
        let mut disk = self.0.lock().unwrap();
        if disk.dead {
            return Err(io::Error::other("power cut"));
        }
        if let Some(left) = disk.calls_left.as_mut() {
            if *left == 0 {
                disk.dead = true;
                return Err(io::Error::other("power cut"));
            }
            *left -= 1;
        }
        Ok(disk)
    }
}

impl StorageBackend for SimDisk {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.enter()?.volatile.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let disk = self.enter()?;
        let end = offset as usize + out.len();
        let src = disk
            .volatile
            .get(offset as usize..end)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut disk = self.enter()?;
        let op = Pending::SetLen(len);
        apply(&mut disk.volatile, &op);
        disk.unsynced.push(op);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut disk = self.enter()?;
        let ops = std::mem::take(&mut disk.unsynced);
        for op in &ops {
            apply(&mut disk.durable, op);
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut disk = self.enter()?;
        let op = Pending::Write(offset, data.to_vec());
        apply(&mut disk.volatile, &op);
        disk.unsynced.push(op);
        Ok(())
    }
}

fn open(main: &SimDisk, log: &SimDisk) -> edgestate::Result<Store> {
    Store::builder()
        // Small, so that checkpoints (and power cuts during them) happen often.
        .page_log_limit(256 * 1024)
        .open_with_page_log(main.clone(), log.clone())
}

#[test]
fn power_cuts_lose_nothing_acknowledged() {
    let cuts = env_u64("EDGESTATE_POWER_CUTS", 60);
    let mut rng = XorShift::new(0x5EED_0FC0_FFEE);
    let (mut main, mut log) = (SimDisk::default(), SimDisk::default());
    drop(open(&main, &log).unwrap());
    // key -> value of every acknowledged durable write.
    let mut acked: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut checked = 0u64;
    for cut in 0..cuts {
        let store = open(&main, &log).unwrap();
        // Power goes after a random number of I/O calls on one of the two disks.
        let calls = 20 + rng.below(400);
        if rng.below(2) == 0 {
            main.fail_after(calls);
        } else {
            log.fail_after(calls);
        }
        for i in 0.. {
            let key = format!("k{}", rng.below(64));
            let value = format!("c{cut}-{i}")
                .into_bytes()
                .repeat(1 + rng.below(300) as usize);
            let durability = if rng.below(4) == 0 {
                Durability::Relaxed
            } else {
                Durability::Immediate
            };
            let put = store.write_with(durability, |tx| tx.kv().put("p", &key, &value, None));
            match put {
                Ok(_) if durability == Durability::Immediate => {
                    acked.insert(key, value);
                }
                // A relaxed write is not promised; a later durable one may cover it.
                Ok(_) => {
                    acked.remove(&key);
                }
                Err(_) => break,
            }
        }
        drop(store);
        main = SimDisk::from_image(main.after_power_cut(&mut rng));
        log = SimDisk::from_image(log.after_power_cut(&mut rng));

        let store = open(&main, &log).unwrap();
        for (key, value) in &acked {
            let found = store.kv().get("p", key).unwrap();
            // A relaxed write after the acknowledged one may have landed too: then the
            // value differs but the key exists.
            assert!(found.is_some(), "cut {cut}: acknowledged {key} lost");
            if let Some(found) = found {
                if &found.value != value {
                    // Only a later write of the same key can explain another value.
                    assert!(
                        String::from_utf8_lossy(&found.value).starts_with(&format!("c{cut}-")),
                        "cut {cut}: {key} holds a value never written after its ack"
                    );
                }
            }
            checked += 1;
        }
        assert!(store.check_integrity().unwrap(), "cut {cut}: integrity");
        // Whatever survived is what the next round builds on.
        for e in store.kv().list("p", "").unwrap() {
            acked.insert(e.key, e.value);
        }
        store.kv().put("p", "after", b"writes work", None).unwrap();
        acked.insert("after".into(), b"writes work".to_vec());
        drop(store);
    }
    println!("page log power cuts: {cuts} cuts, {checked} acknowledged writes checked, lost 0");
}

/// Copies the store file and its log to `to` (and `to-wal`).
fn copy_both(from: &std::path::Path, to: &std::path::Path) {
    std::fs::copy(from, to).expect("copy store");
    let log = |p: &std::path::Path| {
        let mut name = p.as_os_str().to_owned();
        name.push("-wal");
        std::path::PathBuf::from(name)
    };
    std::fs::copy(log(from), log(to)).expect("copy log");
}

#[test]
fn a_crashed_store_copied_with_its_log_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bot.db");
    let store = Store::open(&path).expect("open");
    for i in 0..200u32 {
        store
            .kv()
            .put("bot", &format!("fill-{i:03}"), &i.to_le_bytes(), None)
            .expect("durable put");
    }
    // The files as a crash leaves them (the store still open, its writes only in the
    // log), copied elsewhere, as an operator moving a crashed bot's data would: the copies
    // have new inodes.
    let copied = dir.path().join("copied.db");
    copy_both(&path, &copied);
    drop(store);
    let reopened = Store::open(&copied).expect("open the copy");
    for i in 0..200u32 {
        let found = reopened
            .kv()
            .get("bot", &format!("fill-{i:03}"))
            .expect("get")
            .unwrap_or_else(|| panic!("acknowledged write {i} lost in the copy"));
        assert_eq!(found.value, i.to_le_bytes());
    }
    assert!(reopened.check_integrity().expect("integrity"));
}

#[test]
fn a_log_beside_a_replaced_store_file_is_not_replayed_onto_it() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bot.db");
    let backup = dir.path().join("backup.db");
    {
        let store = Store::open(&path).expect("open");
        store.kv().put("bot", "state", b"old", None).expect("put");
        store.backup_to(&backup).expect("backup");
        store.kv().put("bot", "state", b"new", None).expect("put");
        let crashed = dir.path().join("crashed.db");
        copy_both(&path, &crashed);
        drop(store);
        // An operator restores the backup over the crashed store file, leaving its log.
        std::fs::copy(&backup, &crashed).expect("restore backup");
        let restored = Store::open(&crashed).expect("open the restored file");
        assert_eq!(
            restored
                .kv()
                .get("bot", "state")
                .expect("get")
                .expect("present")
                .value,
            b"old"
        );
        assert!(restored.check_integrity().expect("integrity"));
    }
}
