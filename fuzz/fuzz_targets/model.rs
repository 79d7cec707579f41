//! Fuzzes the whole store against its model: the input is decoded into a sequence of
//! operations (the grammar of `tests/common/store_model/ops.rs`, one choice per byte or
//! two), which run on an in-memory store and on the model; outcomes must agree after
//! every step and the full observable state (every key, every list, every table's
//! physical record count) every few steps and at the end.
//!
//! `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run model -- -max_total_time=300`

#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/store_model/mod.rs"]
mod store_model;

use store_model::{check_run, decode_op, Choices, Model, Sut};

/// Choices read from the fuzzer's bytes; 0 once they run out.
struct FromBytes<'u, 'a>(&'u mut Unstructured<'a>);

impl Choices for FromBytes<'_, '_> {
    fn pick(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        self.0.int_in_range(0..=n - 1).unwrap_or(0)
    }
}

/// Longest op sequence one input may ask for.
const MAX_OPS: usize = 256;
/// Steps between full-state comparisons.
const OBSERVE_EVERY: usize = 4;

fuzz_target!(|data: &[u8]| {
    let mut bytes = Unstructured::new(data);
    let mut ops = Vec::new();
    while !bytes.is_empty() && ops.len() < MAX_OPS {
        ops.push(decode_op(&mut FromBytes(&mut bytes)));
    }
    // In memory: `Reopen` is a no-op here (the proptest covers it on a file).
    let mut sut = Sut::in_memory();
    let mut model = Model::new();
    if let Err(report) = check_run(&mut sut, &mut model, &ops, OBSERVE_EVERY) {
        panic!("{report}");
    }
});
