//! The background sweeper: a thread the Store owns that removes expired records in
//! bounded batches, stopped and joined when the last Store handle is dropped or closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::Inner;

/// Counters the sweeper keeps, read by [`crate::Store::stats`].
#[derive(Debug, Default)]
pub(crate) struct SweeperCounters {
    pub(crate) runs: AtomicU64,
    pub(crate) removed: AtomicU64,
    pub(crate) errors: AtomicU64,
}

#[derive(Debug, Default)]
struct Signal {
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Owns the thread; dropping it stops and joins the thread.
#[derive(Debug)]
pub(crate) struct Sweeper {
    signal: Arc<Signal>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Sweeper {
    /// Starts a sweeper over `inner`, waking every `interval`.
    pub(crate) fn start(
        inner: Arc<Inner>,
        interval: Duration,
        batch: usize,
    ) -> std::io::Result<Self> {
        let signal = Arc::new(Signal::default());
        let thread_signal = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("edgestate-sweeper".into())
            .spawn(move || run(&inner, &thread_signal, interval, batch))?;
        Ok(Sweeper {
            signal,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread and waits for it to finish its current batch.
    pub(crate) fn stop(&self) {
        *self.signal.stop.lock() = true;
        self.signal.wake.notify_all();
        if let Some(handle) = self.thread.lock().take() {
            // A panicking sweeper has already rolled back its transaction; nothing to do.
            let _ = handle.join();
        }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(inner: &Inner, signal: &Signal, interval: Duration, batch: usize) {
    loop {
        {
            let mut stop = signal.stop.lock();
            if *stop {
                return;
            }
            let _ = signal.wake.wait_for(&mut stop, interval);
            if *stop {
                return;
            }
        }
        inner.counters.runs.fetch_add(1, Ordering::Relaxed);
        // Sweep in bounded batches, one transaction each, so writers wait at most one batch.
        loop {
            if *signal.stop.lock() {
                return;
            }
            match inner.sweep_batch(batch) {
                Ok(outcome) => {
                    inner
                        .counters
                        .removed
                        .fetch_add(outcome.removed as u64, Ordering::Relaxed);
                    if outcome.scanned < batch {
                        break;
                    }
                }
                Err(_) => {
                    inner.counters.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}
