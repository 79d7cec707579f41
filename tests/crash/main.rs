//! Kill -9 crash harness ("crash-safe restore, proven").
//!
//! The test re-executes its own binary as a CHILD that opens a store file and runs a
//! deterministic workload derived from (seed, op index): each op is one `store.write`
//! that, besides its effect, sets the cursor record `harness/cursor` to `i + 1`; the
//! clock is a `ManualClock` at `time(i)`, so TTLs are deterministic. The effects mix KV
//! puts with TTLs, compare-and-swap, update closures, typed values, deletes and prefix
//! deletes with the seed tables: the payment webhook flow (card lookup, dedup claim,
//! pending capture, context event in one transaction), card link/unlink, context events
//! and patches, pending takes and session store/use/invalidate, and the agent tables:
//! execution snapshots (fresh, equal and stale sequence numbers, tenant moves), working
//! memory with TTLs, execution cleanups, idempotency begin/complete/abandon under short
//! leases, and the location cache. Some ops roll back on
//! purpose; sweeps (one transaction or batched) and clock jumps of hours make TTL
//! removals part of what crashes interrupt. The child prints `@ack <i>` after each
//! commit returns.
//!
//! The PARENT kills the child with SIGKILL at a random moment (during start-up, open or
//! recovery, mid-commit, between acks; sometimes twice before looking, so a child also
//! recovers a crashed file), reopens the file (verify on open) and checks that:
//! - the cursor lies between the last acknowledged op and one more (Immediate), or
//!   between the last flushed op and one more than the last acknowledged (Relaxed with a
//!   `flush()` every k ops): nothing acknowledged is lost, nothing unattempted appears;
//! - every physical record (expired ones included), and separately the view at the
//!   cursor's clock, equals the model replayed to that cursor, versions and expiries
//!   included (a kill inside a sweep may leave only some due records removed);
//! - invariants hold on the store itself: card index and reverse index agree, no
//!   pending ring over capacity and seqs strictly ordered, every dedup claim shows
//!   exactly once in its user's context events (unless pushed out of the bounded list),
//!   every live capture has its live claim, sessions within their actions, each
//!   snapshot's tenant index entry agrees with it, a stored snapshot's sequence number
//!   never goes backwards across cycles, no working-memory key survives its
//!   execution's cleanup, every table
//!   holds exactly the records found, and the expiry index one entry per expiring record
//!   (counted, and proved on a copy of the file by a far-future sweep);
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
mod harness;
mod invariants;
mod model;
mod model_agent;
mod model_tables;
mod render;
mod rng;
mod run;
mod workload;

use std::time::Instant;

use child::{run_child_if_asked, Mode};
use harness::Harness;
use rng::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            }
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        }
        Err(_) => default,
    }
}

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
