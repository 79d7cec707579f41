//! Group commit: concurrent durable writers share one fsync.
//!
//! redb runs one write transaction at a time, and a durable (`Immediate`) commit fsyncs;
//! a `None` commit does not, and the next `Immediate` commit makes it durable with
//! everything before it. So when a durable writer commits while other writers are
//! already in flight (holding the database lock, waiting for the write transaction or
//! running their closure), it commits `None` and waits: the last writer of the burst
//! commits `Immediate` and so syncs the whole group at once. A writer alone commits
//! `Immediate` directly, exactly as without grouping.
//!
//! Every caller still commits or rolls back on its own, and a durable caller returns only
//! once its commit is durable. If the group's sync fails, every caller whose commit it
//! covered gets [`Error::CommitOutcomeUnknown`]. If the last writer of a burst does not
//! commit (its closure failed or panicked), it syncs the group with an empty durable
//! commit before it leaves.
//!
//! Decisions are taken while holding redb's write transaction, so they are serialized
//! with the commits they describe: a sequence number decided is a commit finished (or
//! failed) by the time anyone else holds the write transaction.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::txn::WriteTx;

/// The group-commit state of one store.
#[derive(Default)]
pub(crate) struct GroupCommit {
    /// Writers between taking the database lock and deciding how to commit.
    in_flight: AtomicUsize,
    state: Mutex<SyncState>,
    synced: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// The last sequence number handed to a commit.
    decided: u64,
    /// Every commit up to this one is durable.
    durable: u64,
    /// The highest commit whose caller waits for it to become durable.
    wanted: u64,
    /// A shared sync covering commits up to this one failed: their outcome is unknown.
    failed: u64,
}

/// How one commit is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// `Immediate`: syncs this commit and every one before it.
    Sync,
    /// `None`, then wait until a later commit of the group syncs it.
    Join,
    /// `None`, and return at once (a relaxed write).
    Lazy,
}

impl GroupCommit {
    /// Counts a writer in; it must [`commit`](Ticket::commit) or be dropped.
    pub(crate) fn enter<'g>(&'g self, db: &'g redb::Database) -> Ticket<'g> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Ticket {
            group: self,
            db,
            counted: true,
        }
    }

    /// Leaves without committing; the last writer out syncs anyone still waiting.
    fn leave(&self, db: &redb::Database) {
        let remaining = self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        if remaining == 0 {
            let waiting = {
                let state = self.state.lock();
                state.wanted > state.durable.max(state.failed)
            };
            if waiting {
                self.sync_empty(db);
            }
        }
    }

    /// Makes every finished commit durable with an empty `Immediate` commit.
    fn sync_empty(&self, db: &redb::Database) {
        let outcome = (|| -> std::result::Result<u64, redb::Error> {
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate)?;
            // Holding the write transaction, every decided commit has finished.
            let target = self.state.lock().decided;
            txn.commit()?;
            Ok(target)
        })();
        let mut state = self.state.lock();
        match outcome {
            Ok(target) => state.durable = state.durable.max(target),
            Err(_) => state.failed = state.failed.max(state.wanted),
        }
        drop(state);
        self.synced.notify_all();
    }

    fn decide(&self, durability: Durability) -> (Plan, u64) {
        let remaining = self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        let mut state = self.state.lock();
        state.decided += 1;
        let seq = state.decided;
        let others_wait = state.wanted > state.durable.max(state.failed);
        let plan = match durability {
            Durability::Immediate if remaining == 0 => Plan::Sync,
            Durability::Immediate => Plan::Join,
            Durability::Relaxed if remaining == 0 && others_wait => Plan::Sync,
            Durability::Relaxed => Plan::Lazy,
        };
        if plan == Plan::Join {
            state.wanted = seq;
        }
        (plan, seq)
    }

    fn finished(&self, plan: Plan, seq: u64, committed: bool) {
        if plan != Plan::Sync {
            return;
        }
        let mut state = self.state.lock();
        if committed {
            state.durable = state.durable.max(seq);
        } else {
            state.failed = state.failed.max(seq);
        }
        drop(state);
        self.synced.notify_all();
    }

    fn wait_durable(&self, seq: u64) -> Result<()> {
        let mut state = self.state.lock();
        loop {
            if state.durable >= seq {
                return Ok(());
            }
            if state.failed >= seq {
                return Err(Error::CommitOutcomeUnknown(redb::Error::Io(
                    std::io::Error::other(
                        "the shared sync of this commit's group failed; reopen to learn whether it landed",
                    ),
                )));
            }
            self.synced.wait(&mut state);
        }
    }
}

/// One writer's place in the group, from taking the database lock to its commit.
pub(crate) struct Ticket<'g> {
    group: &'g GroupCommit,
    db: &'g redb::Database,
    counted: bool,
}

impl Ticket<'_> {
    /// Commits `tx` as the group requires; returns once it is as durable as `durability`
    /// promises.
    pub(crate) fn commit(mut self, mut tx: WriteTx, durability: Durability) -> Result<()> {
        self.counted = false;
        let (plan, seq) = self.group.decide(durability);
        let redb_durability = match plan {
            Plan::Sync => redb::Durability::Immediate,
            Plan::Join | Plan::Lazy => redb::Durability::None,
        };
        let committed = tx
            .set_durability(redb_durability)
            .and_then(|()| tx.commit());
        self.group.finished(plan, seq, committed.is_ok());
        committed?;
        if plan == Plan::Join {
            self.group.wait_durable(seq)?;
        }
        Ok(())
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.group.leave(self.db);
        }
    }
}
