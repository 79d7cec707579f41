//! Verification without stopping the store: one read snapshot walks every table, reading
//! every page redb reaches and checking every record's checksum against the table and key
//! it is stored under. It runs on demand ([`crate::Store::verify`]) or once on a
//! background thread after open ([`crate::StoreBuilder::verify_in_background`]), while
//! readers and writers carry on (redb's snapshots do not block writers).
//!
//! What it reports: damaged records (each also fails on its own reads with
//! [`Error::Corrupt`]); records that a lookup does not find although they are stored (a
//! damaged search path in a branch page: reads would call them absent); and damage the
//! storage engine meets in a b-tree page (a panic inside redb, or redb reporting its
//! file corrupted). Page damage and search-path damage latch the store: writes
//! are refused with [`Error::Damaged`] until it is reopened or passes
//! [`crate::Store::check_integrity`]. It does not check redb's page checksums of pages it
//! reads fine (that needs the exclusive [`crate::Store::check_integrity`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use redb::{ReadableMultimapTable, ReadableTable};

use super::Inner;
use crate::codec::keys::KeyShape;
use crate::error::{Error, Result};
use crate::maintenance::VerifyReport;
use crate::schema::{self, RecordTable};
use crate::tables::record;
use crate::txn::ReadTx;

/// Records between checks of the stop signal.
const STOP_CHECK_EVERY: u64 = 1024;

/// Progress of background verification, read by [`crate::Store::stats`].
#[derive(Debug, Default)]
pub(crate) struct VerifyCounters {
    pub(crate) passes: AtomicU64,
    pub(crate) entries_checked: AtomicU64,
    pub(crate) damaged_records: AtomicU64,
    /// The last finished pass of the background verifier.
    pub(crate) last: Mutex<Option<VerifyReport>>,
}

/// One pass over every table in one snapshot; stops early (incomplete) when `stop` is
/// set. Damage to pages latches the store through the read's containment.
pub(crate) fn pass(inner: &Inner, stop: &AtomicBool) -> Result<VerifyReport> {
    inner.read(|tx| {
        let mut walk = Walk {
            stop,
            report: VerifyReport::default(),
        };
        walk.all(tx)?;
        Ok(walk.report)
    })
}

/// Whether a walk goes on after an entry: `false` once asked to stop.
type Going = bool;

/// Walks one table.
type Step = dyn Fn(&mut Walk<'_>, &ReadTx) -> Result<Going>;

struct Walk<'a> {
    stop: &'a AtomicBool,
    report: VerifyReport,
}

impl Walk<'_> {
    fn all(&mut self, tx: &ReadTx) -> Result<()> {
        let steps: [&Step; 15] = [
            &|w, tx| w.plain(tx, schema::META),
            &|w, tx| w.records(tx, schema::KV),
            &|w, tx| w.plain(tx, schema::EXPIRY),
            &|w, tx| w.records(tx, schema::CONTEXTS),
            &|w, tx| w.records(tx, schema::CARDS),
            &|w, tx| w.multimap(tx, schema::USER_CARDS),
            &|w, tx| w.records(tx, schema::DEDUP),
            &|w, tx| w.records(tx, schema::IDEMPOTENCY),
            &|w, tx| w.records(tx, schema::SESSIONS),
            &|w, tx| w.records(tx, schema::LOCATIONS),
            &|w, tx| w.records(tx, schema::PENDING),
            &|w, tx| w.plain(tx, schema::PENDING_SEQ),
            &|w, tx| w.records(tx, schema::SNAPSHOTS),
            &|w, tx| w.multimap(tx, schema::SNAPSHOTS_BY_TENANT),
            &|w, tx| w.records(tx, schema::WORKING_MEMORY),
        ];
        for step in steps {
            // One table's damage does not hide the others': each is walked on its own.
            match tx.contain(|| step(self, tx)) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e @ Error::Corrupt { .. }) => self.report.engine_damage.push(e.to_string()),
                Err(other) => return Err(other),
            }
        }
        self.report.complete = true;
        Ok(())
    }

    fn tick(&mut self) -> Going {
        self.report.entries_checked += 1;
        !self.report.entries_checked.is_multiple_of(STOP_CHECK_EVERY)
            || !self.stop.load(Ordering::Relaxed)
    }

    fn records<K: KeyShape>(&mut self, tx: &ReadTx, table: RecordTable<K>) -> Result<Going> {
        crate::txn::using_table(table.name);
        let opened = tx.raw().open_table(table.def)?;
        for row in opened.iter()? {
            let (key, value) = row?;
            if let Err(e) = record::verify(&table, &key.value(), value.value()) {
                self.report.damaged_record(&e);
            }
            // The walk reaches every leaf in order; a lookup follows the branch keys. A
            // record the walk finds and a lookup does not is one that reads would call
            // absent: the search path is damaged, which no record checksum can show.
            let found = opened.get(key.value())?;
            if found.as_ref().map(|g| g.value()) != Some(value.value()) {
                return Err(Error::Storage(redb::Error::Corrupted(format!(
                    "record `{}` is stored but a lookup does not find it (damaged search path)",
                    K::show(&key.value())
                ))));
            }
            if !self.tick() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn plain<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        tx: &ReadTx,
        def: redb::TableDefinition<'static, K, V>,
    ) -> Result<Going> {
        crate::txn::using_table(redb::TableHandle::name(&def));
        let opened = tx.raw().open_table(def)?;
        for row in opened.iter()? {
            drop(row?);
            if !self.tick() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn multimap<K: redb::Key + 'static, V: redb::Key + 'static>(
        &mut self,
        tx: &ReadTx,
        def: redb::MultimapTableDefinition<'static, K, V>,
    ) -> Result<Going> {
        crate::txn::using_table(redb::MultimapTableHandle::name(&def));
        let opened = tx.raw().open_multimap_table(def)?;
        for row in opened.iter()? {
            let (_, values) = row?;
            for value in values {
                drop(value?);
                if !self.tick() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// The background verifier: one pass after open, on its own thread, stopped (and joined)
/// when the store closes or its last handle is dropped.
#[derive(Debug)]
pub(crate) struct Verifier {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Verifier {
    pub(crate) fn start(inner: Arc<Inner>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("edgestate-verify".into())
            .spawn(move || {
                let outcome = pass(&inner, &thread_stop);
                let counters = &inner.verify;
                if let Ok(report) = outcome {
                    if report.complete {
                        counters.passes.fetch_add(1, Ordering::Relaxed);
                    }
                    counters
                        .entries_checked
                        .fetch_add(report.entries_checked, Ordering::Relaxed);
                    counters
                        .damaged_records
                        .fetch_add(report.damaged_records, Ordering::Relaxed);
                    super::trace::verified(&report);
                    *counters.last.lock() = Some(report);
                }
            })?;
        Ok(Verifier {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the pass and waits for the thread.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.stop();
    }
}
