//! Helpers shared by the reliability tests. Each test binary uses a different subset.
#![allow(dead_code)]

pub mod faulty_backend;
pub mod flips;
pub mod gate_clock;
pub mod rng;
pub mod watchdog;

use std::sync::Mutex;

use edgestate::{Durability, ManualClock, Store, StoreBuilder};

/// The start of the manual clock of most tests (a whole second).
pub const T0_MS: u64 = 1_700_000_000_000;

/// An in-memory store with the default configuration and the system clock.
pub fn store() -> Store {
    Store::in_memory().expect("in-memory store")
}

/// An in-memory store with the default configuration on a manual clock at [`T0_MS`].
pub fn clocked_store() -> (Store, ManualClock) {
    clocked_store_with(T0_MS, |b| b)
}

/// An in-memory store on a manual clock at `start_ms`, its builder set up by `configure`.
pub fn clocked_store_with(
    start_ms: u64,
    configure: impl FnOnce(StoreBuilder) -> StoreBuilder,
) -> (Store, ManualClock) {
    let clock = ManualClock::new(start_ms);
    let store = configure(Store::builder().clock(clock.clone()))
        .in_memory()
        .expect("store");
    (store, clock)
}

/// A temporary file store with relaxed durability (no fsync per commit).
pub fn relaxed_temporary_store() -> Store {
    Store::builder()
        .durability(Durability::Relaxed)
        .temporary()
        .expect("temporary store")
}

/// A non-negative integer from the environment (decimal, or hex with `0x`), or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            }
            .unwrap_or_else(|_| panic!("{name} must be a non-negative integer, got {v:?}"))
        }
        Err(_) => default,
    }
}

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    /// What this thread was doing last ([`watchdog::Watchdog::beat`] notes it), for a
    /// panic that ends the process.
    static ACTIVITY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Notes what the current thread is doing now.
pub fn note_activity(doing: &str) {
    ACTIVITY.with(|a| {
        let mut activity = a.borrow_mut();
        activity.clear();
        activity.push_str(doing);
    });
}

/// Installs (once) a panic hook that records where each panic happened, so a test that
/// catches panics can say where they came from instead of only counting them.
pub fn record_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "unknown location".into());
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            let mut panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
            // The runtime's own panic for a panic that cannot unwind (one raised by a
            // destructor while unwinding from another): the process aborts next, and no
            // test gets to report anything, so say here what happened and where.
            if message.starts_with("panic in a ") {
                let before: Vec<&String> = panics.iter().rev().take(2).rev().collect();
                let activity = ACTIVITY.with(|a| a.borrow().clone());
                eprintln!("ABORT: {message} while: {activity}; the panics before it: {before:#?}");
            }
            panics.push(format!("[{thread}] {location}: {message}"));
            drop(panics);
            if std::env::var_os("EDGESTATE_SHOW_PANICS").is_some() {
                default(info);
            }
        }));
    });
}

/// Takes the panics recorded since the last call.
pub fn take_panics() -> Vec<String> {
    std::mem::take(&mut *PANICS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Takes the panics recorded on the current thread since the last call, leaving those of
/// other threads: tests of one binary run in parallel, each on a thread named after it,
/// and must not count each other's panics.
pub fn take_panics_of_this_thread() -> Vec<String> {
    let me = format!("[{}] ", std::thread::current().name().unwrap_or("?"));
    let mut all = PANICS.lock().unwrap_or_else(|p| p.into_inner());
    let (mine, others): (Vec<String>, Vec<String>) = std::mem::take(&mut *all)
        .into_iter()
        .partition(|p| p.starts_with(&me));
    *all = others;
    mine
}

/// Evenly spread sample of at most `budget` points of `0..total`, first and last included.
pub fn spread(total: u64, budget: u64) -> Vec<u64> {
    if total == 0 || budget == 0 {
        return Vec::new();
    }
    if budget >= total {
        return (0..total).collect();
    }
    if budget == 1 {
        return vec![0];
    }
    let mut points: Vec<u64> = (0..budget)
        .map(|i| i * (total - 1) / (budget - 1))
        .collect();
    points.dedup();
    points
}

/// The name of an error's variant, for tallies and messages.
pub fn error_variant(e: &edgestate::Error) -> &'static str {
    use edgestate::Error;
    match e {
        Error::Storage(_) => "Storage",
        Error::CommitOutcomeUnknown(_) => "CommitOutcomeUnknown",
        Error::Io { .. } => "Io",
        Error::NotAStore { .. } => "NotAStore",
        Error::Corrupt { .. } => "Corrupt",
        Error::Damaged { .. } => "Damaged",
        Error::Decode { .. } => "Decode",
        Error::SchemaTooNew { .. } => "SchemaTooNew",
        Error::SchemaTooOld { .. } => "SchemaTooOld",
        Error::AlreadyOpen { .. } => "AlreadyOpen",
        Error::InvalidInput { .. } => "InvalidInput",
        Error::VersionConflict { .. } => "VersionConflict",
        Error::Closed => "Closed",
        Error::ReopenFailed { .. } => "ReopenFailed",
        _ => "other",
    }
}
