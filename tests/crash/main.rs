//! Kill -9 crash harness ("crash-safe restore, proven").
//!
//! The test re-executes its own binary as a CHILD that opens a store file and runs a
//! deterministic workload: op `i` is an op of the store model's grammar
//! (`tests/common/store_model`, the one the proptest and the fuzzer use), decoded from a
//! stream derived from (seed, i), and the clock is a `ManualClock` at `time(i)`, so TTLs
//! are deterministic. Every write of every family runs: KV (large values included),
//! blobs, the byte store, contexts, cards, dedup, idempotency, sessions, location,
//! pending rings, snapshots and working memory, the payment webhook, multi-op batches
//! that commit or fail on purpose, sweeps (one transaction or batched) and compaction.
//! Each op is one `store.write` that also sets the cursor record `harness/cursor` to
//! `i + 1`; sweeps, the byte store, compaction and failing batches run in transactions
//! of their own, followed by the cursor's. The child prints `@ack <i>` after each
//! commit returns.
//!
//! The PARENT kills the child with SIGKILL at a random moment (during start-up, open or
//! recovery, mid-commit, between acks; sometimes twice before looking, so a child also
//! recovers a crashed file), reopens the file (verify on open) and checks that:
//! - the cursor lies between the last acknowledged op and one more (Immediate), or
//!   between the last flushed op and one more than the last acknowledged (Relaxed with a
//!   `flush()` every k ops): nothing acknowledged is lost, nothing unattempted appears;
//! - the store model's full observation (every key of every alphabet, every list, every
//!   table's physical record count, expiry index included) equals the model replayed to
//!   that cursor, read both at the start clock (every physical record, expired ones
//!   included) and at the cursor's clock; when the op at the cursor runs before the
//!   cursor's transaction, the model with that op done (for a batched sweep: any number
//!   of its batches) is accepted too;
//! - invariants hold on the store itself (`invariants.rs`): card index and reverse index
//!   agree, no pending ring over capacity and seqs strictly ordered, each snapshot filed
//!   under its own tenant only, a stored snapshot's sequence number never goes backwards
//!   across cycles unless it was deleted, no working memory survives its execution's
//!   cleanup; and on a copy of the file a far-future sweep removes exactly the expiring
//!   records and empties the expiry index;
//! - `check_integrity()` passes and the store takes a durable write afterwards.
//!
//! Then the next cycle starts a new child on the same file.
//!
//! `EDGESTATE_CRASH_CYCLES` (default 200) and `EDGESTATE_CRASH_RELAXED_CYCLES` (default
//! 50) set the cycles; `EDGESTATE_CRASH_SEED` (decimal or 0x-hex, printed by every run)
//! replays a run. A long local run:
//! `EDGESTATE_CRASH_CYCLES=2000 cargo test --release --test crash -- --nocapture`.

#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

mod child;
#[path = "../common/mod.rs"]
mod common;
mod harness;
mod invariants;
mod run;
#[path = "../common/store_model/mod.rs"]
mod store_model;

use std::time::Instant;

use child::{run_child_if_asked, Mode};
use common::env_u64;
use harness::Harness;
use store_model::Rng;

fn default_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Rng::new(nanos ^ u64::from(std::process::id())).next_u64()
}

#[test]
fn kill_9_never_loses_an_acknowledged_write() {
    run_child_if_asked();
    let started = Instant::now();
    let seed = env_u64("EDGESTATE_CRASH_SEED", default_seed());
    let cycles = env_u64("EDGESTATE_CRASH_CYCLES", 200);
    let totals = Harness::new(
        "kill_9_never_loses_an_acknowledged_write",
        Mode::Immediate,
        seed,
    )
    .run(cycles);
    totals.report("crash harness", seed, started);
}

#[test]
fn kill_9_with_relaxed_durability_keeps_a_consistent_prefix() {
    run_child_if_asked();
    let started = Instant::now();
    let seed = env_u64("EDGESTATE_CRASH_SEED", default_seed());
    let cycles = env_u64("EDGESTATE_CRASH_RELAXED_CYCLES", 50);
    let flush_every = Rng::derive(seed, 7, 0).range(2, 6);
    let totals = Harness::new(
        "kill_9_with_relaxed_durability_keeps_a_consistent_prefix",
        Mode::Relaxed { flush_every },
        seed,
    )
    .run(cycles);
    totals.report(
        &format!("crash harness (relaxed, flush every {flush_every})"),
        seed,
        started,
    );
}
