//! Deterministic workloads: op `i` of a seed is decoded by [`decode_op`] from a random
//! stream derived from (seed, i) alone, so processes started apart (a crash child and
//! its parent) derive the same ops without sharing state. The kill -9 harness and the
//! fault-injection test draw their workloads here: the same grammar and weights as the
//! proptest and the fuzzer, filtered to what each harness can run.

use super::decode::{decode_op, Choices};
use super::ops::Op;
use super::T0_MS;

/// A tiny deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// An independent stream for one (seed, purpose, index) triple.
    pub fn derive(seed: u64, purpose: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ purpose.wrapping_mul(0xA076_1D64_78BD_642F));
        let mixed = r.next_u64() ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        Rng(mixed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

impl Choices for Rng {
    fn pick(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

const PURPOSE_OP: u64 = 1;
const PURPOSE_TIME: u64 = 2;

/// The op sequence of one seed, keeping the ops `accept` allows, and (for harnesses that
/// set the clock themselves) the clock of each op.
#[derive(Debug, Clone)]
pub struct Workload {
    seed: u64,
    accept: fn(&Op) -> bool,
    times: Vec<u64>,
}

impl Workload {
    pub fn new(seed: u64, accept: fn(&Op) -> bool) -> Self {
        Workload {
            seed,
            accept,
            times: Vec::new(),
        }
    }

    /// Op `i`: the first op the stream of (seed, i) decodes that `accept` allows.
    pub fn op(&self, i: u64) -> Op {
        let mut r = Rng::derive(self.seed, PURPOSE_OP, i);
        loop {
            let op = decode_op(&mut r);
            if (self.accept)(&op) {
                return op;
            }
        }
    }

    /// The clock of op `i`: mostly steps below the shortest TTLs, sometimes jumps past the
    /// longest ones, and now and then a step back (clock skew), never before [`T0_MS`].
    pub fn time(&mut self, i: u64) -> u64 {
        while self.times.len() as u64 <= i {
            let j = self.times.len() as u64;
            let mut r = Rng::derive(self.seed, PURPOSE_TIME, j);
            let prev = self.times.last().copied().unwrap_or(T0_MS);
            let next = match r.below(100) {
                0..=69 => prev + r.below(300),
                70..=89 => prev + r.range(300, 2_000),
                90..=96 => prev + r.range(2_000, 6_000),
                _ => prev.saturating_sub(r.below(1_000)).max(T0_MS),
            };
            self.times.push(next);
        }
        self.times[i as usize]
    }
}

/// Ops that change the store and need nothing but the store (no clock moves, reopens or
/// pure reads): what the kill -9 harness runs.
pub fn is_store_write(op: &Op) -> bool {
    !op.is_read()
        && !matches!(
            op,
            Op::Advance { .. } | Op::Rewind { .. } | Op::Reopen | Op::ReopenAfterDrop
        )
}
