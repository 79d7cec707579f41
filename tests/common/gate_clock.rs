//! A clock that blocks store calls on demand, to prove async methods run off the
//! runtime's worker threads.
#![allow(clippy::unwrap_used)] // test helper: a poisoned lock is a test failure

/// A clock that, once armed, holds every store call until the test opens it (or 3 s
/// pass, which is recorded): a call made on the runtime's only thread would hold that
/// thread, and the task that opens the gate could never run.
#[derive(Debug, Clone, Default)]
pub struct GateClock {
    /// Set: every clock read waits for the gate.
    pub armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The gate.
    pub open: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Set when a read waited the full 3 s.
    pub timed_out: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl GateClock {
    /// Opens the gate.
    pub fn open(&self) {
        let (lock, cvar) = &*self.open;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }
}

impl edgestate::Clock for GateClock {
    fn now_ms(&self) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        if self.armed.load(SeqCst) {
            let (lock, cvar) = &*self.open;
            let guard = lock.lock().unwrap();
            let (_guard, waited) = cvar
                .wait_timeout_while(guard, std::time::Duration::from_secs(3), |open| !*open)
                .unwrap();
            if waited.timed_out() {
                self.timed_out.store(true, SeqCst);
            }
        }
        1_700_000_000_000
    }
}
